package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// event writes one audit line: what happened, who, which tenant, where,
// and the decision.
func (g *Gateway) event(r *http.Request, level slog.Level, event string, caller Caller, rt route, decision string, attrs ...slog.Attr) {
	base := []slog.Attr{
		slog.String("event", event),
		slog.String("decision", decision),
		slog.String("identity", caller.Subject),
		slog.String("tenant", caller.Tenant),
		slog.String("method", r.Method),
		slog.String("repository", rt.name),
	}
	if rt.reference != "" {
		base = append(base, slog.String("reference", rt.reference))
	}
	base = append(base, slog.String("remote", r.RemoteAddr))
	g.cfg.Audit.LogAttrs(context.Background(), level, "registry "+event, append(base, attrs...)...)
}

// refused logs a refusal. A challenge asking an anonymous client for a
// token, or an existing token for more scope, is the protocol working, not
// a refusal, and is logged at debug level only.
func (g *Gateway) refused(r *http.Request, caller Caller, rt route, event string, err error) {
	if event == "" {
		event = "request"
	}
	level := slog.LevelWarn
	var ch *Challenge
	if errors.As(err, &ch) && (errors.Is(err, ErrTokenRequired) || errors.Is(err, ErrInsufficientScope)) {
		level = slog.LevelDebug
	}
	g.event(r, level, event, caller, rt, "deny", slog.String("reason", err.Error()))
}
