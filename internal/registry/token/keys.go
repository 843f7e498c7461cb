package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Key is one signing or verification key.
type Key struct {
	// ID is the key's RFC 7638 JWK thumbprint (SHA-256, base64url), so every
	// replica that loads the same key file computes the same kid.
	ID string
	// Algorithm is the one JWS algorithm this key signs and verifies with.
	Algorithm jose.SignatureAlgorithm
	// Public verifies.
	Public crypto.PublicKey
	// Private signs; nil for a verify-only key.
	Private crypto.Signer
	// Source is where the key came from (a file name), for messages.
	Source string
}

// KeySet is the keys the token service signs with and verifies against. The
// newest private key signs; every key verifies. It is immutable: rotation
// loads a new KeySet.
type KeySet struct {
	signer *Key
	byID   map[string]*Key
	keys   []*Key
}

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// NewKeySet builds a key set. The last key with a private part signs.
func NewKeySet(keys ...Key) (*KeySet, error) {
	ks := &KeySet{byID: map[string]*Key{}}
	for i := range keys {
		k := keys[i]
		if k.Public == nil && k.Private != nil {
			k.Public = k.Private.Public()
		}
		alg, err := algorithmFor(k.Public)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Source, err)
		}
		if k.Algorithm == "" {
			k.Algorithm = alg
		} else if k.Algorithm != alg {
			return nil, fmt.Errorf("key %s: algorithm %s does not fit its key type (%s)", k.Source, k.Algorithm, alg)
		}
		if k.ID == "" {
			if k.ID, err = thumbprint(k.Public); err != nil {
				return nil, fmt.Errorf("key %s: %w", k.Source, err)
			}
		}
		if prev, dup := ks.byID[k.ID]; dup {
			// The same key twice (a private key and its public half) is harmless;
			// keep the one that can sign.
			if k.Private == nil {
				continue
			}
			*prev = k
		} else {
			ks.byID[k.ID] = &k
			ks.keys = append(ks.keys, &k)
		}
		if k.Private != nil {
			ks.signer = ks.byID[k.ID]
		}
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("no keys")
	}
	return ks, nil
}

// GenerateKey returns a new ECDSA P-256 (ES256) signing key, for tests and
// for a gateway started without a key directory.
func GenerateKey() (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, err
	}
	return Key{Private: priv, Source: "generated"}, nil
}

// LoadDir loads every PEM file in dir (file names starting with "." are
// skipped, so the ..data links of a mounted Secret are not read twice).
// Files are taken in lexical order of their names and the last private key
// signs, so name keys by date (2025-01-signing.pem, 2025-07-signing.pem) and
// rotation is: add the new key, later remove the old one after the token
// lifetime has passed. A PUBLIC KEY file only verifies, which keeps tokens
// of a retired signer valid until they expire.
func LoadDir(dir string) (*KeySet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read signing key directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, e.Name())) // follows the links of a Secret mount
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var keys []Key
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read signing key: %w", err)
		}
		k, err := ParsePEM(data)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
		k.Source = path
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no PEM keys in %s; create one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s", dir, filepath.Join(dir, "0001.pem"))
	}
	ks, err := NewKeySet(keys...)
	if err != nil {
		return nil, err
	}
	if ks.signer == nil {
		return nil, fmt.Errorf("%s holds only public keys; add a private key to sign with", dir)
	}
	return ks, nil
}

// ParsePEM parses one PEM key: PRIVATE KEY (PKCS#8), EC PRIVATE KEY, RSA
// PRIVATE KEY, or PUBLIC KEY (verify only).
func ParsePEM(data []byte) (Key, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return Key{}, errors.New("more than one PEM block; put one key in each file")
	}
	var parsed any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY":
		parsed, err = x509.ParsePKIXPublicKey(block.Bytes)
	default:
		return Key{}, fmt.Errorf("PEM block %q is not a key", block.Type)
	}
	if err != nil {
		return Key{}, err
	}
	if signer, ok := parsed.(crypto.Signer); ok {
		return Key{Private: signer, Public: signer.Public()}, nil
	}
	return Key{Public: parsed}, nil
}

// Signer returns the key that signs new tokens.
func (ks *KeySet) Signer() *Key { return ks.signer }

// Lookup returns the key with the given kid.
func (ks *KeySet) Lookup(kid string) (*Key, bool) {
	k, ok := ks.byID[kid]
	return k, ok
}

// Keys returns every key, in load order.
func (ks *KeySet) Keys() []*Key { return ks.keys }

// JWKS returns the public keys as a JSON Web Key Set, for the JWKS endpoint
// and for registries that verify the gateway's tokens themselves.
func (ks *KeySet) JWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range ks.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public, KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	return set
}

func algorithmFor(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
		return "", errors.New("unsupported elliptic curve; use P-256")
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits; use at least %d", k.N.BitLen(), minRSABits)
		}
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case nil:
		return "", errors.New("no key")
	}
	return "", fmt.Errorf("unsupported key type %T; use EC P-256, RSA or Ed25519", pub)
}

func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// Fingerprint is a short, stable name for a key set, for logs.
func (ks *KeySet) Fingerprint() string {
	h := sha256.New()
	for _, k := range ks.keys {
		h.Write([]byte(k.ID))
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:6])
}
