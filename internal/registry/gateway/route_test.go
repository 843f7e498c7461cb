package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

func TestParseRoute(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		path     string
		want     route
		wantCode string
	}{
		{path: "/v2/", want: route{kind: kindBase}},
		{path: "/v2", want: route{kind: kindBase}},
		{path: "/v2/_catalog", want: route{kind: kindCatalog}},
		{path: "/v2/project1/app/tags/list", want: route{kind: kindTags, name: "project1/app"}},
		{path: "/v2/project1/app/manifests/v1.0", want: route{kind: kindManifest, name: "project1/app", reference: "v1.0"}},
		{path: "/v2/project1/app/manifests/" + d, want: route{kind: kindManifest, name: "project1/app", reference: d}},
		{path: "/v2/project1/app/blobs/" + d, want: route{kind: kindBlob, name: "project1/app", reference: d}},
		{path: "/v2/project1/app/blobs/uploads/", want: route{kind: kindUploadStart, name: "project1/app"}},
		{path: "/v2/project1/app/blobs/uploads/3f1c-AB_x=", want: route{kind: kindUpload, name: "project1/app", reference: "3f1c-AB_x="}},
		{path: "/v2/project1/app/referrers/" + d, want: route{kind: kindReferrers, name: "project1/app", reference: d}},
		// names whose components are route words
		{path: "/v2/a/manifests/b/manifests/latest", want: route{kind: kindManifest, name: "a/manifests/b", reference: "latest"}},
		{path: "/v2/a/blobs/blobs/uploads/", want: route{kind: kindUploadStart, name: "a/blobs"}},
		{path: "/v2/tags/list/tags/list", want: route{kind: kindTags, name: "tags/list"}},
		{path: "/v2/a/blobs/uploads/blobs/" + d, want: route{kind: kindBlob, name: "a/blobs/uploads", reference: d}},

		{path: "/v2/Project1/app/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1/../project2/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1/./app/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1//app/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1%2Fapp/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1/%61pp/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2//tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/" + strings.Repeat("a/", 130) + "a/tags/list", wantCode: CodeNameInvalid},
		{path: "/v2/project1/app/manifests/-x", wantCode: CodeTagInvalid},
		{path: "/v2/project1/app/manifests/" + strings.Repeat("a", 129), wantCode: CodeTagInvalid},
		{path: "/v2/project1/app/manifests/sha256:xyz", wantCode: CodeDigestInvalid},
		{path: "/v2/project1/app/blobs/latest", wantCode: CodeDigestInvalid},
		{path: "/v2/project1/app/referrers/latest", wantCode: CodeDigestInvalid},
		{path: "/v2/project1/app/blobs/uploads/a:b", wantCode: "BLOB_UPLOAD_UNKNOWN"},
		{path: "/v2/project1/app/blobs/uploads/..", wantCode: "BLOB_UPLOAD_UNKNOWN"},
		{path: "/v2/project1/app", wantCode: CodeUnsupported},
		{path: "/v2/project1/app/tags/all", wantCode: CodeUnsupported},
		{path: "/", wantCode: CodeUnsupported},
		{path: "/token", wantCode: CodeUnsupported},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "http://gw"+tt.path, nil)
		got, err := parseRoute(r)
		if tt.wantCode != "" {
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.wantCode {
				t.Errorf("parseRoute(%q) = %+v, %v; want error %s", tt.path, got, err, tt.wantCode)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v", tt.path, got, err, tt.want)
		}
	}
}

func TestChallengeHeader(t *testing.T) {
	c := &Challenge{Realm: "https://gw.example/token", Service: "gw", Err: ErrInsufficientScope,
		Scopes: []scope.Scope{scope.Repository("project1/app", "pull", "push"), scope.Repository("project1/base", "pull")}}
	want := `Bearer realm="https://gw.example/token",service="gw",scope="repository:project1/app:pull,push repository:project1/base:pull",error="insufficient_scope"`
	if got := c.Header(); got != want {
		t.Errorf("Header() = %s\nwant       %s", got, want)
	}
	w := httptest.NewRecorder()
	c.WriteHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/", nil))
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != want ||
		!strings.Contains(w.Body.String(), `{"errors":[{"code":"UNAUTHORIZED","message":"insufficient scope","detail":[{"Type":"repository","Class":"","Name":"project1/app","Action":"pull"}`) {
		t.Errorf("WriteHTTP: %d %q %s", w.Code, w.Header(), w.Body)
	}
	// HEAD responses carry no body.
	w = httptest.NewRecorder()
	(&Denied{Access: scope.Repository("a", "pull"), Message: "no"}).WriteHTTP(w, httptest.NewRequest(http.MethodHead, "/v2/a/manifests/x", nil))
	if w.Code != 403 || w.Body.Len() != 0 {
		t.Errorf("HEAD denied: %d %q", w.Code, w.Body)
	}
}

func TestLocalLocker(t *testing.T) {
	var l LocalLocker
	ctx := t.Context()
	unlock, err := l.Lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := l.Lock(ctx, "a")
		if err == nil {
			close(got)
			u()
		}
	}()
	u2, err := l.Lock(ctx, "b") // another key is not blocked
	if err != nil {
		t.Fatal(err)
	}
	u2()
	select {
	case <-got:
		t.Fatal("a second holder of the same key")
	default:
	}
	unlock()
	unlock() // idempotent
	<-got
	waiting, cancel := context.WithCancel(ctx)
	unlock, _ = l.Lock(ctx, "a")
	cancel()
	if _, err := l.Lock(waiting, "a"); err == nil {
		t.Error("Lock with a cancelled context succeeded while held")
	}
	unlock()
	l.mu.Lock()
	n := len(l.locks)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d lock entries left behind", n)
	}
}

// FuzzParseRoute: any path, raw or encoded, either parses into a route whose
// name is valid and which formats back to the same path, or is refused with
// a distribution-spec error. Never a panic.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/manifests/v1", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x",
		"/v2/a/../b/tags/list", "/v2/a%2Fb/tags/list", "/v2/a/manifests/b/manifests/c", "/v2/a/referrers/sha256:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, err := http.NewRequest(http.MethodGet, "http://gw"+path, nil)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		rt, err := parseRoute(r)
		if err != nil {
			var he httpError
			if !errors.As(err, &he) {
				t.Fatalf("parseRoute(%q) error %v does not write itself", path, err)
			}
			return
		}
		if r.URL.RawPath != "" || strings.Contains(r.URL.EscapedPath(), "%") {
			t.Fatalf("parseRoute(%q) accepted an encoded path", path)
		}
		if rt.kind != kindBase && rt.kind != kindCatalog {
			if scope.ValidateRepository(rt.name) != nil {
				t.Fatalf("parseRoute(%q) accepted name %q", path, rt.name)
			}
			if !strings.HasPrefix(r.URL.Path, "/v2/"+rt.name+"/") {
				t.Fatalf("parseRoute(%q): name %q is not the path's prefix", path, rt.name)
			}
		}
	})
}
