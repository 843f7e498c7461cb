package authn

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

// Robot is a static account of one tenant. The file form (YAML or JSON):
//
//	robots:
//	- name: project1-ci
//	  tenant: project1
//	  passwordHash: $2y$10$...          # bcrypt; htpasswd -nbB or the registry's hash-password
//	  actions: [pull]                   # optional: a ceiling below the tenant's rights
type Robot struct {
	Name         string   `json:"name"`
	Tenant       string   `json:"tenant"`
	PasswordHash string   `json:"passwordHash"`
	Actions      []string `json:"actions,omitempty"`
}

// RobotFile is the robot accounts file.
type RobotFile struct {
	Robots []Robot `json:"robots"`
}

// Robots is a parsed, immutable set of robot accounts.
type Robots struct {
	byName map[string]robot
	// dummy is checked for unknown names. Its cost is the highest of the
	// robots', so a wrong name costs as much as a wrong password and the
	// time of a refusal does not tell which names exist.
	dummy []byte
}

type robot struct {
	tenant string
	hash   []byte
	limit  authz.Actions
}

// minBcryptCost refuses hashes too cheap to slow down a guess;
// maxBcryptCost hashes so dear that every login (and every guess) would
// cost the gateway seconds of CPU.
const (
	minBcryptCost = 10
	maxBcryptCost = 16
)

// ParseRobots parses and checks a robot accounts file.
func ParseRobots(data []byte) (*Robots, error) {
	var f RobotFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("robot accounts: %w", err)
	}
	rs := &Robots{byName: map[string]robot{}}
	maxCost := minBcryptCost
	for i, r := range f.Robots {
		if r.Name == "" || strings.ContainsAny(r.Name, ": \t\r\n") {
			return nil, fmt.Errorf("robot accounts: entry %d: name %q must be non-empty, without ':' or white space", i, r.Name)
		}
		if _, dup := rs.byName[r.Name]; dup {
			return nil, fmt.Errorf("robot accounts: %s is defined twice", r.Name)
		}
		if r.Tenant == "" {
			return nil, fmt.Errorf("robot accounts: %s has no tenant", r.Name)
		}
		cost, err := bcrypt.Cost([]byte(r.PasswordHash))
		if err != nil {
			return nil, fmt.Errorf("robot accounts: %s: passwordHash is not a bcrypt hash (make one with: htpasswd -nbBC 12 %s <password>): %w", r.Name, r.Name, err)
		}
		if cost < minBcryptCost {
			return nil, fmt.Errorf("robot accounts: %s: bcrypt cost %d is below %d", r.Name, cost, minBcryptCost)
		}
		if cost > maxBcryptCost {
			return nil, fmt.Errorf("robot accounts: %s: bcrypt cost %d is above %d, which would cost seconds of CPU per login; use 10 to 14 (htpasswd -nbBC 12)", r.Name, cost, maxBcryptCost)
		}
		maxCost = max(maxCost, cost)
		var limit authz.Actions
		for _, a := range r.Actions {
			x := authz.ParseAction(a)
			if x == authz.None || a == "*" {
				return nil, fmt.Errorf("robot accounts: %s: action %q is not pull, push or delete", r.Name, a)
			}
			limit |= x
		}
		rs.byName[r.Name] = robot{tenant: r.Tenant, hash: []byte(r.PasswordHash), limit: limit}
	}
	if maxCost == minBcryptCost {
		rs.dummy = defaultDummyHash()
	} else {
		h, err := bcrypt.GenerateFromPassword([]byte("no such robot"), maxCost)
		if err != nil {
			return nil, fmt.Errorf("robot accounts: %w", err)
		}
		rs.dummy = h
	}
	return rs, nil
}

// LoadRobots reads a robot accounts file (a mounted Secret works: the
// file is re-read by the caller when it changes).
func LoadRobots(path string) (*Robots, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("robot accounts: %w", err)
	}
	return ParseRobots(data)
}

// Len is the number of robots.
func (rs *Robots) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.byName)
}

// defaultDummyHash is the dummy of robot sets at the lowest cost, and of
// no robots at all (service account logins only).
var defaultDummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such robot"), minBcryptCost)
	return h
})

// hashFor returns the hash a password for name is checked against: the
// robot's, or the dummy when no robot has the name.
func (rs *Robots) hashFor(name string) (robot, []byte, bool) {
	if r, ok := rs.lookup(name); ok {
		return r, r.hash, true
	}
	if rs == nil || rs.dummy == nil {
		return robot{}, defaultDummyHash(), false
	}
	return robot{}, rs.dummy, false
}

// verify checks a robot's password. ok is false when no robot has the name.
// An unknown name is checked against the dummy hash all the same.
func (rs *Robots) verify(name, password string) (authz.Identity, bool, error) {
	r, hash, ok := rs.hashFor(name)
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok {
		return authz.Identity{}, false, ErrInvalidCredentials
	}
	if err != nil {
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return authz.Identity{}, true, ErrInvalidCredentials
		}
		return authz.Identity{}, true, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	return authz.Identity{Subject: robotPrefix + name, Tenant: r.tenant, Limit: r.limit}, true, nil
}

func (rs *Robots) lookup(name string) (robot, bool) {
	if rs == nil {
		return robot{}, false
	}
	r, ok := rs.byName[name]
	return r, ok
}

// Equal reports whether two robot sets hold the same accounts, so a reload
// that changed nothing keeps the login cache.
func (rs *Robots) Equal(other *Robots) bool {
	if rs.Len() != other.Len() {
		return false
	}
	for n, r := range rs.byName {
		o, ok := other.byName[n]
		if !ok || o.tenant != r.tenant || o.limit != r.limit || !bytes.Equal(o.hash, r.hash) {
			return false
		}
	}
	return true
}
