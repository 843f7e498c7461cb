package upstream

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestScopes(t *testing.T) {
	tests := []struct {
		method, target string
		want           []string
	}{
		{"GET", "/v2/", nil},
		{"GET", "/v2/_catalog?n=10", []string{"registry:catalog:*"}},
		{"GET", "/v2/project1/app/manifests/v1", []string{"repository:project1/app:pull"}},
		{"HEAD", "/v2/project1/app/blobs/sha256:00", []string{"repository:project1/app:pull"}},
		{"PUT", "/v2/project1/app/manifests/v1", []string{"repository:project1/app:pull,push"}},
		{"DELETE", "/v2/project1/app/manifests/v1", []string{"repository:project1/app:delete"}},
		{"DELETE", "/v2/project1/app/blobs/uploads/abc", []string{"repository:project1/app:pull,push"}},
		{"POST", "/v2/project1/app/blobs/uploads/?mount=sha256:00&from=project1/base", []string{"repository:project1/app:pull,push", "repository:project1/base:pull"}},
		{"GET", "/v2/a/manifests/b/tags/list", []string{"repository:a/manifests/b:pull"}},
		{"GET", "/v2/a/blobs/b/blobs/uploads/x", []string{"repository:a/blobs/b:pull"}},
		{"GET", "/v2/project1/app/referrers/sha256:00", []string{"repository:project1/app:pull"}},
	}
	for _, tt := range tests {
		got := Scopes(httptest.NewRequest(tt.method, "http://up"+tt.target, nil))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Scopes(%s %s) = %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in   []string
		want challenge
	}{
		{[]string{`Bearer realm="https://acr.example/oauth2/token",service="acr.example",scope="repository:a:pull"`},
			challenge{scheme: "bearer", realm: "https://acr.example/oauth2/token", service: "acr.example"}},
		{[]string{`bearer realm=https://h/token, service="a,b"`}, challenge{scheme: "bearer", realm: "https://h/token", service: "a,b"}},
		{[]string{`Basic realm="Registry Realm"`}, challenge{scheme: "basic"}},
		{[]string{`Negotiate`, `Basic realm="x"`}, challenge{scheme: "basic"}},
		{[]string{`Bearer service="no realm"`}, challenge{}},
		{[]string{`Bearer realm="unterminated`}, challenge{scheme: "bearer", realm: "unterminated"}},
		{nil, challenge{}},
	}
	for _, tt := range tests {
		if got := parseChallenge(tt.in); got != tt.want {
			t.Errorf("parseChallenge(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestFileSecret(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(p, []byte("one\n"), 0o600)
	get := FileSecret(p)
	if v, err := get(); err != nil || v != "one" {
		t.Fatalf("%q %v", v, err)
	}
	os.WriteFile(p, []byte("two-rotated\r\n"), 0o600)
	later := time.Now().Add(time.Second)
	os.Chtimes(p, later, later)
	if v, _ := get(); v != "two-rotated" {
		t.Errorf("after rotation: %q", v)
	}
	os.Remove(p)
	if _, err := get(); err == nil {
		t.Error("a removed secret file still answers")
	}
}

// TestCredentialsStayHome: the upstream's credentials are never sent to
// another host.
func TestCredentialsStayHome(t *testing.T) {
	var sawAuth string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sawAuth = r.Header.Get("Authorization") }))
	defer other.Close()
	up, _ := http.NewRequest(http.MethodGet, "http://upstream.invalid/", nil)
	tr := &Transport{Upstream: up.URL, Credentials: Credentials{Token: func() (string, error) { return "secret", nil }}}
	resp, err := (&http.Client{Transport: tr}).Get(other.URL + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sawAuth != "" {
		t.Errorf("credentials sent to another host: %q", sawAuth)
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{`realm="a",service="b"`, `realm=a, scope="x y"`, `a="\"q\""`, `=`, `"`, `a="`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseParams(s)
		_ = parseChallenge([]string{"Bearer " + s})
	})
}
