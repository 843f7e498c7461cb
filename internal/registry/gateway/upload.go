package gateway

import (
	"log/slog"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// startUpload starts a blob upload. A cross-repository mount
// (?mount=<digest>&from=<repo>) needs pull on the source. When the caller
// may not pull it, the mount parameters are stripped and the upload starts
// as a plain one (202 and a Location), exactly as when a registry cannot
// mount: the distribution spec lets every client fall back to uploading,
// and the caller learns nothing about what the other repository holds. A
// mount without from (which some registries satisfy from any repository)
// is always stripped.
//
// When the caller's token only lacks the source's pull, but the rules would
// grant it, the answer is a challenge for both scopes, so the client gets a
// token that can mount.
func (g *Gateway) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	mount, from := q.Get("mount"), q.Get("from")
	need := []scope.Scope{scope.Repository(rt.name, scope.Push)}
	var stripReason string
	if q.Has("mount") || q.Has("from") {
		switch {
		case mount == "" || from == "":
			stripReason = "a mount needs both mount and from"
		case digest.Digest(mount).Validate() != nil:
			stripReason = "mount is not a valid digest"
		case scope.ValidateRepository(from) != nil:
			stripReason = "from is not a valid repository name"
		case from != rt.name:
			need = append(need, scope.Repository(from, scope.Pull))
		}
	}
	caller, err := g.cfg.Access.Authorized(r, need...)
	if len(need) == 2 && isDeniedOn(err, scope.TypeRepository, from, scope.Pull) {
		stripReason = err.Error()
		caller, err = g.cfg.Access.Authorized(r, need[0])
	}
	if err != nil {
		g.refuseWith(w, r, caller, rt, "push", err)
		return
	}
	if stripReason != "" {
		q.Del("mount")
		q.Del("from")
		r.URL.RawQuery = q.Encode()
		g.event(r, slog.LevelWarn, "mount", caller, rt, "deny",
			slog.String("from", from), slog.String("digest", mount),
			slog.String("reason", stripReason+"; mount stripped, the upload starts as a plain upload"))
	}
	rec := g.proxyRecorded(w, r)
	if stripReason == "" && mount != "" && rec.status == http.StatusCreated {
		g.event(r, slog.LevelInfo, "mount", caller, rt, "allow", slog.String("from", from), slog.String("digest", mount))
	}
}
