// Package registrytest runs a real CNCF Distribution registry in process,
// on loopback, as the upstream of the gateway in tests and benchmarks. It
// is imported only by tests, so the tenantguard binary does not link
// Distribution's server.
package registrytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Options configure the upstream registry. With neither Htpasswd nor
// Token set it needs no authentication.
type Options struct {
	// Htpasswd is user -> password for basic auth.
	Htpasswd map[string]string
	// Token makes the registry accept only bearer tokens of a token service.
	Token *TokenAuth
	// RootDirectory, if set, stores blobs in that directory with the
	// filesystem driver instead of in memory. Large blobs need it: the
	// in-memory driver's writer grows its buffer by each write's length,
	// so a 256 MiB upload copies quadratically (minutes).
	RootDirectory string
}

// TokenAuth is Distribution's token auth configuration.
type TokenAuth struct {
	Realm, Service, Issuer string
	// JWKS is the JSON Web Key Set (a file's content) of the signing keys.
	JWKS []byte
}

// Registry is a running upstream registry.
type Registry struct {
	URL  *url.URL
	Host string // host:port, for image references

	srv *http.Server
}

var quiet sync.Once

// Start runs a Distribution v3 registry (in memory unless RootDirectory is
// set) with deletes enabled on 127.0.0.1 until the test ends.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	quiet.Do(func() {
		// Distribution logs through logrus' standard logger.
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.ErrorLevel)
	})
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"inmemory":    configuration.Parameters{},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	if opts.RootDirectory != "" {
		delete(cfg.Storage, "inmemory")
		cfg.Storage["filesystem"] = configuration.Parameters{"rootdirectory": opts.RootDirectory}
	}
	cfg.HTTP.Secret = "registrytest-upload-state-secret"
	// The defaults the configuration parser would set.
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	cfg.Log.Level = "error"
	dir := tb.TempDir()
	switch {
	case opts.Htpasswd != nil:
		path := filepath.Join(dir, "htpasswd")
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		for user, password := range opts.Htpasswd {
			h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(f, "%s:%s\n", user, h)
		}
		f.Close()
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "upstream", "path": path}}
	case opts.Token != nil:
		path := filepath.Join(dir, "jwks.json")
		if err := os.WriteFile(path, opts.Token.JWKS, 0o600); err != nil {
			tb.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm": opts.Token.Realm, "service": opts.Token.Service, "issuer": opts.Token.Issuer,
			"jwks": path, "signingalgorithms": []any{"ES256"},
		}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		srv.Close()
		cancel()
	})
	u := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	return &Registry{URL: u, Host: u.Host, srv: srv}
}
