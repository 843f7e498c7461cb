package replay

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ImageRepository is the repository `dev` pushes the tenantguard image to.
const ImageRepository = "tenantguard"

// refName is the OCI layout annotation that names an index's tag.
const refName = "org.opencontainers.image.ref.name"

// PushImage pushes the one image index of the OCI image layout dir (what
// `make image` writes) to host/tenantguard, tagged as in the layout, and
// returns the pushed reference with its digest. host is a loopback
// registry, spoken to over plain HTTP.
func PushImage(ctx context.Context, dir, host string) (string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return "", fmt.Errorf("no image layout at %s (make image writes it): %w", dir, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return "", fmt.Errorf("read the image layout %s: %w", dir, err)
	}
	m, err := root.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("read the image layout %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return "", fmt.Errorf("the image layout %s holds %d entries; want one image index (make image writes it afresh)", dir, len(m.Manifests))
	}
	desc := m.Manifests[0]
	idx, err := root.ImageIndex(desc.Digest)
	if err != nil {
		return "", fmt.Errorf("read the image index %s in %s: %w", desc.Digest, dir, err)
	}
	tag := desc.Annotations[refName]
	if tag == "" {
		tag = "dev"
	}
	ref, err := name.NewTag(host+"/"+ImageRepository+":"+tag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("image reference: %w", err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push the image to %s: %w", ref, err)
	}
	return ref.String() + "@" + desc.Digest.String(), nil
}

// UpstreamHost is the host:port of the Distribution registry behind the
// gateway, which needs no credentials.
func (r *Registry) UpstreamHost() string { return r.upstream.Host }
