package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
	"github.com/tenantguard/tenantguard/internal/registry/scope"
	"github.com/tenantguard/tenantguard/internal/registry/token"
)

// Caller is who made an authorized request.
type Caller struct {
	Subject string
	Tenant  string
	// Limit caps the tenant's actions (robot accounts); None: no cap.
	Limit authz.Actions
}

func (c Caller) identity() authz.Identity {
	return authz.Identity{Subject: c.Subject, Tenant: c.Tenant, Limit: c.Limit}
}

// AccessController is the one interface between the HTTP handlers and the
// policy, as Distribution's auth.AccessController: it authorizes a request
// for every access listed (none means: any authenticated caller) and returns
// the caller, or an error that writes its own response: a *Challenge (401,
// get a token for these scopes) or a *Denied (403, the policy refuses; a new
// token would not help).
type AccessController interface {
	Authorized(r *http.Request, access ...scope.Scope) (Caller, error)
}

// TokenAccess authorizes requests by their bearer token, and checks each
// granted access again against the live rules, so a right removed from a
// Tenant ends at once rather than when the token expires.
//
// When the token lacks an access the rules would allow, the answer is a
// challenge (the client gets a new token with it, as Docker clients do after
// an insufficient_scope error); when the rules refuse it, DENIED with a
// message that says what the tenant may do instead.
//
// With Subjects set, the token's subject is looked up too: a token whose
// account was removed (a robot taken out of the file) or moved to another
// tenant is refused at once, and a robot's current action ceiling applies.
type TokenAccess struct {
	Realm    string
	Service  string
	Verifier *token.Verifier
	Rules    func() *authz.Rules
	// Subjects says who a subject is now; ok is false when it is no
	// account any more.
	Subjects func(ctx context.Context, subject string) (id authz.Identity, ok bool, err error)
}

// Authorized implements AccessController.
func (ta *TokenAccess) Authorized(r *http.Request, access ...scope.Scope) (Caller, error) {
	challenge := func(err error) *Challenge {
		return &Challenge{Realm: ta.Realm, Service: ta.Service, Scopes: access, Err: err}
	}
	scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || raw == "" || !strings.EqualFold(scheme, "bearer") {
		return Caller{}, challenge(ErrTokenRequired)
	}
	claims, err := ta.Verifier.Verify(strings.TrimSpace(raw))
	if err != nil {
		return Caller{}, challenge(invalidTokenError{err})
	}
	caller := Caller{Subject: claims.Subject, Tenant: claims.Tenant, Limit: authz.ActionsOf(claims.Limit)}
	if ta.Subjects != nil {
		cur, ok, err := ta.Subjects(r.Context(), claims.Subject)
		switch {
		case err != nil:
			return caller, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
				Message: "the token's account could not be checked right now; try again", cause: err}
		case !ok:
			return caller, challenge(invalidTokenError{errors.New("invalid token: its account no longer exists")})
		case cur.Tenant != claims.Tenant:
			return caller, challenge(invalidTokenError{fmt.Errorf("invalid token: its account now belongs to tenant %q, not %q; get a new token", cur.Tenant, claims.Tenant)})
		}
		caller.Limit = cur.Limit
	}
	id := caller.identity()
	rules := ta.Rules()
	var missing error
	for _, a := range access {
		for _, action := range a.Actions {
			if !policyAllows(rules, id, a, action) {
				return caller, &Denied{Access: scope.Scope{Type: a.Type, Name: a.Name, Actions: []string{action}}, Message: explain(rules, id, a, action)}
			}
			if !claims.Allows(a.Type, a.Name, action) {
				missing = ErrInsufficientScope
			}
		}
	}
	if missing != nil {
		return caller, challenge(missing)
	}
	return caller, nil
}

func policyAllows(rules *authz.Rules, id authz.Identity, a scope.Scope, action string) bool {
	switch a.Type {
	case scope.TypeRepository:
		return rules.Allowed(id, a.Name).Has(authz.ParseAction(action))
	case scope.TypeRegistry:
		return a.Name == scope.CatalogName && rules.HasTenant(id.Tenant)
	}
	return false
}

func explain(rules *authz.Rules, id authz.Identity, a scope.Scope, action string) string {
	if a.Type == scope.TypeRepository {
		return rules.Explain(id, a.Name, authz.ParseAction(action))
	}
	if !rules.HasTenant(id.Tenant) {
		return rules.Explain(id, "", authz.None)
	}
	return fmt.Sprintf("%s may not %s %s", id.Subject, action, a)
}

// isDeniedOn reports whether err refuses exactly the given access.
func isDeniedOn(err error, typ, name, action string) bool {
	var d *Denied
	return errors.As(err, &d) && d.Access.Type == typ && d.Access.Name == name && d.Access.Has(action)
}

// invalidTokenError is a verification failure: its message is the
// verifier's ("invalid token: expired at ..."), and it is ErrInvalidToken.
type invalidTokenError struct{ err error }

func (e invalidTokenError) Error() string        { return e.err.Error() }
func (e invalidTokenError) Is(target error) bool { return target == ErrInvalidToken }
