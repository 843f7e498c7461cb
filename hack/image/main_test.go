package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseFlagsRefusesBadInput(t *testing.T) {
	elf := filepath.Join(t.TempDir(), "tenantguard")
	if err := os.WriteFile(elf, []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	ok := []string{"-version", "v1.0.0", "-revision", "abc", "-created", "2026-01-02T03:04:05Z", "-binary", "linux/amd64=" + elf, "-out", "x"}
	if _, err := parseFlags(ok); err != nil {
		t.Fatalf("valid flags refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no binary", []string{"-version", "v1", "-revision", "abc", "-created", "2026-01-02T03:04:05Z", "-out", "x"}, "no -binary"},
		{"binary without path", append(ok, "-binary", "linux/arm64="), "want os/arch=path"},
		{"binary without platform", append(ok, "-binary", "tenantguard"), "want os/arch=path"},
		{"platform without arch", append(ok, "-binary", "linux=x"), "want os/arch"},
		{"platform twice", append(ok, "-binary", "linux/amd64=y"), "given twice"},
		{"no created", []string{"-version", "v1", "-revision", "abc", "-binary", "linux/amd64=x", "-out", "x"}, "-created"},
		{"created not RFC 3339", append(ok, "-created", "yesterday"), "want RFC 3339"},
		{"no output", []string{"-version", "v1", "-revision", "abc", "-created", "2026-01-02T03:04:05Z", "-binary", "linux/amd64=x"}, "give -out"},
		{"no revision", []string{"-version", "v1", "-created", "2026-01-02T03:04:05Z", "-binary", "linux/amd64=x", "-out", "x"}, "-revision are required"},
		{"bad tag", append(ok, "-tag", "v1+build"), "not a valid image tag"},
		{"argument", append(ok, "extra"), "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckStatic(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	header := func(machine byte, hi byte) []byte {
		b := make([]byte, 64)
		copy(b, "\x7fELF")
		b[18], b[19] = machine, hi
		return b
	}
	for _, tc := range []struct {
		name    string
		bin     []byte
		p       v1.Platform
		wantErr string
	}{
		{"amd64 binary for amd64", header(62, 0), amd64, ""},
		{"arm64 binary for arm64", header(183, 0), arm64, ""},
		{"amd64 binary for arm64", header(62, 0), arm64, "another architecture"},
		{"a script", []byte("#!/bin/sh\n"), amd64, "not an ELF"},
		{"empty", nil, amd64, "not an ELF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStatic(tc.bin, tc.p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for repo, want := range map[string]bool{
		"127.0.0.1:5000/tenantguard":        true,
		"localhost:5000/tenantguard":        true,
		"[::1]:5000/tenantguard":            true,
		"127.1.2.3/tenantguard":             true,
		"myacr.azurecr.io/tenantguard":      false,
		"10.0.0.4:5000/tenantguard":         false,
		"localhost.example.com/tenantguard": false,
	} {
		if got := loopback(repo); got != want {
			t.Errorf("loopback(%q) = %v, want %v", repo, got, want)
		}
	}
}
