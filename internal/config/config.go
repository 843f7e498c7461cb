// Package config holds the guard's cluster-wide settings, read from a YAML
// file (`--config`). Every field has a documented default; an absent file
// means all defaults.
package config

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// Config is the cluster-wide configuration of the guard.
//
//	apiVersion: tenantguard.dev/v1alpha1
//	kind: GuardConfig
//	excludedNamespaces: [kube-system, kube-public, kube-node-lease, tenantguard-system]
//	adminGroups: [system:masters]
//	...
type Config struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`

	// ExcludedNamespaces are never guarded: the webhook configuration leaves
	// them out by selector, so an outage of the guard cannot block them.
	// Default: kube-system, kube-public, kube-node-lease. GuardNamespace is
	// always added.
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`

	// GuardNamespace is where the guard runs. Default: tenantguard-system.
	GuardNamespace string `json:"guardNamespace,omitempty"`

	// GuardServiceAccount is the guard's own service account; it may set the
	// tenant label of namespaces. Default: tenantguard.
	GuardServiceAccount string `json:"guardServiceAccount,omitempty"`

	// AdminGroups may set, change and remove the tenant label of namespaces
	// and create HostClaims. Default: system:masters.
	AdminGroups []string `json:"adminGroups,omitempty"`

	// ExemptGroups and ExemptUsers are not held to the Service, image and
	// catch-all rules (platform automation). Host ownership holds for
	// everyone. Default: none.
	ExemptGroups []string `json:"exemptGroups,omitempty"`
	ExemptUsers  []string `json:"exemptUsers,omitempty"`

	// InternalLoadBalancerAnnotations are the annotations that make a load
	// balancer internal on this cluster's cloud; any one of them admits a
	// LoadBalancer Service in InternalOnly mode. List only your cloud's: the
	// Azure provider ignores AWS's annotation and makes the load balancer
	// public. Default: Azure's
	// (service.beta.kubernetes.io/azure-load-balancer-internal: "true").
	InternalLoadBalancerAnnotations []Annotation `json:"internalLoadBalancerAnnotations,omitempty"`

	// HostAnnotations are Ingress annotations through which a controller
	// serves extra hosts (comma-separated values). They count like
	// spec.rules[].host. Default: AGIC hostname-extension and ingress-nginx
	// server-alias.
	HostAnnotations []string `json:"hostAnnotations,omitempty"`

	// RedactOwnerNamespace hides the owner namespace of a host from other
	// tenants in denial messages (the owner tenant is still named).
	RedactOwnerNamespace bool `json:"redactOwnerNamespace,omitempty"`

	// ClaimGracePeriod is how long an unused HostClaim is kept before it is
	// released: it covers objects that the webhook admitted but the API
	// server then refused, and lets an owner delete and re-create an object
	// without losing its host. Default: 2m.
	ClaimGracePeriod Duration `json:"claimGracePeriod,omitempty"`

	// MaxHostsPerObject bounds the hosts one Ingress, route or Gateway may
	// name: each new host costs the webhook a few API calls. Default: 100.
	MaxHostsPerObject int `json:"maxHostsPerObject,omitempty"`

	// NonTenantFailurePolicy is the webhook failure policy for Ingresses and
	// routes in namespaces that belong to no tenant (Fail or Ignore).
	// Tenant namespaces: the chart's webhooks.failurePolicy.tenants
	// (default Fail). Default: Fail.
	NonTenantFailurePolicy string `json:"nonTenantFailurePolicy,omitempty"`

	// IngressNamespaces are where the ingress controllers run: under a
	// Tenant's network isolation, their pods may reach every tenant.
	IngressNamespaces []string `json:"ingressNamespaces,omitempty"`
	// IngressCIDRs are address ranges outside the cluster's pods that may
	// reach every tenant under isolation: an ingress that sends traffic
	// straight to pods from its own subnet (Azure Application Gateway with
	// AGIC).
	IngressCIDRs []string `json:"ingressCIDRs,omitempty"`
}

// Annotation is a key and the value it must have.
type Annotation struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// The internal load balancer annotations of the clouds tenantguard knows.
// Configure the one of your cloud.
var (
	AzureInternal = Annotation{Key: "service.beta.kubernetes.io/azure-load-balancer-internal", Value: "true"}
	// AWSInternal is the AWS Load Balancer Controller's; the in-tree AWS
	// provider reads service.beta.kubernetes.io/aws-load-balancer-internal.
	AWSInternal = Annotation{Key: "service.beta.kubernetes.io/aws-load-balancer-scheme", Value: "internal"}
	GCPInternal = Annotation{Key: "networking.gke.io/load-balancer-type", Value: "Internal"}
)

// Duration is a time.Duration written as "2m" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON parses "90s", "2m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w (write e.g. \"2m\" or \"90s\")", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Default returns the configuration used when no file is given.
func Default() Config {
	c := Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = "tenantguard.dev/v1alpha1"
	}
	if c.Kind == "" {
		c.Kind = "GuardConfig"
	}
	if c.GuardNamespace == "" {
		c.GuardNamespace = "tenantguard-system"
	}
	if c.GuardServiceAccount == "" {
		c.GuardServiceAccount = "tenantguard"
	}
	if c.ExcludedNamespaces == nil {
		c.ExcludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}
	}
	if !c.Excluded(c.GuardNamespace) {
		// The guard never guards itself.
		c.ExcludedNamespaces = append(c.ExcludedNamespaces, c.GuardNamespace)
	}
	if c.AdminGroups == nil {
		c.AdminGroups = []string{"system:masters"}
	}
	if c.InternalLoadBalancerAnnotations == nil {
		// Azure's only: another cloud's annotation means nothing to the
		// Azure cloud provider, which would make the load balancer public.
		c.InternalLoadBalancerAnnotations = []Annotation{AzureInternal}
	}
	if c.HostAnnotations == nil {
		c.HostAnnotations = []string{
			"appgw.ingress.kubernetes.io/hostname-extension",
			"nginx.ingress.kubernetes.io/server-alias",
		}
	}
	if c.ClaimGracePeriod.Duration == 0 {
		c.ClaimGracePeriod.Duration = 2 * time.Minute
	}
	if c.MaxHostsPerObject == 0 {
		c.MaxHostsPerObject = 100
	}
	if c.NonTenantFailurePolicy == "" {
		c.NonTenantFailurePolicy = "Fail"
	}
}

// Parse reads a configuration document; unknown fields are errors, so a
// typo does not silently fall back to a default.
func Parse(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	if c.APIVersion != "" && c.APIVersion != "tenantguard.dev/v1alpha1" || c.Kind != "" && c.Kind != "GuardConfig" {
		return Config{}, fmt.Errorf("configuration: want apiVersion tenantguard.dev/v1alpha1, kind GuardConfig; got %s, %s", c.APIVersion, c.Kind)
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// Load reads the configuration file at path; an empty path means Default.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	if c.NonTenantFailurePolicy != "Fail" && c.NonTenantFailurePolicy != "Ignore" {
		return fmt.Errorf("nonTenantFailurePolicy %q: want Fail or Ignore", c.NonTenantFailurePolicy)
	}
	for _, a := range c.InternalLoadBalancerAnnotations {
		if a.Key == "" || a.Value == "" {
			return fmt.Errorf("internalLoadBalancerAnnotations: every entry needs a key and the value that makes the load balancer internal")
		}
	}
	if c.MaxHostsPerObject < 0 {
		return fmt.Errorf("maxHostsPerObject %d is negative", c.MaxHostsPerObject)
	}
	if c.ClaimGracePeriod.Duration < 0 {
		return fmt.Errorf("claimGracePeriod %s is negative", c.ClaimGracePeriod)
	}
	for _, cidr := range c.IngressCIDRs {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return fmt.Errorf("ingressCIDRs: %q is not an address range such as 10.1.0.0/24: %w", cidr, err)
		}
	}
	return nil
}

// Excluded reports whether namespace is never guarded.
func (c *Config) Excluded(namespace string) bool {
	for _, n := range c.ExcludedNamespaces {
		if n == namespace {
			return true
		}
	}
	return false
}
