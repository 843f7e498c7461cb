package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

// manifestAccept asks for a manifest in whatever form it was pushed.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.artifact.manifest.v1+json",
}, ", ")

// putManifest reads the manifest (up to the size limit), refuses it if it
// would move an immutable tag, and forwards it. The tags of a push are the
// path's tag and any ?tag= parameters (distribution-spec 1.1 lets a push by
// digest name tags that way, which must not become a way around
// immutability).
func (g *Gateway) putManifest(w http.ResponseWriter, r *http.Request, rt route, caller Caller) {
	limit := g.cfg.MaxManifestBytes
	if r.ContentLength > limit {
		g.refuseWith(w, r, caller, rt, "push", newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		writeError(w, r, newError(http.StatusBadRequest, CodeManifestInvalid, "reading the manifest: %v", err))
		return
	}
	if int64(len(body)) > limit {
		g.refuseWith(w, r, caller, rt, "push", newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest is larger than the limit of %d bytes", limit))
		return
	}
	var tags []string
	if !rt.isDigest() {
		tags = append(tags, rt.reference)
	}
	for _, t := range r.URL.Query()["tag"] {
		if !validTag(t) {
			writeError(w, r, newError(http.StatusBadRequest, CodeTagInvalid, "tag parameter %q is not a valid tag", t))
			return
		}
		tags = append(tags, t)
	}
	rules := g.cfg.Rules()
	var protected []string
	var keys []string
	for _, t := range tags {
		if _, ok := rules.ImmutableTag(rt.name, t); ok {
			protected = append(protected, t)
			keys = append(keys, rt.name+":"+t)
		}
	}
	if len(protected) > 0 {
		unlock, err := lockAll(r.Context(), g.cfg.Locker, keys)
		if err != nil {
			// The cause may name the API server of the Lease locks: logs only.
			g.refuseWith(w, r, caller, rt, "push", &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
				Message: "could not wait for another push of the same tag; try again", cause: err})
			return
		}
		defer unlock()
		for _, t := range protected {
			if err := g.checkImmutablePush(r, rules, rt.name, t, body); err != nil {
				g.refuseWith(w, r, caller, rt, "push", err)
				return
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.TransferEncoding = nil // forwarded with its length, whatever the client sent
	rec := g.proxyRecorded(w, r)
	decision := "allow"
	if rec.status >= 300 {
		decision = "upstream-refused"
	}
	g.event(r, slog.LevelInfo, "push", caller, rt, decision,
		slog.Int("status", rec.status),
		slog.String("digest", rec.Header().Get("Docker-Content-Digest")),
		slog.Any("tags", tags),
		slog.Any("immutable", protected))
}

// checkImmutablePush allows the push of an immutable tag when the tag does
// not exist yet or already holds exactly this manifest.
func (g *Gateway) checkImmutablePush(r *http.Request, rules *authz.Rules, repo, tag string, body []byte) error {
	p, _ := rules.ImmutableTag(repo, tag)
	existing, err := g.resolve(r, repo, tag)
	if err != nil {
		return g.upstreamFailed(r, fmt.Sprintf("cannot check immutable tag %s:%s against the upstream (refused to be safe)", repo, tag), err)
	}
	if existing.absent {
		return nil
	}
	same, err := existing.matches(body)
	if err != nil {
		return g.upstreamFailed(r, fmt.Sprintf("cannot compare with the existing %s:%s", repo, tag), err)
	}
	if same {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeDenied,
		Message: fmt.Sprintf("tag %s of %s is immutable (%s): it already points to %s and cannot be moved to another manifest; push the new image under a new tag",
			tag, repo, p, existing.digest),
		Detail: map[string]string{"tag": tag, "digest": existing.digest.String(), "pattern": p.Pattern, "tenant": p.Tenant}}
}

// resolved is what a tag points to upstream.
type resolved struct {
	absent bool
	digest digest.Digest
	body   []byte // set when the upstream gave no digest header
}

func (res resolved) matches(body []byte) (bool, error) {
	if res.digest == "" {
		return bytes.Equal(res.body, body), nil
	}
	if !res.digest.Algorithm().Available() {
		return false, answered("digest algorithm %s is not supported", res.digest.Algorithm())
	}
	return res.digest.Algorithm().FromBytes(body) == res.digest, nil
}

// resolve HEADs a tag upstream (GET when the upstream gives no digest).
func (g *Gateway) resolve(r *http.Request, repo, tag string) (resolved, error) {
	ctx, cancel := g.upstreamContext(r)
	defer cancel()
	resp, err := g.upstreamDo(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+tag, manifestAccept)
	if err != nil {
		return resolved{}, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return resolved{absent: true}, nil
	case resp.StatusCode != http.StatusOK:
		return resolved{}, answered("HEAD manifest answered %s", resp.Status)
	}
	if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
		return resolved{digest: d}, nil
	}
	body, d, err := g.fetchManifest(ctx, repo, tag)
	if err != nil {
		return resolved{}, err
	}
	if body == nil {
		return resolved{absent: true}, nil
	}
	return resolved{digest: d, body: body}, nil
}

// fetchManifest GETs a manifest; a nil body means it does not exist. The
// digest is the upstream's header or, without one, the sha256 of the body.
func (g *Gateway) fetchManifest(ctx context.Context, repo, ref string) ([]byte, digest.Digest, error) {
	resp, err := g.upstreamDo(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, manifestAccept)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", answered("GET manifest %s answered %s", ref, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, g.cfg.MaxManifestBytes+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(body)) > g.cfg.MaxManifestBytes {
		return nil, "", answered("manifest %s is larger than %d bytes", ref, g.cfg.MaxManifestBytes)
	}
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		d = digest.FromBytes(body)
	}
	return body, d, nil
}

func (g *Gateway) upstreamDo(ctx context.Context, method, path, accept string) (*http.Response, error) {
	u := *g.cfg.Upstream
	u.Path, u.RawPath = path, ""
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return g.client.Do(req)
}

// deleteManifest refuses to delete an immutable tag, or a manifest that an
// immutable tag holds.
func (g *Gateway) deleteManifest(w http.ResponseWriter, r *http.Request, rt route, caller Caller) {
	rules := g.cfg.Rules()
	if !rt.isDigest() {
		if p, ok := rules.ImmutableTag(rt.name, rt.reference); ok {
			g.refuseWith(w, r, caller, rt, "delete", &Error{Status: http.StatusForbidden, Code: CodeDenied,
				Message: fmt.Sprintf("tag %s of %s is immutable (%s) and cannot be deleted", rt.reference, rt.name, p),
				Detail:  map[string]string{"tag": rt.reference, "pattern": p.Pattern, "tenant": p.Tenant}})
			return
		}
	} else if err := g.checkProtected(r, rules, rt); err != nil {
		g.refuseWith(w, r, caller, rt, "delete", err)
		return
	}
	g.forwardDelete(w, r, rt, caller)
}

// deleteBlob refuses to delete a blob an immutable image is made of: its
// config or a layer (deleting those would break the image as surely as
// moving its tag).
func (g *Gateway) deleteBlob(w http.ResponseWriter, r *http.Request, rt route, caller Caller) {
	if err := g.checkProtected(r, g.cfg.Rules(), rt); err != nil {
		g.refuseWith(w, r, caller, rt, "delete", err)
		return
	}
	g.forwardDelete(w, r, rt, caller)
}

func (g *Gateway) forwardDelete(w http.ResponseWriter, r *http.Request, rt route, caller Caller) {
	rec := g.proxyRecorded(w, r)
	decision := "allow"
	if rec.status >= 300 {
		decision = "upstream-refused"
	}
	g.event(r, slog.LevelInfo, "delete", caller, rt, decision, slog.Int("status", rec.status), slog.String("kind", rt.kind.String()))
}

func (g *Gateway) checkProtected(r *http.Request, rules *authz.Rules, rt route) error {
	if !rules.HasImmutableTags(rt.name) {
		return nil
	}
	d, err := digest.Parse(rt.reference)
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "%v", err)
	}
	held, err := g.protectedDigests(r, rules, rt.name)
	if err != nil {
		return g.upstreamFailed(r, fmt.Sprintf("cannot list the immutable tags of %s (refused to be safe)", rt.name), err)
	}
	if h, ok := held[d]; ok {
		what := "manifest"
		if h.part != "" {
			what = h.part + " of the manifest"
		}
		return &Error{Status: http.StatusForbidden, Code: CodeDenied,
			Message: fmt.Sprintf("%s is the %s that immutable tag %s of %s holds (%s); it cannot be deleted", d, what, h.tag, rt.name, h.protection),
			Detail:  map[string]string{"digest": d.String(), "tag": h.tag, "pattern": h.protection.Pattern, "tenant": h.protection.Tenant}}
	}
	return nil
}

type holder struct {
	tag        string
	part       string // "" for the tagged manifest; "config", "layer", "child manifest"
	protection authz.Protection
}

// maxTagPages bounds the tag listing of one repository (100 000 tags).
const maxTagPages = 100

// protectedDigests lists the repository's tags, and for every immutable one
// collects the digests it holds: the manifest, the manifests of an index,
// and their configs and layers.
func (g *Gateway) protectedDigests(r *http.Request, rules *authz.Rules, repo string) (map[digest.Digest]holder, error) {
	ctx, cancel := g.upstreamContext(r)
	defer cancel()
	tags, err := g.listTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	held := map[digest.Digest]holder{}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, tag := range tags {
		p, ok := rules.ImmutableTag(repo, tag)
		if !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			found := map[digest.Digest]string{}
			err := g.walkManifest(ctx, repo, tag, "", found, 0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			for d, part := range found {
				if _, seen := held[d]; !seen || part == "" {
					held[d] = holder{tag: tag, part: part, protection: p}
				}
			}
		}()
	}
	wg.Wait()
	return held, firstErr
}

// walkManifest adds the digests a manifest holds to found.
func (g *Gateway) walkManifest(ctx context.Context, repo, ref, part string, found map[digest.Digest]string, depth int) error {
	if depth > 3 {
		return nil
	}
	body, d, err := g.fetchManifest(ctx, repo, ref)
	if err != nil || body == nil {
		return err // a tag deleted meanwhile holds nothing
	}
	found[d] = part
	var m struct {
		Config    *struct{ Digest digest.Digest }  `json:"config"`
		Layers    []struct{ Digest digest.Digest } `json:"layers"`
		Manifests []struct{ Digest digest.Digest } `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil // not JSON we understand: the manifest itself is protected
	}
	if m.Config != nil && m.Config.Digest != "" {
		found[m.Config.Digest] = "config"
	}
	for _, l := range m.Layers {
		if _, ok := found[l.Digest]; !ok && l.Digest != "" {
			found[l.Digest] = "layer"
		}
	}
	for _, c := range m.Manifests {
		if c.Digest.Validate() != nil {
			continue
		}
		if err := g.walkManifest(ctx, repo, c.Digest.String(), "child manifest", found, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// listTags lists every tag of a repository, following pagination.
func (g *Gateway) listTags(ctx context.Context, repo string) ([]string, error) {
	var all []string
	path := "/v2/" + repo + "/tags/list?n=1000"
	for page := 0; page < maxTagPages; page++ {
		u, err := g.cfg.Upstream.Parse(path)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := g.client.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		status := resp.StatusCode
		link := resp.Header.Get("Link")
		if status == http.StatusOK {
			err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body)
		}
		resp.Body.Close()
		switch {
		case status == http.StatusNotFound:
			return all, nil // no such repository: no tags
		case status != http.StatusOK:
			return nil, answered("tag list answered %d", status)
		case err != nil:
			return nil, fmt.Errorf("tag list: %w", err)
		}
		all = append(all, body.Tags...)
		next := nextLink(link)
		if next == "" || len(body.Tags) == 0 {
			return all, nil
		}
		path = next
	}
	return nil, answered("more tag pages than the gateway will read")
}

// nextLink returns the URL of a Link: <url>; rel="next" header.
func nextLink(link string) string {
	if !strings.Contains(link, `rel="next"`) {
		return ""
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end < start {
		return ""
	}
	return link[start+1 : end]
}

// refuseWith logs a refusal and writes the error.
func (g *Gateway) refuseWith(w http.ResponseWriter, r *http.Request, caller Caller, rt route, event string, err error) {
	g.refused(r, caller, rt, event, err)
	writeError(w, r, err)
}
