// Package authn authenticates the credentials sent to the token endpoint
// (HTTP basic auth) and says which tenant the caller acts for.
//
// Two kinds of identity:
//   - Robot accounts, from a file (a mounted Secret): a name, a bcrypt hash,
//     the tenant and an optional ceiling on actions. The user name is the
//     robot's name.
//   - Kubernetes ServiceAccount tokens: the password is the token, the user
//     name is free (docker login needs one; use "serviceaccount"). The token is
//     checked with a TokenReview by the API server, and the account's
//     namespace maps to its tenant through the tenantguard.dev/tenant label.
//
// A robot name wins over a service account token: a user name that names a
// robot is checked only against that robot. Successful logins are cached for
// a short time (keyed by an HMAC of the credentials, never the credentials),
// so a CI job that asks for a token per request does not pay for bcrypt or a
// TokenReview each time.
package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

// ErrInvalidCredentials is returned for a wrong name, password or token.
var ErrInvalidCredentials = errors.New("invalid username or password")

// Authenticator checks credentials. client is the caller's address
// (host:port, as http.Request.RemoteAddr), for limits on guessing.
type Authenticator interface {
	Authenticate(ctx context.Context, client, username, password string) (authz.Identity, error)
}

// ServiceAccounts checks ServiceAccount tokens with TokenReview.
type ServiceAccounts struct {
	Client kubernetes.Interface
	// Audiences, if set, are asked for in the TokenReview: the token must
	// have been issued for one of them (a projected token with
	// audience tenantguard-registry, say), so a token meant for the API
	// server is not accepted here.
	Audiences []string
	// TenantOf returns the tenant of a namespace ("" for none).
	TenantOf func(ctx context.Context, namespace string) (string, error)
}

const (
	serviceAccountPrefix = "system:serviceaccount:"
	robotPrefix          = "robot:"
)

// Authenticate reviews a ServiceAccount token.
func (sa *ServiceAccounts) Authenticate(ctx context.Context, token string) (authz.Identity, error) {
	review, err := sa.Client.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: token, Audiences: sa.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return authz.Identity{}, fmt.Errorf("token review: %w", err)
	}
	st := review.Status
	if !st.Authenticated {
		return authz.Identity{}, fmt.Errorf("%w: the API server did not accept the service account token", ErrInvalidCredentials)
	}
	if len(sa.Audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(sa.Audiences, a) }) {
		return authz.Identity{}, fmt.Errorf("%w: the token is not for audience %s", ErrInvalidCredentials, strings.Join(sa.Audiences, " or "))
	}
	rest, ok := strings.CutPrefix(st.User.Username, serviceAccountPrefix)
	ns, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || name == "" {
		return authz.Identity{}, fmt.Errorf("%w: %s is not a service account; only service account tokens and robot accounts are accepted", ErrInvalidCredentials, st.User.Username)
	}
	tenant, err := sa.TenantOf(ctx, ns)
	if err != nil {
		return authz.Identity{}, fmt.Errorf("tenant of namespace %s: %w", ns, err)
	}
	return authz.Identity{Subject: st.User.Username, Tenant: tenant}, nil
}

// Chain authenticates robots, then service account tokens.
type Chain struct {
	// Robots returns the current robot accounts; nil or empty means none.
	Robots func() *Robots
	// ServiceAccounts, if not nil, accepts ServiceAccount tokens.
	ServiceAccounts *ServiceAccounts
	// CacheTTL is how long a successful login is remembered; zero means
	// DefaultCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Throttle, if not nil, limits failed logins and concurrent password
	// checks. Logins answered by the cache are never throttled.
	Throttle *Throttle

	once  sync.Once
	cache *loginCache
	// checks counts password checks (bcrypt), for tests.
	checks atomic.Int64
}

// DefaultCacheTTL bounds how long a removed robot or service account, or a
// namespace moved to another tenant, keeps its old rights through the cache.
const DefaultCacheTTL = 30 * time.Second

// Authenticate implements Authenticator. A login the cache knows is
// answered at once; any other first passes the Throttle, which may refuse
// it (ErrThrottled) before any password is checked.
func (c *Chain) Authenticate(ctx context.Context, client, username, password string) (authz.Identity, error) {
	if password == "" {
		return authz.Identity{}, ErrInvalidCredentials
	}
	c.once.Do(func() { c.cache = newLoginCache() })
	var robots *Robots
	if c.Robots != nil {
		robots = c.Robots()
	}
	key := c.cache.key(username, password)
	now := c.now()
	if id, ok := c.cache.get(key, robots, now); ok {
		return id, nil
	}
	done, err := c.Throttle.begin(username, client)
	if err != nil {
		return authz.Identity{}, err
	}
	id, err := c.authenticate(ctx, robots, username, password)
	done(err)
	if err != nil {
		return authz.Identity{}, err
	}
	if ttl := c.ttl(); ttl > 0 {
		c.cache.put(key, id, robots, now, now.Add(ttl))
	}
	return id, nil
}

func (c *Chain) authenticate(ctx context.Context, robots *Robots, username, password string) (authz.Identity, error) {
	if _, isRobot := robots.lookup(username); isRobot || c.ServiceAccounts == nil || !looksLikeJWT(password) {
		var id authz.Identity
		var err error
		if terr := c.checkPassword(ctx, func() { id, _, err = robots.verify(username, password) }); terr != nil {
			return authz.Identity{}, terr
		}
		return id, err
	}
	id, err := c.ServiceAccounts.Authenticate(ctx, password)
	if errors.Is(err, ErrInvalidCredentials) {
		// A refused token costs what a wrong robot password costs, so the
		// time of a refusal does not tell robot names from other names.
		_, hash, _ := robots.hashFor(username)
		if terr := c.checkPassword(ctx, func() { _ = bcrypt.CompareHashAndPassword(hash, []byte(password)) }); terr != nil {
			return authz.Identity{}, terr
		}
	}
	return id, err
}

// PasswordChecks is the number of bcrypt checks made so far, failed logins
// of unknown names and refused service account tokens included: the work
// logins cost the gateway (exported as a metric).
func (c *Chain) PasswordChecks() int64 { return c.checks.Load() }

// checkPassword runs one bcrypt check when the throttle gives it a turn.
func (c *Chain) checkPassword(ctx context.Context, f func()) error {
	return c.Throttle.check(ctx, func() {
		c.checks.Add(1)
		f()
	})
}

// Current says who a token's subject is now: a robot's tenant and action
// ceiling from the current robot accounts, or a service account's tenant
// from its namespace's label. ok is false when the subject is not an
// account any more (a robot removed from the file), so a token outlives
// its account by no more than a reload.
func (c *Chain) Current(ctx context.Context, subject string) (id authz.Identity, ok bool, err error) {
	if name, isRobot := strings.CutPrefix(subject, robotPrefix); isRobot {
		var robots *Robots
		if c.Robots != nil {
			robots = c.Robots()
		}
		r, ok := robots.lookup(name)
		if !ok {
			return authz.Identity{}, false, nil
		}
		return authz.Identity{Subject: subject, Tenant: r.tenant, Limit: r.limit}, true, nil
	}
	if rest, isSA := strings.CutPrefix(subject, serviceAccountPrefix); isSA && c.ServiceAccounts != nil {
		ns, _, _ := strings.Cut(rest, ":")
		tenant, err := c.ServiceAccounts.TenantOf(ctx, ns)
		if err != nil {
			return authz.Identity{}, false, fmt.Errorf("tenant of namespace %s: %w", ns, err)
		}
		return authz.Identity{Subject: subject, Tenant: tenant}, true, nil
	}
	return authz.Identity{}, false, nil
}

func (c *Chain) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Chain) ttl() time.Duration {
	if c.CacheTTL == 0 {
		return DefaultCacheTTL
	}
	return c.CacheTTL
}

// looksLikeJWT: three non-empty base64url segments.
func looksLikeJWT(s string) bool {
	if len(s) < 16 || len(s) > 16<<10 {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c == '-' || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
				return false
			}
		}
	}
	return true
}

// loginCache remembers successful logins. Entries are keyed by an HMAC of
// the credentials under a per-process random key, so the cache never holds
// a password or a cheap hash of one.
type loginCache struct {
	secret [32]byte
	mu     sync.Mutex
	m      map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id      authz.Identity
	robots  *Robots // the robot set the login was checked against
	expires time.Time
}

const maxCacheEntries = 10000

func newLoginCache() *loginCache {
	c := &loginCache{m: map[[32]byte]cacheEntry{}}
	_, _ = rand.Read(c.secret[:]) // never fails (Go 1.24+ crashes instead)
	return c
}

func (c *loginCache) key(username, password string) [32]byte {
	mac := hmac.New(sha256.New, c.secret[:])
	mac.Write([]byte(username))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	return k
}

func (c *loginCache) get(k [32]byte, robots *Robots, now time.Time) (authz.Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return authz.Identity{}, false
	}
	// A reload of the robots file that changed anything forgets robot logins.
	if now.After(e.expires) || (strings.HasPrefix(e.id.Subject, robotPrefix) && e.robots != robots && !e.robots.Equal(robots)) {
		delete(c.m, k)
		return authz.Identity{}, false
	}
	return e.id, true
}

func (c *loginCache) put(k [32]byte, id authz.Identity, robots *Robots, now, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCacheEntries {
		for key, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= maxCacheEntries {
			clear(c.m)
		}
	}
	c.m[k] = cacheEntry{id: id, robots: robots, expires: expires}
}
