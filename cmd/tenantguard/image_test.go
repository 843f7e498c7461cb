package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tenantguard/tenantguard/internal/registry/localregistry"
	"github.com/tenantguard/tenantguard/internal/replay"
)

// TestImage builds the image as `make image` does (static release binaries
// for both platforms, assembled by hack/image), pushes it to a real
// Distribution registry both directly and from the OCI layout as `dev`
// does, pulls it back, and runs the binary taken out of the layers: the
// image holds the binary this source builds, non-root, annotated, and
// reproducible.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("the image holds linux/amd64 and linux/arm64 binaries; this test runs one, which %s/%s cannot", runtime.GOOS, runtime.GOARCH)
	}
	const (
		version  = "v0.0.0-imagetest"
		revision = "0123456789abcdef0123456789abcdef01234567"
		created  = "2026-01-02T03:04:05Z"
	)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	platforms := []string{"linux/amd64", "linux/arm64"}
	binaries := map[string]string{}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		out := filepath.Join(dir, goos+"_"+goarch, "tenantguard")
		// The flags of `make image`.
		goCommand(t, root, []string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch},
			"build", "-trimpath", "-tags", "release",
			"-ldflags", "-s -w -X github.com/tenantguard/tenantguard/internal/version.Version="+version,
			"-o", out, "./cmd/tenantguard")
		binaries[p] = out
	}
	imageTool := filepath.Join(dir, "image")
	goCommand(t, root, nil, "build", "-o", imageTool, "./hack/image")

	reg, err := localregistry.Start(localregistry.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	args := []string{"-version", version, "-revision", revision, "-created", created}
	for _, p := range platforms {
		args = append(args, "-binary", p+"="+binaries[p])
	}
	// Two separate builds: one to a layout, one pushed.
	layoutDir := filepath.Join(dir, "layout")
	run := func(extra ...string) {
		t.Helper()
		cmd := exec.Command(imageTool, append(slices.Clone(args), extra...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hack/image %v: %v\n%s", extra, err, out)
		}
	}
	run("-out", layoutDir)
	repo := reg.Host + "/platform/tenantguard"
	run("-repo", repo)

	ref, err := name.NewTag(repo+":"+version, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull the pushed index: %v", err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	fromLayout, err := layoutIndexDigest(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	if fromLayout != digest {
		t.Errorf("two builds of the same inputs differ: layout %s, pushed %s", fromLayout, digest)
	}
	// dev pushes the layout the same way.
	devRef, err := replay.PushImage(context.Background(), layoutDir, reg.Host)
	if err != nil {
		t.Fatalf("push the layout as dev does: %v", err)
	}
	if want := reg.Host + "/tenantguard:" + version + "@" + digest.String(); devRef != want {
		t.Errorf("dev pushed %s, want %s", devRef, want)
	}

	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", m.MediaType, types.OCIImageIndex)
	}
	wantAnnotations := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/tenantguard/tenantguard",
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.created":  created,
	}
	for k, v := range wantAnnotations {
		if m.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	var got []string
	var hostImage v1.Image
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		p := desc.Platform.OS + "/" + desc.Platform.Architecture
		got = append(got, p)
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want the non-root 65532:65532", p, cf.Config.User)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/tenantguard"}) {
			t.Errorf("%s: entrypoint %q", p, cf.Config.Entrypoint)
		}
		if cf.Created.UTC().Format("2006-01-02T15:04:05Z") != created {
			t.Errorf("%s: created %s, want the commit time %s", p, cf.Created, created)
		}
		im, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.Annotations["org.opencontainers.image.revision"] != revision {
			t.Errorf("%s: manifest annotations %v lack the revision", p, im.Annotations)
		}
		if p == runtime.GOOS+"/"+runtime.GOARCH {
			hostImage = img
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, platforms) {
		t.Fatalf("platforms %v, want %v", got, platforms)
	}

	files := extract(t, hostImage, "tenantguard", "etc/passwd")
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no entry for 65532:\n%s", files["etc/passwd"])
	}
	bin := files["tenantguard"]
	built, err := os.ReadFile(binaries[runtime.GOOS+"/"+runtime.GOARCH])
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(bin) != sha256.Sum256(built) {
		t.Fatal("the image's /tenantguard is not the binary built from this source")
	}
	extracted := filepath.Join(dir, "extracted", "tenantguard")
	if err := os.MkdirAll(filepath.Dir(extracted), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(extracted, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(extracted); err != nil {
		t.Fatal(err)
	} else {
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Error("the binary needs a dynamic loader; the scratch image has none")
			}
		}
		f.Close()
	}

	out, _, code := runBinary(t, root, extracted, "version")
	if code != 0 || !strings.HasPrefix(out, "tenantguard "+version+" ") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
	out, _, code = runBinary(t, root, extracted, "check", "--tenants", "examples/tenants", "examples/manifests")
	want, err := os.ReadFile(filepath.Join("testdata", "check-examples.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || out != string(want) {
		t.Errorf("check of the examples from the image: exit %d (want 1), output differs from testdata/check-examples.txt:\n%s", code, out)
	}
	// One binary per role: the release build has no local control plane.
	_, errOut, code := runBinary(t, root, extracted, "dev")
	if code != 2 || !strings.Contains(errOut, "not in this build") {
		t.Errorf("dev in the image's binary: exit %d, stderr %q", code, errOut)
	}
}

func goCommand(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runBinary runs bin in dir and returns its stdout, its stderr and its
// exit code.
func runBinary(t *testing.T, dir, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
		return "", "", -1
	}
}

// layoutIndexDigest is the digest of the one index in an OCI layout.
func layoutIndexDigest(dir string) (v1.Hash, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := ii.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(m.Manifests) != 1 {
		return v1.Hash{}, errors.New("want one index in the layout")
	}
	return m.Manifests[0].Digest, nil
}

// extract reads the named regular files from the image's flattened
// filesystem.
func extract(t *testing.T, img v1.Image, names ...string) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || !slices.Contains(names, h.Name) {
			continue
		}
		if h.Name == "tenantguard" && h.Mode&0o111 == 0 {
			t.Errorf("/tenantguard is not executable: mode %o", h.Mode)
		}
		if files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if files[n] == nil {
			t.Fatalf("the image has no /%s", n)
		}
	}
	return files
}
