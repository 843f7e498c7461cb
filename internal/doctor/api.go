package doctor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// APIResult is what the API server said.
type APIResult struct {
	// Ready is the /readyz verdict: "ok", or why not.
	Ready string `json:"ready,omitempty"`
	// Version is the server's gitVersion when /readyz was not readable.
	Version string `json:"version,omitempty"`
	// User and Groups are who the credentials authenticate as.
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Namespace, CanListPods and Reason answer "may I list pods there?".
	Namespace   string `json:"namespace,omitempty"`
	CanListPods *bool  `json:"canListPods,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// ExecPlugin is what the kubeconfig's exec credential plugin did.
	ExecPlugin *ExecPlugin `json:"execPlugin,omitempty"`
}

// apiClientConfig points a kubeconfig's client configuration at the path
// the earlier steps found: the proxy, or the IP that answered (so an AKS
// name that only an explicit DNS server resolves can still be checked).
// TLS verification stays kubectl's: the CA and the name from the kubeconfig.
func apiClientConfig(base *rest.Config, rt *route, timeout time.Duration) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.Timeout = timeout
	cfg.UserAgent = "tenantguard-doctor"
	cfg.WarningHandler = rest.NoWarnings{}
	proxyURL := rt.proxy
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	if rt.proxy == nil {
		addr := rt.addr.String()
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	return cfg
}

// checkAPI asks /readyz (or /version), SelfSubjectReview and, with a
// namespace, SelfSubjectAccessReview. It returns the step and the result.
func checkAPI(ctx context.Context, cfg *rest.Config, auth AuthInfo, namespace string) (Step, *APIResult) {
	s := Step{Name: StepAPI}
	res := &APIResult{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.Status, s.Summary = StatusFail, "cannot build a client: "+err.Error()
		return s, res
	}

	var code int
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&code).Raw()
	switch {
	case err == nil:
		res.Ready = strings.TrimSpace(string(body))
		s.evidence("/readyz: %d %s", code, res.Ready)
	case code == http.StatusUnauthorized:
		return credentialsRejected(s, res, "/readyz", err)
	case code == http.StatusServiceUnavailable || code == http.StatusInternalServerError:
		res.Ready = "not ready"
		s.Status = StatusFail
		s.Summary = fmt.Sprintf("the API server answers but is not ready (/readyz: %d)", code)
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "[-]") {
				s.evidence("%s", l)
			}
		}
		s.fix("the control plane is unhealthy: for AKS, check the cluster's state (az aks show -g <resource-group> -n <cluster> --query powerState) and Azure status")
		return s, res
	case code != 0:
		// Readiness may be closed to these credentials; /version says
		// whether the server answers at all.
		s.evidence("/readyz: %d (%v); trying /version", code, err)
		v, verr := cs.Discovery().ServerVersion()
		if verr != nil {
			if apierrors.IsUnauthorized(verr) {
				return credentialsRejected(s, res, "/version", verr)
			}
			s.Status, s.Summary = StatusFail, "neither /readyz nor /version answers: "+verr.Error()
			return s, res
		}
		res.Version = v.GitVersion
		s.evidence("/version: %s", v.GitVersion)
	default:
		s.Status, s.Summary = StatusFail, "no answer from the API server: "+err.Error()
		return s, res
	}

	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	switch {
	case err == nil:
		res.User, res.Groups = review.Status.UserInfo.Username, review.Status.UserInfo.Groups
		s.evidence("authenticated as %q, groups %s", res.User, strings.Join(res.Groups, ", "))
		if res.User == anonymous && len(auth.Kinds) > 0 {
			return credentialsIgnored(s, res, auth)
		}
	case apierrors.IsUnauthorized(err):
		return credentialsRejected(s, res, "SelfSubjectReview", err)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), anonymous):
		// Every authenticated user may create a SelfSubjectReview.
		res.User = anonymous
		if len(auth.Kinds) > 0 {
			return credentialsIgnored(s, res, auth)
		}
		s.evidence("no credentials: requests run as %s", anonymous)
	default:
		s.evidence("who am I: SelfSubjectReview failed (%v); the server may be older than Kubernetes 1.28", err)
	}

	s.Status = StatusOK
	s.Summary = "the API server is ready"
	if res.User != "" {
		s.Summary += fmt.Sprintf(" and the credentials authenticate as %q", res.User)
	}
	if namespace == "" {
		return s, res
	}
	res.Namespace = namespace
	sar, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: "list", Resource: "pods",
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		s.Status = StatusFail
		s.Summary += fmt.Sprintf(", but asking whether it may list pods in %q failed: %v", namespace, err)
		return s, res
	}
	allowed := sar.Status.Allowed
	res.CanListPods, res.Reason = &allowed, sar.Status.Reason
	if allowed {
		s.Summary += fmt.Sprintf(", which may list pods in namespace %q", namespace)
		if sar.Status.Reason != "" {
			s.evidence("authorizer: %s", sar.Status.Reason)
		}
		return s, res
	}
	s.Status = StatusFail
	who := res.User
	if who == "" {
		who = "these credentials"
	}
	s.Summary += fmt.Sprintf(", which may not list pods in namespace %q", namespace)
	if sar.Status.Reason != "" {
		s.evidence("authorizer: %s", sar.Status.Reason)
	}
	s.fix("ask the namespace's tenant owner or a cluster admin for a RoleBinding, e.g.: kubectl create rolebinding %s-view --clusterrole=view --user=%s -n %s (with Entra ID, bind your group: --group=<group-object-id>)",
		safeName(who), who, namespace)
	return s, res
}

const anonymous = "system:anonymous"

// credentialsIgnored: the kubeconfig has credentials, but the server runs
// the requests as system:anonymous.
func credentialsIgnored(s Step, res *APIResult, auth AuthInfo) (Step, *APIResult) {
	s.Status = StatusFail
	s.Summary = fmt.Sprintf("the API server ignores the credentials (%s): requests run as %s", strings.Join(auth.Kinds, ", "), anonymous)
	if slices.Contains(auth.Kinds, "basic") {
		s.evidence("Kubernetes removed basic (user name and password) authentication in 1.19: kubectl sends the password, the API server ignores it")
	}
	s.fix("get credentials this cluster accepts: az aks get-credentials -g <resource-group> -n <cluster> (with Entra ID: kubelogin convert-kubeconfig -l azurecli, then az login)")
	return s, res
}

func credentialsRejected(s Step, res *APIResult, what string, err error) (Step, *APIResult) {
	s.Status = StatusFail
	s.Summary = fmt.Sprintf("the API server rejects the credentials (401 on %s)", what)
	s.evidence("%v", err)
	s.fix("get fresh credentials: az aks get-credentials -g <resource-group> -n <cluster> (with Entra ID: kubelogin convert-kubeconfig -l azurecli, then az login)")
	return s, res
}

// safeName makes a user name usable in an object name suggestion.
func safeName(user string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(user) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		return "user"
	}
	return out
}
