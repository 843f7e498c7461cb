package policy

import (
	"fmt"
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
//   - type NodePort, unless the tenant allows node ports;
//   - spec.externalIPs, always (CVE-2020-8554: they let a tenant intercept
//     traffic to any IP);
//   - type ExternalName, unless the target is in the tenant's allowlist.
func (e *Engine) checkService(svc *corev1.Service, t *Tenant) []Violation {
	var out []Violation
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer:
		out = append(out, e.checkLoadBalancer(svc, t)...)
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
