package certrotation

import (
	"bytes"
	"context"
	"errors"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tenantguard/tenantguard/internal/webhook"
)

// configurations returns the named webhook configurations that exist, of
// either kind, read from the API server. A name of neither kind is logged.
func (r *Rotator) configurations(ctx context.Context) ([]client.Object, error) {
	var found []client.Object
	var errs []error
	for _, name := range r.opts.WebhookConfigurations {
		n := len(found)
		for _, obj := range []client.Object{&admissionregistrationv1.ValidatingWebhookConfiguration{}, &admissionregistrationv1.MutatingWebhookConfiguration{}} {
			err := r.opts.Client.Get(ctx, client.ObjectKey{Name: name}, obj)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, err)
			default:
				found = append(found, obj)
			}
		}
		if len(found) == n && len(errs) == 0 {
			log.FromContext(ctx).Info("no validating or mutating webhook configuration of this name; its caBundle is written once it exists", "name", name)
		}
	}
	return found, errors.Join(errs...)
}

// caBundles returns pointers to the caBundle of every webhook of a
// configuration.
func caBundles(obj client.Object) []*[]byte {
	var out []*[]byte
	switch c := obj.(type) {
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig.CABundle)
		}
	}
	return out
}

// publishBundle sets the caBundle of every webhook of the configurations
// to bundle where it differs. Failures are logged: the next pass retries.
func (r *Rotator) publishBundle(ctx context.Context, bundle []byte) {
	logger := log.FromContext(ctx)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		configs, err := r.configurations(ctx)
		for _, obj := range configs {
			changed := false
			for _, b := range caBundles(obj) {
				if !bytes.Equal(*b, bundle) {
					*b, changed = bundle, true
				}
			}
			if !changed {
				continue
			}
			// Update, not patch: the resourceVersion read makes it fail
			// rather than undo a concurrent change to the configuration.
			if uerr := r.opts.Client.Update(ctx, obj); uerr != nil {
				return uerr
			}
			logger.Info("wrote the webhook CA bundle", "configuration", obj.GetName(), "kind", kindOf(obj))
		}
		return err
	})
	if err != nil {
		logger.Error(err, "could not write the webhook CA bundle; retrying on the next pass")
	}
}

// trusted says whether every webhook of every existing configuration
// trusts the CA certificate caDER.
func (r *Rotator) trusted(ctx context.Context, caDER []byte) bool {
	configs, err := r.configurations(ctx)
	if err != nil {
		log.FromContext(ctx).Error(err, "could not read the webhook configurations")
		return false
	}
	for _, obj := range configs {
		for _, b := range caBundles(obj) {
			certs, err := webhook.ParseCertificates(*b)
			if err != nil || !containsDER(certs, caDER) {
				return false
			}
		}
	}
	return true
}

func kindOf(obj client.Object) string {
	if _, ok := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
		return "MutatingWebhookConfiguration"
	}
	return "ValidatingWebhookConfiguration"
}
