package kinds

import (
	"encoding/json"
	"fmt"

	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	networkingv1beta1 "k8s.io/api/networking/v1beta1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Removed says that a kind was written in an API version that Kubernetes
// no longer serves, and which version replaces it.
type Removed struct {
	// From is the version as written (extensions/v1beta1, Ingress).
	From schema.GroupVersionKind
	// To is the version it was converted to (networking.k8s.io/v1).
	To schema.GroupVersionKind
	// Since is the first Kubernetes minor version that does not serve From.
	Since string
}

// removed lists the versions of the kinds tenantguard has rules for that
// the API server no longer serves, with their replacement. Manifests in
// these versions still exist in old charts and repositories; the API
// server refuses them, so they are judged as their replacement and
// reported.
var removed = map[schema.GroupVersionKind]Removed{}

func init() {
	add := func(from schema.GroupVersion, to schema.GroupVersion, since string, kinds ...string) {
		for _, k := range kinds {
			f := from.WithKind(k)
			removed[f] = Removed{From: f, To: to.WithKind(k), Since: since}
		}
	}
	apps := schema.GroupVersion{Group: "apps", Version: "v1"}
	add(schema.GroupVersion{Group: "extensions", Version: "v1beta1"}, networkingv1.SchemeGroupVersion, "1.22", "Ingress")
	add(networkingv1beta1.SchemeGroupVersion, networkingv1.SchemeGroupVersion, "1.22", "Ingress")
	add(schema.GroupVersion{Group: "extensions", Version: "v1beta1"}, apps, "1.16", "Deployment", "DaemonSet", "ReplicaSet")
	add(schema.GroupVersion{Group: "apps", Version: "v1beta1"}, apps, "1.16", "Deployment", "StatefulSet")
	add(schema.GroupVersion{Group: "apps", Version: "v1beta2"}, apps, "1.16", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
	add(schema.GroupVersion{Group: "batch", Version: "v1beta1"}, schema.GroupVersion{Group: "batch", Version: "v1"}, "1.25", "CronJob")
}

// RemovedVersion reports whether gvk is a version the API server no
// longer serves, of a kind tenantguard has rules for.
func RemovedVersion(gvk schema.GroupVersionKind) (Removed, bool) {
	r, ok := removed[gvk]
	return r, ok
}

// Upgrade converts an object decoded in a removed version (see
// RemovedVersion) to the version that replaces it, so that the rules of
// that version apply to it. data is the object's JSON. Workload kinds
// share their pod template with their replacement and are decoded again
// as it; an Ingress has its backends rewritten.
func Upgrade(r Removed, obj runtime.Object, data []byte) (runtime.Object, error) {
	switch o := obj.(type) {
	case *networkingv1beta1.Ingress:
		return ingressV1(o), nil
	case *extensionsv1beta1.Ingress:
		// The two beta Ingresses have the same fields.
		var beta networkingv1beta1.Ingress
		if err := roundTrip(o, &beta); err != nil {
			return nil, fmt.Errorf("convert %s %s to %s: %w", r.From.GroupVersion(), r.From.Kind, r.To.GroupVersion(), err)
		}
		return ingressV1(&beta), nil
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	u.SetAPIVersion(r.To.GroupVersion().String())
	js, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	out, _, err := Decode(js)
	if err != nil {
		return nil, fmt.Errorf("read %s %s as %s: %w", r.From.GroupVersion(), r.From.Kind, r.To.GroupVersion(), err)
	}
	return out, nil
}

func roundTrip(in, out any) error {
	js, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(js, out)
}

// ingressV1 converts a beta Ingress: spec.backend becomes
// spec.defaultBackend, and serviceName and servicePort become service.name
// and service.port.
func ingressV1(in *networkingv1beta1.Ingress) *networkingv1.Ingress {
	out := &networkingv1.Ingress{ObjectMeta: *in.ObjectMeta.DeepCopy()}
	out.APIVersion, out.Kind = networkingv1.SchemeGroupVersion.String(), "Ingress"
	out.Spec.IngressClassName = in.Spec.IngressClassName
	out.Spec.DefaultBackend = backendV1(in.Spec.Backend)
	for _, t := range in.Spec.TLS {
		out.Spec.TLS = append(out.Spec.TLS, networkingv1.IngressTLS{Hosts: t.Hosts, SecretName: t.SecretName})
	}
	for _, r := range in.Spec.Rules {
		rule := networkingv1.IngressRule{Host: r.Host}
		if r.HTTP != nil {
			rule.HTTP = &networkingv1.HTTPIngressRuleValue{}
			for _, p := range r.HTTP.Paths {
				var pt *networkingv1.PathType
				if p.PathType != nil {
					v := networkingv1.PathType(*p.PathType)
					pt = &v
				}
				b := backendV1(&p.Backend)
				if b == nil {
					b = &networkingv1.IngressBackend{}
				}
				rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: p.Path, PathType: pt, Backend: *b})
			}
		}
		out.Spec.Rules = append(out.Spec.Rules, rule)
	}
	return out
}

func backendV1(in *networkingv1beta1.IngressBackend) *networkingv1.IngressBackend {
	if in == nil {
		return nil
	}
	out := &networkingv1.IngressBackend{Resource: in.Resource}
	if in.ServiceName != "" {
		svc := &networkingv1.IngressServiceBackend{Name: in.ServiceName}
		if in.ServicePort.Type == intstr.String {
			svc.Port.Name = in.ServicePort.StrVal
		} else {
			svc.Port.Number = in.ServicePort.IntVal
		}
		out.Service = svc
	}
	return out
}
