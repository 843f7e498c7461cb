package devenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// BinaryEnv names a tenantguard executable to use instead of building one.
const BinaryEnv = "TENANTGUARD_BINARY"

var built struct {
	sync.Mutex
	path string
}

// BuildBinary returns $TENANTGUARD_BINARY if set, else builds
// ./cmd/tenantguard of the checkout (see SourceDirEnv) into dir as the
// image carries it: the release build, with make image's flags (-tags
// release -trimpath -ldflags "-s -w"; no dev command). The build runs once
// per process; later calls return the same file while it exists.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	if path := os.Getenv(BinaryEnv); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s: %w", BinaryEnv, err)
		}
		return path, nil
	}
	built.Lock()
	defer built.Unlock()
	if built.path != "" {
		if _, err := os.Stat(built.path); err == nil {
			return built.path, nil
		}
	}
	src, err := findSourceDir("")
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build tenantguard: %w (or set %s)", err, BinaryEnv)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build tenantguard: %w", err)
	}
	out := filepath.Join(dir, "tenantguard")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-tags", "release", "-ldflags", "-s -w", "-o", out, "./cmd/tenantguard")
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tenantguard in %s: %w\n%s", src, err, msg)
	}
	built.path = out
	return out, nil
}
