// Package install renders everything a cluster needs to run the guard: the
// CRDs, its namespace, service account and RBAC, the Deployment and
// Service, a serving certificate, and the webhook configuration that trusts
// it. `tenantguard install` prints it for `kubectl apply -f -`.
package install

import (
	"fmt"
	"io"
	"net"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/config/crd"
	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/version"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// Options configure the rendered installation.
type Options struct {
	// Config is the guard configuration; its GuardNamespace and
	// GuardServiceAccount name the namespace and service account.
	Config config.Config
	// ConfigYAML is the configuration file as the user wrote it, mounted
	// into the pods; empty means the defaults.
	ConfigYAML []byte
	// Image of the tenantguard binary.
	Image string
	// Replicas of the webhook (at least 2 for availability).
	Replicas int32
	// CertValidity of the generated serving certificate.
	CertValidity time.Duration
	// Certificates, if set, are used instead of new ones, so that applying
	// the output again changes neither the certificate nor the caBundle.
	Certificates *webhook.Certificates
}

const name = "tenantguard"

// Render returns the objects of an installation, in the order to apply
// them.
func Render(opts Options) ([]client.Object, error) {
	cfg := opts.Config
	ns, sa := cfg.GuardNamespace, cfg.GuardServiceAccount
	if opts.Image == "" {
		return nil, fmt.Errorf("no image: build one (see docs/install.md) and pass --image")
	}
	if opts.Replicas < 1 {
		return nil, fmt.Errorf("replicas must be at least 1 (2 or more keep admission available during a rollout)")
	}
	certs, err := Certificates(opts)
	if err != nil {
		return nil, err
	}
	crds, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/version": version.Version}
	selector := map[string]string{"app.kubernetes.io/name": name}
	meta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: n, Namespace: ns, Labels: labels} }
	clusterMeta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: n, Labels: labels} }

	var objs []client.Object
	for _, c := range crds {
		c.TypeMeta = metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}
		objs = append(objs, c)
	}
	configYAML := opts.ConfigYAML
	if len(configYAML) == 0 {
		configYAML = []byte("# Defaults; see docs/configuration.md.\napiVersion: tenantguard.dev/v1alpha1\nkind: GuardConfig\n")
	}
	all := []string{"get", "list", "watch"}
	objs = append(objs,
		&corev1.Namespace{TypeMeta: tm("v1", "Namespace"), ObjectMeta: clusterMeta(ns)},
		&corev1.ServiceAccount{TypeMeta: tm("v1", "ServiceAccount"), ObjectMeta: meta(sa)},
		&rbacv1.ClusterRole{TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRole"), ObjectMeta: clusterMeta(name), Rules: []rbacv1.PolicyRule{
			// The policy's view of the cluster.
			{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"tenants"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: all},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: all},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes", "grpcroutes", "tlsroutes", "gateways", "listenersets"}, Verbs: all},
			// Host ownership.
			{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"hostclaims"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"tenantguard.dev"}, Resources: []string{"hostclaims/status"}, Verbs: []string{"get", "update", "patch"}},
			// Events on objects (events.k8s.io) and on the leader election lease (core).
			{APIGroups: []string{"events.k8s.io", ""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		}},
		&rbacv1.ClusterRoleBinding{TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ObjectMeta: clusterMeta(name),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}},
		&rbacv1.Role{TypeMeta: tm("rbac.authorization.k8s.io/v1", "Role"), ObjectMeta: meta(name + "-leader-election"), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		}},
		&rbacv1.RoleBinding{TypeMeta: tm("rbac.authorization.k8s.io/v1", "RoleBinding"), ObjectMeta: meta(name + "-leader-election"),
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name + "-leader-election"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}},
		&corev1.ConfigMap{TypeMeta: tm("v1", "ConfigMap"), ObjectMeta: meta(name + "-config"), Data: map[string]string{"config.yaml": string(configYAML)}},
		&corev1.Secret{TypeMeta: tm("v1", "Secret"), ObjectMeta: meta(name + "-webhook-tls"), Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": certs.Cert, "tls.key": certs.Key, "ca.crt": certs.CACert}},
		&corev1.Service{TypeMeta: tm("v1", "Service"), ObjectMeta: meta(name), Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports: []corev1.ServicePort{
				{Name: "webhook", Port: 443, TargetPort: intstr.FromString("webhook")},
				{Name: "metrics", Port: 8080, TargetPort: intstr.FromString("metrics")},
			},
		}},
		deployment(opts, meta(name), selector, labels),
		&policyv1.PodDisruptionBudget{TypeMeta: tm("policy/v1", "PodDisruptionBudget"), ObjectMeta: meta(name), Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: selector},
		}},
	)
	vwc := webhook.Configuration(cfg, webhook.ConfigurationOptions{
		Service:  &admissionregistrationv1.ServiceReference{Namespace: ns, Name: name, Port: ptr.To[int32](443)},
		CABundle: certs.CACert,
	})
	objs = append(objs, vwc)
	return objs, nil
}

// Certificates returns opts.Certificates, or new ones for the guard's
// Service.
func Certificates(opts Options) (webhook.Certificates, error) {
	if opts.Certificates != nil {
		return *opts.Certificates, nil
	}
	svcHost := fmt.Sprintf("%s.%s.svc", name, opts.Config.GuardNamespace)
	return webhook.SelfSignedCertificates([]string{svcHost, svcHost + ".cluster.local", name + "." + opts.Config.GuardNamespace}, []net.IP(nil), opts.CertValidity)
}

func deployment(opts Options, om metav1.ObjectMeta, selector, labels map[string]string) *appsv1.Deployment {
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}}, PeriodSeconds: 10}
	}
	return &appsv1.Deployment{TypeMeta: tm("apps/v1", "Deployment"), ObjectMeta: om, Spec: appsv1.DeploymentSpec{
		Replicas: &opts.Replicas,
		Selector: &metav1.LabelSelector{MatchLabels: selector},
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1)),
		}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{
				ServiceAccountName: opts.Config.GuardServiceAccount,
				SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				// Spread replicas so that one node going away leaves admission up.
				TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
					MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
					LabelSelector: &metav1.LabelSelector{MatchLabels: selector},
				}},
				Containers: []corev1.Container{{
					Name:  name,
					Image: opts.Image,
					Args: []string{"serve", "--config=/etc/tenantguard/config/config.yaml", "--cert-dir=/etc/tenantguard/tls",
						"--webhook-bind-address=0.0.0.0:9443", "--health-bind-address=0.0.0.0:8081", "--metrics-bind-address=0.0.0.0:8080"},
					Ports: []corev1.ContainerPort{
						{Name: "webhook", ContainerPort: 9443}, {Name: "health", ContainerPort: 8081}, {Name: "metrics", ContainerPort: 8080},
					},
					ReadinessProbe: probe("/readyz"),
					LivenessProbe:  probe("/healthz"),
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
					},
					SecurityContext: &corev1.SecurityContext{
						AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
					VolumeMounts: []corev1.VolumeMount{
						{Name: "tls", MountPath: "/etc/tenantguard/tls", ReadOnly: true},
						{Name: "config", MountPath: "/etc/tenantguard/config", ReadOnly: true},
					},
				}},
				Volumes: []corev1.Volume{
					{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name + "-webhook-tls"}}},
					{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}}},
				},
			},
		},
	}}
}

func tm(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// WriteYAML writes the objects as one multi-document YAML stream.
func WriteYAML(w io.Writer, objs []client.Object) error {
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
			return err
		}
	}
	return nil
}
