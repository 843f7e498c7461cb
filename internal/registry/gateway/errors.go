package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantguard/tenantguard/internal/registry/scope"
)

// Error codes of the distribution specification.
const (
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeDenied            = "DENIED"
	CodeNameInvalid       = "NAME_INVALID"
	CodeNameUnknown       = "NAME_UNKNOWN"
	CodeManifestInvalid   = "MANIFEST_INVALID"
	CodeTagInvalid        = "TAG_INVALID"
	CodeDigestInvalid     = "DIGEST_INVALID"
	CodeSizeInvalid       = "SIZE_INVALID"
	CodeUnsupported       = "UNSUPPORTED"
	CodeUnavailable       = "UNAVAILABLE"
	CodeUnknown           = "UNKNOWN"
	CodeBlobUploadInvalid = "BLOB_UPLOAD_INVALID"
)

// Error is a distribution-spec error with its HTTP status. It writes itself
// as {"errors":[{"code":...,"message":...,"detail":...}]}.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  any
	// cause is for the logs only: it may name the upstream's address,
	// which clients are never told.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.cause }

// WriteHTTP writes the error response.
func (e *Error) WriteHTTP(w http.ResponseWriter, r *http.Request) {
	writeErrorBody(w, r, e.Status, e.Code, e.Message, e.Detail)
}

func writeErrorBody(w http.ResponseWriter, r *http.Request, status int, code, message string, detail any) {
	body, _ := json.Marshal(errorsBody{Errors: []errorEntry{{Code: code, Message: message, Detail: detail}}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

type errorsBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// upstreamAnswer is an upstream failure whose message is safe to show a
// client: the gateway wrote it (a status the upstream answered, a limit),
// and it names no address.
type upstreamAnswer struct{ msg string }

func (e *upstreamAnswer) Error() string { return e.msg }

func answered(format string, args ...any) error {
	return &upstreamAnswer{msg: fmt.Sprintf(format, args...)}
}

// upstreamFailed is the 502 for a check the gateway could not make at the
// upstream. The client is told what could not be checked and, for an
// upstreamAnswer, what the upstream said; any other cause (a transport
// error, which names the upstream's URL and address) goes only to the logs.
func (g *Gateway) upstreamFailed(r *http.Request, what string, err error) *Error {
	g.cfg.Log.Warn("upstream request failed", "method", r.Method, "path", r.URL.Path, "check", what, "error", err)
	msg := "the upstream registry did not answer"
	var a *upstreamAnswer
	if errors.As(err, &a) {
		msg = a.msg
	}
	return &Error{Status: http.StatusBadGateway, Code: CodeUnavailable, Message: what + ": " + msg, cause: err}
}

// Denied is a refusal by policy: 403 DENIED, with the access that was
// refused, so the caller can tell which of several accesses failed.
type Denied struct {
	Access  scope.Scope
	Message string
}

func (d *Denied) Error() string { return "denied: " + d.Message }

// WriteHTTP writes 403 DENIED.
func (d *Denied) WriteHTTP(w http.ResponseWriter, r *http.Request) {
	writeErrorBody(w, r, http.StatusForbidden, CodeDenied, d.Message, accessDetail([]scope.Scope{d.Access}))
}

// Reasons a challenge is issued, as the error parameter of RFC 6750.
var (
	ErrTokenRequired     = errors.New("authentication required")
	ErrInvalidToken      = errors.New("invalid token")
	ErrInsufficientScope = errors.New("insufficient scope")
)

// Challenge is a 401 response that tells the client where to get a token
// and for which scopes: WWW-Authenticate: Bearer realm=...,service=...,
// scope=...[,error=...]. It is an error that writes itself, as Distribution's
// auth.Challenge.
type Challenge struct {
	Realm   string
	Service string
	Scopes  []scope.Scope
	// Err is ErrTokenRequired, ErrInsufficientScope, or wraps ErrInvalidToken
	// with the reason.
	Err error
}

func (c *Challenge) Error() string { return c.Err.Error() }

func (c *Challenge) Unwrap() error { return c.Err }

// Header is the WWW-Authenticate value.
func (c *Challenge) Header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q,service=%q", c.Realm, c.Service)
	if len(c.Scopes) > 0 {
		fmt.Fprintf(&b, ",scope=%q", scope.Format(c.Scopes))
	}
	switch {
	case errors.Is(c.Err, ErrInvalidToken):
		b.WriteString(`,error="invalid_token"`)
	case errors.Is(c.Err, ErrInsufficientScope):
		b.WriteString(`,error="insufficient_scope"`)
	}
	return b.String()
}

// WriteHTTP writes 401 UNAUTHORIZED with the challenge.
func (c *Challenge) WriteHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", c.Header())
	var detail any
	if len(c.Scopes) > 0 {
		detail = accessDetail(c.Scopes)
	}
	writeErrorBody(w, r, http.StatusUnauthorized, CodeUnauthorized, c.Err.Error(), detail)
}

// accessDetail is the detail Distribution gives: [{Type, Name, Action}].
func accessDetail(scopes []scope.Scope) any {
	type access struct{ Type, Class, Name, Action string }
	var out []access
	for _, s := range scopes {
		for _, a := range s.Actions {
			out = append(out, access{Type: s.Type, Class: s.Class, Name: s.Name, Action: a})
		}
	}
	return out
}

// httpError is an error that writes itself.
type httpError interface {
	error
	WriteHTTP(http.ResponseWriter, *http.Request)
}

// writeError writes any error: errors that know their response write it;
// anything else is a 500 without internals.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he httpError
	if errors.As(err, &he) {
		he.WriteHTTP(w, r)
		return
	}
	writeErrorBody(w, r, http.StatusInternalServerError, CodeUnknown, "internal error in the registry gateway", nil)
}
