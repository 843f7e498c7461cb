// Package version holds the versions tenantguard reports and targets.
package version

// Version is the tenantguard release. Release builds set it with
// -ldflags "-X github.com/tenantguard/tenantguard/internal/version.Version=v0.1.0".
var Version = "v0.0.0-dev"

const (
	// Kubernetes is the Kubernetes release tenantguard is built and tested
	// against: its client libraries and the local control plane of `dev`.
	Kubernetes = "v1.37.2"
	// Etcd is the etcd release of the local control plane.
	Etcd = "v3.6.16"
)
