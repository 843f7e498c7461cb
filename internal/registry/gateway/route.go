package gateway

import (
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// kind is an endpoint of the distribution API.
type kind int

const (
	kindBase        kind = iota // /v2/
	kindCatalog                 // /v2/_catalog
	kindTags                    // /v2/<name>/tags/list
	kindManifest                // /v2/<name>/manifests/<reference>
	kindBlob                    // /v2/<name>/blobs/<digest>
	kindUploadStart             // /v2/<name>/blobs/uploads/
	kindUpload                  // /v2/<name>/blobs/uploads/<id>
	kindReferrers               // /v2/<name>/referrers/<digest>
)

func (k kind) String() string {
	return [...]string{"base", "catalog", "tags", "manifest", "blob", "upload", "upload", "referrers"}[k]
}

// route is a parsed request path.
type route struct {
	kind kind
	name string
	// reference is the tag or digest of a manifest, the digest of a blob or
	// of a referrers subject, or the id of an upload.
	reference string
}

// isDigest reports whether the reference is a digest, not a tag (a tag
// never holds a colon).
func (rt route) isDigest() bool { return strings.Contains(rt.reference, ":") }

const maxUploadIDLength = 512

// parseRoute parses the request path. The path is taken exactly as sent:
// any percent-encoding is refused (no valid name, tag, digest or upload id
// needs one, and decoding is how %2F would become a path separator), the
// name must pass the distribution-spec grammar, a manifest reference must
// be a tag or a digest, and a blob or referrers reference a digest.
func parseRoute(r *http.Request) (route, error) {
	p := r.URL.EscapedPath()
	if p != r.URL.Path || strings.Contains(r.URL.RawPath, "%") {
		return route{}, newError(http.StatusBadRequest, CodeNameInvalid, "percent-encoded characters are not allowed in registry paths")
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		if p == "/v2" {
			return route{kind: kindBase}, nil
		}
		return route{}, newError(http.StatusNotFound, CodeUnsupported, "not a registry API path; registry paths start with /v2/")
	}
	if rest == "" {
		return route{kind: kindBase}, nil
	}
	if rest == "_catalog" {
		return route{kind: kindCatalog}, nil
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	var rt route
	var nameEnd int
	switch {
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		nameEnd = n - 3
		if segs[n-1] == "" {
			rt.kind = kindUploadStart
		} else {
			rt.kind, rt.reference = kindUpload, segs[n-1]
			if !validUploadID(rt.reference) {
				return route{}, newError(http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload id %q is not valid", rt.reference)
			}
		}
	case n >= 3 && segs[n-2] == "blobs":
		rt.kind, rt.reference, nameEnd = kindBlob, segs[n-1], n-2
	case n >= 3 && segs[n-2] == "manifests":
		rt.kind, rt.reference, nameEnd = kindManifest, segs[n-1], n-2
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt.kind, nameEnd = kindTags, n-2
	case n >= 3 && segs[n-2] == "referrers":
		rt.kind, rt.reference, nameEnd = kindReferrers, segs[n-1], n-2
	default:
		return route{}, newError(http.StatusNotFound, CodeUnsupported, "unknown registry API path")
	}
	rt.name = strings.Join(segs[:nameEnd], "/")
	if err := scope.ValidateRepository(rt.name); err != nil {
		return route{}, &Error{Status: http.StatusBadRequest, Code: CodeNameInvalid, Message: err.Error(), Detail: map[string]string{"name": rt.name}}
	}
	switch rt.kind {
	case kindManifest:
		if rt.isDigest() {
			if _, err := digest.Parse(rt.reference); err != nil {
				return route{}, newError(http.StatusBadRequest, CodeDigestInvalid, "manifest reference %q is not a valid digest: %v", rt.reference, err)
			}
		} else if !validTag(rt.reference) {
			return route{}, newError(http.StatusBadRequest, CodeTagInvalid, "manifest reference %q is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", rt.reference)
		}
	case kindBlob, kindReferrers:
		if _, err := digest.Parse(rt.reference); err != nil {
			return route{}, newError(http.StatusBadRequest, CodeDigestInvalid, "%q is not a valid digest: %v", rt.reference, err)
		}
	}
	return rt, nil
}

// validTag is the distribution-spec tag grammar.
func validTag(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		word := c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		if !(word || (i > 0 && (c == '.' || c == '-'))) {
			return false
		}
	}
	return true
}

// validUploadID allows the characters upload ids are made of in practice
// (UUIDs, base64url state) and nothing that could change the path.
func validUploadID(s string) bool {
	if s == "" || len(s) > maxUploadIDLength || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || c == '=' || c == '~' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}
