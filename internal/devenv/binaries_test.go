package devenv_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantguard/tenantguard/internal/devenv"
)

// TestTruncatedBinaryIsRebuilt copies the real cache, truncates etcd in the
// copy, and checks that EnsureBinaries rebuilds it instead of returning it.
func TestTruncatedBinaryIsRebuilt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bins, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	srcDir := filepath.Dir(bins.Etcd)
	root := t.TempDir()
	dstDir := filepath.Join(root, "controlplane", filepath.Base(srcDir))
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube-apiserver", "kubectl", "etcd", "manifest.json"} {
		copyFile(t, filepath.Join(srcDir, name), filepath.Join(dstDir, name))
	}
	etcd := filepath.Join(dstDir, "etcd")
	if err := os.Truncate(etcd, 4096); err != nil {
		t.Fatal(err)
	}

	var progress bytes.Buffer
	got, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{CacheDir: root, Progress: &progress})
	if err != nil {
		t.Fatalf("EnsureBinaries with a truncated etcd: %v\n%s", err, progress.String())
	}
	if got.Etcd != etcd {
		t.Fatalf("etcd path %s, want %s", got.Etcd, etcd)
	}
	log := progress.String()
	if !strings.Contains(log, "etcd does not match its checksum") || !strings.Contains(log, "built etcd") {
		t.Errorf("progress should report the corrupt etcd and its rebuild:\n%s", log)
	}
	if strings.Contains(log, "building kube-apiserver") || strings.Contains(log, "building kubectl") {
		t.Errorf("intact binaries were rebuilt:\n%s", log)
	}
	info, err := os.Stat(etcd)
	if err != nil || info.Size() <= 4096 {
		t.Fatalf("etcd not rebuilt: %v size %d", err, info.Size())
	}
	out, err := exec.CommandContext(ctx, etcd, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etcd Version") {
		t.Fatalf("rebuilt etcd does not run: %v\n%s", err, out)
	}

	// A second call finds everything intact and builds nothing.
	progress.Reset()
	if _, err := devenv.EnsureBinaries(ctx, devenv.BuildOptions{CacheDir: root, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if progress.Len() != 0 {
		t.Errorf("intact cache should be used silently, got:\n%s", progress.String())
	}
}

func TestCacheOutsideCheckoutExplainsWhatToDo(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(devenv.SourceDirEnv, "")
	_, err := devenv.EnsureBinaries(context.Background(), devenv.BuildOptions{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), devenv.SourceDirEnv) {
		t.Fatalf("want an error that names %s, got %v", devenv.SourceDirEnv, err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
