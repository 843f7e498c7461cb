package certrotation_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/kinds"
)

// The control plane is started by the first test that needs one and
// shared by the package's tests; each test works in its own namespace.
var (
	envOnce sync.Once
	env     *devenv.Env
	envStop func() error
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if envStop != nil {
		if err := envStop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func apiServer(t *testing.T) *devenv.Env {
	t.Helper()
	envOnce.Do(func() { env, envStop, envErr = devenvtest.StartShared(devenv.Options{}) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

func adminClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(apiServer(t).Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace creates a namespace for one test.
func namespace(t *testing.T, admin client.Client) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// guardClient is a client with exactly the rights the guard's chart
// grants for certificates: get, create, update and patch on Secrets of
// its namespace, and get, update and patch on the named webhook
// configurations.
func guardClient(t *testing.T, admin client.Client, ns string, configurations []string) client.WithWatch {
	t.Helper()
	ctx := context.Background()
	user := "guard-" + ns
	cfg, err := apiServer(t).AddUser(user)
	if err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	for _, obj := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: ns}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update", "patch"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: ns}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "certs"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{admissionregistrationv1.GroupName},
			Resources:     []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"},
			Verbs:         []string{"get", "update", "patch"},
			ResourceNames: configurations,
		}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}},
	} {
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validatingConfiguration creates a ValidatingWebhookConfiguration with n
// webhooks that never match a request.
func validatingConfiguration(t *testing.T, admin client.Client, name string, n int) {
	t.Helper()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for i := range n {
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:                    fmt.Sprintf("w%d.%s.tenantguard.dev", i, name),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9/validate")},
			Rules:                   neverMatching(),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	if err := admin.Create(context.Background(), vwc); err != nil {
		t.Fatal(err)
	}
}

func mutatingConfiguration(t *testing.T, admin client.Client, name string) {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "w." + name + ".tenantguard.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9/mutate")},
			Rules:                   neverMatching(),
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}}
	if err := admin.Create(context.Background(), mwc); err != nil {
		t.Fatal(err)
	}
}

func neverMatching() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
}

// logs is a logger that keeps its lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) context(ctx context.Context) context.Context {
	return logr.NewContext(ctx, funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1}))
}

func (l *logs) find(substrings ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, s := range substrings {
			all = all && strings.Contains(line, s)
		}
		if all {
			return line
		}
	}
	return ""
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, line := range l.lines {
		b.WriteString(line + "\n")
	}
	return b.String()
}
