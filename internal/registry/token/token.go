// Package token issues and verifies the registry's bearer tokens: JWTs in
// the Docker token format (iss, sub, aud, exp, nbf, iat, jti and an access
// list of {type, name, actions}), signed with the newest key of a KeySet and
// verified against all of them by kid.
//
// Verification is strict, because every byte of a token arrives from a
// client: the compact form and its header have size limits; only the
// asymmetric algorithms of known keys are accepted (never "none" or HS*), and
// the header's alg must be the algorithm of the key its kid names; the
// issuer and audience must match; exp is required and exp/nbf/iat are
// checked with a small leeway; every access entry must parse.
//
// This package knows nothing of HTTP; the token endpoint and the gateway
// are its callers.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// Limits on untrusted tokens.
const (
	// MaxLength is the longest token accepted.
	MaxLength = 16 << 10
	// MaxHeaderLength is the longest encoded JOSE header accepted.
	MaxHeaderLength = 1024
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultTTL is the lifetime of an issued token.
	DefaultTTL = 5 * time.Minute
)

// Errors returned by Verify. Every error wraps one of them.
var (
	// ErrMalformed: not a well-formed signed token.
	ErrMalformed = errors.New("malformed token")
	// ErrInvalid: well formed, but not valid here (signature, key, issuer,
	// audience, time).
	ErrInvalid = errors.New("invalid token")
)

// signingAlgorithms are the only algorithms ever accepted.
var signingAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.EdDSA}

// Claims are what a token says.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  string
	IssuedAt  time.Time
	NotBefore time.Time
	Expiry    time.Time
	ID        string
	// Access is what the token grants.
	Access []scope.Scope
	// Tenant is the tenant of the subject (a private claim).
	Tenant string
	// Limit, if not empty, is the most the subject may ever do, whatever its
	// tenant may (a private claim; robot accounts with restricted rights).
	Limit []string
}

// Allows reports whether the token grants the action on the resource.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, s := range c.Access {
		if s.Type == typ && s.Name == name && s.Class == "" && s.Has(action) {
			return true
		}
	}
	return false
}

// wireClaims is the JSON form.
type wireClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud,omitempty"`
	Expiry    *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	ID        string           `json:"jti,omitempty"`
	Access    []resourceAccess `json:"access"`
	Tenant    string           `json:"tenant,omitempty"`
	Limit     []string         `json:"limit,omitempty"`
}

// resourceAccess is Distribution's ResourceActions.
type resourceAccess struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Issuer signs tokens.
type Issuer struct {
	// Keys returns the current key set; its signer signs.
	Keys func() *KeySet
	// Issuer is the iss claim.
	Issuer string
	// Audience is the aud claim: the registry service name.
	Audience string
	// TTL is the token lifetime; zero means DefaultTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Issue signs a token granting access to subject.
func (is *Issuer) Issue(subject, tenant string, limit []string, access []scope.Scope) (string, Claims, error) {
	ks := is.Keys()
	if ks == nil || ks.Signer() == nil {
		return "", Claims{}, errors.New("no signing key")
	}
	ttl := is.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := time.Now
	if is.Now != nil {
		now = is.Now
	}
	t := now().Truncate(time.Second)
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Claims{}, err
	}
	c := Claims{
		Issuer: is.Issuer, Subject: subject, Audience: is.Audience,
		IssuedAt: t, NotBefore: t, Expiry: t.Add(ttl), ID: hex.EncodeToString(id[:]),
		Access: access, Tenant: tenant, Limit: limit,
	}
	raw, err := Sign(ks.Signer(), c)
	return raw, c, err
}

// Sign signs arbitrary claims with key. Issue is the normal way; Sign exists
// for tests that need tokens the Issuer would never make (expired, foreign
// audience) and for tools.
func Sign(key *Key, c Claims) (string, error) {
	if key == nil || key.Private == nil {
		return "", errors.New("key cannot sign")
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.Algorithm, Key: jose.JSONWebKey{Key: key.Private, KeyID: key.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("token signer: %w", err)
	}
	w := wireClaims{
		Issuer: c.Issuer, Subject: c.Subject, ID: c.ID, Tenant: c.Tenant, Limit: c.Limit,
		Access: make([]resourceAccess, 0, len(c.Access)),
	}
	if c.Audience != "" {
		w.Audience = jwt.Audience{c.Audience}
	}
	w.Expiry = numericDate(c.Expiry)
	w.NotBefore = numericDate(c.NotBefore)
	w.IssuedAt = numericDate(c.IssuedAt)
	for _, s := range c.Access {
		w.Access = append(w.Access, resourceAccess{Type: s.Type, Class: s.Class, Name: s.Name, Actions: s.Actions})
	}
	raw, err := jwt.Signed(signer).Claims(w).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return raw, nil
}

func numericDate(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t)
}

// Verifier checks tokens.
type Verifier struct {
	// Keys returns the current key set.
	Keys func() *KeySet
	// Issuer is the required iss claim.
	Issuer string
	// Audience is the service name the aud claim must contain.
	Audience string
	// Leeway is the clock skew allowed; zero means DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheSize, if positive, remembers that many verified tokens (by their
	// SHA-256), so a client that sends the same token with every request
	// pays for the signature check once. A hit still checks the time
	// claims, and counts only while the key set is the one that verified
	// it, so a rotation that removes a key ends its tokens at once.
	CacheSize int

	mu    sync.Mutex
	cache map[[32]byte]verified
}

type verified struct {
	claims *Claims
	keys   *KeySet
}

// Verify parses and checks a token and returns its claims, which the
// caller must not modify. Errors wrap ErrMalformed or ErrInvalid and say
// what was wrong, never echoing the token.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	if v.CacheSize <= 0 || len(raw) > MaxLength {
		return v.verify(raw)
	}
	key := sha256.Sum256([]byte(raw))
	ks := v.Keys()
	v.mu.Lock()
	hit, ok := v.cache[key]
	v.mu.Unlock()
	if ok && hit.keys == ks {
		if err := v.checkTime(hit.claims.Expiry, hit.claims.NotBefore, hit.claims.IssuedAt); err != nil {
			return nil, err
		}
		return hit.claims, nil
	}
	c, err := v.verify(raw)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= v.CacheSize {
		v.cache = make(map[[32]byte]verified, v.CacheSize) // simplest bound: start over
	}
	v.cache[key] = verified{claims: c, keys: ks}
	v.mu.Unlock()
	return c, nil
}

func (v *Verifier) verify(raw string) (*Claims, error) {
	if len(raw) > MaxLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLength)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS (header.payload.signature)", ErrMalformed)
	}
	if i := strings.IndexByte(raw, '.'); i > MaxHeaderLength {
		return nil, fmt.Errorf("%w: header longer than %d bytes", ErrMalformed, MaxHeaderLength)
	}
	ks := v.Keys()
	if ks == nil {
		return nil, fmt.Errorf("%w: no verification keys", ErrInvalid)
	}
	tok, err := jwt.ParseSigned(raw, signingAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, parseErrorText(err))
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: expected one signature", ErrMalformed)
	}
	h := tok.Headers[0]
	if h.JSONWebKey != nil {
		return nil, fmt.Errorf("%w: embedded keys (jwk) are not trusted", ErrInvalid)
	}
	if _, ok := h.ExtraHeaders[jose.HeaderKey("crit")]; ok {
		return nil, fmt.Errorf("%w: critical header extensions are not supported", ErrInvalid)
	}
	if h.KeyID == "" {
		return nil, fmt.Errorf("%w: no kid in the header", ErrInvalid)
	}
	key, ok := ks.Lookup(h.KeyID)
	if !ok {
		return nil, fmt.Errorf("%w: unknown signing key (kid)", ErrInvalid)
	}
	if jose.SignatureAlgorithm(h.Algorithm) != key.Algorithm {
		return nil, fmt.Errorf("%w: algorithm %s does not match the key's %s", ErrInvalid, h.Algorithm, key.Algorithm)
	}
	var w wireClaims
	if err := tok.Claims(key.Public, &w); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return nil, fmt.Errorf("%w: bad signature", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: claims: %s", ErrMalformed, parseErrorText(err))
	}
	return v.check(&w)
}

// checkTime checks exp, nbf and iat (zero: absent) with the leeway.
func (v *Verifier) checkTime(exp, nbf, iat time.Time) error {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	leeway := v.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	if now.After(exp.Add(leeway)) {
		return fmt.Errorf("%w: expired at %s", ErrInvalid, exp.UTC().Format(time.RFC3339))
	}
	if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return fmt.Errorf("%w: not valid before %s", ErrInvalid, nbf.UTC().Format(time.RFC3339))
	}
	if !iat.IsZero() && now.Add(leeway).Before(iat) {
		return fmt.Errorf("%w: issued in the future", ErrInvalid)
	}
	return nil
}

func (v *Verifier) check(w *wireClaims) (*Claims, error) {
	if w.Issuer != v.Issuer {
		return nil, fmt.Errorf("%w: issuer %q is not %q", ErrInvalid, w.Issuer, v.Issuer)
	}
	if !w.Audience.Contains(v.Audience) {
		return nil, fmt.Errorf("%w: audience is not this service (%q)", ErrInvalid, v.Audience)
	}
	if w.Expiry == nil {
		return nil, fmt.Errorf("%w: no expiry", ErrInvalid)
	}
	var nbf, iat time.Time
	if w.NotBefore != nil {
		nbf = w.NotBefore.Time()
	}
	if w.IssuedAt != nil {
		iat = w.IssuedAt.Time()
	}
	if err := v.checkTime(w.Expiry.Time(), nbf, iat); err != nil {
		return nil, err
	}
	if w.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrInvalid)
	}
	c := &Claims{
		Issuer: w.Issuer, Subject: w.Subject, Audience: v.Audience, ID: w.ID,
		Expiry: w.Expiry.Time(), Tenant: w.Tenant, Limit: w.Limit,
	}
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.Time()
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Time()
	}
	if len(w.Access) > scope.MaxScopes {
		return nil, fmt.Errorf("%w: more than %d access entries", ErrMalformed, scope.MaxScopes)
	}
	for _, a := range w.Access {
		// Re-parse each entry through the scope grammar so a token cannot
		// carry a name the gateway would refuse in a request.
		s, err := scope.Parse(scope.Scope{Type: a.Type, Class: a.Class, Name: a.Name, Actions: a.Actions}.String())
		if err != nil {
			return nil, fmt.Errorf("%w: access entry: %v", ErrMalformed, err)
		}
		c.Access = append(c.Access, s)
	}
	return c, nil
}

// parseErrorText shortens go-jose errors to what a client may be told.
func parseErrorText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
