package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// checkService refuses Services that create cloud resources or expose nodes:
//
//   - type LoadBalancer, unless the tenant allows it; in InternalOnly mode
//     only with one of the configured internal load balancer annotations;
//   - an Azure Private Link Service made for a load balancer, unless the
//     tenant allows Private Link;
//   - type NodePort, unless the tenant allows node ports;
//   - spec.externalIPs, always (CVE-2020-8554: they let a tenant intercept
//     traffic to any IP);
//   - type ExternalName, unless the target is in the tenant's allowlist.
func (e *Engine) checkService(svc *corev1.Service, t *Tenant) []Violation {
	var out []Violation
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		out = append(out, e.checkLoadBalancer(svc, t)...)
		out = append(out, checkPrivateLink(svc, t)...)
	case corev1.ServiceTypeNodePort:
		if !t.Spec.Services.AllowNodePort {
			out = append(out, Violation{
				Rule: RuleNodePort, Field: "spec.type", Value: "NodePort " + nodePorts(svc),
				Message: fmt.Sprintf("type NodePort opens a port on every node of the cluster, which tenant %q may not do", t.Name),
				Instead: "use type ClusterIP and expose the Service through an Ingress or route on one of your hosts.",
			})
		}
	case corev1.ServiceTypeExternalName:
		out = append(out, checkExternalName(svc, t)...)
	}
	for i, ip := range svc.Spec.ExternalIPs {
		out = append(out, Violation{
			Rule: RuleExternalIPs, Field: fmt.Sprintf("spec.externalIPs[%d]", i), Value: ip,
			Message: "externalIPs let a Service take over traffic to any IP address in the cluster (CVE-2020-8554); tenants may not set them",
			Instead: "remove spec.externalIPs; expose the Service through an Ingress or route.",
		})
	}
	return out
}

// internal reports whether a Service carries one of the configured
// internal load balancer annotations, with its value.
func (e *Engine) internal(svc *corev1.Service) bool {
	for _, a := range e.cfg.InternalLoadBalancerAnnotations {
		if v, ok := svc.Annotations[a.Key]; ok && v == a.Value {
			return true
		}
	}
	return false
}

// nodePorts lists a Service's node ports, so that an update that opens
// another one is not mistaken for one that keeps what was there.
func nodePorts(svc *corev1.Service) string {
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%d/%s", p.NodePort, p.Protocol))
	}
	sort.Strings(ports)
	return strings.Join(ports, ",")
}

func (e *Engine) checkLoadBalancer(svc *corev1.Service, t *Tenant) []Violation {
	exposure := "LoadBalancer, public"
	if e.internal(svc) {
		exposure = "LoadBalancer, internal"
	}
	switch t.Spec.Services.LoadBalancer {
	case v1alpha1.LoadBalancerAllow:
		return nil
	case v1alpha1.LoadBalancerInternalOnly:
		if e.internal(svc) {
			return nil
		}
		// An internal annotation with another value ("false") is the
		// cloud's way to ask for a public load balancer: say so.
		for _, a := range e.cfg.InternalLoadBalancerAnnotations {
			if v, ok := svc.Annotations[a.Key]; ok {
				return []Violation{{
					Rule: RuleLoadBalancer, Field: fmt.Sprintf("metadata.annotations[%s]", a.Key), Value: exposure,
					Message: fmt.Sprintf("the annotation %s is %q; it makes the load balancer internal only when its value is %q, so this one creates a public IP, and tenant %q may only create internal load balancers", a.Key, v, a.Value, t.Name),
					Instead: fmt.Sprintf("set the annotation to %s: %q.", a.Key, a.Value),
				}}
			}
		}
		want := "(none configured)"
		if len(e.cfg.InternalLoadBalancerAnnotations) > 0 {
			a := e.cfg.InternalLoadBalancerAnnotations[0]
			want = fmt.Sprintf("%s: %q", a.Key, a.Value)
		}
		return []Violation{{
			Rule: RuleLoadBalancer, Field: "metadata.annotations", Value: exposure,
			Message: fmt.Sprintf("type LoadBalancer without an internal load balancer annotation creates a public IP; tenant %q may only create internal load balancers", t.Name),
			Instead: fmt.Sprintf("add the annotation %s (or another configured internal annotation for your cloud).", want),
		}}
	default:
		return []Violation{{
			Rule: RuleLoadBalancer, Field: "spec.type", Value: exposure,
			Message: fmt.Sprintf("type LoadBalancer creates a cloud load balancer and IP address, which tenant %q may not create", t.Name),
			Instead: "use type ClusterIP behind an Ingress or route on one of your hosts, or ask the platform team to allow internal load balancers (spec.services.loadBalancer: InternalOnly).",
		}}
	}
}

func checkExternalName(svc *corev1.Service, t *Tenant) []Violation {
	v := Violation{Rule: RuleExternalName, Field: "spec.externalName", Value: svc.Spec.ExternalName}
	if t.externalNames.Empty() {
		if inCluster(svc.Spec.ExternalName) {
			v.Message = fmt.Sprintf("type ExternalName makes an alias of %q, an in-cluster Service name, which tenant %q may not do: the alias would carry another Service's traffic under this one's name", svc.Spec.ExternalName, t.Name)
			v.Instead = fmt.Sprintf("call %s by its own name, or ask the platform team to add it to spec.services.allowedExternalNames.", svc.Spec.ExternalName)
			return []Violation{v}
		}
		v.Message = fmt.Sprintf("type ExternalName points cluster DNS at an outside host, which tenant %q may not do", t.Name)
		v.Instead = "call the outside host by its own name, or ask the platform team to add it to spec.services.allowedExternalNames."
		return []Violation{v}
	}
	n, err := hosts.Parse(svc.Spec.ExternalName, v1alpha1.HostMatchExact)
	if err != nil {
		v.Message = fmt.Sprintf("ExternalName target is not a host name: %v", err)
		v.Instead = "set spec.externalName to a DNS name."
		return []Violation{v}
	}
	if n.Wildcard() || !t.externalNames.Allows(n) {
		v.Message = fmt.Sprintf("ExternalName target %q is not among the hosts tenant %q may point to (%s)", n, t.Name, t.externalNames)
		v.Instead = "use one of the allowed external names, or ask the platform team to add this one."
		return []Violation{v}
	}
	return nil
}

// inCluster reports whether name is a name of cluster DNS (a Service's
// name.namespace.svc or name.namespace.svc.cluster.local, or any name under
// the default cluster domain), not an outside host.
func inCluster(name string) bool {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	return strings.HasSuffix(n, ".svc") || n == "cluster.local" || strings.HasSuffix(n, ".cluster.local")
}

// Azure annotations on LoadBalancer Services.
const (
	// PrivateLinkAnnotation makes the Azure provider create a Private Link
	// Service for the load balancer; the provider reads "true" without case.
	PrivateLinkAnnotation = "service.beta.kubernetes.io/azure-pls-create"
	// PublicIPNameAnnotation names an Azure public IP for the load balancer.
	PublicIPNameAnnotation = "service.beta.kubernetes.io/azure-pip-name"
	// IPv4Annotation sets the load balancer's IPv4 address.
	IPv4Annotation = "service.beta.kubernetes.io/azure-load-balancer-ipv4"
)

// checkPrivateLink refuses a Private Link Service, unless the tenant
// allows it: it is an Azure resource of its own, made with namespace
// rights, that can publish the Service to other virtual networks and
// subscriptions.
func checkPrivateLink(svc *corev1.Service, t *Tenant) []Violation {
	v, ok := svc.Annotations[PrivateLinkAnnotation]
	if !ok || !strings.EqualFold(v, "true") || t.Spec.Services.AllowPrivateLink {
		return nil
	}
	return []Violation{{
		Rule: RulePrivateLink, Field: fmt.Sprintf("metadata.annotations[%s]", PrivateLinkAnnotation), Value: v,
		Message: fmt.Sprintf("%q makes Azure create a Private Link Service, which can publish this Service to other virtual networks and subscriptions; tenant %q may not create one", v, t.Name),
		Instead: "remove the annotation and reach the Service inside the network, or ask the platform team to allow Private Link (spec.services.allowPrivateLink).",
	}}
}

// serviceWarnings flag an internal load balancer that also asks for a
// public address: the internal annotation admitted it, but its author
// meant an exposure the tenant may not have.
func (e *Engine) serviceWarnings(svc *corev1.Service) []string {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !e.internal(svc) {
		return nil
	}
	var out []string
	if name, ok := svc.Annotations[PublicIPNameAnnotation]; ok {
		out = append(out, fmt.Sprintf("metadata.annotations[%s]: %q names a public IP on an internal load balancer; remove it, an internal load balancer takes a private address of the subnet", PublicIPNameAnnotation, name))
	}
	if ip, ok := svc.Annotations[IPv4Annotation]; ok && !privateAddress(ip) {
		out = append(out, fmt.Sprintf("metadata.annotations[%s]: %q is not a private address, yet the load balancer is internal; use a free address of the cluster's subnet", IPv4Annotation, ip))
	}
	return out
}

// privateAddress reports whether s is an IPv4 or IPv6 private address
// (RFC 1918, RFC 4193).
func privateAddress(s string) bool {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	return err == nil && a.IsPrivate()
}
