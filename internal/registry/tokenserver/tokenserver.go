// Package tokenserver is the HTTP edge of the token service: the Docker
// token endpoint and the JWKS of the signing keys.
//
//	GET  /token?service=<service>&scope=<scope>[&scope=...]   basic auth
//	POST /token   grant_type=password&username=..&password=..&service=..&scope=..  (OAuth2 form, as containerd and oras send)
//	GET  /.well-known/jwks.json
//
// A token grants the intersection of the scopes asked for and the caller's
// rights (see package authz); a scope with nothing allowed is left out, it
// never fails the request. The answer is
// {"token","access_token","expires_in","issued_at"} (and "scope" for the
// OAuth2 form). A login without scopes (docker login) gets a token with no
// access. A login refused by the authenticator's throttle (too many failed
// logins for the name or from the address) is answered 429
// TOOMANYREQUESTS with Retry-After, before any password is checked.
package tokenserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantguard/tenantguard/internal/registry/authn"
	"github.com/tenantguard/tenantguard/internal/registry/authz"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
	"github.com/tenantguard/tenantguard/internal/registry/token"
)

// Paths served.
const (
	TokenPath = "/token"
	JWKSPath  = "/.well-known/jwks.json"
)

const maxFormBytes = 64 << 10

// Server is the token endpoint.
type Server struct {
	// Service is the registry's service name; a request naming another is
	// refused.
	Service string
	// Issuer signs tokens.
	Issuer *token.Issuer
	// Authenticator checks credentials.
	Authenticator authn.Authenticator
	// Rules returns the current tenant rules.
	Rules func() *authz.Rules
	// Audit receives one line per token issued or refused; nil discards.
	Audit *slog.Logger
	// Log receives operational errors; nil discards.
	Log *slog.Logger
}

// Handler returns the HTTP handler of the token service.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+TokenPath, s.serveGet)
	mux.HandleFunc("POST "+TokenPath, s.servePost)
	mux.HandleFunc("GET "+JWKSPath, s.serveJWKS)
	return mux
}

// response is the Docker token response.
type response struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

// tokenError is a refusal, written as distribution-spec errors for GET and
// as OAuth2 errors for POST.
type tokenError struct {
	status int
	code   string // distribution-spec code
	oauth  string // RFC 6749 error
	msg    string
	// retryAfter, if set, is sent as Retry-After (whole seconds, rounded up).
	retryAfter time.Duration
}

func (e *tokenError) Error() string { return e.msg }

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	username, password, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="tenantguard registry"`)
		s.writeGetError(w, &tokenError{status: http.StatusUnauthorized, code: "UNAUTHORIZED",
			msg: "credentials required: a robot account, or any user name with a Kubernetes service account token as the password"})
		return
	}
	resp, err := s.issue(r, q.Get("service"), username, password, q["scope"])
	if err != nil {
		var te *tokenError
		if errors.As(err, &te) && te.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="tenantguard registry"`)
		}
		s.writeGetError(w, err)
		return
	}
	resp.Scope = ""
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) servePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.writePostError(w, &tokenError{status: http.StatusBadRequest, oauth: "invalid_request", msg: "the body is not a form"})
		return
	}
	f := r.PostForm
	switch gt := f.Get("grant_type"); gt {
	case "password":
	case "refresh_token":
		s.writePostError(w, &tokenError{status: http.StatusBadRequest, oauth: "unsupported_grant_type",
			msg: "refresh tokens are not issued; use grant_type=password"})
		return
	default:
		s.writePostError(w, &tokenError{status: http.StatusBadRequest, oauth: "unsupported_grant_type",
			msg: fmt.Sprintf("grant_type %q is not supported; use password", gt)})
		return
	}
	resp, err := s.issue(r, f.Get("service"), f.Get("username"), f.Get("password"), f["scope"])
	if err != nil {
		s.writePostError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) issue(r *http.Request, service, username, password string, scopeParams []string) (response, error) {
	if service != "" && service != s.Service {
		return response{}, &tokenError{status: http.StatusBadRequest, code: "DENIED", oauth: "invalid_request",
			msg: fmt.Sprintf("this token service issues tokens for service %q, not %q", s.Service, service)}
	}
	requested, err := scope.ParseAll(scopeParams)
	if err != nil {
		return response{}, &tokenError{status: http.StatusBadRequest, code: "NAME_INVALID", oauth: "invalid_scope", msg: err.Error()}
	}
	id, err := s.Authenticator.Authenticate(r.Context(), r.RemoteAddr, username, password)
	if err != nil {
		var throttled *authn.ThrottledError
		if errors.As(err, &throttled) {
			s.audit(r, "deny", username, authz.Identity{}, requested, nil, err.Error())
			return response{}, &tokenError{status: http.StatusTooManyRequests, code: "TOOMANYREQUESTS", oauth: "temporarily_unavailable",
				msg: err.Error(), retryAfter: throttled.RetryAfter}
		}
		if errors.Is(err, authn.ErrInvalidCredentials) {
			s.audit(r, "deny", username, authz.Identity{}, requested, nil, err.Error())
			return response{}, &tokenError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", oauth: "invalid_grant", msg: "invalid username or password"}
		}
		s.log().Error("authentication failed", "user", username, "error", err)
		return response{}, &tokenError{status: http.StatusServiceUnavailable, code: "UNAVAILABLE", oauth: "temporarily_unavailable",
			msg: "credentials could not be checked right now; try again"}
	}
	rules := s.Rules()
	if !rules.HasTenant(id.Tenant) {
		msg := rules.Explain(id, "", authz.None)
		s.audit(r, "deny", username, id, requested, nil, msg)
		return response{}, &tokenError{status: http.StatusForbidden, code: "DENIED", oauth: "invalid_grant", msg: msg}
	}
	granted := rules.Grant(id, requested)
	raw, claims, err := s.Issuer.Issue(id.Subject, id.Tenant, limitNames(id.Limit), granted)
	if err != nil {
		s.log().Error("issue token", "error", err)
		return response{}, &tokenError{status: http.StatusInternalServerError, code: "UNKNOWN", oauth: "server_error", msg: "the token could not be signed"}
	}
	s.audit(r, "allow", username, id, requested, granted, "")
	return response{
		Token: raw, AccessToken: raw,
		ExpiresIn: int(claims.Expiry.Sub(claims.IssuedAt) / time.Second),
		IssuedAt:  claims.IssuedAt.UTC().Format(time.RFC3339),
		Scope:     scope.Format(granted),
	}, nil
}

func limitNames(a authz.Actions) []string {
	if a == authz.None {
		return nil
	}
	return a.Names()
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	ks := s.Issuer.Keys()
	if ks == nil {
		http.Error(w, "no keys", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=60")
	_ = json.NewEncoder(w).Encode(ks.JWKS())
}

func (s *Server) audit(r *http.Request, decision, username string, id authz.Identity, requested, granted []scope.Scope, reason string) {
	l := s.Audit
	if l == nil {
		return
	}
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("event", "token"),
		slog.String("decision", decision),
		slog.String("identity", id.Subject),
		slog.String("tenant", id.Tenant),
		slog.String("requested", scope.Format(requested)),
		slog.String("granted", scope.Format(granted)),
		slog.String("remote", r.RemoteAddr),
	}
	if decision != "allow" {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("user", truncate(username, 64)), slog.String("reason", reason))
	}
	l.LogAttrs(r.Context(), level, "registry token", attrs...)
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) writeGetError(w http.ResponseWriter, err error) {
	te := asTokenError(err)
	te.setRetryAfter(w)
	code := te.code
	if code == "" {
		code = "UNKNOWN"
	}
	writeJSON(w, te.status, map[string]any{"errors": []map[string]string{{"code": code, "message": te.msg}}})
}

func (s *Server) writePostError(w http.ResponseWriter, err error) {
	te := asTokenError(err)
	te.setRetryAfter(w)
	if te.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tenantguard registry"`)
	}
	writeJSON(w, te.status, map[string]string{"error": te.oauth, "error_description": te.msg})
}

func (te *tokenError) setRetryAfter(w http.ResponseWriter) {
	if te.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((te.retryAfter+time.Second-1)/time.Second), 10))
	}
}

func asTokenError(err error) *tokenError {
	var te *tokenError
	if errors.As(err, &te) {
		return te
	}
	return &tokenError{status: http.StatusInternalServerError, code: "UNKNOWN", oauth: "server_error", msg: "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n]
	}
	return s
}
