package authn

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

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
}

type robot struct {
	tenant string
	hash   []byte
	limit  authz.Actions
}

// minBcryptCost refuses hashes too cheap to slow down a guess.
const minBcryptCost = 10

// ParseRobots parses and checks a robot accounts file.
func ParseRobots(data []byte) (*Robots, error) {
	var f RobotFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("robot accounts: %w", err)
	}
	rs := &Robots{byName: map[string]robot{}}
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

// dummyHash is compared against when the user is unknown, so an unknown
// name costs as much time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such robot"), minBcryptCost)

// verify checks a robot's password. ok is false when no robot has the name.
func (rs *Robots) verify(name, password string) (authz.Identity, bool, error) {
	r, ok := rs.lookup(name)
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return authz.Identity{}, false, ErrInvalidCredentials
	}
	if err := bcrypt.CompareHashAndPassword(r.hash, []byte(password)); err != nil {
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return authz.Identity{}, true, ErrInvalidCredentials
		}
		return authz.Identity{}, true, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	return authz.Identity{Subject: "robot:" + name, Tenant: r.tenant, Limit: r.limit}, true, nil
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
