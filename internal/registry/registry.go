// Package registry assembles the registry gateway of `tenantguard registry`
// from its parts: the token service (packages token, authn, authz,
// tokenserver), the gateway (package gateway, upstream), and where the rules
// come from (package tenants). Config is what the command's flags set; Start
// binds the listeners and serves until Close.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tenantguard/tenantguard/internal/registry/authn"
	"github.com/tenantguard/tenantguard/internal/registry/authz"
	"github.com/tenantguard/tenantguard/internal/registry/gateway"
	"github.com/tenantguard/tenantguard/internal/registry/lease"
	"github.com/tenantguard/tenantguard/internal/registry/tenants"
	"github.com/tenantguard/tenantguard/internal/registry/token"
	"github.com/tenantguard/tenantguard/internal/registry/tokenserver"
	"github.com/tenantguard/tenantguard/internal/registry/upstream"
)

// Defaults.
const (
	DefaultAddr           = "127.0.0.1:5000"
	DefaultTokenAddr      = "127.0.0.1:5001"
	DefaultMetricsAddr    = "127.0.0.1:9102"
	DefaultService        = "tenantguard-registry"
	DefaultIssuer         = "tenantguard"
	DefaultReloadInterval = 30 * time.Second
)

// Config is the gateway's configuration. Files are re-read when their
// content changes (every ReloadInterval).
type Config struct {
	// Addr is the registry listener; TokenAddr the token endpoint's (the
	// same address serves both); MetricsAddr serves /metrics, /healthz and
	// /readyz ("" turns it off).
	Addr, TokenAddr, MetricsAddr string
	// TLSCertFile and TLSKeyFile turn on TLS on the registry and token
	// listeners.
	TLSCertFile, TLSKeyFile string

	// Realm is the token endpoint's URL as clients reach it (behind an
	// ingress, say); empty means the token listener's own address.
	Realm string
	// Service is the registry's name in challenges and the tokens' audience.
	Service string
	// Issuer is the tokens' iss.
	Issuer string
	// TokenTTL is the tokens' lifetime.
	TokenTTL time.Duration
	// SigningKeyDir holds the PEM signing keys (see token.LoadDir). Empty
	// means a key generated at start: fine for one replica and tests, but
	// replicas would not accept each other's tokens.
	SigningKeyDir string

	// Upstream is the registry behind the gateway.
	Upstream string
	// UpstreamUsername with UpstreamPasswordFile, or UpstreamTokenFile: the
	// gateway's credentials there.
	UpstreamUsername, UpstreamPasswordFile, UpstreamTokenFile string
	// UpstreamCAFile adds CAs to trust for the upstream's certificate.
	UpstreamCAFile string

	// TenantsFile holds Tenant objects; empty means watch them in the
	// cluster (Kube must be set).
	TenantsFile string
	// Kube, if set, is the cluster: service account logins are checked with
	// TokenReview, namespaces map to tenants, and (without TenantsFile)
	// Tenants are watched.
	Kube *rest.Config `json:"-"`
	// ServiceAccountAudiences, if set, are required of service account tokens.
	ServiceAccountAudiences []string
	// RobotsFile holds the robot accounts (see authn.Robot).
	RobotsFile string
	// LockNamespace, with Kube, makes the immutable-tag check hold across
	// replicas: pushes of the same immutable tag are serialized by a Lease
	// in this namespace. Without it the lock is per replica.
	LockNamespace string
	// LockHolder names this replica in its Leases; empty means the host name.
	LockHolder string

	// LoginThrottle limits failed logins and concurrent password checks;
	// nil means authn.Throttle's defaults.
	LoginThrottle *authn.Throttle `json:"-"`
	// LoginCacheTTL is how long a successful login is remembered; zero
	// means authn.DefaultCacheTTL.
	LoginCacheTTL time.Duration

	// MaxManifestBytes limits manifest uploads.
	MaxManifestBytes int64
	// ReloadInterval is how often files are checked for changes.
	ReloadInterval time.Duration

	// Log receives operational messages, Audit the audit lines; nil discards.
	Log, Audit *slog.Logger `json:"-"`
}

// Server is a running gateway.
type Server struct {
	// RegistryURL and TokenURL are where the listeners are (with the port
	// chosen when an address asked for port 0); Realm is what clients are
	// told.
	RegistryURL, TokenURL, MetricsURL, Realm string

	servers []*http.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errc    chan error
}

// Start checks the configuration, loads everything, binds the listeners and
// serves in the background. A configuration error is returned before any
// listener is bound.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	log := cfg.Log
	upURL, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Server{cancel: cancel, errc: make(chan error, 4)}
	ok := false
	defer func() {
		if !ok {
			cancel()
			s.wg.Wait()
		}
	}()
	var reloads []func(context.Context)

	// Signing keys.
	var keys func() *token.KeySet
	if cfg.SigningKeyDir != "" {
		r, err := newReloader("signing keys", []string{cfg.SigningKeyDir}, log, func() (*token.KeySet, error) { return token.LoadDir(cfg.SigningKeyDir) })
		if err != nil {
			return nil, err
		}
		keys = r.Get
		reloads = append(reloads, func(ctx context.Context) { r.run(ctx, cfg.ReloadInterval) })
	} else {
		k, err := token.GenerateKey()
		if err != nil {
			return nil, err
		}
		ks, err := token.NewKeySet(k)
		if err != nil {
			return nil, err
		}
		log.Warn("no --signing-keys directory: signing with a key generated at start; tokens will not survive a restart and replicas will not accept each other's tokens")
		keys = func() *token.KeySet { return ks }
	}

	// Tenants, namespaces and service accounts.
	var rules func() *authz.Rules
	var sa *authn.ServiceAccounts
	logProblems := func(r *authz.Rules) {
		for _, p := range r.Problems {
			log.Warn("tenant registry rule ignored", "problem", p)
		}
	}
	if cfg.Kube != nil {
		cluster, err := tenants.NewCluster(cfg.Kube, cfg.TenantsFile == "")
		if err != nil {
			return nil, err
		}
		cluster.OnRules = logProblems
		if err := cluster.Start(ctx); err != nil {
			return nil, err
		}
		client, err := kubernetes.NewForConfig(cfg.Kube)
		if err != nil {
			return nil, err
		}
		sa = &authn.ServiceAccounts{Client: client, Audiences: cfg.ServiceAccountAudiences, TenantOf: cluster.TenantOf}
		rules = cluster.Rules
	}
	if cfg.TenantsFile != "" {
		r, err := newReloader("tenants", []string{cfg.TenantsFile}, log, func() (*authz.Rules, error) {
			ts, err := tenants.LoadFile(cfg.TenantsFile)
			if err != nil {
				return nil, err
			}
			compiled := authz.Compile(ts)
			logProblems(compiled)
			return compiled, nil
		})
		if err != nil {
			return nil, err
		}
		rules = r.Get
		reloads = append(reloads, func(ctx context.Context) { r.run(ctx, cfg.ReloadInterval) })
	}
	if rules == nil {
		return nil, errors.New("no tenant rules: give a tenants file, or a cluster to watch Tenants in")
	}

	// Robot accounts.
	var robots func() *authn.Robots
	if cfg.RobotsFile != "" {
		r, err := newReloader("robot accounts", []string{cfg.RobotsFile}, log, func() (*authn.Robots, error) { return authn.LoadRobots(cfg.RobotsFile) })
		if err != nil {
			return nil, err
		}
		robots = r.Get
		reloads = append(reloads, func(ctx context.Context) { r.run(ctx, cfg.ReloadInterval) })
	}
	if robots == nil && sa == nil {
		return nil, errors.New("nobody can log in: give a robot accounts file, or a cluster for service account tokens")
	}

	// The upstream.
	transport, err := upstreamTransport(cfg, upURL)
	if err != nil {
		return nil, err
	}

	// TLS.
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
			return nil, errors.New("TLS needs both a certificate and a key file")
		}
		r, err := newReloader("TLS key pair", []string{cfg.TLSCertFile, cfg.TLSKeyFile}, log, func() (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
			return &c, err
		})
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		reloads = append(reloads, func(ctx context.Context) { r.run(ctx, cfg.ReloadInterval) })
		tlsConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.Get(), nil },
		}
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}

	// Listeners.
	regLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry listener: %w", err)
	}
	listeners := []net.Listener{regLn}
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	tokenLn := regLn
	if cfg.TokenAddr != cfg.Addr {
		if tokenLn, err = net.Listen("tcp", cfg.TokenAddr); err != nil {
			closeAll()
			return nil, fmt.Errorf("token listener: %w", err)
		}
		listeners = append(listeners, tokenLn)
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			closeAll()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		listeners = append(listeners, metricsLn)
	}
	s.RegistryURL = scheme + "://" + regLn.Addr().String()
	s.TokenURL = scheme + "://" + tokenLn.Addr().String()
	s.Realm = cfg.Realm
	if s.Realm == "" {
		s.Realm = s.TokenURL + tokenserver.TokenPath
	}

	// Immutable-tag locks.
	var locker gateway.Locker = &gateway.LocalLocker{}
	if cfg.LockNamespace != "" {
		if cfg.Kube == nil {
			return nil, errors.New("a lock namespace needs a cluster (--kubeconfig or --in-cluster)")
		}
		holder := cfg.LockHolder
		if holder == "" {
			holder, _ = os.Hostname()
		}
		client, err := kubernetes.NewForConfig(cfg.Kube)
		if err != nil {
			return nil, err
		}
		// Waiters of the same replica queue locally first, so only one of
		// them polls the API server.
		locker = chainLocker{locker, &lease.Locker{Client: client, Namespace: cfg.LockNamespace, Holder: holder, Log: log}}
	}

	// The token service and the gateway.
	issuer := &token.Issuer{Keys: keys, Issuer: cfg.Issuer, Audience: cfg.Service, TTL: cfg.TokenTTL}
	verifier := &token.Verifier{Keys: keys, Issuer: cfg.Issuer, Audience: cfg.Service, CacheSize: 10000}
	throttle := cfg.LoginThrottle
	if throttle == nil {
		throttle = &authn.Throttle{}
	}
	logins := &authn.Chain{Robots: robots, ServiceAccounts: sa, Throttle: throttle, CacheTTL: cfg.LoginCacheTTL}
	ts := &tokenserver.Server{
		Service: cfg.Service, Issuer: issuer, Rules: rules, Audit: cfg.Audit, Log: log,
		Authenticator: logins,
	}
	gw, err := gateway.New(gateway.Config{
		Upstream:  upURL,
		Transport: transport,
		Access: &gateway.TokenAccess{Realm: s.Realm, Service: cfg.Service, Verifier: verifier, Rules: rules,
			Subjects: logins.Current},
		Rules: rules,
		Audit: cfg.Audit, Log: log,
		MaxManifestBytes: cfg.MaxManifestBytes,
		Locker:           locker,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	m := newMetrics()
	m.countPasswordChecks(logins.PasswordChecks)
	tokenHandler := m.instrument("token", ts.Handler())
	regHandler := m.instrument("registry", gw)
	if tokenLn == regLn {
		mux := http.NewServeMux()
		mux.Handle(tokenserver.TokenPath, tokenHandler)
		mux.Handle(tokenserver.JWKSPath, tokenHandler)
		mux.Handle("/", regHandler)
		regHandler = rawPath(mux, regHandler)
	}

	for _, run := range reloads {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); run(ctx) }()
	}
	s.serve(regLn, regHandler, tlsConfig, log)
	if tokenLn != regLn {
		s.serve(tokenLn, tokenHandler, tlsConfig, log)
	}
	if metricsLn != nil {
		s.MetricsURL = "http://" + metricsLn.Addr().String()
		s.serve(metricsLn, m.handler(), nil, log)
	}
	log.Info("registry gateway serving", "registry", s.RegistryURL, "token", s.TokenURL, "realm", s.Realm,
		"service", cfg.Service, "upstream", upURL.String(), "metrics", s.MetricsURL)
	ok = true
	return s, nil
}

// chainLocker takes its lockers' locks in order.
type chainLocker []gateway.Locker

func (c chainLocker) Lock(ctx context.Context, key string) (func(), error) {
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, l := range c {
		u, err := l.Lock(ctx, key)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// rawPath sends the token paths to the mux and everything else to the
// gateway untouched: a ServeMux would clean and redirect paths (a/../b),
// and the gateway wants to see, and refuse, them as sent.
func rawPath(mux *http.ServeMux, gw http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenserver.TokenPath || r.URL.Path == tokenserver.JWKSPath {
			mux.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}

func (s *Server) serve(ln net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
}

// Err reports a listener that stopped on its own.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the listeners, waiting up to the context for requests in
// flight, and stops the background work.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	s.cancel()
	s.wg.Wait()
	return errors.Join(errs...)
}

func (cfg *Config) defaults() {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.TokenAddr == "" {
		cfg.TokenAddr = cfg.Addr
	}
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	discard := slog.New(slog.DiscardHandler)
	if cfg.Log == nil {
		cfg.Log = discard
	}
	if cfg.Audit == nil {
		cfg.Audit = discard
	}
}

func parseUpstream(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no upstream registry: give its URL, e.g. https://myacr.azurecr.io")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("upstream %q must be http(s)://host[:port] without a path", s)
	}
	u.Path = ""
	return u, nil
}

func upstreamTransport(cfg Config, up *url.URL) (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	// Blobs are compressed already; asking for gzip only costs CPU, and a
	// transparently decompressed body would not match its digest.
	base.DisableCompression = true
	if cfg.UpstreamCAFile != "" {
		pem, err := os.ReadFile(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA %s holds no PEM certificate", cfg.UpstreamCAFile)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var creds upstream.Credentials
	switch {
	case cfg.UpstreamTokenFile != "" && (cfg.UpstreamUsername != "" || cfg.UpstreamPasswordFile != ""):
		return nil, errors.New("give the upstream either a token file or a user name and password file, not both")
	case cfg.UpstreamTokenFile != "":
		creds.Token = upstream.FileSecret(cfg.UpstreamTokenFile)
		if _, err := creds.Token(); err != nil {
			return nil, err
		}
	case cfg.UpstreamUsername != "":
		if cfg.UpstreamPasswordFile == "" {
			return nil, errors.New("an upstream user name needs a password file")
		}
		creds.Username = cfg.UpstreamUsername
		creds.Password = upstream.FileSecret(cfg.UpstreamPasswordFile)
		if _, err := creds.Password(); err != nil {
			return nil, err
		}
	case cfg.UpstreamPasswordFile != "":
		return nil, errors.New("an upstream password file needs a user name")
	}
	return &upstream.Transport{Base: base, Upstream: up, Credentials: creds}, nil
}
