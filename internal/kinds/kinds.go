// Package kinds is the set of API types tenantguard reads, and the one
// decoder that turns JSON or YAML into them for the webhook, the offline
// check and the audit alike.
package kinds

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
)

// GatewayV1 is the Gateway API group and version tenantguard guards.
var GatewayV1 = schema.GroupVersion{Group: gatewayv1.GroupName, Version: "v1"}

// Scheme holds the Kubernetes built-in types, CRDs, Gateway API v1 and
// the tenantguard.dev types.
var Scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, gatewayv1.Install, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("register API types: %v", err)) // programming error, caught by every test
		}
	}
	return s
}

var (
	lenient = serializer.NewCodecFactory(Scheme).UniversalDeserializer()
	strict  = serializer.NewCodecFactory(Scheme, serializer.EnableStrict).UniversalDeserializer()
)

// Decode decodes one JSON or YAML object into its typed form. It passes
// over fields the types do not know, as objects from a newer API server
// may have them. Kinds that tenantguard does not know come back as an
// UnknownKindError; malformed input is an error that says what is wrong.
func Decode(data []byte) (runtime.Object, *schema.GroupVersionKind, error) {
	return decode(lenient, data)
}

// DecodeStrict is Decode that also refuses unknown and duplicate fields,
// as `kubectl apply` does, for manifests a person wrote.
func DecodeStrict(data []byte) (runtime.Object, *schema.GroupVersionKind, error) {
	return decode(strict, data)
}

func decode(d runtime.Decoder, data []byte) (runtime.Object, *schema.GroupVersionKind, error) {
	obj, gvk, err := d.Decode(data, nil, nil)
	if err != nil {
		if runtime.IsNotRegisteredError(err) {
			return nil, gvk, &UnknownKindError{GVK: gvk}
		}
		return nil, gvk, err
	}
	return obj, gvk, nil
}

// UnknownKindError is returned for a well-formed object of a kind
// tenantguard has no rules for.
type UnknownKindError struct{ GVK *schema.GroupVersionKind }

func (e *UnknownKindError) Error() string {
	if e.GVK == nil {
		return "unknown kind"
	}
	return fmt.Sprintf("no rules for kind %s", e.GVK)
}
