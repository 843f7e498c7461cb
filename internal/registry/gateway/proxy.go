package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// proxyBufferSize is the copy buffer of streamed bodies. Larger than
// ReverseProxy's default 32 KiB: fewer system calls per blob.
const proxyBufferSize = 256 << 10

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, proxyBufferSize)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

var errUpstreamUnauthorized = errors.New("the upstream registry refused the gateway's own credentials")

// newProxy streams requests to the upstream: bodies are copied through a
// fixed buffer in both directions, never held whole. Responses flush as
// ReverseProxy does by default (at once for bodies of unknown length);
// registry responses have a known length, so no periodic flush is needed.
func (g *Gateway) newProxy() *httputil.ReverseProxy {
	up := g.cfg.Upstream
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = up.Scheme
			pr.Out.URL.Host = up.Host
			pr.Out.Host = up.Host
			// The client's credentials are for the gateway; the transport sets
			// the upstream's own.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
		},
		Transport:      g.cfg.Transport,
		BufferPool:     &bufferPool{},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(g.cfg.Log.Handler(), slog.LevelWarn),
	}
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	// The upstream's challenge would send clients to the upstream's realm.
	resp.Header.Del("WWW-Authenticate")
	if resp.StatusCode == http.StatusUnauthorized {
		return errUpstreamUnauthorized
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", g.rewriteURL(loc))
	}
	if links := resp.Header.Values("Link"); len(links) > 0 {
		resp.Header.Del("Link")
		for _, l := range links {
			resp.Header.Add("Link", g.rewriteLink(l))
		}
	}
	return nil
}

// rewriteURL turns an absolute URL on the upstream into a path on the
// gateway (clients resolve it against the gateway). URLs on other hosts
// (a redirect to blob storage) are left alone.
func (g *Gateway) rewriteURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return s
	}
	if u.Scheme != g.cfg.Upstream.Scheme || !strings.EqualFold(u.Host, g.cfg.Upstream.Host) {
		return s
	}
	return u.RequestURI()
}

// rewriteLink rewrites the URL of a Link header (<url>; rel="next").
func (g *Gateway) rewriteLink(l string) string {
	start, end := strings.IndexByte(l, '<'), strings.IndexByte(l, '>')
	if start < 0 || end < start {
		return l
	}
	return l[:start+1] + g.rewriteURL(l[start+1:end]) + l[end:]
}

func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	if errors.Is(err, errUpstreamUnauthorized) {
		g.cfg.Log.Error("upstream refused the gateway's credentials; check --upstream-username/--upstream-password-file/--upstream-token-file", "path", r.URL.Path)
		writeError(w, r, newError(http.StatusBadGateway, CodeUnavailable, "%v", err))
		return
	}
	g.cfg.Log.Warn("upstream request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, r, newError(http.StatusBadGateway, CodeUnavailable, "the upstream registry did not answer"))
}

// statusRecorder remembers the status and headers the proxy wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (Flush).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// proxyRecorded proxies and returns what was answered, for the audit log.
func (g *Gateway) proxyRecorded(w http.ResponseWriter, r *http.Request) *statusRecorder {
	rec := &statusRecorder{ResponseWriter: w}
	g.proxy.ServeHTTP(rec, r)
	return rec
}
