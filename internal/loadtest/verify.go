package loadtest

import (
	"context"
	"errors"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantguard/tenantguard/api/v1alpha1"
	"github.com/tenantguard/tenantguard/internal/hosts"
)

// Verification is the check that the guard's admissions left the claims
// they should.
type Verification struct {
	// Ingresses admitted by the guard (setup, fill and guard batches) and
	// the distinct hosts they use.
	Ingresses int `json:"ingresses"`
	Hosts     int `json:"hosts"`
	// Pending claims are not settled yet by the request that made them.
	Pending int `json:"pending"`
}

// VerifyClaims checks that every host of every Ingress the guard admitted
// is claimed by that Ingress's namespace.
func VerifyClaims(ctx context.Context, c client.Client) (Verification, error) {
	var v Verification
	req, err := labels.NewRequirement(labelSide, selection.In, []string{Guard, "fill", "base"})
	if err != nil {
		return v, err
	}
	var ings networkingv1.IngressList
	if err := c.List(ctx, &ings, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}); err != nil {
		return v, fmt.Errorf("list Ingresses: %w", err)
	}
	var claims v1alpha1.HostClaimList
	if err := c.List(ctx, &claims); err != nil {
		return v, fmt.Errorf("list HostClaims: %w", err)
	}
	byName := map[string]*v1alpha1.HostClaim{}
	for i := range claims.Items {
		byName[claims.Items[i].Name] = &claims.Items[i]
	}
	seen := map[string]bool{}
	var errs []error
	for _, ing := range ings.Items {
		v.Ingresses++
		for _, rule := range ing.Spec.Rules {
			n, err := hosts.Parse(rule.Host, v1alpha1.HostMatchSingleLabel)
			if err != nil {
				errs = append(errs, fmt.Errorf("ingress %s/%s: host %q: %w", ing.Namespace, ing.Name, rule.Host, err))
				continue
			}
			name := hosts.ClaimName(n)
			if seen[name] {
				continue
			}
			seen[name] = true
			v.Hosts++
			hc := byName[name]
			switch {
			case hc == nil:
				errs = append(errs, fmt.Errorf("ingress %s/%s: host %s has no claim %s", ing.Namespace, ing.Name, rule.Host, name))
			case hc.Spec.Namespace != ing.Namespace:
				errs = append(errs, fmt.Errorf("ingress %s/%s: host %s is claimed by namespace %q", ing.Namespace, ing.Name, rule.Host, hc.Spec.Namespace))
			case hosts.Pending(hc):
				v.Pending++
			}
			if len(errs) >= 20 {
				return v, errors.Join(append(errs, errors.New("(more left out)"))...)
			}
		}
	}
	return v, errors.Join(errs...)
}
