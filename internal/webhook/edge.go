package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// EdgeLimits bound what a caller can make the webhook do. Zero values take
// the defaults.
type EdgeLimits struct {
	// MaxBodyBytes is the largest AdmissionReview accepted (default 3 MiB,
	// the API server's own limit on a request body).
	MaxBodyBytes int64
	// MaxInFlight is the number of reviews decided at once (default 32).
	MaxInFlight int
	// InFlightBytes bounds the bodies held at once, so that memory stays
	// under the Deployment's limit whatever is posted (default 24 MiB; a
	// review costs several times its size once decoded).
	InFlightBytes int64
}

// Edge defaults.
const (
	DefaultMaxBodyBytes  = 3 << 20
	DefaultMaxInFlight   = 32
	DefaultInFlightBytes = 24 << 20
)

// Edge is the HTTP edge in front of the admission webhook. Whatever
// happens, the API server gets an AdmissionReview back, never an HTTP
// error: with failurePolicy Ignore an error would admit the object
// unguarded. A decision that cannot finish in time is refused with a retry
// message before the API server gives up. And only the API server can make
// the guard write: a review without a uid, an oversized body, or one more
// request than the guard holds in flight never reaches the claimer.
type Edge struct {
	// Next decides a review (an admission.Webhook).
	Next http.Handler
	// Limits bound body size and concurrency.
	Limits EdgeLimits
	// Timeout caps the time to answer. The API server sends its own
	// deadline (the webhook's timeoutSeconds) with each call; the edge
	// answers a margin before the earlier of the two.
	Timeout time.Duration
	Metrics *Metrics

	once  sync.Once
	slots chan struct{}
	bytes chan struct{} // one token per KiB
}

const kib = 1 << 10

// init sets the defaults and the bounds once, whichever request comes
// first (an Edge may be built as a literal).
func (e *Edge) init() { e.once.Do(e.setUp) }

func (e *Edge) setUp() {
	l := &e.Limits
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.InFlightBytes <= 0 {
		l.InFlightBytes = DefaultInFlightBytes
	}
	if l.InFlightBytes < l.MaxBodyBytes {
		l.InFlightBytes = l.MaxBodyBytes
	}
	e.slots = make(chan struct{}, l.MaxInFlight)
	e.bytes = make(chan struct{}, l.InFlightBytes/kib)
}

// NewEdge returns an edge in front of next.
func NewEdge(next http.Handler, limits EdgeLimits, timeout time.Duration, m *Metrics) *Edge {
	e := &Edge{Next: next, Limits: limits, Timeout: timeout, Metrics: m}
	e.init()
	return e
}

func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.init()
	start := time.Now()
	deadline := start.Add(e.budget(r))
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	if r.Method != http.MethodPost {
		e.refuseHTTP(w, http.StatusMethodNotAllowed, "only POST of an AdmissionReview", "method")
		return
	}
	if r.ContentLength > e.Limits.MaxBodyBytes {
		e.refuseHTTP(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("an AdmissionReview is at most %d bytes", e.Limits.MaxBodyBytes), "too_large")
		return
	}
	// Hold the body's size in the byte budget from reading it until the
	// answer, so that the memory of all reviews in flight is bounded.
	size := e.Limits.MaxBodyBytes
	if r.ContentLength > 0 {
		size = r.ContentLength
	}
	release, ok := e.acquireBytes(ctx, size)
	if !ok {
		// No body read yet, so no uid to answer with: this only happens
		// under a flood that is not the API server's.
		e.refuseHTTP(w, http.StatusTooManyRequests, "too many reviews in flight; retry", "busy")
		return
	}
	// The budget is released when the decision ends, which may be after
	// the answer (a decision that timed out still winds down).
	held := true
	defer func() {
		if held {
			release()
		}
	}()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.Limits.MaxBodyBytes))
	if err != nil {
		e.refuseHTTP(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("unreadable body, or over %d bytes", e.Limits.MaxBodyBytes), "too_large")
		return
	}
	review := peekReview(body)
	if review.uid == "" {
		// The API server always sends a uid and checks it in the answer;
		// without one this is not the API server.
		e.refuse(w, review, http.StatusBadRequest, "tenantguard answers only the API server: the AdmissionReview has no request.uid", "no_uid")
		return
	}

	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		e.refuse(w, review, http.StatusTooManyRequests, "tenantguard is busy deciding other requests; retry", "busy")
		return
	}

	// Decide in a goroutine, with a deadline a little before the answer's,
	// so that a claim it made is withdrawn before the answer when possible.
	inner, innerCancel := context.WithDeadline(ctx, deadline.Add(-innerMargin(deadline.Sub(start))))
	defer innerCancel()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	req := r.Clone(inner)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	held = false
	go func() {
		defer func() {
			<-e.slots
			release()
			close(done)
		}()
		e.Next.ServeHTTP(rec, req)
	}()
	select {
	case <-done:
		switch {
		case rec.Code == http.StatusOK && rec.Body.Len() > 0:
			copyResponse(w, rec)
		case inner.Err() != nil:
			e.refuse(w, review, http.StatusGatewayTimeout, "tenantguard timed out deciding this request; retry", "timeout")
		default:
			// The webhook answered with an HTTP error: turn it into a
			// refusal.
			log.FromContext(r.Context()).Info("webhook answered with an HTTP error; refusing", "status", rec.Code, "body", rec.Body.String())
			e.refuse(w, review, http.StatusInternalServerError, "tenantguard could not decide this request; retry", "error")
		}
	case <-ctx.Done():
		e.refuse(w, review, http.StatusGatewayTimeout, "tenantguard timed out deciding this request; retry", "timeout")
	}
}

// budget is the time the edge has to answer: a margin before the API
// server's deadline (the timeout query parameter it adds to every webhook
// call), and never more than Timeout.
func (e *Edge) budget(r *http.Request) time.Duration {
	limit := e.Timeout
	if limit <= 0 {
		limit = 8 * time.Second
	}
	if t, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && t > 0 {
		margin := max(t/5, 500*time.Millisecond)
		if t-margin < limit {
			limit = max(t-margin, t/2)
		}
	}
	return limit
}

// innerMargin is how long before the answer the decision must end, to
// leave time to withdraw its claims.
func innerMargin(budget time.Duration) time.Duration {
	return min(budget/8, 500*time.Millisecond)
}

func (e *Edge) acquireBytes(ctx context.Context, n int64) (func(), bool) {
	tokens := int((n + kib - 1) / kib)
	got := 0
	for ; got < tokens; got++ {
		select {
		case e.bytes <- struct{}{}:
		case <-ctx.Done():
			for range got {
				<-e.bytes
			}
			return nil, false
		}
	}
	return func() {
		for range tokens {
			<-e.bytes
		}
	}, true
}

// reviewHeader is what the edge reads of a review before deciding.
type reviewHeader struct {
	apiVersion string
	uid        types.UID
}

// peekReview reads a review's apiVersion and request.uid. It stops as soon
// as it has both, which the API server writes before the object, so the
// edge does not parse the whole body a second time (the webhook decodes it
// in full next). A body it cannot read gives an empty header.
func peekReview(body []byte) reviewHeader {
	var h reviewHeader
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return reviewHeader{}
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return reviewHeader{}
		}
		switch key {
		case "apiVersion":
			if dec.Decode(&h.apiVersion) != nil {
				return reviewHeader{}
			}
		case "request":
			open, ok := peekUID(dec, &h.uid)
			if !ok {
				return reviewHeader{}
			}
			if h.apiVersion != "" && h.uid != "" {
				return h
			}
			if open && !skipRest(dec, 1) {
				return reviewHeader{}
			}
		default:
			if !skipValue(dec) {
				return reviewHeader{}
			}
		}
		if h.apiVersion != "" && h.uid != "" {
			return h
		}
	}
	return h
}

// peekUID reads the uid of the request object that dec is at. It returns
// as soon as it has it, with open set: the rest of the object is not read.
func peekUID(dec *json.Decoder, uid *types.UID) (open, ok bool) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false, false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false, false
		}
		if key == "uid" {
			return true, dec.Decode(uid) == nil
		}
		if !skipValue(dec) {
			return false, false
		}
	}
	_, err := dec.Token() // the closing brace
	return false, err == nil
}

// skipValue consumes one whole value.
func skipValue(dec *json.Decoder) bool {
	t, err := dec.Token()
	if err != nil {
		return false
	}
	if d, ok := t.(json.Delim); ok && (d == '{' || d == '[') {
		return skipRest(dec, 1)
	}
	return true
}

// skipRest consumes tokens until depth open objects or arrays are closed.
func skipRest(dec *json.Decoder, depth int) bool {
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return true
}

// refuse answers with an AdmissionReview that refuses the request.
func (e *Edge) refuse(w http.ResponseWriter, h reviewHeader, code int32, message, reason string) {
	e.Metrics.recordEdgeRefusal(reason)
	apiVersion := h.apiVersion
	if apiVersion != "admission.k8s.io/v1beta1" {
		apiVersion = admissionv1.SchemeGroupVersion.String()
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{
			UID: h.uid, Allowed: false,
			Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: message},
		},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// refuseHTTP answers a caller that sent no readable review. The API server
// never does; anything else gets a plain status.
func (e *Edge) refuseHTTP(w http.ResponseWriter, code int, message, reason string) {
	e.Metrics.recordEdgeRefusal(reason)
	http.Error(w, message, code)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
