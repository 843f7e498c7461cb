package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func randomImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t testing.TB, img interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTenantPushesAndPullsItsRepository(t *testing.T) {
	e := newEnv(t, envOptions{})
	img := randomImage(t)
	ref := e.ref(t, "project1/app:latest")
	if err := remote.Write(ref, img, p1...); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, p1...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Fatalf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, img))
	}
	// Every layer streams back intact (the client verifies the digest).
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("layer digest: %v", err)
		}
	}
	// Deeper repositories under project1/** work too.
	if err := remote.Write(e.ref(t, "project1/team/tool:1"), img, p1...); err != nil {
		t.Fatalf("push to a nested repository: %v", err)
	}
	tags, err := remote.List(e.repo(t, "project1/app"), p1...)
	if err != nil || !slices.Equal(tags, []string{"latest"}) {
		t.Fatalf("tags = %v, %v", tags, err)
	}
	// A pull-only robot of the tenant pulls but cannot push.
	if _, err := remote.Image(ref, p1Puller...); err != nil {
		t.Errorf("pull-only robot cannot pull: %v", err)
	}
	err = remote.Write(e.ref(t, "project1/app:other"), randomImage(t), p1Puller...)
	if status, code := errorCode(err); status != http.StatusForbidden || code != "DENIED" {
		t.Errorf("pull-only robot pushing: %v (status %d, code %s)", err, status, code)
	}
	// A mutable tag can be moved and deleted.
	if err := remote.Write(ref, randomImage(t), p1...); err != nil {
		t.Fatalf("moving a mutable tag: %v", err)
	}
	if err := remote.Delete(ref, p1...); err != nil {
		t.Fatalf("deleting a mutable tag: %v", err)
	}
	// The audit log has the pushes and the delete, with identity and tenant.
	var pushes, deletes int
	for _, l := range e.audit.lines() {
		if l["identity"] != "robot:p1-ci" || l["tenant"] != "project1" {
			continue
		}
		switch l["event"] {
		case "push":
			pushes++
		case "delete":
			deletes++
		}
	}
	if pushes < 3 || deletes != 1 {
		t.Errorf("audit: %d pushes, %d deletes; lines: %v", pushes, deletes, e.audit.lines())
	}
}

// TestCrossTenantMatrix: every action of tenant project1 on tenant
// project2's repository is refused, with the right status and code.
func TestCrossTenantMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	victim := randomImage(t)
	victimRef := e.ref(t, "project2/app:v1")
	if err := remote.Write(victimRef, victim, p2...); err != nil {
		t.Fatalf("project2 push: %v", err)
	}
	victimDigest := digestOf(t, victim)
	layers, _ := victim.Layers()
	layerDigest, _ := layers[0].Digest()
	if err := remote.Write(e.ref(t, "project1/app:base"), randomImage(t), p1...); err != nil {
		t.Fatal(err)
	}

	// A token of project1 that asked for everything on project2/app: the
	// token service grants none of it.
	p1Token := e.token(t, "p1-ci", "p1-secret", "repository:project2/app:pull,push,delete", "repository:project1/app:pull,push")
	// project2 opens an upload session; project1 must not be able to use it.
	p2Token := e.token(t, "p2-ci", "p2-secret", "repository:project2/app:pull,push")
	resp, _ := e.do(t, http.MethodPost, "/v2/project2/app/blobs/uploads/", p2Token, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("project2 upload start: %s", resp.Status)
	}
	p2Upload := resp.Header.Get("Location")

	ggcr := func(f func() error) func() (int, string) {
		return func() (int, string) { return errorCode(f()) }
	}
	raw := func(method, path string) func() (int, string) {
		return func() (int, string) {
			resp, body := e.do(t, method, path, p1Token, nil)
			code := ""
			if len(body) > 0 && method != http.MethodHead {
				code, _ = specError(t, body)
			}
			return resp.StatusCode, code
		}
	}
	tests := []struct {
		action     string
		do         func() (int, string)
		wantStatus int
		wantCode   string
	}{
		{"pull manifest", ggcr(func() error { _, err := remote.Image(victimRef, p1...); return err }), 403, "DENIED"},
		{"pull manifest by digest", ggcr(func() error { _, err := remote.Get(e.ref(t, "project2/app@"+victimDigest.String()), p1...); return err }), 403, "DENIED"},
		{"head manifest", raw(http.MethodHead, "/v2/project2/app/manifests/v1"), 403, ""},
		{"pull blob", raw(http.MethodGet, "/v2/project2/app/blobs/"+layerDigest.String()), 403, "DENIED"},
		{"head blob", raw(http.MethodHead, "/v2/project2/app/blobs/"+layerDigest.String()), 403, ""},
		// A push fails at its first request, a HEAD of a blob: 403 without a body.
		{"push image", ggcr(func() error { return remote.Write(e.ref(t, "project2/app:evil"), randomImage(t), p1...) }), 403, ""},
		{"push over existing tag", ggcr(func() error { return remote.Write(victimRef, randomImage(t), p1...) }), 403, ""},
		{"push into a new repository of project2", ggcr(func() error { return remote.Write(e.ref(t, "project2/new:1"), randomImage(t), p1...) }), 403, ""},
		{"push a layer", ggcr(func() error {
			l, _ := random.Layer(100, "application/vnd.oci.image.layer.v1.tar")
			return remote.WriteLayer(e.repo(t, "project2/app"), l, p1...)
		}), 403, ""},
		{"push manifest", raw(http.MethodPut, "/v2/project2/app/manifests/evil"), 403, "DENIED"},
		{"start upload", raw(http.MethodPost, "/v2/project2/app/blobs/uploads/"), 403, "DENIED"},
		{"use project2's upload session", raw(http.MethodPatch, p2Upload), 403, "DENIED"},
		{"delete tag", ggcr(func() error { return remote.Delete(victimRef, p1...) }), 403, "DENIED"},
		{"delete manifest by digest", ggcr(func() error { return remote.Delete(e.ref(t, "project2/app@"+victimDigest.String()), p1...) }), 403, "DENIED"},
		{"delete blob", raw(http.MethodDelete, "/v2/project2/app/blobs/"+layerDigest.String()), 403, "DENIED"},
		{"list tags", ggcr(func() error { _, err := remote.List(e.repo(t, "project2/app"), p1...); return err }), 403, "DENIED"},
		{"referrers", raw(http.MethodGet, "/v2/project2/app/referrers/"+victimDigest.String()), 403, "DENIED"},
		// names that could reach project2 after a careless normalisation
		{"dot-dot", raw(http.MethodGet, "/v2/project1/../project2/app/tags/list"), 400, "NAME_INVALID"},
		{"encoded slash", raw(http.MethodGet, "/v2/project1%2F..%2Fproject2%2Fapp/tags/list"), 400, "NAME_INVALID"},
		{"encoded dot-dot", raw(http.MethodGet, "/v2/project1/%2e%2e/project2/app/tags/list"), 400, "NAME_INVALID"},
		{"upper case", raw(http.MethodGet, "/v2/PROJECT2/app/tags/list"), 400, "NAME_INVALID"},
		{"empty component", raw(http.MethodGet, "/v2/project1//project2/app/tags/list"), 400, "NAME_INVALID"},
		{"anonymous pull", func() (int, string) {
			resp, body := e.do(t, http.MethodGet, "/v2/project2/app/manifests/v1", "", nil)
			code, _ := specError(t, body)
			return resp.StatusCode, code
		}, 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			status, code := tt.do()
			if status != tt.wantStatus || code != tt.wantCode {
				t.Errorf("%s: status %d code %q, want %d %q", tt.action, status, code, tt.wantStatus, tt.wantCode)
			}
		})
	}

	t.Run("catalog shows only the tenant's repositories", func(t *testing.T) {
		reg, _ := name.NewRegistry(e.host)
		repos, err := remote.Catalog(context.Background(), reg, p1...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(repos, []string{"project1/app"}) {
			t.Errorf("project1 sees %v", repos)
		}
		repos, err = remote.Catalog(context.Background(), reg, p2...)
		if err != nil || !slices.Equal(repos, []string{"project2/app"}) {
			t.Errorf("project2 sees %v, %v", repos, err)
		}
	})

	t.Run("mount from project2 is stripped", func(t *testing.T) {
		tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull,push", "repository:project2/app:pull")
		resp, _ := e.do(t, http.MethodPost, "/v2/project1/app/blobs/uploads/?mount="+layerDigest.String()+"&from=project2/app", tok, nil)
		if resp.StatusCode != http.StatusAccepted || !strings.Contains(resp.Header.Get("Location"), "/v2/project1/app/blobs/uploads/") {
			t.Fatalf("mount from another tenant: %s, Location %q; want 202 and a plain upload", resp.Status, resp.Header.Get("Location"))
		}
		if loc := resp.Header.Get("Location"); strings.Contains(loc, e.upstream.Host) {
			t.Errorf("the upstream's address leaks in Location %q", loc)
		}
		resp, _ = e.do(t, http.MethodHead, "/v2/project1/app/blobs/"+layerDigest.String(), tok, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the blob of project2 appeared in project1/app: HEAD %s", resp.Status)
		}
		// A mount without from is stripped too.
		resp, _ = e.do(t, http.MethodPost, "/v2/project1/app/blobs/uploads/?mount="+layerDigest.String(), tok, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("anonymous mount: %s", resp.Status)
		}
		found := false
		for _, l := range e.audit.lines() {
			if l["event"] == "mount" && l["decision"] == "deny" && l["from"] == "project2/app" && l["identity"] == "robot:p1-ci" {
				found = true
			}
		}
		if !found {
			t.Error("no audit line for the refused mount")
		}
	})

	t.Run("mount within the tenant works", func(t *testing.T) {
		img := randomImage(t)
		if err := remote.Write(e.ref(t, "project1/src:1"), img, p1...); err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		d, _ := ls[0].Digest()
		tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/dst:pull,push", "repository:project1/src:pull")
		resp, _ := e.do(t, http.MethodPost, "/v2/project1/dst/blobs/uploads/?mount="+d.String()+"&from=project1/src", tok, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("mount within the tenant: %s", resp.Status)
		}
		// Without the source's pull in the token, the client is challenged for it.
		tok = e.token(t, "p1-ci", "p1-secret", "repository:project1/dst:pull,push")
		resp, _ = e.do(t, http.MethodPost, "/v2/project1/dst/blobs/uploads/?mount="+d.String()+"&from=project1/src", tok, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "repository:project1/src:pull") {
			t.Fatalf("mount with a token lacking the source: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
	})

	// project2's image is untouched.
	got, err := remote.Image(victimRef, p2...)
	if err != nil || digestOf(t, got) != victimDigest {
		t.Fatalf("project2's image changed: %v", err)
	}
	denials := 0
	for _, l := range e.audit.lines() {
		if l["decision"] == "deny" && l["identity"] == "robot:p1-ci" && l["tenant"] == "project1" {
			denials++
		}
	}
	if denials < 10 {
		t.Errorf("only %d refusals of project1 in the audit log", denials)
	}
}

func TestImmutableTags(t *testing.T) {
	e := newEnv(t, envOptions{})
	release := randomImage(t)
	ref := e.ref(t, "project1/app:v1.0")
	if err := remote.Write(ref, release, p1...); err != nil {
		t.Fatalf("first push of v1.0: %v", err)
	}
	if err := remote.Write(ref, release, p1...); err != nil {
		t.Errorf("re-push of the identical image to v1.0 refused: %v", err)
	}
	err := remote.Write(ref, randomImage(t), p1...)
	if status, code := errorCode(err); status != 403 || code != "DENIED" || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("overwriting v1.0: %v", err)
	}
	// Mutable tags move freely.
	for i := 0; i < 2; i++ {
		if err := remote.Write(e.ref(t, "project1/app:latest"), randomImage(t), p1...); err != nil {
			t.Errorf("mutable tag push %d: %v", i, err)
		}
	}
	// The ?tag= form of a push by digest is checked too.
	other := randomImage(t)
	if err := remote.Write(e.ref(t, "project1/app:scratch"), other, p1...); err != nil {
		t.Fatal(err)
	}
	raw, _ := other.RawManifest()
	mt, _ := other.MediaType()
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull,push,delete")
	resp, body := e.do(t, http.MethodPut, "/v2/project1/app/manifests/"+digestOf(t, other).String()+"?tag=v1.0", tok, bytes.NewReader(raw), "Content-Type", string(mt))
	if resp.StatusCode != 403 {
		t.Errorf("push by digest with ?tag=v1.0: %s %s", resp.Status, body)
	}

	// Deletes: the tag, the manifest it holds, a layer of it.
	err = remote.Delete(ref, p1...)
	if status, code := errorCode(err); status != 403 || code != "DENIED" {
		t.Errorf("deleting tag v1.0: %v", err)
	}
	byDigest := e.ref(t, "project1/app@"+digestOf(t, release).String())
	err = remote.Delete(byDigest, p1...)
	if status, code := errorCode(err); status != 403 || code != "DENIED" || !strings.Contains(err.Error(), "v1.0") {
		t.Errorf("deleting the manifest of v1.0 by digest: %v", err)
	}
	layers, _ := release.Layers()
	ld, _ := layers[1].Digest()
	resp, body = e.do(t, http.MethodDelete, "/v2/project1/app/blobs/"+ld.String(), tok, nil)
	if code, msg := specError(t, body); resp.StatusCode != 403 || code != "DENIED" || !strings.Contains(msg, "layer") {
		t.Errorf("deleting a layer of v1.0: %s %s", resp.Status, body)
	}
	cfgName, _ := release.ConfigName()
	resp, body = e.do(t, http.MethodDelete, "/v2/project1/app/blobs/"+cfgName.String(), tok, nil)
	if resp.StatusCode != 403 {
		t.Errorf("deleting the config of v1.0: %s %s", resp.Status, body)
	}
	// A manifest no immutable tag holds can be deleted by digest.
	if err := remote.Delete(e.ref(t, "project1/app@"+digestOf(t, other).String()), p1...); err != nil {
		t.Errorf("deleting an unprotected manifest: %v", err)
	}
	// v1.0 still pulls as pushed.
	got, err := remote.Image(ref, p1...)
	if err != nil || digestOf(t, got) != digestOf(t, release) {
		t.Fatalf("v1.0 changed: %v", err)
	}

	t.Run("index children", func(t *testing.T) {
		idx, err := random.Index(512, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(e.ref(t, "project1/multi:release-1"), idx, p1...); err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		child := im.Manifests[0].Digest
		err = remote.Delete(e.ref(t, "project1/multi@"+child.String()), p1...)
		if status, _ := errorCode(err); status != 403 || !strings.Contains(err.Error(), "child manifest") {
			t.Errorf("deleting a platform manifest of release-1: %v", err)
		}
	})

	t.Run("concurrent first pushes", func(t *testing.T) {
		// Upload the blobs of several images, then race their manifests to
		// the same new immutable tag: exactly one may win.
		const n = 6
		var manifests [][]byte
		var types []string
		for i := 0; i < n; i++ {
			img := randomImage(t)
			if err := remote.Write(e.ref(t, fmt.Sprintf("project1/race:pre-%d", i)), img, p1...); err != nil {
				t.Fatal(err)
			}
			raw, _ := img.RawManifest()
			mt, _ := img.MediaType()
			manifests, types = append(manifests, raw), append(types, string(mt))
		}
		tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/race:pull,push")
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPut, "http://"+e.host+"/v2/project1/race/manifests/v2.0", bytes.NewReader(manifests[i]))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", types[i])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		won := 0
		for _, s := range statuses {
			switch s {
			case http.StatusCreated:
				won++
			case http.StatusForbidden:
			default:
				t.Errorf("unexpected status %d", s)
			}
		}
		if won != 1 {
			t.Errorf("%d pushes of the new immutable tag v2.0 won (statuses %v), want exactly 1", won, statuses)
		}
	})

	t.Run("audit", func(t *testing.T) {
		found := map[string]bool{}
		for _, l := range e.audit.lines() {
			if l["decision"] == "deny" && l["repository"] == "project1/app" && l["identity"] == "robot:p1-ci" {
				found[fmt.Sprint(l["event"])] = true
			}
		}
		if !found["push"] || !found["delete"] {
			t.Errorf("immutability refusals missing from the audit log: %v", found)
		}
	})
}

func TestManifestLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token(t, "p1-ci", "p1-secret", "repository:project1/app:pull,push")
	big := bytes.Repeat([]byte(" "), 4<<20+1)
	resp, body := e.do(t, http.MethodPut, "/v2/project1/app/manifests/big", tok, bytes.NewReader(big), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if code, _ := specError(t, body); resp.StatusCode != http.StatusRequestEntityTooLarge || code != "SIZE_INVALID" {
		t.Errorf("5 MiB manifest: %s %s", resp.Status, body)
	}
	// Without a Content-Length (chunked) the limit holds while reading.
	req, _ := http.NewRequest(http.MethodPut, "http://"+e.host+"/v2/project1/app/manifests/big", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.ContentLength = -1
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 5 MiB manifest: %s", r2.Status)
	}
	// A chunked manifest within the limit is forwarded (with its length).
	img := randomImage(t)
	if err := remote.Write(e.ref(t, "project1/app:blobs"), img, p1...); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, _ = http.NewRequest(http.MethodPut, "http://"+e.host+"/v2/project1/app/manifests/chunked", io.MultiReader(bytes.NewReader(raw)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", string(mt))
	req.ContentLength = -1
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusCreated || r3.Header.Get("Docker-Content-Digest") != digestOf(t, img).String() {
		t.Errorf("chunked manifest push: %s %q", r3.Status, r3.Header.Get("Docker-Content-Digest"))
	}
	resp, body = e.do(t, http.MethodPut, "/v2/project1/app/manifests/bad", tok, strings.NewReader("{not json"), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("invalid manifest: %s %s", resp.Status, body)
	}
	for path, want := range map[string]string{
		"/v2/project1/app/manifests/-bad":                        "TAG_INVALID",
		"/v2/project1/app/manifests/sha256:abc":                  "DIGEST_INVALID",
		"/v2/project1/app/blobs/notadigest":                      "DIGEST_INVALID",
		"/v2/project1/App/manifests/latest":                      "NAME_INVALID",
		"/v2/project1/app/blobs/uploads/..%2Fx":                  "NAME_INVALID",
		"/v2/project1/app/manifests/" + strings.Repeat("a", 129): "TAG_INVALID",
	} {
		resp, body := e.do(t, http.MethodGet, path, tok, nil)
		if code, _ := specError(t, body); resp.StatusCode != http.StatusBadRequest || code != want {
			t.Errorf("GET %s: %s %s, want 400 %s", path, resp.Status, body, want)
		}
	}
	resp, body = e.do(t, http.MethodGet, "/not-registry", tok, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %s %s", resp.Status, body)
	}
	resp, _ = e.do(t, http.MethodPost, "/v2/project1/app/manifests/latest", tok, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST on a manifest: %s", resp.Status)
	}
}
