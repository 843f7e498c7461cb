package registry_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/registry"
)

// TestUpstreamDownLeaksNothing: with the upstream stopped, the checks the
// gateway makes itself (immutable tag on push, held digests on delete)
// refuse with a distribution-spec error that says the upstream did not
// answer, and never the upstream's URL or address; the detail is logged.
func TestUpstreamDownLeaksNothing(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, envOptions{mutate: func(cfg *registry.Config) {
		cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}})
	img := randomImage(t)
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mediaType, _ := img.MediaType()
	digest := digestOf(t, img).String()
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull,push,delete")
	e.upstream.Close()

	for _, tc := range []struct {
		name, method, path string
		body               []byte
	}{
		{"push of an immutable tag", http.MethodPut, "/v2/project1/app/manifests/v1", manifest},
		{"delete of a manifest by digest", http.MethodDelete, "/v2/project1/app/manifests/" + digest, nil},
		{"delete of a blob by digest", http.MethodDelete, "/v2/project1/app/blobs/" + digest, nil},
		{"pull", http.MethodGet, "/v2/project1/app/manifests/v1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, tok, bytes.NewReader(tc.body), "Content-Type", string(mediaType))
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %s, want 502; body %s", resp.Status, body)
			}
			code, msg := specError(t, body)
			if code != "UNAVAILABLE" || !strings.Contains(msg, "the upstream registry did not answer") {
				t.Errorf("error %s %q, want UNAVAILABLE saying the upstream did not answer", code, msg)
			}
			for _, leak := range []string{e.upstream.Host, e.upstream.URL.Hostname(), "dial", "tcp"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("the body names %q: %s", leak, body)
				}
			}
		})
	}
	if !strings.Contains(logs.String(), e.upstream.Host) {
		t.Errorf("the operational log lacks the upstream failure's detail:\n%s", logs.String())
	}
}
