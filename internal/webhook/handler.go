// Package webhook is the admission edge of tenantguard: it decodes
// AdmissionReviews, asks the policy engine, claims new hosts in the API
// server, and encodes the answer. No rule lives here.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
	"github.com/tenantguard/tenantguard/internal/kinds"
	"github.com/tenantguard/tenantguard/internal/policy"
	"github.com/tenantguard/tenantguard/internal/tenancy"
)

// Handler answers validating admission requests.
type Handler struct {
	Engine *policy.Engine
	// View is kept up to date from informers.
	View *policy.Snapshot
	// Claimer records new hosts; it must read from the API server.
	Claimer *hosts.Claimer
	// Namespaces reads a namespace the view does not know yet (created a
	// moment ago, ahead of the informer), so that its tenant label is never
	// missed. It must read from the API server.
	Namespaces client.Reader
	// WaitReady blocks until View reflects the cluster (informers synced),
	// or ctx ends.
	WaitReady func(ctx context.Context) error
	Metrics   *Metrics
	// Recorder, if set, records every refusal as an Event on the tenant
	// (or, for a namespace of no tenant, on the namespace). Repeats of one
	// refusal are aggregated by the events API into one series.
	Recorder events.EventRecorder
	// TenantUID finds a tenant's uid for its Events (optional).
	TenantUID func(name string) types.UID
	// Refusals, if set, counts refusals per tenant (status.refusals).
	Refusals interface{ Add(tenant string) }
	// DecideNamespace, if set, lets a namespace created by a tenant owner
	// carry the tenant label that the mutating webhook adds
	// (NamespaceHandler): the label is admitted when it names the tenant
	// this decision gives the namespace. Without it, only admins may set
	// the label.
	DecideNamespace NamespaceDecider
}

var _ admission.Handler = (*Handler)(nil)

// verdict is what a request's answer was, for metrics and events.
type verdict struct {
	tenant string
	rule   policy.Rule
	denied bool
}

// Handle decides one admission request.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	var v verdict
	resp := h.handle(ctx, req, &v)
	if !resp.Allowed {
		v.denied = true
		h.recordRefusal(req, v, resp)
	}
	h.Metrics.observe(req, v, time.Since(start))
	return resp
}

// recordRefusal makes a refusal visible: an Event that names the object,
// the rule and the user, and the tenant's refusal count.
func (h *Handler) recordRefusal(req admission.Request, v verdict, resp admission.Response) {
	if v.rule == "" {
		return // not a rule's refusal (malformed, busy, timed out)
	}
	if h.Refusals != nil {
		h.Refusals.Add(v.tenant)
	}
	if h.Recorder == nil {
		return
	}
	var regarding runtime.Object
	if v.tenant != "" {
		t := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: v.tenant}}
		t.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Tenant"))
		if h.TenantUID != nil {
			t.UID = h.TenantUID(v.tenant)
		}
		regarding = t
	} else if req.Namespace != "" {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: req.Namespace}}
		ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		regarding = ns
	} else {
		return
	}
	obj := req.Name
	if req.Namespace != "" {
		obj = req.Namespace + "/" + req.Name
	}
	h.Recorder.Eventf(regarding, nil, corev1.EventTypeWarning, "Refused", "Admit",
		"refused %s %s %s by %s: rule %s", strings.ToLower(string(req.Operation)), req.Kind.Kind, obj, req.UserInfo.Username, v.rule)
}

func (h *Handler) handle(ctx context.Context, req admission.Request, v *verdict) admission.Response {
	if req.Operation == admissionv1.Delete || req.Operation == admissionv1.Connect {
		return admission.Allowed("")
	}
	if h.WaitReady != nil {
		if err := h.WaitReady(ctx); err != nil {
			return admission.Errored(http.StatusServiceUnavailable,
				fmt.Errorf("tenantguard is starting and has not read the cluster yet (%v); retry in a few seconds", err))
		}
	}
	preq, err := decodeRequest(req)
	var unknown *kinds.UnknownKindError
	if errors.As(err, &unknown) {
		if kinds.Scheme.Recognizes(preq.Kind) {
			// A kind with rules that carries an object of another kind:
			// judging it as either would be wrong.
			return admission.Denied(fmt.Sprintf("the request is for %s, but its object is %s; send an object of the kind the request names", req.Kind.Kind, unknown.GVK))
		}
		// The webhook configuration sends only kinds with rules; anything
		// else has none to break.
		return admission.Allowed("").WithWarnings(fmt.Sprintf("tenantguard has no rules for %s", req.Kind))
	}
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}

	namespaced := preq.Namespace != "" && !(preq.Kind.Group == "" && preq.Kind.Kind == "Namespace")
	if namespaced && h.Namespaces != nil && !h.View.KnowsNamespace(preq.Namespace) {
		ns := &corev1.Namespace{}
		if err := h.Namespaces.Get(ctx, client.ObjectKey{Name: preq.Namespace}, ns); err != nil {
			return admission.Errored(http.StatusServiceUnavailable, fmt.Errorf("tenantguard cannot read namespace %q: %w; retry", preq.Namespace, err))
		}
		h.View.SetNamespace(ns.Name, ns.Labels)
	}
	if t := h.View.TenantOf(preq.Namespace); t != nil && namespaced {
		v.tenant = t.Name
	}
	d := h.Engine.Evaluate(preq, h.View)
	if !d.Allowed() {
		switch ok, err := h.selfServiceNamespace(ctx, preq, d); {
		case err != nil:
			return admission.Denied(fmt.Sprintf("tenantguard cannot decide this namespace now: %v; retry", err))
		case ok:
			d = policy.Decision{}
		}
	}
	dryRun := req.DryRun != nil && *req.DryRun
	if !d.Allowed() {
		v.rule = d.Violations[0].Rule
		h.Metrics.recordViolations(d.Violations)
		if !dryRun {
			h.claimForUnclaimedOwners(ctx, preq)
		}
		return admission.Denied(d.Message(req.Kind.Kind, req.Namespace, preq.Name)).WithWarnings(d.Warnings...)
	}
	if len(d.Claims) > 0 && preq.Operation == policy.Create && h.View.Hosts().HasObject(hosts.ObjectKey{
		Namespace: preq.Namespace, Group: preq.Kind.Group, Kind: preq.Kind.Kind, Name: preq.Name}) {
		// The name is taken: the API server refuses this create as
		// AlreadyExists after the webhooks, so a claim made now would
		// hold the host for an object that never exists.
		return admission.Allowed("").WithWarnings(d.Warnings...)
	}
	if len(d.Claims) > 0 && !dryRun {
		if _, err := h.Claimer.Claim(ctx, d.Claims, d.ClaimOwner); err != nil {
			var conflict *hosts.ConflictError
			if errors.As(err, &conflict) {
				h.Metrics.recordClaim("conflict")
				refused := h.Engine.ClaimRefused(d, conflict)
				v.rule = refused.Violations[0].Rule
				h.Metrics.recordViolations(refused.Violations)
				return admission.Denied(refused.Message(req.Kind.Kind, req.Namespace, preq.Name)).WithWarnings(refused.Warnings...)
			}
			if ctx.Err() != nil {
				h.Metrics.recordClaim("timeout")
				return admission.Denied("tenantguard timed out recording host ownership for this request; retry")
			}
			h.Metrics.recordClaim("error")
			log.FromContext(ctx).Error(err, "claim hosts", "hosts", d.Claims)
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("tenantguard could not record host ownership: %w; retry", err))
		}
		h.Metrics.recordClaim("created")
		// Remember the claims now: the informer would tell us a moment
		// later, and the next request may come before that.
		for _, n := range d.Claims {
			o := d.ClaimOwner
			o.Name = n
			h.View.Hosts().SetOwner(o)
		}
	}
	return admission.Allowed("").WithWarnings(d.Warnings...)
}

// selfServiceNamespace reports whether req creates a namespace whose
// tenant label names the tenant that DecideNamespace gives it for its
// author (the label the mutating webhook added), when the label is all
// that d refuses in it.
func (h *Handler) selfServiceNamespace(ctx context.Context, req policy.Request, d policy.Decision) (bool, error) {
	if h.DecideNamespace == nil || req.Operation != policy.Create || req.Kind.Group != "" || req.Kind.Kind != "Namespace" {
		return false, nil
	}
	ns, ok := req.Object.(*corev1.Namespace)
	if !ok || ns.Labels[v1alpha1.TenantLabel] == "" || h.Engine.IsAdmin(req.User) {
		return false, nil
	}
	for _, v := range d.Violations {
		if v.Rule != policy.RuleNamespaceLabel {
			return false, nil
		}
	}
	nd, err := h.DecideNamespace(ctx, tenancy.User{Name: req.User.Name, Groups: req.User.Groups}, ns)
	if err != nil {
		return false, err
	}
	return nd.Allowed && nd.Tenant != "" && nd.Tenant == ns.Labels[v1alpha1.TenantLabel], nil
}

// claimForUnclaimedOwners records, before the answer, the ownership that
// refused this request when no claim recorded it yet: the oldest object
// using a host owns it, and its claim is written now, so that no other
// request can take the host in the moment before the adopter would have
// claimed it.
func (h *Handler) claimForUnclaimedOwners(ctx context.Context, req policy.Request) {
	obj, ok := req.Object.(client.Object)
	if !ok || h.Claimer == nil {
		return
	}
	uses, _ := h.Engine.HostUses(obj, req.Namespace)
	ix := h.View.Hosts()
	for _, u := range uses {
		for _, o := range ix.Overlapping(u.Name, 0, func(o hosts.Owner) bool { return o.Unclaimed && o.Namespace != req.Namespace }) {
			owner := hosts.Owner{Namespace: o.Namespace}
			if t := h.View.TenantOf(o.Namespace); t != nil {
				owner.Tenant = t.Name
			}
			if _, err := h.Claimer.Claim(ctx, []hosts.Name{o.Name}, owner); err != nil {
				log.FromContext(ctx).V(1).Info("could not claim a host for its unclaimed owner; the adopter will", "host", o.Name.String(), "namespace", o.Namespace, "error", err.Error())
				continue
			}
			owner.Name = o.Name
			ix.SetOwner(owner)
		}
	}
}

// decodeRequest turns an AdmissionRequest into a policy request.
func decodeRequest(req admission.Request) (policy.Request, error) {
	preq := policy.Request{
		Operation: policy.Operation(req.Operation),
		Kind:      schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind},
		Namespace: req.Namespace,
		Name:      req.Name,
		User:      policy.User{Name: req.UserInfo.Username, Groups: req.UserInfo.Groups},
	}
	if len(req.Object.Raw) == 0 {
		return preq, fmt.Errorf("admission request for %s %s/%s carries no object", req.Kind.Kind, req.Namespace, req.Name)
	}
	obj, err := decodeObject(req.Object.Raw, preq.Kind)
	if err != nil {
		return preq, err
	}
	preq.Object = obj
	if len(req.OldObject.Raw) > 0 {
		if preq.OldObject, err = decodeObject(req.OldObject.Raw, preq.Kind); err != nil {
			return preq, fmt.Errorf("old object: %w", err)
		}
	}
	if preq.Name == "" {
		if m, ok := obj.(interface{ GetName() string }); ok {
			preq.Name = m.GetName()
		}
	}
	return preq, nil
}

func decodeObject(raw []byte, want schema.GroupVersionKind) (runtime.Object, error) {
	obj, gvk, err := kinds.Decode(raw)
	if err != nil {
		return nil, err
	}
	if gvk != nil && *gvk != want {
		return nil, fmt.Errorf("object is %s, but the request says %s", gvk, want)
	}
	return obj, nil
}
