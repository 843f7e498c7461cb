package replay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"

	"github.com/tenantguard/tenantguard/internal/devenv"
	"github.com/tenantguard/tenantguard/internal/registry"
	regauthn "github.com/tenantguard/tenantguard/internal/registry/authn"
	"github.com/tenantguard/tenantguard/internal/registry/localregistry"
)

// Registry is the registry gateway `dev` runs, in front of an in-memory
// CNCF Distribution registry, with a CI robot per example tenant.
type Registry struct {
	// Host is the gateway's host:port for image references.
	Host string
	// Robots maps a robot name to its password.
	Robots   map[string]string
	upstream *localregistry.Registry
	gateway  *registry.Server
}

// Close stops the gateway and the upstream.
func (r *Registry) Close(ctx context.Context) {
	_ = r.gateway.Close(ctx)
	r.upstream.Close()
}

// StartRegistry starts Distribution and the gateway on 127.0.0.1, reading
// the Tenants from the control plane, with robots project1-ci and
// project2-ci whose passwords are written to dir.
func StartRegistry(ctx context.Context, env *devenv.Env, ex *Examples, dir string) (*Registry, error) {
	up, err := localregistry.Start(localregistry.Options{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("start the upstream registry: %w", err)
	}
	r := &Registry{Robots: map[string]string{}, upstream: up}
	var file regauthn.RobotFile
	for _, t := range ex.Tenants {
		robot := t.Name + "-ci"
		password := robot + "-dev-password"
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			up.Close()
			return nil, err
		}
		file.Robots = append(file.Robots, regauthn.Robot{Name: robot, Tenant: t.Name, PasswordHash: string(hash)})
		r.Robots[robot] = password
	}
	data, err := yaml.Marshal(file)
	if err != nil {
		up.Close()
		return nil, err
	}
	robots := filepath.Join(dir, "registry-robots.yaml")
	if err := os.WriteFile(robots, data, 0o600); err != nil {
		up.Close()
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := registry.Start(ctx, registry.Config{
		Addr: "127.0.0.1:0", TokenAddr: "127.0.0.1:0", Upstream: up.URL.String(),
		Kube: env.Config, RobotsFile: robots, Log: quiet, Audit: quiet,
	})
	if err != nil {
		up.Close()
		return nil, fmt.Errorf("start the registry gateway: %w", err)
	}
	r.gateway = gw
	r.Host = strings.TrimPrefix(gw.RegistryURL, "http://")
	return r, nil
}

// ReplayRegistry replays the registry half of problem 5 through the
// gateway with go-containerregistry, as CI jobs would push.
func ReplayRegistry(ctx context.Context, r *Registry, out io.Writer) ([]Outcome, error) {
	fmt.Fprintf(out, "\nProblem 5: registry rights per tenant, immutable production tags (gateway at %s)\n", r.Host)
	steps := []struct {
		robot, ref string
		image      func() (v1.Image, error)
	}{
		{"project1-ci", "project1/shop:v1.0", randomImage},
		{"project2-ci", "project1/shop:v1.1", randomImage},
		{"project1-ci", "project1/shop:v1.0", randomImage},
		{"project1-ci", "project1/shop:dev", randomImage},
		{"project1-ci", "project1/shop:dev", randomImage},
		{"project2-ci", "project2/api:v2", randomImage},
		{"project2-ci", "project2/team/api:v2", randomImage},
	}
	var outcomes []Outcome
	for _, s := range steps {
		img, err := s.image()
		if err != nil {
			return outcomes, err
		}
		ref, err := name.ParseReference(r.Host+"/"+s.ref, name.Insecure)
		if err != nil {
			return outcomes, err
		}
		auth := &authn.Basic{Username: s.robot, Password: r.Robots[s.robot]}
		// Ask first, as `crane` does before a copy: a refused upload start
		// carries the gateway's explanation, which a HEAD cannot.
		err = remote.CheckPushPermission(ref, staticKeychain{auth}, http.DefaultTransport)
		if err == nil {
			err = remote.Write(ref, img, remote.WithAuth(auth), remote.WithContext(ctx))
		}
		oc := Outcome{Problem: "Problem 5: registry", Object: "push " + s.ref, User: s.robot, Allowed: err == nil}
		if err == nil {
			fmt.Fprintf(out, "  allowed  push %s (as %s)\n", s.ref, s.robot)
		} else {
			oc.Message = err.Error()
			fmt.Fprintf(out, "  refused  push %s (as %s)\n           %s\n", s.ref, s.robot, registryMessage(err))
		}
		outcomes = append(outcomes, oc)
	}
	return outcomes, nil
}

// staticKeychain answers every registry with one authenticator.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

func randomImage() (v1.Image, error) { return random.Image(256, 1) }

// registryMessage keeps the gateway's explanation from a client error.
func registryMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "DENIED: "); i >= 0 {
		msg = msg[i:]
	}
	// go-containerregistry appends the error's detail object.
	for _, cut := range []string{"; [map[", "; map["} {
		if i := strings.Index(msg, cut); i >= 0 {
			msg = msg[:i]
		}
	}
	return msg
}
