// Package gateway is the registry gateway's HTTP edge: an OCI
// distribution-spec reverse proxy that authorizes every request through an
// AccessController (bearer tokens of the token service, checked against the
// tenants' rules), enforces immutable tags, closes the known bypasses of a
// path-based check, and streams everything else to the upstream registry
// with the gateway's own credentials.
//
// What each endpoint needs:
//
//	GET  /v2/                                   a valid token
//	GET  /v2/_catalog                           registry:catalog:* (filtered to repositories the tenant may pull)
//	GET  /v2/<name>/tags/list                   pull
//	GET  /v2/<name>/referrers/<digest>          pull
//	GET  /v2/<name>/manifests|blobs/<ref>       pull
//	PUT  /v2/<name>/manifests/<ref>             push, and immutable tags may not move
//	DELETE /v2/<name>/manifests/<tag>           delete, and not an immutable tag
//	DELETE /v2/<name>/manifests|blobs/<digest>  delete, and nothing an immutable tag holds
//	POST /v2/<name>/blobs/uploads/              push; a mount also needs pull on ?from=, else it is stripped
//	*    /v2/<name>/blobs/uploads/<id>          push
//
// Names, references and upload ids are validated before anything else (see
// parseRoute). Errors are distribution-spec error bodies.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// DefaultMaxManifestBytes is the largest manifest accepted, as Distribution.
const DefaultMaxManifestBytes = 4 << 20

// Config configures a Gateway.
type Config struct {
	// Upstream is the registry's base URL (scheme and host; no path).
	Upstream *url.URL
	// Transport reaches the upstream with the gateway's credentials.
	Transport http.RoundTripper
	// Access authorizes requests.
	Access AccessController
	// Rules returns the current tenant rules (immutable tags, catalog
	// filtering).
	Rules func() *authz.Rules
	// Audit receives one line per push, delete and refusal; nil discards.
	Audit *slog.Logger
	// Log receives operational errors; nil discards.
	Log *slog.Logger
	// MaxManifestBytes limits manifest uploads; zero means
	// DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// Locker serializes immutable-tag pushes; nil means a LocalLocker.
	Locker Locker
	// UpstreamTimeout bounds the gateway's own requests to the upstream
	// (immutability checks, catalog pages); zero means 30 seconds.
	UpstreamTimeout time.Duration
}

// Gateway is the registry gateway handler.
type Gateway struct {
	cfg    Config
	proxy  *httputil.ReverseProxy
	client *http.Client
}

// New checks the configuration and builds the gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Upstream == nil || cfg.Upstream.Host == "" || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") {
		return nil, errors.New("gateway: the upstream must be an http or https URL")
	}
	if cfg.Upstream.Path != "" && cfg.Upstream.Path != "/" {
		return nil, fmt.Errorf("gateway: upstream %s has a path; registries serve /v2/ at their root", cfg.Upstream)
	}
	if cfg.Access == nil || cfg.Rules == nil {
		return nil, errors.New("gateway: Access and Rules are required")
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.MaxManifestBytes <= 0 {
		cfg.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if cfg.Locker == nil {
		cfg.Locker = &LocalLocker{}
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 30 * time.Second
	}
	discard := slog.New(slog.DiscardHandler)
	if cfg.Audit == nil {
		cfg.Audit = discard
	}
	if cfg.Log == nil {
		cfg.Log = discard
	}
	g := &Gateway{cfg: cfg}
	g.proxy = g.newProxy()
	g.client = &http.Client{
		Transport: cfg.Transport,
		// The gateway's own requests read manifests and tag lists, which are
		// not redirected; refusing redirects keeps its credentials home.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return g, nil
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, err := parseRoute(r)
	if err != nil {
		g.refused(r, Caller{}, rt, "", err)
		writeError(w, r, err)
		return
	}
	switch rt.kind {
	case kindBase:
		if !g.allowMethods(w, r, rt, http.MethodGet, http.MethodHead) {
			return
		}
		if _, ok := g.authorize(w, r, rt); !ok {
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte("{}"))
		}
	case kindCatalog:
		if !g.allowMethods(w, r, rt, http.MethodGet) {
			return
		}
		if caller, ok := g.authorize(w, r, rt, scope.Catalog()); ok {
			g.serveCatalog(w, r, caller)
		}
	case kindTags, kindReferrers:
		if !g.allowMethods(w, r, rt, http.MethodGet, http.MethodHead) {
			return
		}
		if _, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Pull)); ok {
			g.proxy.ServeHTTP(w, r)
		}
	case kindManifest:
		g.serveManifest(w, r, rt)
	case kindBlob:
		g.serveBlob(w, r, rt)
	case kindUploadStart:
		if g.allowMethods(w, r, rt, http.MethodPost) {
			g.startUpload(w, r, rt)
		}
	case kindUpload:
		if !g.allowMethods(w, r, rt, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut, http.MethodDelete) {
			return
		}
		if caller, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Push)); ok {
			rec := g.proxyRecorded(w, r)
			if r.Method == http.MethodPut && rec.status == http.StatusCreated {
				g.event(r, slog.LevelDebug, "blob-push", caller, rt, "allow",
					slog.String("digest", r.URL.Query().Get("digest")))
			}
		}
	}
}

func (g *Gateway) serveManifest(w http.ResponseWriter, r *http.Request, rt route) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if _, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Pull)); ok {
			g.proxy.ServeHTTP(w, r)
		}
	case http.MethodPut:
		if caller, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Push)); ok {
			g.putManifest(w, r, rt, caller)
		}
	case http.MethodDelete:
		if caller, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Delete)); ok {
			g.deleteManifest(w, r, rt, caller)
		}
	default:
		g.allowMethods(w, r, rt, http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete)
	}
}

func (g *Gateway) serveBlob(w http.ResponseWriter, r *http.Request, rt route) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if _, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Pull)); ok {
			g.proxy.ServeHTTP(w, r)
		}
	case http.MethodDelete:
		if caller, ok := g.authorize(w, r, rt, scope.Repository(rt.name, scope.Delete)); ok {
			g.deleteBlob(w, r, rt, caller)
		}
	default:
		g.allowMethods(w, r, rt, http.MethodGet, http.MethodHead, http.MethodDelete)
	}
}

// authorize asks the access controller; on refusal it writes the response,
// logs the refusal and returns false.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, rt route, access ...scope.Scope) (Caller, bool) {
	caller, err := g.cfg.Access.Authorized(r, access...)
	if err == nil {
		return caller, true
	}
	g.refused(r, caller, rt, "", err)
	writeError(w, r, err)
	return caller, false
}

func (g *Gateway) allowMethods(w http.ResponseWriter, r *http.Request, rt route, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	for _, m := range methods {
		w.Header().Add("Allow", m)
	}
	writeError(w, r, newError(http.StatusMethodNotAllowed, CodeUnsupported, "%s is not supported on the %s endpoint", r.Method, rt.kind))
	return false
}

// upstreamContext bounds the gateway's own upstream requests.
func (g *Gateway) upstreamContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), g.cfg.UpstreamTimeout)
}
