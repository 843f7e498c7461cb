// Package localregistry runs a real CNCF Distribution registry in process,
// on loopback: the upstream of the gateway in the tests, the benchmarks and
// `tenantguard dev`.
package localregistry

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Options configure the registry. With neither Htpasswd nor Token set it
// needs no authentication.
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
	// Dir receives the registry's auth files.
	Dir string
	// TLS, if set, makes the registry serve https (offering HTTP/2, as Go
	// servers do) instead of plain http.
	TLS *tls.Config
}

// TokenAuth is Distribution's token auth configuration.
type TokenAuth struct {
	Realm, Service, Issuer string
	// JWKS is the JSON Web Key Set (a file's content) of the signing keys.
	JWKS []byte
}

// Registry is a running registry.
type Registry struct {
	URL  *url.URL
	Host string // host:port, for image references

	srv    *http.Server
	cancel context.CancelFunc
}

var quiet sync.Once

// Start runs a Distribution v3 registry (in memory unless RootDirectory is
// set) with deletes enabled on 127.0.0.1.
func Start(opts Options) (*Registry, error) {
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
	cfg.HTTP.Secret = "localregistry-upload-state-secret"
	// The defaults the configuration parser would set.
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	cfg.Log.Level = "error"
	switch {
	case opts.Htpasswd != nil:
		path := filepath.Join(opts.Dir, "htpasswd")
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		for user, password := range opts.Htpasswd {
			h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				f.Close()
				return nil, err
			}
			fmt.Fprintf(f, "%s:%s\n", user, h)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "upstream", "path": path}}
	case opts.Token != nil:
		path := filepath.Join(opts.Dir, "jwks.json")
		if err := os.WriteFile(path, opts.Token.JWKS, 0o600); err != nil {
			return nil, err
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
		return nil, err
	}
	srv := &http.Server{Handler: app, TLSConfig: opts.TLS}
	u := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	if opts.TLS != nil {
		u.Scheme = "https"
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	return &Registry{URL: u, Host: u.Host, srv: srv, cancel: cancel}, nil
}

// Close stops the registry.
func (r *Registry) Close() {
	r.srv.Close()
	r.cancel()
}
