package policy

import (
	"fmt"
	"strings"
	"sync"

	"github.com/distribution/reference"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// podSpecOf returns the pod spec of a Pod or of a workload's pod template,
// with the path of that spec in the object, so that a tenant learns about a
// foreign image at `kubectl apply` of the Deployment, not from a ReplicaSet
// that silently fails to create pods.
func podSpecOf(obj runtime.Object) (*corev1.PodSpec, string, bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.Spec, "spec", true
	case *corev1.PodTemplate:
		return &o.Template.Spec, "template.spec", true
	case *corev1.ReplicationController:
		if o.Spec.Template == nil {
			return nil, "", false
		}
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *appsv1.ReplicaSet:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *batchv1.Job:
		return &o.Spec.Template.Spec, "spec.template.spec", true
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec", true
	}
	return nil, "", false
}

// imageRef is one image named in a pod spec.
type imageRef struct {
	field string
	image string
}

// imagesOf lists every image a pod spec runs or mounts: containers,
// initContainers, ephemeralContainers and image volumes.
func imagesOf(spec *corev1.PodSpec, path string) []imageRef {
	var out []imageRef
	for i, c := range spec.InitContainers {
		out = append(out, imageRef{fmt.Sprintf("%s.initContainers[%d].image", path, i), c.Image})
	}
	for i, c := range spec.Containers {
		out = append(out, imageRef{fmt.Sprintf("%s.containers[%d].image", path, i), c.Image})
	}
	for i, c := range spec.EphemeralContainers {
		out = append(out, imageRef{fmt.Sprintf("%s.ephemeralContainers[%d].image", path, i), c.Image})
	}
	for i, v := range spec.Volumes {
		if v.Image != nil {
			out = append(out, imageRef{fmt.Sprintf("%s.volumes[%d].image.reference", path, i), v.Image.Reference})
		}
	}
	return out
}

// checkImages refuses images outside the tenant's repositories, and images
// not pinned by digest in the namespaces that require it. References are
// normalised first (nginx is docker.io/library/nginx), and the repository
// patterns match only at "/" boundaries.
func (e *Engine) checkImages(spec *corev1.PodSpec, path, namespace string, t *Tenant) []Violation {
	var out []Violation
	for _, img := range imagesOf(spec, path) {
		v := Violation{Rule: RuleImage, Field: img.field, Value: img.image}
		ref := e.refs.parse(img.image)
		if ref.err != nil {
			v.Message = fmt.Sprintf("%q is not a valid image reference: %v", img.image, ref.err)
			v.Instead = "write the image as registry/repository:tag or registry/repository@sha256:digest."
			out = append(out, v)
			continue
		}
		repo := ref.repository
		if !t.allowsImage(repo) && ref.port != "" && t.allowsImage(ref.withoutPort) {
			// The registry is compared as written, port included: a runtime
			// treats host:port as another registry, with its own credentials.
			v.Message = fmt.Sprintf("image %q names the registry with port %s, and tenant %q may run %s only without a port (%s); the registry is compared as written, port included",
				img.image, ref.port, t.Name, ref.withoutPort, t.imagesText())
			v.Instead = fmt.Sprintf("write the image without the port (%s), or ask the platform team to add %s to spec.images.allowedRepositories.", strings.Replace(img.image, ref.port, "", 1), repo)
			out = append(out, v)
			continue
		}
		if !t.allowsImage(repo) {
			v.Message = fmt.Sprintf("image %q (repository %s) is not in the repositories tenant %q may run (%s)",
				img.image, repo, t.Name, t.imagesText())
			v.Instead = "push the image to one of your repositories and use that reference, or ask the platform team to add the repository to spec.images.allowedRepositories."
			out = append(out, v)
			continue
		}
		if t.requireDigest[namespace] && !ref.digested {
			out = append(out, Violation{
				Rule: RuleImageDigest, Field: img.field, Value: img.image,
				Message: fmt.Sprintf("namespace %q requires images pinned by digest, and %q names a tag, which can move", namespace, img.image),
				Instead: fmt.Sprintf("use %s@sha256:<digest> (crane digest %s prints it).", repo, ref.familiar),
			})
		}
	}
	return out
}

func (t *Tenant) allowsImage(repo string) bool {
	for _, p := range t.images {
		if p.Match(repo) {
			return true
		}
	}
	return false
}

func (t *Tenant) imagesText() string {
	if len(t.images) == 0 {
		return "none"
	}
	s := make([]string, len(t.images))
	for i, p := range t.images {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// parsedRef is an image reference, normalised.
type parsedRef struct {
	repository string // docker.io/library/nginx
	familiar   string // nginx:1.27
	digested   bool
	// port of the registry (":443"), and the repository without it.
	port, withoutPort string
	err               error
}

// refCache remembers parsed references: pods name the same few images
// over and over, and parsing is most of the cost of a decision. It holds
// at most refCacheSize entries and starts over when full.
type refCache struct {
	mu sync.RWMutex
	m  map[string]parsedRef
}

const refCacheSize = 4096

func (c *refCache) parse(image string) parsedRef {
	c.mu.RLock()
	r, ok := c.m[image]
	c.mu.RUnlock()
	if ok {
		return r
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		r = parsedRef{err: err}
	} else {
		_, digested := named.(reference.Digested)
		r = parsedRef{repository: named.Name(), familiar: reference.FamiliarString(named), digested: digested}
		domain := reference.Domain(named)
		if i := strings.LastIndex(domain, ":"); i >= 0 && !strings.Contains(domain[i:], "]") { // not inside [IPv6]
			r.port, r.withoutPort = domain[i:], domain[:i]+"/"+reference.Path(named)
		}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= refCacheSize {
		c.m = make(map[string]parsedRef, 64)
	}
	c.m[image] = r
	c.mu.Unlock()
	return r
}
