package devenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tenantguard/tenantguard/internal/version"
)

// CacheDirEnv overrides the directory that holds the built control-plane
// binaries (default: <user cache dir>/tenantguard).
const CacheDirEnv = "TENANTGUARD_CACHE_DIR"

// SourceDirEnv points at a tenantguard checkout when the current directory
// is not inside one; the control plane is built from its hack/ modules.
const SourceDirEnv = "TENANTGUARD_SOURCE_DIR"

// Binaries are the paths of the local control-plane programs.
type Binaries struct {
	APIServer string
	Etcd      string
	Kubectl   string
}

// BuildOptions say where the control-plane binaries are cached and built from.
type BuildOptions struct {
	// CacheDir is the cache root; empty means DefaultCacheDir().
	CacheDir string
	// SourceDir is a tenantguard checkout; empty means SourceDirEnv or the
	// nearest parent of the working directory that holds hack/controlplane.
	SourceDir string
	// Progress receives one line per step and a heartbeat while building.
	Progress io.Writer
}

// program is one control-plane binary and how to build it from hack/.
type program struct {
	name   string // file name in the cache
	module string // directory under hack/controlplane with the go.mod
	pkg    string // main package to build
	ldflag string
}

func programs() []program {
	k8s := version.Kubernetes // "v1.37.2": gitMajor "1", gitMinor "37"
	parts := strings.SplitN(strings.TrimPrefix(k8s, "v"), ".", 3)
	major, minor := parts[0], parts[1%len(parts)]
	stamp := fmt.Sprintf("-s -w -X k8s.io/component-base/version.gitVersion=%s"+
		" -X k8s.io/component-base/version.gitMajor=%s -X k8s.io/component-base/version.gitMinor=%s"+
		" -X k8s.io/component-base/version.gitTreeState=clean", k8s, major, minor)
	return []program{
		{name: "kube-apiserver", module: "kubernetes", pkg: "k8s.io/kubernetes/cmd/kube-apiserver", ldflag: stamp},
		{name: "kubectl", module: "kubernetes", pkg: "k8s.io/kubernetes/cmd/kubectl", ldflag: stamp},
		{name: "etcd", module: "etcd", pkg: "go.etcd.io/etcd/server/v3", ldflag: "-s -w"},
	}
}

// buildManifest records what was built; a binary whose hash differs is rebuilt.
type buildManifest struct {
	Kubernetes string            `json:"kubernetes"`
	Etcd       string            `json:"etcd"`
	SHA256     map[string]string `json:"sha256"`
}

// DefaultCacheDir is CacheDirEnv if set, else <user cache dir>/tenantguard.
func DefaultCacheDir() (string, error) {
	if dir := os.Getenv(CacheDirEnv); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory (%w); set %s", err, CacheDirEnv)
	}
	return filepath.Join(base, "tenantguard"), nil
}

// EnsureBinaries returns kube-apiserver, etcd and kubectl from the cache,
// building the ones that are missing or whose content does not match the
// recorded checksum. A file lock makes concurrent callers (parallel test
// packages) wait for one build instead of building twice.
func EnsureBinaries(ctx context.Context, opts BuildOptions) (Binaries, error) {
	root := opts.CacheDir
	if root == "" {
		var err error
		if root, err = DefaultCacheDir(); err != nil {
			return Binaries{}, err
		}
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir := filepath.Join(root, "controlplane",
		fmt.Sprintf("kubernetes-%s_etcd-%s_%s-%s", version.Kubernetes, version.Etcd, runtime.GOOS, runtime.GOARCH))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create control-plane cache %s: %w", dir, err)
	}
	unlock, err := lockDir(ctx, dir, progress)
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()

	bins := Binaries{
		APIServer: filepath.Join(dir, "kube-apiserver"),
		Etcd:      filepath.Join(dir, "etcd"),
		Kubectl:   filepath.Join(dir, "kubectl"),
	}
	recorded := readManifest(dir)
	current := buildManifest{Kubernetes: version.Kubernetes, Etcd: version.Etcd, SHA256: map[string]string{}}
	var stale []program
	for _, p := range programs() {
		sum, err := fileSHA256(filepath.Join(dir, p.name))
		if err == nil && sum == recorded.SHA256[p.name] && recorded.Kubernetes == version.Kubernetes && recorded.Etcd == version.Etcd {
			current.SHA256[p.name] = sum
			continue
		}
		if err == nil {
			fmt.Fprintf(progress, "control plane: cached %s does not match its checksum; rebuilding it\n", p.name)
		}
		stale = append(stale, p)
	}
	if len(stale) == 0 {
		return bins, nil
	}

	src, err := findSourceDir(opts.SourceDir)
	if err != nil {
		return Binaries{}, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("the control plane is built once from the Go module proxy and needs the go command: %w", err)
	}
	for _, p := range stale {
		sum, err := build(ctx, goBin, src, dir, p, progress)
		if err != nil {
			return Binaries{}, err
		}
		current.SHA256[p.name] = sum
	}
	if err := writeManifest(dir, current); err != nil {
		return Binaries{}, err
	}
	return bins, nil
}

// build compiles one program into dir and returns its checksum. The binary
// is written under a temporary name and renamed, so an interrupted build
// never leaves a truncated file under the real name.
func build(ctx context.Context, goBin, src, dir string, p program, progress io.Writer) (string, error) {
	tmp := filepath.Join(dir, "."+p.name+".tmp")
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", p.ldflag, "-o", tmp, p.pkg)
	cmd.Dir = filepath.Join(src, "hack", "controlplane", p.module)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out

	start := time.Now()
	fmt.Fprintf(progress, "control plane: building %s from %s (first time only; a few minutes on 2 cores)\n", p.name, p.pkg)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(progress, "control plane: still building %s (%s)\n", p.name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := cmd.Run()
	close(done)
	if err != nil {
		return "", fmt.Errorf("build %s in %s: %w\n%s", p.name, cmd.Dir, err, out.String())
	}
	sum, err := fileSHA256(tmp)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(dir, p.name)); err != nil {
		return "", fmt.Errorf("install %s: %w", p.name, err)
	}
	fmt.Fprintf(progress, "control plane: built %s in %s\n", p.name, time.Since(start).Round(time.Second))
	return sum, nil
}

// findSourceDir locates the checkout whose hack/controlplane modules build
// the binaries.
func findSourceDir(explicit string) (string, error) {
	marker := filepath.Join("hack", "controlplane", "kubernetes", "go.mod")
	for _, dir := range []string{explicit, os.Getenv(SourceDirEnv)} {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return "", fmt.Errorf("%s is not a tenantguard checkout (no %s): %w", dir, marker, err)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("control-plane binaries are not cached and %s is not inside a tenantguard checkout; "+
				"run from a checkout once, or set %s to one", wd, SourceDirEnv)
		}
	}
}

func lockDir(ctx context.Context, dir string, progress io.Writer) (unlock func(), err error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	waiting := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waiting {
			fmt.Fprintf(progress, "control plane: waiting for another process that holds %s\n", path)
			waiting = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func readManifest(dir string) buildManifest {
	var m buildManifest
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		_ = json.Unmarshal(data, &m) // a corrupt manifest reads as empty: everything is rebuilt
	}
	return m
}

func writeManifest(dir string, m buildManifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".manifest.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write control-plane manifest: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "manifest.json"))
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// limitedBuffer keeps the last 64 KiB of build output for the error message.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if over := len(l.b) - 64<<10; over > 0 {
		l.b = l.b[over:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
