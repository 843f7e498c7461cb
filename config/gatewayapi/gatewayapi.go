// Package gatewayapi embeds the Gateway API standard-channel CRDs (copied
// from sigs.k8s.io/gateway-api by hack/update-gateway-api-crds.sh) that
// `tenantguard dev` and the tests install, so routes can be guarded there.
package gatewayapi

import (
	"embed"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/tenantguard/tenantguard/config/crd"
)

//go:embed *.yaml
var files embed.FS

// CRDs returns the Gateway API CRDs.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return crd.Decode(files)
}
