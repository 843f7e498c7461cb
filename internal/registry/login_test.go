package registry_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/tenantguard/tenantguard/internal/registry"
	"github.com/tenantguard/tenantguard/internal/registry/authn"
)

// tokenStatus asks the token endpoint for a token through client and
// returns the status, the Retry-After header and the body.
func (e *env) tokenStatus(t testing.TB, client *http.Client, user, password string) (int, string, []byte) {
	t.Helper()
	q := url.Values{"service": {e.cfg.Service}, "scope": {"repository:project1/app:pull"}}
	req, _ := http.NewRequest(http.MethodGet, e.srv.Realm+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, password)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), body
}

// clientFrom is an HTTP client whose connections come from a loopback
// address of its own (127.0.0.2, ...), so tests can be several clients.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestRemovedRobotTokenRefused: a token outlives its robot by no more than
// the reload of the robots file.
func TestRemovedRobotTokenRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := remote.Write(e.ref(t, "project1/app:1"), randomImage(t), p1...); err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull")
	const path = "/v2/project1/app/manifests/1"
	if resp, _ := e.do(t, http.MethodHead, path, tok, nil, "Accept", "application/vnd.docker.distribution.manifest.v2+json"); resp.StatusCode != http.StatusOK {
		t.Fatalf("before the removal: %s", resp.Status)
	}
	// Take p1-ci out of the robots file.
	var kept []string
	for _, entry := range strings.Split(robotsText, "\n- ")[1:] {
		if !strings.HasPrefix(entry, "name: p1-ci\n") {
			kept = append(kept, entry)
		}
	}
	writeFile(t, filepath.Dir(e.cfg.RobotsFile), filepath.Base(e.cfg.RobotsFile), "robots:\n- "+strings.Join(kept, "\n- "))
	// Wait for the reload: p1-ci's login is refused.
	eventually(t, func() bool {
		status, _, _ := e.tokenStatus(t, http.DefaultClient, "p1-ci", "p1-secret")
		return status == http.StatusUnauthorized
	})
	// The token issued before is refused at once, not when it expires.
	resp, body := e.do(t, http.MethodGet, path, tok, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("the removed robot's token: %s %s %s", resp.Status, resp.Header.Get("WWW-Authenticate"), body)
	}
	if _, msg := specError(t, body); !strings.Contains(msg, "no longer exists") {
		t.Errorf("message %q does not say why", msg)
	}
	// Other robots are unaffected.
	p2tok := e.token(t, "p2-ci", "p2-secret", "repository:project2/app:pull")
	if resp, _ := e.do(t, http.MethodGet, "/v2/", p2tok, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another robot: %s", resp.Status)
	}
}

// TestLoginThrottle: failed logins are limited per user name and per
// client address with 429 TOOMANYREQUESTS and Retry-After, before any
// password check; a limited name or address does not stop anyone else, and
// a login the gateway has cached is never limited.
func TestLoginThrottle(t *testing.T) {
	// A long first wait and a long login cache, so that the test never
	// depends on how fast it runs.
	e := newEnv(t, envOptions{mutate: func(cfg *registry.Config) {
		cfg.LoginThrottle = &authn.Throttle{Backoff: time.Hour}
		cfg.LoginCacheTTL = time.Hour
	}})
	good := http.DefaultClient
	if status, _, body := e.tokenStatus(t, good, "p1-ci", "p1-secret"); status != http.StatusOK {
		t.Fatalf("first login: %d %s", status, body)
	}

	// A name: 5 failures, then 429, even with the right password.
	guesser := clientFrom("127.0.0.2")
	for i := 0; i < 5; i++ {
		if status, _, body := e.tokenStatus(t, guesser, "p2-ci", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, status, body)
		}
	}
	status, retry, body := e.tokenStatus(t, clientFrom("127.0.0.3"), "p2-ci", "p2-secret")
	if status != http.StatusTooManyRequests {
		t.Fatalf("sixth login of p2-ci: %d %s, want 429", status, body)
	}
	if code, msg := specError(t, body); code != "TOOMANYREQUESTS" || !strings.Contains(msg, "user name") || !strings.Contains(msg, "try again") {
		t.Errorf("error %s %q", code, msg)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Errorf("Retry-After %q", retry)
	}
	// The same answer for a name no robot has.
	for i := 0; i < 5; i++ {
		e.tokenStatus(t, clientFrom("127.0.0.4"), "no-such-robot", "guess")
	}
	if status, _, _ := e.tokenStatus(t, clientFrom("127.0.0.5"), "no-such-robot", "guess"); status != http.StatusTooManyRequests {
		t.Errorf("unknown name after 5 failures: %d, want 429 as for a robot", status)
	}

	// An address: 20 failures with new names, then 429 for any name, while
	// other addresses log in.
	flooder := clientFrom("127.0.0.6")
	for i := 0; i < 20; i++ {
		if status, _, body := e.tokenStatus(t, flooder, "guess-"+strconv.Itoa(i), "x"); status != http.StatusUnauthorized {
			t.Fatalf("address failure %d: %d %s", i+1, status, body)
		}
	}
	status, _, body = e.tokenStatus(t, flooder, "p1-puller", "p1-pull-secret")
	if code, msg := specError(t, body); status != http.StatusTooManyRequests || code != "TOOMANYREQUESTS" || !strings.Contains(msg, "address") {
		t.Errorf("from the flooding address: %d %s", status, body)
	}
	if status, _, body := e.tokenStatus(t, clientFrom("127.0.0.7"), "p1-puller", "p1-pull-secret"); status != http.StatusOK {
		t.Errorf("another address: %d %s", status, body)
	}
	// A cached login passes even from the flooding address.
	if status, _, body := e.tokenStatus(t, flooder, "p1-ci", "p1-secret"); status != http.StatusOK {
		t.Errorf("cached login from the flooding address: %d %s", status, body)
	}
	// The OAuth2 form says the same.
	form := url.Values{"grant_type": {"password"}, "username": {"p2-ci"}, "password": {"p2-secret"}, "service": {e.cfg.Service}}
	resp, err := http.PostForm(e.srv.Realm, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST form: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
}
