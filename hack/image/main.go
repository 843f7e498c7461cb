// Command image builds the tenantguard container image without a container
// engine: an OCI image index with one image per platform, each a scratch
// base with an /etc layer (a passwd entry for the non-root user 65532 and,
// when the build machine has them, its CA certificates) and a layer with
// the static binary at /tenantguard.
//
// The output depends only on its inputs: every file time and the image's
// creation time are -created (the commit time), so the same commit and
// binaries give the same digest.
//
//	go run ./hack/image -version v0.1.0 -revision <sha> -created <RFC 3339> \
//	    -binary linux/amd64=bin/linux_amd64/tenantguard \
//	    -binary linux/arm64=bin/linux_arm64/tenantguard \
//	    -out bin/image | -repo registry.example.com/tenantguard [-tag v0.1.0]
//
// `make image` runs it after cross-compiling the binaries.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// The image runs as uid and gid 65532, named nonroot as in distroless
	// images, so that no pod of it runs as root whatever its securityContext.
	uid  = 65532
	user = "65532:65532"
	// binary is the file name of the entrypoint, at the root.
	binary = "tenantguard"
	// refName names an index's tag in an OCI layout.
	refName = "org.opencontainers.image.ref.name"
	// caSource is where Debian and Alpine keep the CA bundle, and where Go
	// looks first on Linux.
	caSource = "/etc/ssl/certs/ca-certificates.crt"
)

// platformBinary is one -binary flag: a platform and its static binary.
type platformBinary struct {
	platform v1.Platform
	path     string
}

type binaryFlags []platformBinary

func (b *binaryFlags) String() string { return fmt.Sprint(*b) }

func (b *binaryFlags) Set(s string) error {
	plat, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return fmt.Errorf("want os/arch=path, got %q", s)
	}
	p, err := v1.ParsePlatform(plat)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return fmt.Errorf("platform %q: want os/arch, such as linux/amd64", plat)
	}
	for _, have := range *b {
		if have.platform.Equals(*p) {
			return fmt.Errorf("platform %s given twice", plat)
		}
	}
	*b = append(*b, platformBinary{platform: *p, path: path})
	return nil
}

// options are the command line.
type options struct {
	binaries                  binaryFlags
	version, revision, source string
	created                   time.Time
	caCerts                   string
	out, repo, tag            string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	idx, err := buildIndex(opts)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if opts.out != "" {
		if err := writeLayout(opts.out, idx, opts.tag); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: tenantguard:%s@%s\n", opts.out, opts.tag, digest)
	}
	if opts.repo != "" {
		ref, err := push(ctx, idx, opts.repo, opts.tag)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", ref, digest)
	}
	return nil
}

func parseFlags(args []string) (options, error) {
	var opts options
	var created string
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.Var(&opts.binaries, "binary", "os/arch=path of a static tenantguard binary (repeat per platform)")
	fs.StringVar(&opts.version, "version", "", "version, for the annotation and the default tag")
	fs.StringVar(&opts.revision, "revision", "", "source revision (commit), for the annotation")
	fs.StringVar(&opts.source, "source", "https://github.com/tenantguard/tenantguard", "source repository URL, for the annotation")
	fs.StringVar(&created, "created", "", "creation time in RFC 3339: the commit time, so that builds are reproducible")
	fs.StringVar(&opts.caCerts, "ca-certs", caSource, "CA bundle copied to "+caSource+" in the image when it exists; empty for none")
	fs.StringVar(&opts.out, "out", "", "write an OCI image layout to this directory")
	fs.StringVar(&opts.repo, "repo", "", "push to this repository (plain HTTP for loopback registries)")
	fs.StringVar(&opts.tag, "tag", "", "tag (default: the version)")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	switch {
	case fs.NArg() > 0:
		return opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	case len(opts.binaries) == 0:
		return opts, errors.New("no -binary given: build one per platform first (make image does)")
	case opts.version == "" || opts.revision == "":
		return opts, errors.New("-version and -revision are required")
	case opts.out == "" && opts.repo == "":
		return opts, errors.New("give -out (an OCI layout) or -repo (push), or both")
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return opts, fmt.Errorf("-created %q: want RFC 3339 such as 2026-01-02T15:04:05Z (make sets the commit time): %w", created, err)
	}
	opts.created = t.UTC()
	if opts.tag == "" {
		opts.tag = opts.version
	}
	if _, err := name.NewTag("tenantguard:" + opts.tag); err != nil {
		return opts, fmt.Errorf("tag %q is not a valid image tag (set -tag): %w", opts.tag, err)
	}
	return opts, nil
}

// buildIndex assembles the image index: one image per platform, annotated.
func buildIndex(opts options) (v1.ImageIndex, error) {
	ann := map[string]string{
		"org.opencontainers.image.source":   opts.source,
		"org.opencontainers.image.revision": opts.revision,
		"org.opencontainers.image.version":  opts.version,
		"org.opencontainers.image.created":  opts.created.Format(time.RFC3339),
		"org.opencontainers.image.title":    "tenantguard",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	etc, err := etcLayer(opts.caCerts, opts.created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, b := range opts.binaries {
		img, err := platformImage(b, etc, ann, opts.created)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", b.platform, err)
		}
		p := b.platform
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, ann).(v1.ImageIndex), nil
}

func platformImage(b platformBinary, etc v1.Layer, ann map[string]string, created time.Time) (v1.Image, error) {
	bin, err := os.ReadFile(b.path)
	if err != nil {
		return nil, fmt.Errorf("read the binary: %w", err)
	}
	if err := checkStatic(bin, b.platform); err != nil {
		return nil, fmt.Errorf("%s: %w", b.path, err)
	}
	binLayer, err := layer(created, []file{{name: binary, mode: 0o755, data: bin}})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	labels := map[string]string{}
	for k, v := range ann {
		labels[k] = v
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: b.platform.Architecture,
		OS:           b.platform.OS,
		Variant:      b.platform.Variant,
		Created:      v1.Time{Time: created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       user,
			Entrypoint: []string{"/" + binary},
			WorkingDir: "/home/nonroot",
			Labels:     labels,
		},
	})
	if err != nil {
		return nil, err
	}
	at := v1.Time{Time: created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: etc, History: v1.History{Created: at, CreatedBy: "hack/image: /etc (passwd, group, CA certificates)"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: at, CreatedBy: "hack/image: /" + binary}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// checkStatic refuses a file that is not an executable for the platform, so
// that a wrong -binary is caught here rather than as an exec error in a pod.
func checkStatic(bin []byte, p v1.Platform) error {
	if p.OS != "linux" {
		return nil
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return errors.New("not an ELF executable")
	}
	// e_machine at offset 18, little-endian for the platforms we build.
	machines := map[string]uint16{"amd64": 62, "arm64": 183}
	want, known := machines[p.Architecture]
	if known && len(bin) > 19 && uint16(bin[18])|uint16(bin[19])<<8 != want {
		return fmt.Errorf("built for another architecture than %s", p.Architecture)
	}
	return nil
}

// etcLayer holds what a static Go binary needs from a root filesystem: a
// user for the uid and the CA certificates for TLS to the API server and
// registries.
func etcLayer(caCerts string, created time.Time) (v1.Layer, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	files := []file{
		{name: "etc/", mode: fs.ModeDir | 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "home/", mode: fs.ModeDir | 0o755},
		{name: "home/nonroot/", mode: fs.ModeDir | 0o700, owner: uid},
		{name: "tmp/", mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	if caCerts != "" {
		data, err := os.ReadFile(caCerts)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// An image without CAs still serves the webhook; only the
			// registry gateway's TLS upstreams need them.
			fmt.Fprintf(os.Stderr, "image: %s not found; the image has no CA certificates\n", caCerts)
		case err != nil:
			return nil, fmt.Errorf("read the CA certificates: %w", err)
		default:
			files = append(files,
				file{name: "etc/ssl/", mode: fs.ModeDir | 0o755},
				file{name: "etc/ssl/certs/", mode: fs.ModeDir | 0o755},
				file{name: strings.TrimPrefix(caSource, "/"), mode: 0o644, data: data})
		}
	}
	return layer(created, files)
}

// file is one tar entry; a directory's mode has fs.ModeDir.
type file struct {
	name  string
	mode  fs.FileMode
	owner int
	data  []byte
}

// layer writes files into a gzip-compressed OCI layer with fixed times and
// owners, so that its digest depends only on the content.
func layer(created time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    int64(f.mode.Perm()),
			Uid:     f.owner,
			Gid:     f.owner,
			ModTime: created,
			Format:  tar.FormatPAX,
		}
		if f.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if f.mode.IsDir() {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
}

// writeLayout writes the index into an OCI image layout, named by tag.
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("create the image layout %s: %w", dir, err)
		}
	}
	if err := p.ReplaceIndex(idx, func(d v1.Descriptor) bool { return d.Annotations[refName] == tag },
		layout.WithAnnotations(map[string]string{refName: tag})); err != nil {
		return fmt.Errorf("write the image layout %s: %w", dir, err)
	}
	return nil
}

// push writes the index to repo:tag with the credentials of the Docker
// config; a loopback registry is spoken to over plain HTTP.
func push(ctx context.Context, idx v1.ImageIndex, repo, tag string) (name.Reference, error) {
	var opts []name.Option
	if loopback(repo) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(repo+":"+tag, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %s:%s: %w", repo, tag, err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// loopback reports whether repo's registry is on this machine.
func loopback(repo string) bool {
	host, _, _ := strings.Cut(repo, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
