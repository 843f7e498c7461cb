package policy

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// CanaryAnnotation marks an ingress-nginx canary Ingress, which may share
// host and path with its primary in the same namespace.
const CanaryAnnotation = "nginx.ingress.kubernetes.io/canary"

// hosted is what the host rules need from an Ingress or a route.
type hosted struct {
	ref  v1alpha1.ObjectReference
	uses []hosts.Use
	// fields says where each host is first named.
	fields map[hosts.Name]string
	// invalid are hosts that do not parse; catchAll are rules that catch
	// every host.
	invalid, catchAll []Violation
	// class of an Ingress; classField is where it was set ("" if unset).
	isIngress         bool
	class, classField string
}

// HostUses returns the hosts an Ingress or Gateway API route uses, with the
// paths it serves on each; ok is false for other kinds. Hosts that do not
// parse are left out (Evaluate reports them).
func (e *Engine) HostUses(obj runtime.Object, namespace string) ([]hosts.Use, bool) {
	h, ok := e.hosted(obj, namespace)
	if !ok {
		return nil, false
	}
	return h.uses, true
}

func (e *Engine) hosted(obj runtime.Object, namespace string) (*hosted, bool) {
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		return e.ingressHosts(o, namespace), true
	case *gatewayv1.HTTPRoute:
		var paths []string
		for _, r := range o.Spec.Rules {
			if len(r.Matches) == 0 {
				paths = append(paths, "/")
			}
			for _, m := range r.Matches {
				p := "/"
				if m.Path != nil && m.Path.Value != nil {
					p = *m.Path.Value
				}
				paths = append(paths, p)
			}
		}
		if len(o.Spec.Rules) == 0 {
			paths = []string{"/"}
		}
		return routeHosts(namespace, o.Name, "HTTPRoute", o.Spec.Hostnames, paths), true
	case *gatewayv1.GRPCRoute:
		return routeHosts(namespace, o.Name, "GRPCRoute", o.Spec.Hostnames, []string{"/"}), true
	case *gatewayv1.TLSRoute:
		return routeHosts(namespace, o.Name, "TLSRoute", o.Spec.Hostnames, []string{"/"}), true
	case *gatewayv1.Gateway:
		hostnames := make([]*gatewayv1.Hostname, len(o.Spec.Listeners))
		for i, l := range o.Spec.Listeners {
			hostnames[i] = l.Hostname
		}
		return listenerHosts(namespace, o.Name, "Gateway", hostnames), true
	case *gatewayv1.ListenerSet:
		hostnames := make([]*gatewayv1.Hostname, len(o.Spec.Listeners))
		for i, l := range o.Spec.Listeners {
			hostnames[i] = l.Hostname
		}
		return listenerHosts(namespace, o.Name, "ListenerSet", hostnames), true
	case *gatewayv1.TCPRoute:
		return portRoute(o.Name, "TCPRoute"), true
	case *gatewayv1.UDPRoute:
		return portRoute(o.Name, "UDPRoute"), true
	}
	return nil, false
}

// listenerHosts are the hostnames of a Gateway's or ListenerSet's
// listeners. Like an Ingress's TLS hosts, they serve certificates and
// accept traffic for the host, so they count as using it (with no path);
// a listener without hostname accepts every host on its port.
func listenerHosts(namespace, name, kind string, hostnames []*gatewayv1.Hostname) *hosted {
	h := &hosted{ref: v1alpha1.ObjectReference{Group: gatewayv1.GroupName, Kind: kind, Name: name}}
	b := &usesBuilder{h: h, ns: namespace, index: map[hosts.Name]int{}}
	for i, hn := range hostnames {
		field := fmt.Sprintf("spec.listeners[%d].hostname", i)
		if hn == nil || *hn == "" {
			h.catchAll = append(h.catchAll, Violation{
				Rule: RuleCatchAll, Field: field,
				Message: fmt.Sprintf("a %s listener without hostname accepts every host name on its port, other tenants' included", kind),
				Instead: "set the listener's hostname to one of your hosts.",
			})
			continue
		}
		b.add(string(*hn), field, v1alpha1.HostMatchAnyDepth, nil, false)
	}
	return h
}

// portRoute is a TCPRoute or UDPRoute: it has no hostnames and takes every
// connection on the port of the listeners it attaches to.
func portRoute(name, kind string) *hosted {
	return &hosted{
		ref: v1alpha1.ObjectReference{Group: gatewayv1.GroupName, Kind: kind, Name: name},
		catchAll: []Violation{{
			Rule: RuleCatchAll, Field: "spec.parentRefs",
			Message: fmt.Sprintf("a %s takes every connection on the port of the listeners it attaches to, whoever they were meant for", kind),
			Instead: "use an HTTPRoute, GRPCRoute or TLSRoute with your hostnames, or ask the platform team for a dedicated listener.",
		}},
	}
}

// usesBuilder merges the hosts named in several places of one object.
type usesBuilder struct {
	h     *hosted
	ns    string
	index map[hosts.Name]int
}

func (b *usesBuilder) add(raw, field string, match v1alpha1.HostMatch, paths []string, canary bool) {
	n, err := hosts.Parse(raw, match)
	if err != nil {
		b.h.invalid = append(b.h.invalid, Violation{
			Rule: RuleHostInvalid, Field: field, Value: raw, Message: err.Error(),
			Instead: "use a DNS name such as shop.example.com, or a wildcard such as *.shop.example.com.",
		})
		return
	}
	i, ok := b.index[n]
	if !ok {
		i = len(b.h.uses)
		b.index[n] = i
		if b.h.fields == nil {
			b.h.fields = map[hosts.Name]string{}
		}
		b.h.fields[n] = field
		b.h.uses = append(b.h.uses, hosts.Use{Name: n, Namespace: b.ns, Object: b.h.ref, Canary: canary})
	}
	u := &b.h.uses[i]
	for _, p := range paths {
		if !slices.Contains(u.Paths, p) {
			u.Paths = append(u.Paths, p)
		}
	}
}

func (e *Engine) ingressHosts(ing *networkingv1.Ingress, namespace string) *hosted {
	h := &hosted{ref: v1alpha1.ObjectReference{Group: "networking.k8s.io", Kind: "Ingress", Name: ing.Name}, isIngress: true}
	b := &usesBuilder{h: h, ns: namespace, index: map[hosts.Name]int{}}
	// ingress-nginx reads the annotation with strconv.ParseBool.
	canary, _ := strconv.ParseBool(ing.Annotations[CanaryAnnotation])
	switch {
	case ing.Spec.IngressClassName != nil:
		h.class, h.classField = *ing.Spec.IngressClassName, "spec.ingressClassName"
	case ing.Annotations["kubernetes.io/ingress.class"] != "":
		h.class, h.classField = ing.Annotations["kubernetes.io/ingress.class"], "metadata.annotations[kubernetes.io/ingress.class]"
	}

	var allPaths []string
	for i, r := range ing.Spec.Rules {
		paths := ingressPaths(r)
		allPaths = append(allPaths, paths...)
		field := fmt.Sprintf("spec.rules[%d].host", i)
		if r.Host == "" {
			h.catchAll = append(h.catchAll, Violation{
				Rule: RuleCatchAll, Field: field,
				Message: "a rule without a host serves every host name the ingress controller receives, other tenants' included",
				Instead: "set spec.rules[].host to one of your hosts.",
			})
			continue
		}
		b.add(r.Host, field, v1alpha1.HostMatchSingleLabel, paths, canary)
	}
	if len(allPaths) == 0 {
		allPaths = []string{"/"}
	}
	for i, t := range ing.Spec.TLS {
		if len(t.Hosts) == 0 {
			h.catchAll = append(h.catchAll, Violation{
				Rule: RuleCatchAll, Field: fmt.Sprintf("spec.tls[%d].hosts", i),
				Message: "a TLS entry without hosts makes its certificate the default for every host on the controller",
				Instead: "list the hosts the certificate is for in spec.tls[].hosts.",
			})
		}
		for j, host := range t.Hosts {
			// A certificate for a host counts as using it, even with no rule.
			b.add(host, fmt.Sprintf("spec.tls[%d].hosts[%d]", i, j), v1alpha1.HostMatchSingleLabel, nil, canary)
		}
	}
	for _, key := range e.cfg.HostAnnotations {
		value, ok := ing.Annotations[key]
		if !ok {
			continue
		}
		for _, host := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }) {
			b.add(host, fmt.Sprintf("metadata.annotations[%s]", key), v1alpha1.HostMatchSingleLabel, allPaths, canary)
		}
	}
	if ing.Spec.DefaultBackend != nil {
		h.catchAll = append(h.catchAll, Violation{
			Rule: RuleCatchAll, Field: "spec.defaultBackend",
			Message: "a default backend receives the traffic of every host and path no other rule matches, other tenants' included",
			Instead: "remove spec.defaultBackend and route your hosts with spec.rules.",
		})
	}
	return h
}

// ingressPaths returns the normalised paths of a rule; a rule without
// paths serves the whole host.
func ingressPaths(r networkingv1.IngressRule) []string {
	if r.HTTP == nil || len(r.HTTP.Paths) == 0 {
		return []string{"/"}
	}
	var out []string
	for _, p := range r.HTTP.Paths {
		path := p.Path
		if path == "" {
			path = "/"
		}
		if p.PathType != nil && *p.PathType == networkingv1.PathTypePrefix && path != "/" {
			path = strings.TrimRight(path, "/") // /foo and /foo/ are the same prefix
		}
		out = append(out, path)
	}
	return out
}

func routeHosts(namespace, name, kind string, hostnames []gatewayv1.Hostname, paths []string) *hosted {
	h := &hosted{ref: v1alpha1.ObjectReference{Group: gatewayv1.GroupName, Kind: kind, Name: name}}
	if len(hostnames) == 0 {
		h.catchAll = append(h.catchAll, Violation{
			Rule: RuleCatchAll, Field: "spec.hostnames",
			Message: fmt.Sprintf("a %s without hostnames takes every hostname of the listeners it attaches to", kind),
			Instead: "list your hosts in spec.hostnames.",
		})
		return h
	}
	for i := range paths {
		if paths[i] != "/" {
			paths[i] = strings.TrimRight(paths[i], "/")
		}
	}
	sort.Strings(paths)
	b := &usesBuilder{h: h, ns: namespace, index: map[hosts.Name]int{}}
	for i, hn := range hostnames {
		b.add(string(hn), fmt.Sprintf("spec.hostnames[%d]", i), v1alpha1.HostMatchAnyDepth, paths, false)
	}
	return h
}
