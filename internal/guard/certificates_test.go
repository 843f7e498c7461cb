package guard_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/internal/config"
	"github.com/tenantguard/tenantguard/internal/devenv/devenvtest"
	"github.com/tenantguard/tenantguard/internal/guard"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/webhook"
)

// TestGuardMakesItsOwnCertificates starts a guard with an empty
// certificate directory and a webhook configuration without caBundle: the
// API server must reach it and get its denial.
func TestGuardMakesItsOwnCertificates(t *testing.T) {
	env := devenvtest.StartWithCRDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(env.Config, client.Options{Scheme: kinds.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.GuardNamespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p1", Labels: map[string]string{"tenantguard.dev/tenant": "p1"}}},
		webhook.Configuration(cfg, webhook.ConfigurationOptions{URL: "https://" + addr + webhook.Path}),
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	g, err := guard.New(ctx, guard.Options{
		RestConfig: env.Config, Config: cfg, WebhookAddr: addr, CertDir: t.TempDir(),
		HealthAddr: "0", MetricsAddr: "0", SharedProcess: true,
		CertSecret: "tenantguard-webhook-tls", WebhookConfigurations: []string{"tenantguard"},
		CertIPs: []net.IP{net.ParseIP("127.0.0.1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Start(ctx) }()
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		err := c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{GenerateName: "np-", Namespace: "p1"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}})
		if err == nil {
			t.Fatal("a NodePort Service was admitted")
		}
		if strings.Contains(err.Error(), "rule service-node-port") {
			break
		}
		// Until the API server has seen the caBundle: failed calling webhook.
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
