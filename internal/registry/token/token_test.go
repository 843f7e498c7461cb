package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// Fixed keys, so the committed fuzz seeds stay valid tokens.
const (
	oldKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgJI7e5YpQPDTo7JiQ
MKkd4SnqmsBzyNMZxuSzqI/McgehRANCAARr/sKI8SDENT6yF4SQFBWKMzR7Ne2m
uIWBEmIMsdVr/cYzc67tl/JHPYGz0hfa0Y6b2BOmW6/hNOybq+9sz9k/
-----END PRIVATE KEY-----
`
	newKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+UKuWw/TvNbU2nRK
tZDvmaoj3W48JtEMn+6FCF5ECPqhRANCAATJjt2Kb/ElmXo7lplMhFeTur7bRury
7zktj/MkIK7PULtiOz3oLgBcx9LqqC5f1Elf4hiSoB567c+xWbxug+aF
-----END PRIVATE KEY-----
`
	issuer  = "tenantguard"
	service = "registry.example"
)

// epoch is the fixed clock of the tests and fuzz seeds.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustKey(t testing.TB, pemText string) Key {
	t.Helper()
	k, err := ParsePEM([]byte(pemText))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fixture(t testing.TB) (*KeySet, *Issuer, *Verifier) {
	t.Helper()
	ks, err := NewKeySet(mustKey(t, oldKeyPEM), mustKey(t, newKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return epoch }
	keys := func() *KeySet { return ks }
	return ks, &Issuer{Keys: keys, Issuer: issuer, Audience: service, Now: clock},
		&Verifier{Keys: keys, Issuer: issuer, Audience: service, Now: clock}
}

func TestIssueVerify(t *testing.T) {
	ks, is, v := fixture(t)
	access := []scope.Scope{scope.Repository("project1/app", "pull", "push"), scope.Catalog()}
	raw, issued, err := is.Issue("robot:ci", "project1", []string{"pull"}, access)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != "robot:ci" || got.Tenant != "project1" || !got.Expiry.Equal(issued.Expiry) || got.ID != issued.ID {
		t.Errorf("claims = %+v, issued %+v", got, issued)
	}
	if !got.Allows("repository", "project1/app", "push") || got.Allows("repository", "project1/app", "delete") ||
		!got.Allows("registry", "catalog", "*") || got.Allows("repository", "project1/other", "pull") {
		t.Errorf("Allows is wrong for %+v", got.Access)
	}
	if len(got.Limit) != 1 || got.Limit[0] != "pull" {
		t.Errorf("limit = %v", got.Limit)
	}
	// The newest key signs, and its kid is in the header.
	tok, _ := jwt.ParseSigned(raw, signingAlgorithms)
	if tok.Headers[0].KeyID != ks.Signer().ID || ks.Signer().ID != ks.Keys()[1].ID {
		t.Errorf("signed with kid %q, want the newest key %q", tok.Headers[0].KeyID, ks.Keys()[1].ID)
	}
}

func TestRotation(t *testing.T) {
	oldOnly, err := NewKeySet(mustKey(t, oldKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return epoch }
	oldIssuer := &Issuer{Keys: func() *KeySet { return oldOnly }, Issuer: issuer, Audience: service, Now: clock}
	raw, _, err := oldIssuer.Issue("robot:ci", "project1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// After rotation the new key signs and the old one still verifies.
	_, _, v := fixture(t)
	if _, err := v.Verify(raw); err != nil {
		t.Errorf("token of the previous key refused after rotation: %v", err)
	}
	// Once the old key is removed, its tokens are refused.
	newOnly, _ := NewKeySet(mustKey(t, newKeyPEM))
	v.Keys = func() *KeySet { return newOnly }
	if _, err := v.Verify(raw); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unknown signing key") {
		t.Errorf("token of a removed key: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	ks, is, v := fixture(t)
	good := func(mod func(*Claims)) string {
		c := Claims{Issuer: issuer, Subject: "robot:ci", Audience: service, IssuedAt: epoch, NotBefore: epoch,
			Expiry: epoch.Add(5 * time.Minute), Access: []scope.Scope{scope.Repository("project1/app", "pull")}}
		if mod != nil {
			mod(&c)
		}
		raw, err := Sign(ks.Signer(), c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	valid := good(nil)
	parts := strings.Split(valid, ".")
	b64 := func(v any) string {
		data, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(data)
	}
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreignKS, _ := NewKeySet(Key{Private: foreign})
	// a token signed by an unknown key that claims a known kid
	forgedKid := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: foreign, KeyID: ks.Signer().ID}}, nil)
		raw, _ := jwt.Signed(signer).Claims(map[string]any{"iss": issuer, "sub": "x", "aud": service, "exp": epoch.Add(time.Minute).Unix()}).Serialize()
		return raw
	}()
	// HS256 keyed with the public key: the classic algorithm confusion
	hsConfusion := func() string {
		pub, _ := x509.MarshalPKIXPublicKey(ks.Signer().Public)
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), KeyID: ks.Signer().ID}}, nil)
		raw, _ := jwt.Signed(signer).Claims(map[string]any{"iss": issuer, "sub": "x", "aud": service, "exp": epoch.Add(time.Minute).Unix()}).Serialize()
		return raw
	}()
	embeddedJWK := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: foreign}, (&jose.SignerOptions{EmbedJWK: true}))
		raw, _ := jwt.Signed(signer).Claims(map[string]any{"iss": issuer, "sub": "x", "aud": service, "exp": epoch.Add(time.Minute).Unix()}).Serialize()
		return raw
	}()
	foreignRaw, _ := Sign(foreignKS.Signer(), Claims{Issuer: issuer, Subject: "x", Audience: service, Expiry: epoch.Add(time.Minute)})

	tests := []struct {
		name, raw, want string
		err             error
	}{
		{"empty", "", "compact JWS", ErrMalformed},
		{"garbage", "not-a-token", "compact JWS", ErrMalformed},
		{"two parts", "a.b", "compact JWS", ErrMalformed},
		{"bad base64", "!!.!!.!!", "", ErrMalformed},
		{"too long", strings.Repeat("a", MaxLength+1), "longer than", ErrMalformed},
		{"huge header", strings.Repeat("a", MaxHeaderLength+1) + ".b.c", "header longer", ErrMalformed},
		{"alg none", b64(map[string]string{"alg": "none", "kid": ks.Signer().ID}) + "." + parts[1] + ".", "", ErrMalformed},
		{"alg none no sig", b64(map[string]string{"alg": "none"}) + "." + parts[1] + ".", "", ErrMalformed},
		{"HS256 with the public key", hsConfusion, "", ErrMalformed},
		{"alg swapped in header", b64(map[string]string{"alg": "ES384", "kid": ks.Signer().ID}) + "." + parts[1] + "." + parts[2], "does not match", ErrInvalid},
		{"no kid", b64(map[string]string{"alg": "ES256"}) + "." + parts[1] + "." + parts[2], "no kid", ErrInvalid},
		{"unknown kid", b64(map[string]string{"alg": "ES256", "kid": "nope"}) + "." + parts[1] + "." + parts[2], "unknown signing key", ErrInvalid},
		{"wrong key", foreignRaw, "unknown signing key", ErrInvalid},
		{"forged kid", forgedKid, "bad signature", ErrInvalid},
		{"embedded jwk", embeddedJWK, "", ErrInvalid},
		{"tampered payload", parts[0] + "." + b64(map[string]any{"iss": issuer, "sub": "admin", "aud": service, "exp": epoch.Add(time.Hour).Unix()}) + "." + parts[2], "bad signature", ErrInvalid},
		{"expired", good(func(c *Claims) { c.Expiry = epoch.Add(-time.Minute) }), "expired", ErrInvalid},
		{"not yet valid", good(func(c *Claims) { c.NotBefore = epoch.Add(time.Minute) }), "not valid before", ErrInvalid},
		{"issued in the future", good(func(c *Claims) { c.IssuedAt = epoch.Add(time.Hour); c.NotBefore = time.Time{} }), "future", ErrInvalid},
		{"no expiry", good(func(c *Claims) { c.Expiry = time.Time{} }), "no expiry", ErrInvalid},
		{"wrong audience", good(func(c *Claims) { c.Audience = "other-registry" }), "audience", ErrInvalid},
		{"no audience", good(func(c *Claims) { c.Audience = "" }), "audience", ErrInvalid},
		{"wrong issuer", good(func(c *Claims) { c.Issuer = "someone-else" }), "issuer", ErrInvalid},
		{"no subject", good(func(c *Claims) { c.Subject = "" }), "no subject", ErrInvalid},
		{"bad access name", good(func(c *Claims) {
			c.Access = []scope.Scope{{Type: "repository", Name: "Project1/App", Actions: []string{"pull"}}}
		}), "access entry", ErrMalformed},
		{"access without actions", good(func(c *Claims) { c.Access = []scope.Scope{{Type: "repository", Name: "a"}} }), "access entry", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.raw)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify error = %v, want %v containing %q", err, tt.err, tt.want)
			}
		})
	}
	// Within the leeway, time checks pass.
	v.Now = func() time.Time { return epoch.Add(5*time.Minute + 20*time.Second) }
	if _, err := v.Verify(valid); err != nil {
		t.Errorf("token 20s past expiry refused within the leeway: %v", err)
	}
	_ = is
}

func TestLoadDir(t *testing.T) {
	// The layout of a mounted Secret: keys are links into ..data.
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_01_01")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(data, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	write("2025-01.pem", oldKeyPEM)
	write("2025-07.pem", newKeyPEM)
	write("2024-retired.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))
	if err := os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"2025-01.pem", "2025-07.pem", "2024-retired.pub"} {
		if err := os.Symlink(filepath.Join("..data", n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys()) != 3 {
		t.Fatalf("loaded %d keys, want 3", len(ks.Keys()))
	}
	if ks.Signer().Source != filepath.Join(dir, "2025-07.pem") {
		t.Errorf("signer = %s, want the last private key by name", ks.Signer().Source)
	}
	set := ks.JWKS()
	if len(set.Keys) != 3 || set.Keys[0].Algorithm != "RS256" || set.Keys[0].IsPublic() != true {
		t.Errorf("JWKS = %+v", set.Keys)
	}
	out, _ := json.Marshal(set)
	if strings.Contains(string(out), `"d"`) {
		t.Error("JWKS leaks a private key")
	}

	empty := t.TempDir()
	if _, err := LoadDir(empty); err == nil || !strings.Contains(err.Error(), "openssl genpkey") {
		t.Errorf("empty dir: %v", err)
	}
	pubOnly := t.TempDir()
	os.WriteFile(filepath.Join(pubOnly, "k.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	if _, err := LoadDir(pubOnly); err == nil {
		t.Error("a directory without a private key was accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	weak := t.TempDir()
	os.WriteFile(filepath.Join(weak, "k.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), 0o600)
	if _, err := LoadDir(weak); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Errorf("1024-bit RSA key: %v", err)
	}
}

// FuzzVerify feeds arbitrary strings to Verify. It must never panic, and it
// may accept only the one valid seed token's claims (ECDSA signatures have
// more than one valid encoding, so equality of claims, not of bytes).
func FuzzVerify(f *testing.F) {
	ks, _, v := fixture(f)
	want := Claims{Issuer: issuer, Subject: "robot:fuzz", Audience: service, IssuedAt: epoch, NotBefore: epoch,
		Expiry: epoch.Add(5 * time.Minute), ID: "fuzz-seed", Tenant: "project1",
		Access: []scope.Scope{scope.Repository("project1/app", "pull")}}
	valid, err := Sign(ks.Signer(), want)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(`eyJhbGciOiJub25lIn0.` + parts[1] + ".")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrInvalid", err)
			}
			return
		}
		if c.Subject != want.Subject || c.ID != want.ID || c.Tenant != want.Tenant || len(c.Access) != 1 {
			t.Fatalf("Verify accepted claims that were never signed: %+v", c)
		}
	})
}

// BenchmarkIssue and BenchmarkVerify: signing and checking one token with
// two access entries (ES256).
//
//	go test -run '^$' -bench . ./internal/registry/token/
func BenchmarkIssue(b *testing.B) {
	_, is, _ := fixture(b)
	access := []scope.Scope{scope.Repository("project1/app", "pull", "push"), scope.Repository("project1/base", "pull")}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := is.Issue("robot:ci", "project1", nil, access); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	b.Run("uncached", func(b *testing.B) { benchmarkVerify(b, 0) })
	b.Run("cached", func(b *testing.B) { benchmarkVerify(b, 100) })
}

func benchmarkVerify(b *testing.B, cacheSize int) {
	_, is, v := fixture(b)
	v.CacheSize = cacheSize
	raw, _, err := is.Issue("robot:ci", "project1", nil, []scope.Scope{scope.Repository("project1/app", "pull", "push"), scope.Repository("project1/base", "pull")})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestVerifyCache(t *testing.T) {
	ks, is, v := fixture(t)
	v.CacheSize = 2
	now := epoch
	v.Now = func() time.Time { return now }
	raw, _, err := is.Issue("robot:ci", "project1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := v.Verify(raw); err != nil || again != first {
		t.Fatalf("second Verify: %v, cached %v", err, again == first)
	}
	// A hit still expires.
	now = epoch.Add(time.Hour)
	if _, err := v.Verify(raw); !errors.Is(err, ErrInvalid) {
		t.Errorf("cached token after expiry: %v", err)
	}
	now = epoch
	// A new key set (rotation) verifies again: a removed key's token fails.
	newOnly, _ := NewKeySet(mustKey(t, oldKeyPEM))
	v.Keys = func() *KeySet { return newOnly }
	if _, err := v.Verify(raw); !errors.Is(err, ErrInvalid) {
		t.Errorf("cached token after its key was removed: %v", err)
	}
	v.Keys = func() *KeySet { return ks }
	// Invalid tokens are never cached; the cache stays bounded.
	for i := 0; i < 5; i++ {
		other, _, _ := is.Issue(fmt.Sprintf("robot:%d", i), "project1", nil, nil)
		if _, err := v.Verify(other); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.cache) > 2 {
		t.Errorf("cache holds %d entries, limit 2", len(v.cache))
	}
}
