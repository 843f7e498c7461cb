// Package upstream is the gateway's HTTP transport to the registry behind
// it, carrying the gateway's own credentials, which tenants never see:
//
//   - none: requests go as they are;
//   - a bearer token (an ACR repository-scoped token, say), read from a file
//     again whenever the file changes, sent on every request;
//   - a user name and password: sent as basic auth when the upstream asks
//     for basic auth, or exchanged for short-lived tokens when it asks for
//     Bearer (the Docker token flow, which is what ACR, Harbor and Docker
//     Hub do). Tokens are cached per scope until shortly before they
//     expire, and the scope of each request is derived from its path and
//     method, so a streamed blob upload is never sent twice.
//
// The credentials go only to the upstream's host and to the realm its
// challenge names, and never over plain http when the upstream is https.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Credentials are the gateway's credentials for the upstream. Set at most
// one of Token and Username.
type Credentials struct {
	Username string
	// Password returns the password (read from a file, say).
	Password func() (string, error)
	// Token returns the bearer token.
	Token func() (string, error)
}

// FileSecret returns a function that reads a secret from a file, again
// only when the file's modification time or size changes (a rotated
// Secret), trimming a trailing newline.
func FileSecret(path string) func() (string, error) {
	var (
		mu      sync.Mutex
		value   string
		modTime time.Time
		size    int64 = -1
	)
	return func() (string, error) {
		info, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("upstream credentials: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if info.ModTime().Equal(modTime) && info.Size() == size {
			return value, nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("upstream credentials: %w", err)
		}
		value, modTime, size = strings.TrimRight(string(data), "\r\n"), info.ModTime(), info.Size()
		return value, nil
	}
}

// Transport adds the credentials to requests for the upstream.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Upstream is the registry's base URL.
	Upstream *url.URL
	// Credentials; the zero value sends none.
	Credentials Credentials

	mu        sync.Mutex
	challenge *challenge // nil until discovered
	tokens    map[string]cachedToken
}

type challenge struct {
	scheme  string // "basic" or "bearer"
	realm   string
	service string
}

type cachedToken struct {
	token   string
	expires time.Time
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.Credentials
	if req.URL.Host != t.Upstream.Host {
		// Never send the upstream's credentials anywhere else (a redirect to
		// blob storage, say).
		return t.base().RoundTrip(req)
	}
	switch {
	case c.Token != nil:
		tok, err := c.Token()
		if err != nil {
			return nil, err
		}
		req = cloneWithAuth(req, "Bearer "+tok)
		return t.base().RoundTrip(req)
	case c.Username == "":
		return t.base().RoundTrip(req)
	}
	auth, err := t.authorization(req.Context(), req, false)
	if err != nil {
		return nil, err
	}
	resp, err := t.base().RoundTrip(cloneWithAuth(req, auth))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// The token expired early, was revoked, or the upstream changed how it
	// authenticates: learn again and retry once, if the body can be sent
	// again.
	body, replayable := replayBody(req)
	if !replayable {
		return resp, nil
	}
	t.forget(resp)
	auth, err = t.authorization(req.Context(), req, true)
	if err != nil {
		return resp, nil
	}
	drain(resp)
	retry := cloneWithAuth(req, auth)
	retry.Body = body
	return t.base().RoundTrip(retry)
}

// authorization returns the Authorization header value for req.
func (t *Transport) authorization(ctx context.Context, req *http.Request, fresh bool) (string, error) {
	ch, err := t.discover(ctx)
	if err != nil {
		return "", err
	}
	password, err := t.password()
	if err != nil {
		return "", err
	}
	switch ch.scheme {
	case "basic":
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(t.Credentials.Username, password)
		return r.Header.Get("Authorization"), nil
	case "bearer":
		tok, err := t.token(ctx, ch, Scopes(req), password, fresh)
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	}
	return "", nil // the upstream asks for nothing
}

func (t *Transport) password() (string, error) {
	if t.Credentials.Password == nil {
		return "", nil
	}
	return t.Credentials.Password()
}

// discover pings /v2/ once to learn how the upstream authenticates.
func (t *Transport) discover(ctx context.Context) (challenge, error) {
	t.mu.Lock()
	if ch := t.challenge; ch != nil {
		t.mu.Unlock()
		return *ch, nil
	}
	t.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Upstream.JoinPath("/v2/").String(), nil)
	if err != nil {
		return challenge{}, err
	}
	resp, err := t.base().RoundTrip(req)
	if err != nil {
		return challenge{}, fmt.Errorf("ping upstream: %w", err)
	}
	drain(resp)
	ch := challenge{}
	if resp.StatusCode == http.StatusUnauthorized {
		ch = parseChallenge(resp.Header.Values("WWW-Authenticate"))
		if ch.scheme == "" {
			return challenge{}, errors.New("upstream answered 401 without a Basic or Bearer challenge")
		}
	}
	t.mu.Lock()
	t.challenge = &ch
	t.mu.Unlock()
	return ch, nil
}

func (t *Transport) forget(resp *http.Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.challenge = nil
	t.tokens = nil
	if ch := parseChallenge(resp.Header.Values("WWW-Authenticate")); ch.scheme != "" {
		t.challenge = &ch
	}
}

// token returns a cached or new upstream token for the scopes.
func (t *Transport) token(ctx context.Context, ch challenge, scopes []string, password string, fresh bool) (string, error) {
	key := strings.Join(scopes, " ")
	now := time.Now()
	t.mu.Lock()
	if c, ok := t.tokens[key]; ok && !fresh && now.Before(c.expires) {
		t.mu.Unlock()
		return c.token, nil
	}
	t.mu.Unlock()

	realm, err := url.Parse(ch.realm)
	if err != nil || (realm.Scheme != "https" && !(realm.Scheme == "http" && t.Upstream.Scheme == "http")) {
		return "", fmt.Errorf("upstream token realm %q is not https while the upstream is; refusing to send credentials there in clear", ch.realm)
	}
	q := realm.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(t.Credentials.Username, password)
	resp, err := t.base().RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("upstream token: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upstream token endpoint answered %s", resp.Status)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("upstream token response: %w", err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", errors.New("upstream token response holds no token")
	}
	ttl := time.Duration(body.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 60 * time.Second // the token spec's default
	}
	// Renew a little early so a token does not expire in flight.
	expires := now.Add(ttl - min(ttl/5, 30*time.Second))
	t.mu.Lock()
	if t.tokens == nil || len(t.tokens) > 1000 {
		t.tokens = map[string]cachedToken{}
	}
	t.tokens[key] = cachedToken{token: tok, expires: expires}
	t.mu.Unlock()
	return tok, nil
}

// Scopes returns the token scopes an upstream request needs, as Distribution
// derives them: pull for reads, pull and push for writes, delete for
// deletes, pull on the source of a blob mount, and the catalog.
func Scopes(req *http.Request) []string {
	rest, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok || rest == "" {
		return nil
	}
	if rest == "_catalog" {
		return []string{"registry:catalog:*"}
	}
	name := repositoryOf(rest)
	if name == "" {
		return nil
	}
	var actions string
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		actions = "pull"
	case http.MethodDelete:
		actions = "delete"
		if strings.Contains(rest, "/blobs/uploads/") {
			actions = "pull,push"
		}
	default:
		actions = "pull,push"
	}
	scopes := []string{"repository:" + name + ":" + actions}
	if from := req.URL.Query().Get("from"); from != "" && req.Method == http.MethodPost {
		scopes = append(scopes, "repository:"+from+":pull")
	}
	return scopes
}

// repositoryOf cuts the repository name from the path after /v2/: it ends
// where the last route marker starts (a name may itself hold a component
// called "blobs" or "tags", but the route's marker is the last one).
func repositoryOf(rest string) string {
	end := -1
	for _, marker := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		end = max(end, strings.LastIndex(rest, marker))
	}
	if end <= 0 {
		return ""
	}
	return rest[:end]
}

// parseChallenge reads the first Basic or Bearer challenge.
func parseChallenge(values []string) challenge {
	for _, v := range values {
		scheme, params, _ := strings.Cut(strings.TrimSpace(v), " ")
		switch strings.ToLower(scheme) {
		case "basic":
			return challenge{scheme: "basic"}
		case "bearer":
			p := parseParams(params)
			if p["realm"] == "" {
				continue
			}
			return challenge{scheme: "bearer", realm: p["realm"], service: p["service"]}
		}
	}
	return challenge{}
}

// parseParams parses key="value" pairs separated by commas (quoted values
// may hold commas).
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ,")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			var b strings.Builder
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' && end+1 < len(rest) {
					end++
				}
				b.WriteByte(rest[end])
				end++
			}
			val = b.String()
			if end < len(rest) {
				end++
			}
			s = rest[end:]
		} else {
			val, s, _ = strings.Cut(rest, ",")
			val = strings.TrimSpace(val)
		}
		out[key] = val
	}
	return out
}

func cloneWithAuth(req *http.Request, auth string) *http.Request {
	out := req.Clone(req.Context())
	out.Header.Del("Authorization")
	if auth != "" {
		out.Header.Set("Authorization", auth)
	}
	return out
}

func replayBody(req *http.Request) (io.ReadCloser, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	return b, err == nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
