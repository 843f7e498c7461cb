package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// review is a minimal AdmissionReview body with the given uid.
func review(uid string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","kind":{"group":"","version":"v1","kind":"Service"},"operation":"CREATE","namespace":"p1","object":{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}}}`)
}

// answer decodes an AdmissionReview answer, failing the test if it is not
// one.
func answer(t *testing.T, rec *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d (%s), want 200 with an AdmissionReview", rec.Code, rec.Body.String())
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview: %v: %s", err, rec.Body.String())
	}
	return out.Response
}

// counting is a next handler that counts its calls and answers allowed,
// or blocks until the request's context ends when block is set.
type counting struct {
	calls atomic.Int32
	block bool
	// hold, if set, blocks every call until it is closed.
	hold chan struct{}
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.calls.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	if c.block {
		<-r.Context().Done()
		return // writes nothing: the edge must answer on its own
	}
	var in admissionv1.AdmissionReview
	_ = json.NewDecoder(r.Body).Decode(&in)
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: in.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: in.Request.UID, Allowed: true}})
}

func post(e *Edge, body []byte, query string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/validate"+query, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestEdgePassesReviewsThrough(t *testing.T) {
	next := &counting{}
	e := NewEdge(next, EdgeLimits{}, time.Second, nil)
	resp := answer(t, post(e, review("u1"), "?timeout=10s"))
	if !resp.Allowed || resp.UID != "u1" || next.calls.Load() != 1 {
		t.Fatalf("allowed=%v uid=%q calls=%d", resp.Allowed, resp.UID, next.calls.Load())
	}
}

func TestEdgeRefusesReviewsWithoutUID(t *testing.T) {
	next := &counting{}
	e := NewEdge(next, EdgeLimits{}, time.Second, nil)
	for _, body := range [][]byte{review(""), []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), []byte(`not json`)} {
		resp := answer(t, post(e, body, ""))
		if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "uid") {
			t.Errorf("body %.40q: answer %+v, want a refusal naming the missing uid", body, resp)
		}
	}
	if n := next.calls.Load(); n != 0 {
		t.Fatalf("a review without uid reached the webhook %d times", n)
	}
}

func TestEdgeRefusesOversizedBodies(t *testing.T) {
	next := &counting{}
	e := NewEdge(next, EdgeLimits{MaxBodyBytes: 1 << 10}, time.Second, nil)
	big := review(strings.Repeat("x", 2<<10))
	rec := post(e, big, "")
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP %d, want 413", rec.Code)
	}
	// The same without a Content-Length: the reader stops at the limit.
	req := httptest.NewRequest(http.MethodPost, "/validate", struct{ *bytes.Reader }{bytes.NewReader(big)})
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: HTTP %d, want 413", rec.Code)
	}
	if next.calls.Load() != 0 {
		t.Fatal("an oversized review reached the webhook")
	}
}

func TestEdgeAnswersAReviewWhenTheDecisionTimesOut(t *testing.T) {
	next := &counting{block: true}
	e := NewEdge(next, EdgeLimits{}, 200*time.Millisecond, nil)
	resp := answer(t, post(e, review("u2"), ""))
	if resp.Allowed || resp.UID != "u2" || !strings.Contains(resp.Result.Message, "timed out") || !strings.Contains(resp.Result.Message, "retry") {
		t.Fatalf("answer %+v, want a refusal with the uid and a retry message", resp)
	}
}

func TestEdgeRefusesWhenBusy(t *testing.T) {
	next := &counting{hold: make(chan struct{})}
	e := NewEdge(next, EdgeLimits{MaxInFlight: 1}, 300*time.Millisecond, nil)
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- post(e, review("held"), "") }()
	for next.calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	resp := answer(t, post(e, review("u3"), ""))
	if resp.Allowed || resp.UID != "u3" || !strings.Contains(resp.Result.Message, "busy") {
		t.Fatalf("answer %+v, want a busy refusal with the uid", resp)
	}
	close(next.hold)
	answer(t, <-first)
	if n := next.calls.Load(); n != 1 {
		t.Fatalf("webhook called %d times, want 1 (the second request waited and was refused)", n)
	}
}

func TestEdgeBudgetComesBeforeTheAPIServersDeadline(t *testing.T) {
	e := NewEdge(&counting{}, EdgeLimits{}, 8*time.Second, nil)
	for _, c := range []struct {
		query string
		want  time.Duration
	}{
		{"", 8 * time.Second},
		{"?timeout=10s", 8 * time.Second},
		{"?timeout=30s", 8 * time.Second}, // capped by Timeout
		{"?timeout=5s", 4 * time.Second},
		{"?timeout=1s", 500 * time.Millisecond},
		{"?timeout=soon", 8 * time.Second},
	} {
		req := httptest.NewRequest(http.MethodPost, "/validate"+c.query, nil)
		if got := e.budget(req); got != c.want {
			t.Errorf("budget(%q) = %v, want %v", c.query, got, c.want)
		}
	}
}

// TestEdgeBuiltAsALiteralServesConcurrently: the first requests of an Edge
// built without NewEdge arrive together; its set-up must happen once.
func TestEdgeBuiltAsALiteralServesConcurrently(t *testing.T) {
	e := &Edge{Next: &counting{}, Timeout: time.Second}
	done := make(chan *httptest.ResponseRecorder)
	for i := range 8 {
		go func() { done <- post(e, review(fmt.Sprint("u", i)), "") }()
	}
	for range 8 {
		if resp := answer(t, <-done); !resp.Allowed {
			t.Fatalf("refused: %+v", resp)
		}
	}
}
