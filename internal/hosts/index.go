package hosts

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// Owner is the owner of a claimed host, as recorded by a HostClaim.
type Owner struct {
	Name Name
	// Namespace owns the host; empty in a reservation for Tenant that no
	// namespace has used yet.
	Namespace string
	Tenant    string
	// Object owns the host in the Object ownership mode.
	Object   *v1alpha1.ObjectReference
	Reserved bool
	// Pending claims are being made by a request that may still withdraw
	// them; the owner does not hold the host yet.
	Pending bool
	// Unclaimed owners have no claim yet: the oldest object using the
	// name owns it all the same (an object of an excluded namespace, or
	// one from before the guard, or from an outage). The claim records that
	// ownership; it does not create it.
	Unclaimed bool
}

// Use is one object using a host.
type Use struct {
	Name      Name
	Namespace string
	Object    v1alpha1.ObjectReference
	// Paths served on the host ("/" for the whole host).
	Paths []string
	// Canary is an ingress-nginx canary Ingress, which may share host and
	// path with its primary.
	Canary bool
	// Created is the object's creation time: the oldest user of an
	// unclaimed name owns it.
	Created time.Time
}

// ObjectKey identifies an object that uses hosts.
type ObjectKey struct {
	Namespace string
	Group     string
	Kind      string
	Name      string
}

// Index answers "who owns this host" and "which objects use it" in time
// that depends on the name, not on the number of hosts. It is a tree of
// labels from the top-level domain down. It is safe for concurrent use.
//
// The index is a cache: in the cluster, HostClaim objects are the truth and
// the guard keeps the index in step with them.
type Index struct {
	mu   sync.RWMutex
	root node
	// objects maps an object to the first name it uses; multi holds the
	// others for the few objects that use several.
	objects map[ObjectKey]Name
	multi   map[ObjectKey][]Name
	kinds   []v1alpha1.ObjectReference // group and kind only
	strs    map[string]string          // interned namespaces and tenants
	owners  int
}

// wholeHost is the paths of a use that serves the whole host, shared by
// all such uses to save memory.
var wholeHost = []string{"/"}

// storedUse is a Use as the index keeps it: the host is the node's, and the
// object's group and kind are an index into Index.kinds.
type storedUse struct {
	match     v1alpha1.HostMatch
	namespace string
	name      string
	paths     []string
	kind      uint16
	canary    bool
	created   int64 // unix seconds, as creationTimestamp
}

type node struct {
	children map[string]*node
	// Claims of this name in each semantics.
	exact, single, any *Owner
	uses               []storedUse
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{objects: map[ObjectKey]Name{}, multi: map[ObjectKey][]Name{}, strs: map[string]string{}}
}

func (ix *Index) intern(s string) string {
	if v, ok := ix.strs[s]; ok {
		return v
	}
	ix.strs[s] = s
	return s
}

// lookup walks to the node of host; create adds missing nodes.
func (ix *Index) lookup(host string, create bool) (*node, []*node) {
	n := &ix.root
	var path []*node
	rest := host
	for rest != "" {
		i := strings.LastIndexByte(rest, '.')
		label := rest[i+1:]
		if i < 0 {
			rest = ""
		} else {
			rest = rest[:i]
		}
		path = append(path, n)
		child := n.children[label]
		if child == nil {
			if !create {
				return nil, path
			}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			child = &node{}
			n.children[strings.Clone(label)] = child
		}
		n = child
	}
	return n, path
}

func (n *node) slot(m v1alpha1.HostMatch) **Owner {
	switch m {
	case v1alpha1.HostMatchSingleLabel:
		return &n.single
	case v1alpha1.HostMatchAnyDepth:
		return &n.any
	default:
		return &n.exact
	}
}

// SetOwner records the owner of o.Name, replacing any previous one.
func (ix *Index) SetOwner(o Owner) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	o.Namespace, o.Tenant = ix.intern(o.Namespace), ix.intern(o.Tenant)
	n, _ := ix.lookup(o.Name.Host, true)
	slot := n.slot(o.Name.Match)
	if *slot == nil {
		ix.owners++
	}
	*slot = &o
}

// DeleteOwner forgets the owner of name.
func (ix *Index) DeleteOwner(name Name) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	n, path := ix.lookup(name.Host, false)
	if n == nil {
		return
	}
	slot := n.slot(name.Match)
	if *slot != nil {
		ix.owners--
		*slot = nil
	}
	ix.prune(name.Host, n, path)
}

// Owner returns the owner of exactly name.
func (ix *Index) Owner(name Name) (Owner, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n, _ := ix.lookup(name.Host, false)
	if n == nil || *n.slot(name.Match) == nil {
		return Owner{}, false
	}
	return **n.slot(name.Match), true
}

// Len returns the number of owners recorded.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.owners
}

// Overlapping returns the owners of every name that overlaps name (name's
// own owner included) and that keep accepts (nil accepts all), stopping
// after limit results when limit > 0. A name's owner is its claim's, or,
// for a name in use that no claim records yet, the oldest object using it
// (Owner.Unclaimed).
func (ix *Index) Overlapping(name Name, limit int, keep func(Owner) bool) []Owner {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []Owner
	add := func(n *node, host string, m v1alpha1.HostMatch) bool {
		o := ix.ownerAt(n, host, m)
		if o != nil && Overlaps(name, o.Name) && (keep == nil || keep(*o)) {
			out = append(out, *o)
		}
		return limit > 0 && len(out) >= limit
	}
	n, path := ix.lookup(name.Host, false)
	// Wildcards on the parent domains: path[i] is the node of the last i
	// labels of the name.
	labels := strings.Split(name.Host, ".")
	for i := 1; i < len(path); i++ {
		host := strings.Join(labels[len(labels)-i:], ".")
		if add(path[i], host, v1alpha1.HostMatchSingleLabel) || add(path[i], host, v1alpha1.HostMatchAnyDepth) {
			return out
		}
	}
	if n == nil {
		return out
	}
	all := func(n *node, host string) bool {
		return add(n, host, v1alpha1.HostMatchExact) || add(n, host, v1alpha1.HostMatchSingleLabel) || add(n, host, v1alpha1.HostMatchAnyDepth)
	}
	if all(n, name.Host) {
		return out
	}
	switch name.Match {
	case v1alpha1.HostMatchSingleLabel:
		for label, c := range n.children {
			if add(c, label+"."+name.Host, v1alpha1.HostMatchExact) {
				return out
			}
		}
	case v1alpha1.HostMatchAnyDepth:
		var walk func(*node, string) bool
		walk = func(n *node, host string) bool {
			for label, c := range n.children {
				h := label + "." + host
				if all(c, h) || walk(c, h) {
					return true
				}
			}
			return false
		}
		walk(n, name.Host)
	}
	return out
}

// ownerAt is the owner of the name host (with match m) at node n: its
// claim's, else the oldest object that uses it, else nil.
func (ix *Index) ownerAt(n *node, host string, m v1alpha1.HostMatch) *Owner {
	if o := *n.slot(m); o != nil {
		return o
	}
	var oldest *storedUse
	for i := range n.uses {
		u := &n.uses[i]
		if u.match == m && (oldest == nil || ix.olderUse(u, oldest)) {
			oldest = u
		}
	}
	if oldest == nil {
		return nil
	}
	return &Owner{Name: Name{Host: host, Match: m}, Namespace: oldest.namespace, Unclaimed: true}
}

// olderUse orders uses as the adopter does: creation time, then
// namespace and name.
func (ix *Index) olderUse(a, b *storedUse) bool {
	if a.created != b.created {
		return a.created < b.created
	}
	if a.namespace != b.namespace {
		return a.namespace < b.namespace
	}
	return a.name < b.name
}

// HasObject reports whether the index holds key (an object that uses at
// least one host).
func (ix *Index) HasObject(key ObjectKey) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, ok := ix.objects[key]
	return ok
}

// SetUses replaces the hosts an object uses.
func (ix *Index) SetUses(key ObjectKey, uses []Use) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.deleteUses(key)
	for i, u := range uses {
		paths := u.Paths
		if len(paths) == 1 && paths[0] == "/" {
			paths = wholeHost
		}
		n, _ := ix.lookup(u.Name.Host, true)
		n.uses = slices.Grow(n.uses, 1)
		n.uses = append(n.uses, storedUse{
			match: u.Name.Match, namespace: ix.intern(u.Namespace), name: u.Object.Name,
			paths: paths, kind: ix.kindIndex(u.Object.Group, u.Object.Kind), canary: u.Canary,
			created: u.Created.Unix(),
		})
		if i == 0 {
			ix.objects[key] = u.Name
		} else {
			ix.multi[key] = append(ix.multi[key], u.Name)
		}
	}
}

func (ix *Index) kindIndex(group, kind string) uint16 {
	for i, k := range ix.kinds {
		if k.Group == group && k.Kind == kind {
			return uint16(i)
		}
	}
	ix.kinds = append(ix.kinds, v1alpha1.ObjectReference{Group: group, Kind: kind})
	return uint16(len(ix.kinds) - 1)
}

// DeleteUses forgets the hosts an object uses.
func (ix *Index) DeleteUses(key ObjectKey) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.deleteUses(key)
}

func (ix *Index) deleteUses(key ObjectKey) {
	first, ok := ix.objects[key]
	if !ok {
		return
	}
	for _, name := range append([]Name{first}, ix.multi[key]...) {
		n, path := ix.lookup(name.Host, false)
		if n == nil {
			continue
		}
		n.uses = slices.DeleteFunc(n.uses, func(u storedUse) bool {
			k := ix.kinds[u.kind]
			return u.namespace == key.Namespace && u.name == key.Name && k.Kind == key.Kind && k.Group == key.Group
		})
		if len(n.uses) == 0 {
			n.uses = nil
		}
		ix.prune(name.Host, n, path)
	}
	delete(ix.objects, key)
	delete(ix.multi, key)
}

// Uses returns the uses of exactly name in namespace, sorted by object.
func (ix *Index) Uses(name Name, namespace string) []Use {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n, _ := ix.lookup(name.Host, false)
	if n == nil {
		return nil
	}
	var out []Use
	for _, u := range n.uses {
		if u.match == name.Match && u.namespace == namespace {
			ref := ix.kinds[u.kind]
			ref.Name = u.name
			out = append(out, Use{Name: name, Namespace: u.namespace, Object: ref, Paths: u.paths, Canary: u.canary})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object.Name < out[j].Object.Name })
	return out
}

// UsedIn reports whether any object in namespace uses exactly name.
func (ix *Index) UsedIn(name Name, namespace string) bool {
	return len(ix.Uses(name, namespace)) > 0
}

// prune removes empty nodes on the way back up from host.
func (ix *Index) prune(host string, n *node, path []*node) {
	labels := strings.Split(host, ".")
	for i := len(path) - 1; i >= 0; i-- {
		if n.exact != nil || n.single != nil || n.any != nil || len(n.uses) > 0 || len(n.children) > 0 {
			return
		}
		// path[i] is the parent of n; n's label is labels[len(labels)-1-i].
		delete(path[i].children, labels[len(labels)-1-i])
		n = path[i]
	}
}
