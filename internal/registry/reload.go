package registry

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// reloader holds a value loaded from files (a tenants file, the robot
// accounts, the signing keys, a TLS key pair) and loads it again when their
// content changes. Mounted Secrets and ConfigMaps change by swapping a
// symbolic link, so the content is compared, not modification times. A
// reload that fails keeps the previous value and logs why.
type reloader[T any] struct {
	name  string
	paths []string
	load  func() (T, error)
	log   *slog.Logger

	cur  atomic.Pointer[T]
	hash string
}

func newReloader[T any](name string, paths []string, log *slog.Logger, load func() (T, error)) (*reloader[T], error) {
	r := &reloader[T]{name: name, paths: paths, load: load, log: log}
	h, err := contentHash(paths)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(&v)
	r.hash = h
	return r, nil
}

// Get returns the current value.
func (r *reloader[T]) Get() T { return *r.cur.Load() }

// run checks for changes every interval until ctx ends.
func (r *reloader[T]) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check()
		}
	}
}

func (r *reloader[T]) check() {
	h, err := contentHash(r.paths)
	if err != nil {
		r.log.Error("cannot read for reload; keeping the previous one", "what", r.name, "error", err)
		return
	}
	if h == r.hash {
		return
	}
	v, err := r.load()
	if err != nil {
		r.log.Error("reload failed; keeping the previous one", "what", r.name, "error", err)
		return
	}
	r.cur.Store(&v)
	r.hash = h
	r.log.Info("reloaded", "what", r.name)
}

// contentHash hashes the files, and the files directly in directories
// (skipping names that start with "."), following links.
func contentHash(paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		files := []string{p}
		if info.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return "", err
			}
			files = files[:0]
			for _, e := range entries {
				f := filepath.Join(p, e.Name())
				if fi, err := os.Stat(f); strings.HasPrefix(e.Name(), ".") || err != nil || !fi.Mode().IsRegular() {
					continue
				}
				files = append(files, f)
			}
			sort.Strings(files)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
			h.Write(data)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
