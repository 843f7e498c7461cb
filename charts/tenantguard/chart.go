// Package tenantguard embeds the tenantguard Helm chart, so that
// `tenantguard install` renders exactly what `helm install` would.
package tenantguard

import "embed"

// Files holds the chart: Chart.yaml, values.yaml, values.schema.json,
// crds/ and templates/ (the .helmignore keeps this file out of the chart).
//
//go:embed Chart.yaml values.yaml values.schema.json crds all:templates
var Files embed.FS
