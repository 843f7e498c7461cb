package kinds_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tenantguard/tenantguard/internal/kinds"
)

// Every removed version must decode, and its replacement must be a type
// the rules know, or Upgrade would leave the object unjudged.
func TestRemovedVersionsHaveAServedReplacement(t *testing.T) {
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "extensions", Version: "v1beta1", Kind: "Ingress"},
		{Group: "networking.k8s.io", Version: "v1beta1", Kind: "Ingress"},
		{Group: "extensions", Version: "v1beta1", Kind: "Deployment"},
		{Group: "apps", Version: "v1beta1", Kind: "StatefulSet"},
		{Group: "apps", Version: "v1beta2", Kind: "DaemonSet"},
		{Group: "batch", Version: "v1beta1", Kind: "CronJob"},
	} {
		r, ok := kinds.RemovedVersion(gvk)
		if !ok {
			t.Errorf("%s is not known as removed", gvk)
			continue
		}
		if !kinds.Scheme.Recognizes(gvk) || !kinds.Scheme.Recognizes(r.To) || r.To.Version != "v1" || r.Since == "" {
			t.Errorf("%s: replacement %s (since %q) not decodable", gvk, r.To, r.Since)
		}
	}
	if _, ok := kinds.RemovedVersion(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}); ok {
		t.Error("networking.k8s.io/v1 Ingress is served")
	}
}
