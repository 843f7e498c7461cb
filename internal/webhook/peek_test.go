package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func TestPeekReview(t *testing.T) {
	object := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"uid":"not-this"}},"spec":{"containers":[{"name":"a","image":"b"}]}}`
	cases := []struct {
		name, body string
		want       reviewHeader
	}{
		{"the API server's order", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"object":` + object + `}}`,
			reviewHeader{apiVersion: "admission.k8s.io/v1", uid: "u1"}},
		{"uid after the object", `{"apiVersion":"admission.k8s.io/v1","request":{"object":` + object + `,"uid":"u2"}}`,
			reviewHeader{apiVersion: "admission.k8s.io/v1", uid: "u2"}},
		{"apiVersion last", `{"request":{"uid":"u3","object":` + object + `},"apiVersion":"admission.k8s.io/v1beta1"}`,
			reviewHeader{apiVersion: "admission.k8s.io/v1beta1", uid: "u3"}},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","response":{"uid":"u4"}}`, reviewHeader{apiVersion: "admission.k8s.io/v1"}},
		{"null request", `{"apiVersion":"admission.k8s.io/v1","request":null}`, reviewHeader{}},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","request":{"object":` + object + `}}`, reviewHeader{apiVersion: "admission.k8s.io/v1"}},
		{"uid not a string", `{"apiVersion":"admission.k8s.io/v1","request":{"uid":7}}`, reviewHeader{}},
		{"not an object", `["request"]`, reviewHeader{}},
		{"truncated before the uid", `{"apiVersion":"admission.k8s.io/v1","request":{"kind":{"gr`, reviewHeader{}},
		{"empty", ``, reviewHeader{}},
	}
	for _, c := range cases {
		if got := peekReview([]byte(c.body)); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// FuzzPeekReview: the peek never panics, and on a review as the API server
// writes it, it reads what a full decode reads.
func FuzzPeekReview(f *testing.F) {
	f.Add("u1", "admission.k8s.io/v1", `{"kind":"Pod","metadata":{"name":"p"}}`, []byte(`{"apiVersion":"x","request":{"uid":"u"}}`))
	f.Add("", "", `{}`, []byte(`{"request":{"object":{"uid":[{"uid":"x"}]},"uid":"y"}}`))
	f.Add("a\"b", "v1\\", `{"a":[1,2,{"b":null}]}`, []byte(`{{{`))
	f.Fuzz(func(t *testing.T, uid, apiVersion, object string, raw []byte) {
		_ = peekReview(raw)
		if !json.Valid([]byte(object)) || !strings.HasPrefix(strings.TrimSpace(object), "{") {
			return
		}
		review := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{Kind: "AdmissionReview", APIVersion: apiVersion},
			Request:  &admissionv1.AdmissionRequest{UID: types.UID(uid), Object: runtime.RawExtension{Raw: []byte(object)}},
		}
		body, err := json.Marshal(review)
		if err != nil {
			return
		}
		var full admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &full); err != nil {
			t.Fatalf("the review does not decode: %v", err)
		}
		want := reviewHeader{apiVersion: full.APIVersion, uid: full.Request.UID}
		if got := peekReview(body); got != want {
			t.Fatalf("peek %+v, full decode %+v, body %s", got, want, body)
		}
	})
}

// BenchmarkPeekReview: the edge's look at a review costs the same whatever
// the size of the object in it.
func BenchmarkPeekReview(b *testing.B) {
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"t1"},"spec":{"containers":[` +
		strings.Repeat(`{"name":"a","image":"registry.example.com/project1/app:v1"},`, 4) + `{"name":"z","image":"b"}]}}`
	review := func(object string) []byte {
		return []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"0d4c8a4e-0000-4000-8000-000000000001",` +
			`"kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"t1","operation":"CREATE","object":` + object + `}}`)
	}
	big := strings.Replace(pod, `"namespace":"t1"`, `"namespace":"t1","annotations":{"x":"`+strings.Repeat("y", 1<<20)+`"}`, 1)
	for name, body := range map[string][]byte{"pod": review(pod), "1MiB": review(big)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if peekReview(body).uid == "" {
					b.Fatal("no uid")
				}
			}
		})
	}
}
