package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

func hash(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseRobots(t *testing.T) {
	h := hash(t, "secret", 10)
	good := fmt.Sprintf("robots:\n- name: ci\n  tenant: project1\n  passwordHash: %q\n- name: puller\n  tenant: project1\n  passwordHash: %q\n  actions: [pull]\n", h, h)
	rs, err := ParseRobots([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 2 {
		t.Fatalf("Len = %d", rs.Len())
	}
	tests := []struct{ name, text, want string }{
		{"not yaml", "robots: [", "robot accounts"},
		{"unknown field", fmt.Sprintf("robots:\n- name: a\n  tenant: t\n  password: x\n  passwordHash: %q\n", h), "unknown field"},
		{"no name", fmt.Sprintf("robots:\n- tenant: t\n  passwordHash: %q\n", h), "must be non-empty"},
		{"colon in name", fmt.Sprintf("robots:\n- name: a:b\n  tenant: t\n  passwordHash: %q\n", h), "without ':'"},
		{"no tenant", fmt.Sprintf("robots:\n- name: a\n  passwordHash: %q\n", h), "no tenant"},
		{"plain password", "robots:\n- name: a\n  tenant: t\n  passwordHash: secret\n", "not a bcrypt hash"},
		{"cheap hash", fmt.Sprintf("robots:\n- name: a\n  tenant: t\n  passwordHash: %q\n", hash(t, "x", 4)), "below 10"},
		{"twice", fmt.Sprintf("robots:\n- name: a\n  tenant: t\n  passwordHash: %q\n- name: a\n  tenant: t\n  passwordHash: %q\n", h, h), "twice"},
		{"bad action", fmt.Sprintf("robots:\n- name: a\n  tenant: t\n  passwordHash: %q\n  actions: [fly]\n", h), "not pull"},
		{"star action", fmt.Sprintf("robots:\n- name: a\n  tenant: t\n  passwordHash: %q\n  actions: ['*']\n", h), "not pull"},
	}
	for _, tt := range tests {
		if _, err := ParseRobots([]byte(tt.text)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestChainRobots(t *testing.T) {
	h := hash(t, "secret", 10)
	rs, err := ParseRobots([]byte(fmt.Sprintf("robots:\n- name: ci\n  tenant: project1\n  passwordHash: %q\n- name: puller\n  tenant: project1\n  passwordHash: %q\n  actions: [pull]\n", h, h)))
	if err != nil {
		t.Fatal(err)
	}
	current := rs
	now := time.Unix(1000, 0)
	c := &Chain{Robots: func() *Robots { return current }, Now: func() time.Time { return now }}
	ctx := context.Background()

	id, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "secret")
	if err != nil || id != (authz.Identity{Subject: "robot:ci", Tenant: "project1"}) {
		t.Fatalf("ci: %+v, %v", id, err)
	}
	id, err = c.Authenticate(ctx, "192.0.2.1:1234", "puller", "secret")
	if err != nil || id.Limit != authz.Pull {
		t.Fatalf("puller: %+v, %v", id, err)
	}
	for _, bad := range [][2]string{{"ci", "wrong"}, {"nobody", "secret"}, {"ci", ""}, {"", "secret"}} {
		if _, err := c.Authenticate(ctx, "192.0.2.1:1234", bad[0], bad[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrInvalidCredentials", bad[0], bad[1], err)
		}
	}
	// A JWT-shaped password for a robot name is checked against the robot, not TokenReview.
	if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "aaaaaaaa.bbbbbbbb.cccccccc"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("JWT-shaped password without service accounts: %v", err)
	}

	// The cache answers while the robots are unchanged ...
	if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "secret"); err != nil {
		t.Fatal(err)
	}
	// ... and forgets when the file changes (the password was rotated).
	rotated, err := ParseRobots([]byte(fmt.Sprintf("robots:\n- name: ci\n  tenant: project1\n  passwordHash: %q\n", hash(t, "new", 10))))
	if err != nil {
		t.Fatal(err)
	}
	current = rotated
	if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "secret"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password accepted after rotation: %v", err)
	}
	if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "new"); err != nil {
		t.Errorf("new password: %v", err)
	}
	// Entries expire.
	now = now.Add(DefaultCacheTTL + time.Second)
	current, _ = ParseRobots([]byte("robots: []"))
	if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "new"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("removed robot accepted: %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln": true,
		"password":             false,
		"a.b.c":                false,
		"aaaaaaaa.bbbbbbbb.":   false,
		"aaaaaaaa.bbbb bbb.cc": false,
	} {
		if looksLikeJWT(s) != want {
			t.Errorf("looksLikeJWT(%q) != %v", s, want)
		}
	}
}

// BenchmarkLogin is the cost of one robot login: a bcrypt check at cost 10
// (cold), and a repeated login answered by the cache (cached).
//
//	go test -run '^$' -bench BenchmarkLogin ./internal/registry/authn/
func BenchmarkLogin(b *testing.B) {
	rs, err := ParseRobots([]byte(fmt.Sprintf("robots:\n- {name: ci, tenant: project1, passwordHash: %q}\n", hash(b, "secret", 10))))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"cold", -1}, {"cached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			c := &Chain{Robots: func() *Robots { return rs }, CacheTTL: bc.ttl}
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				if _, err := c.Authenticate(ctx, "192.0.2.1:1234", "ci", "secret"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
