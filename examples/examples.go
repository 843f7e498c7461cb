// Package examples embeds the example tenants and the manifests that replay
// the field's problems, so that `tenantguard dev` can replay them from any
// directory.
package examples

import "embed"

// FS holds tenants/*.yaml and manifests/*.yaml.
//
//go:embed tenants/*.yaml manifests/*.yaml
var FS embed.FS
