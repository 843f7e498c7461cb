package webhook

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/config"
)

// Path is where the webhook server answers AdmissionReviews.
const Path = "/validate"

// MutatePath is where it answers the namespace creations it labels
// (namespaces-create.tenantguard.dev).
const MutatePath = "/mutate-namespace"

// ConfigurationOptions say how the API server reaches the guard.
type ConfigurationOptions struct {
	// Name of the ValidatingWebhookConfiguration and of the
	// MutatingWebhookConfiguration (default tenantguard).
	Name string
	// URL of the webhook (dev and tests: https://127.0.0.1:port/validate;
	// the mutating configuration calls its host at MutatePath); or
	// Service, in a cluster.
	URL     string
	Service *admissionregistrationv1.ServiceReference
	// CABundle verifies the webhook's serving certificate.
	CABundle []byte
	// TimeoutSeconds for each call (default 10).
	TimeoutSeconds int32
	// Failure policies of the tenants, namespaces and tenantobjects
	// webhooks (default Fail). The hosts webhook takes the configuration's
	// NonTenantFailurePolicy.
	TenantsFailurePolicy, NamespacesFailurePolicy, TenantObjectsFailurePolicy admissionregistrationv1.FailurePolicyType
}

// AKSEnforcerOptOut is the label and annotation that AKS's Admissions
// Enforcer reads to leave a webhook configuration alone instead of
// rewriting its namespace selectors (docs/aks.md).
const AKSEnforcerOptOut = "admissions.enforcer/disabled"

// Configuration returns the ValidatingWebhookConfiguration that sends the
// guarded kinds to the guard:
//
//   - tenants.tenantguard.dev: everything in tenant namespaces (those with
//     the tenant label), failurePolicy Fail by default;
//   - hosts.tenantguard.dev: Ingresses, routes, Gateways and ListenerSets in
//     other namespaces, whose
//     hosts are owned too; failurePolicy from the configuration;
//   - namespaces.tenantguard.dev: namespaces (and their status and finalize
//     subresources, which can change labels too), to protect the tenant
//     label;
//   - tenantobjects.tenantguard.dev: Tenant objects.
//
// MutatingConfiguration adds the webhook that confines and labels the
// namespaces tenant owners create. The excluded namespaces (system namespaces and the guard's own) are left
// out by selector, so an outage of the guard never blocks the control plane.
// The chart (charts/tenantguard/templates/webhook.yaml) renders the same
// webhooks for a cluster; a test in internal/install keeps them equal.
func Configuration(cfg config.Config, opts ConfigurationOptions) *admissionregistrationv1.ValidatingWebhookConfiguration {
	if opts.Name == "" {
		opts.Name = "tenantguard"
	}
	timeout := opts.TimeoutSeconds
	if timeout == 0 {
		timeout = 10
	}
	client := clientConfig(opts, Path)
	notExcluded := notExcludedRequirement(cfg)
	tenantNamespaces := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: v1alpha1.TenantLabel, Operator: metav1.LabelSelectorOpExists}, notExcluded,
	}}
	otherNamespaces := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: v1alpha1.TenantLabel, Operator: metav1.LabelSelectorOpDoesNotExist}, notExcluded,
	}}
	createUpdate := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(group, version string, resources ...string) admissionregistrationv1.RuleWithOperations {
		scope := admissionregistrationv1.AllScopes
		return admissionregistrationv1.RuleWithOperations{
			Operations: createUpdate,
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope,
			},
		}
	}
	hostRules := []admissionregistrationv1.RuleWithOperations{
		rule("networking.k8s.io", "v1", "ingresses"),
		rule("gateway.networking.k8s.io", "v1", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "udproutes", "gateways", "listenersets"),
	}
	tenantRules := append([]admissionregistrationv1.RuleWithOperations{
		rule("", "v1", "services", "pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"),
		rule("apps", "v1", "deployments", "statefulsets", "daemonsets", "replicasets"),
		rule("batch", "v1", "jobs", "cronjobs"),
	}, hostRules...)

	orFail := func(p admissionregistrationv1.FailurePolicyType) *admissionregistrationv1.FailurePolicyType {
		if p == "" {
			p = admissionregistrationv1.Fail
		}
		return &p
	}
	nonTenant := admissionregistrationv1.FailurePolicyType(cfg.NonTenantFailurePolicy)
	equivalent := admissionregistrationv1.Equivalent
	noneOnDryRun := admissionregistrationv1.SideEffectClassNoneOnDryRun
	none := admissionregistrationv1.SideEffectClassNone
	hook := func(name string, rules []admissionregistrationv1.RuleWithOperations, sel *metav1.LabelSelector,
		policy *admissionregistrationv1.FailurePolicyType, effects *admissionregistrationv1.SideEffectClass) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            client,
			Rules:                   rules,
			NamespaceSelector:       sel,
			FailurePolicy:           policy,
			MatchPolicy:             &equivalent,
			SideEffects:             effects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	namespaces := hook("namespaces.tenantguard.dev", []admissionregistrationv1.RuleWithOperations{rule("", "v1", "namespaces", "namespaces/status", "namespaces/finalize")},
		&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{notExcluded}}, orFail(opts.NamespacesFailurePolicy), &none)
	namespaces.MatchConditions = namespaceConditions(cfg)
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: configurationMeta(opts.Name),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			hook("tenants.tenantguard.dev", tenantRules, tenantNamespaces, orFail(opts.TenantsFailurePolicy), &noneOnDryRun),
			hook("hosts.tenantguard.dev", hostRules, otherNamespaces, &nonTenant, &noneOnDryRun),
			namespaces,
			hook("tenantobjects.tenantguard.dev", []admissionregistrationv1.RuleWithOperations{rule(v1alpha1.GroupVersion.Group, "v1alpha1", "tenants")},
				nil, orFail(opts.TenantObjectsFailurePolicy), &none),
		},
	}
}

// MutatingConfiguration returns the MutatingWebhookConfiguration, named
// as the validating one (so the certificate rotator keeps both caBundles),
// with one webhook:
//
//   - namespaces-create.tenantguard.dev: namespace creations by users who
//     are not cluster admins, at MutatePath. The guard confines a tenant
//     owner to the prefixes and namespaceQuota of its tenants and labels
//     the namespace for the tenant (a JSON patch); a user who owns no
//     tenant is left to RBAC.
//
// Its failure policy is always Fail: the namespace-creator binding a
// Tenant with a namespaceQuota gets is cluster-wide, and only this webhook
// narrows it. Admins, the guard and system components (users named
// system:*, except service accounts, and the service accounts of the
// excluded namespaces) never reach it (CEL match conditions), nor do the
// excluded namespaces (by selector), so an outage of the guard blocks
// only namespace creation by other users: tenant owners, and anyone else
// RBAC lets create namespaces.
// The chart renders the same webhook; a test in internal/install keeps
// them equal.
func MutatingConfiguration(cfg config.Config, opts ConfigurationOptions) *admissionregistrationv1.MutatingWebhookConfiguration {
	if opts.Name == "" {
		opts.Name = "tenantguard"
	}
	timeout := opts.TimeoutSeconds
	if timeout == 0 {
		timeout = 10
	}
	scope := admissionregistrationv1.AllScopes
	fail := admissionregistrationv1.Fail
	equivalent := admissionregistrationv1.Equivalent
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: configurationMeta(opts.Name),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "namespaces-create.tenantguard.dev",
			ClientConfig: clientConfig(opts, MutatePath),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}, Scope: &scope,
				},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{notExcludedRequirement(cfg)}},
			FailurePolicy:           &fail,
			MatchPolicy:             &equivalent,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &never,
			MatchConditions:         []admissionregistrationv1.MatchCondition{notAnAdmin(cfg), notASystemComponent(cfg)},
		}},
	}
}

// clientConfig is how the API server calls path on the guard: opts.URL
// with its path replaced, or opts.Service at path.
func clientConfig(opts ConfigurationOptions, path string) admissionregistrationv1.WebhookClientConfig {
	client := admissionregistrationv1.WebhookClientConfig{CABundle: opts.CABundle}
	if opts.URL != "" {
		u := opts.URL
		if parsed, err := url.Parse(opts.URL); err == nil && parsed.Host != "" {
			parsed.Path, parsed.RawPath = path, ""
			u = parsed.String()
		}
		// An unparsable URL is passed on as given: the API server refuses
		// it with its own validation message.
		client.URL = &u
	} else if opts.Service != nil {
		svc := *opts.Service
		svc.Path = &path
		client.Service = &svc
	}
	return client
}

func configurationMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"app.kubernetes.io/name": "tenantguard", "app.kubernetes.io/component": "admission", AKSEnforcerOptOut: "true",
	}, Annotations: map[string]string{AKSEnforcerOptOut: "true"}}
}

// notASystemComponent matches requests from anyone but the control
// plane's own users (system:kube-controller-manager, system:node:...,
// named system:* and not service accounts) and the service accounts of
// the excluded namespaces.
func notASystemComponent(cfg config.Config) admissionregistrationv1.MatchCondition {
	prefixes := make([]string, len(cfg.ExcludedNamespaces))
	for i, ns := range cfg.ExcludedNamespaces {
		prefixes[i] = strconv.Quote("system:serviceaccount:" + ns + ":")
	}
	return admissionregistrationv1.MatchCondition{Name: "not-a-system-component", Expression: fmt.Sprintf(
		`(!request.userInfo.username.startsWith("system:") || request.userInfo.username.startsWith("system:serviceaccount:")) && `+
			`![%s].exists(p, request.userInfo.username.startsWith(p))`, strings.Join(prefixes, ", "))}
}

// notExcludedRequirement selects the namespaces that are not excluded
// from the guard.
func notExcludedRequirement(cfg config.Config) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: cfg.ExcludedNamespaces,
	}
}

// namespaceConditions send the guard only the namespace requests that touch
// the tenant label and come from someone who is not a cluster admin: the
// only ones it may refuse. Everything else about namespaces never waits for
// the guard, so an outage of the guard does not block namespace work.
func namespaceConditions(cfg config.Config) []admissionregistrationv1.MatchCondition {
	label := strconv.Quote(v1alpha1.TenantLabel)
	return []admissionregistrationv1.MatchCondition{
		{Name: "tenant-label-involved", Expression: fmt.Sprintf(
			"(has(object.metadata.labels) && %[1]s in object.metadata.labels) || "+
				"(oldObject != null && has(oldObject.metadata.labels) && %[1]s in oldObject.metadata.labels)", label)},
		notAnAdmin(cfg),
	}
}

// notAnAdmin matches requests from anyone but the guard and the members of
// the admin groups.
func notAnAdmin(cfg config.Config) admissionregistrationv1.MatchCondition {
	groups := make([]string, len(cfg.AdminGroups))
	for i, g := range cfg.AdminGroups {
		groups[i] = strconv.Quote(g)
	}
	guard := strconv.Quote(fmt.Sprintf("system:serviceaccount:%s:%s", cfg.GuardNamespace, cfg.GuardServiceAccount))
	return admissionregistrationv1.MatchCondition{Name: "not-an-admin", Expression: fmt.Sprintf(
		"request.userInfo.username != %s && !request.userInfo.groups.exists(g, g in [%s])", guard, strings.Join(groups, ", "))}
}
