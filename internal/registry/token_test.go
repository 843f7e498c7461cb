package registry_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
	"github.com/tenantguard/tenantguard/internal/registry/token"
)

// TestBadTokens: every malformed or invalid token gets 401, a challenge,
// and the distribution-spec error body.
func TestBadTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := e.signer(t)
	now := time.Now()
	claims := func(mod func(*token.Claims)) string {
		c := token.Claims{Issuer: "tenantguard", Subject: "robot:p1-ci", Audience: e.cfg.Service, Tenant: "project1",
			IssuedAt: now, NotBefore: now, Expiry: now.Add(time.Minute),
			Access: []scope.Scope{scope.Repository("project1/app", "pull")}}
		mod(&c)
		raw, err := token.Sign(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignKS, _ := token.NewKeySet(token.Key{Private: foreign})
	wrongKey, _ := token.Sign(foreignKS.Signer(), token.Claims{Issuer: "tenantguard", Subject: "robot:p1-ci", Audience: e.cfg.Service,
		Tenant: "project1", Expiry: now.Add(time.Minute), Access: []scope.Scope{scope.Repository("project1/app", "pull")}})
	valid := claims(func(*token.Claims) {})
	parts := strings.Split(valid, ".")
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	algNone := enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
	hsHeader := enc(map[string]string{"alg": "HS256", "kid": key.ID}) + "." + parts[1] + "." + parts[2]

	tests := []struct{ name, authorization, wantError string }{
		{"no credentials", "", ""},
		{"basic instead of bearer", "Basic cDEtY2k6cDEtc2VjcmV0", ""},
		{"garbage", "Bearer garbage", "invalid_token"},
		{"empty bearer", "Bearer ", ""},
		{"alg none", "Bearer " + algNone, "invalid_token"},
		{"HS256", "Bearer " + hsHeader, "invalid_token"},
		{"expired", "Bearer " + claims(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = now.Add(-time.Hour), now.Add(-time.Hour), now.Add(-10*time.Minute)
		}), "invalid_token"},
		{"not yet valid", "Bearer " + claims(func(c *token.Claims) { c.NotBefore = now.Add(time.Hour); c.Expiry = now.Add(2 * time.Hour) }), "invalid_token"},
		{"wrong audience", "Bearer " + claims(func(c *token.Claims) { c.Audience = "another-registry" }), "invalid_token"},
		{"wrong issuer", "Bearer " + claims(func(c *token.Claims) { c.Issuer = "someone" }), "invalid_token"},
		{"wrong key", "Bearer " + wrongKey, "invalid_token"},
		{"tampered", "Bearer " + parts[0] + "." + enc(map[string]any{"iss": "tenantguard", "sub": "x", "aud": e.cfg.Service, "exp": now.Add(time.Hour).Unix(), "tenant": "project2", "access": []any{}}) + "." + parts[2], "invalid_token"},
		{"huge", "Bearer " + strings.Repeat("a", 20000) + "." + parts[1] + "." + parts[2], "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+e.host+"/v2/project1/app/tags/list", nil)
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %s, want 401", resp.Status)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			wantCh := `Bearer realm="` + e.srv.Realm + `",service="` + e.cfg.Service + `",scope="repository:project1/app:pull"`
			if !strings.HasPrefix(ch, wantCh) {
				t.Errorf("challenge %q, want prefix %q", ch, wantCh)
			}
			if tt.wantError != "" && !strings.Contains(ch, `error="`+tt.wantError+`"`) {
				t.Errorf("challenge %q lacks error=%q", ch, tt.wantError)
			}
			errs, _ := body["errors"].([]any)
			if len(errs) != 1 || errs[0].(map[string]any)["code"] != "UNAUTHORIZED" {
				t.Errorf("body %v", body)
			}
		})
	}
	// The valid token works, and only for what it grants.
	resp, _ := e.do(t, http.MethodGet, "/v2/project1/app/tags/list", valid, nil)
	if resp.StatusCode != http.StatusNotFound { // the repository is empty: NAME_UNKNOWN from upstream
		t.Errorf("valid token: %s", resp.Status)
	}
	resp, _ = e.do(t, http.MethodPost, "/v2/project1/app/blobs/uploads/", valid, nil)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, "repository:project1/app:push") {
		t.Errorf("push with a pull token: %s %q", resp.Status, ch)
	}
	// A token for a tenant's repository that the tenant lost: refused at once.
	resp, body := e.do(t, http.MethodGet, "/v2/project2/app/tags/list", claims(func(c *token.Claims) {
		c.Access = []scope.Scope{scope.Repository("project2/app", "pull")} // signed, but project1 has no such right
	}), nil)
	if code, _ := specError(t, body); resp.StatusCode != 403 || code != "DENIED" {
		t.Errorf("token granting more than the rules: %s %s", resp.Status, body)
	}
}

func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	get := func(user, password string, q url.Values) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.Realm+"?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	// Fetch the JWKS to verify issued tokens as a third party would.
	jwksResp, err := http.Get(e.srv.TokenURL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(jwksResp.Body).Decode(&set)
	jwksResp.Body.Close()
	if len(set.Keys) != 1 || set.Keys[0].KeyID != e.signer(t).ID || !set.Keys[0].IsPublic() {
		t.Fatalf("JWKS = %+v", set)
	}
	ks, err := token.NewKeySet(token.Key{Public: set.Keys[0].Key, ID: set.Keys[0].KeyID})
	if err != nil {
		t.Fatal(err)
	}
	verifier := &token.Verifier{Keys: func() *token.KeySet { return ks }, Issuer: "tenantguard", Audience: e.cfg.Service}

	// Docker asks for pull,push on its repository and pull on a mount
	// source; the answer is the intersection, never a failure.
	resp, body := get("p1-ci", "p1-secret", url.Values{"service": {e.cfg.Service},
		"scope": {"repository:project1/app:pull,push,delete", "repository:project2/app:pull registry:catalog:*", "repository:project1/x:*"}})
	if resp.StatusCode != 200 {
		t.Fatalf("token: %s %v", resp.Status, body)
	}
	for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
		if body[k] == nil {
			t.Errorf("response lacks %s: %v", k, body)
		}
	}
	if body["token"] != body["access_token"] || body["expires_in"] != float64(300) {
		t.Errorf("response %v", body)
	}
	c, err := verifier.Verify(body["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if got := scope.Format(c.Access); got != "repository:project1/app:pull,push,delete registry:catalog:* repository:project1/x:pull,push,delete" {
		t.Errorf("granted %q", got)
	}
	if c.Subject != "robot:p1-ci" || c.Tenant != "project1" {
		t.Errorf("claims %+v", c)
	}
	// docker login: no scope, a token without access.
	resp, body = get("p1-ci", "p1-secret", url.Values{"service": {e.cfg.Service}, "account": {"p1-ci"}, "client_id": {"docker"}, "offline_token": {"true"}})
	if resp.StatusCode != 200 {
		t.Fatalf("login: %s %v", resp.Status, body)
	}

	refusals := []struct {
		name       string
		user, pass string
		q          url.Values
		status     int
		code       string
	}{
		{"anonymous", "", "", url.Values{"service": {e.cfg.Service}}, 401, "UNAUTHORIZED"},
		{"wrong password", "p1-ci", "nope", url.Values{"service": {e.cfg.Service}}, 401, "UNAUTHORIZED"},
		{"unknown user", "root", "p1-secret", url.Values{}, 401, "UNAUTHORIZED"},
		{"other service", "p1-ci", "p1-secret", url.Values{"service": {"elsewhere"}}, 400, "DENIED"},
		{"bad scope", "p1-ci", "p1-secret", url.Values{"scope": {"repository:Project1/App:pull"}}, 400, "NAME_INVALID"},
	}
	for _, r := range refusals {
		resp, body := get(r.user, r.pass, r.q)
		errs, _ := body["errors"].([]any)
		if resp.StatusCode != r.status || len(errs) != 1 || errs[0].(map[string]any)["code"] != r.code {
			t.Errorf("%s: %s %v, want %d %s", r.name, resp.Status, body, r.status, r.code)
		}
		if r.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: no Basic challenge", r.name)
		}
	}

	// OAuth2 form, as containerd and oras send it.
	post := func(form url.Values) (*http.Response, map[string]any) {
		resp, err := http.PostForm(e.srv.Realm, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	resp, body = post(url.Values{"grant_type": {"password"}, "username": {"p1-ci"}, "password": {"p1-secret"},
		"service": {e.cfg.Service}, "scope": {"repository:project1/app:pull,push repository:project2/app:pull"}, "client_id": {"containerd"}})
	if resp.StatusCode != 200 || body["access_token"] == nil || body["scope"] != "repository:project1/app:pull,push" {
		t.Fatalf("OAuth2 password grant: %s %v", resp.Status, body)
	}
	resp, body = post(url.Values{"grant_type": {"password"}, "username": {"p1-ci"}, "password": {"wrong"}, "service": {e.cfg.Service}})
	if resp.StatusCode != 401 || body["error"] != "invalid_grant" {
		t.Errorf("OAuth2 wrong password: %s %v", resp.Status, body)
	}
	resp, body = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
	if resp.StatusCode != 400 || body["error"] != "unsupported_grant_type" {
		t.Errorf("refresh_token grant: %s %v", resp.Status, body)
	}

	// Failed logins are in the audit log, without the password.
	found := false
	for _, l := range e.audit.lines() {
		if l["event"] == "token" && l["decision"] == "deny" && l["user"] == "p1-ci" {
			found = true
		}
	}
	if !found {
		t.Error("failed login not audited")
	}
	if strings.Contains(e.audit.b.String(), "p1-secret") {
		t.Error("a password reached the audit log")
	}
}
