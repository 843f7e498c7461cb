package authz

import (
	"strings"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// Actions is a set of repository actions.
type Actions uint8

// The repository actions.
const (
	Pull Actions = 1 << iota
	Push
	Delete

	None Actions = 0
	All          = Pull | Push | Delete
)

// ParseAction returns the action named, or None for a name it does not know
// (an unknown action is never granted).
func ParseAction(s string) Actions {
	switch s {
	case scope.Pull:
		return Pull
	case scope.Push:
		return Push
	case scope.Delete:
		return Delete
	case scope.All:
		return All
	}
	return None
}

// ActionsOf is the set of the named actions.
func ActionsOf(names []string) Actions {
	var a Actions
	for _, n := range names {
		a |= ParseAction(n)
	}
	return a
}

// Has reports whether every action of b is in a.
func (a Actions) Has(b Actions) bool { return b != None && a&b == b }

// Names lists the actions in the canonical order pull, push, delete.
func (a Actions) Names() []string {
	var out []string
	for _, x := range []struct {
		bit  Actions
		name string
	}{{Pull, scope.Pull}, {Push, scope.Push}, {Delete, scope.Delete}} {
		if a&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func (a Actions) String() string {
	if a == None {
		return "nothing"
	}
	return strings.Join(a.Names(), ", ")
}
