{{/*
Names are fixed: the chart installs cluster-wide objects (CRDs, webhook
configurations, cluster roles), so a cluster holds one release.
*/}}

{{- define "tenantguard.labels" -}}
app.kubernetes.io/part-of: tenantguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "tenantguard.tag" . | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The guard's pods (unchanged since the first release: Deployment selectors cannot change). */}}
{{- define "tenantguard.selector" -}}
app.kubernetes.io/name: tenantguard
{{- end }}

{{- define "tenantguard.registrySelector" -}}
app.kubernetes.io/name: tenantguard-registry
{{- end }}

{{- define "tenantguard.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end }}

{{- define "tenantguard.image" -}}
{{- $repo := required "image.repository is required: build and push the image (make image IMAGE_REPO=...) and set image.repository (tenantguard install --image)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (include "tenantguard.tag" .) -}}
{{- end -}}
{{- end }}

{{/* Secret of the webhook's serving certificate and key. */}}
{{- define "tenantguard.tlsSecret" -}}tenantguard-webhook-tls{{- end }}

{{/* The webhook configurations the chart renders (and the guard keeps the caBundle of). */}}
{{- define "tenantguard.webhookConfigurations" -}}tenantguard{{- end }}

{{/*
The effective GuardConfig: the values' config with the fields the chart
owns (guardNamespace, guardServiceAccount) and the defaults that shape the
webhook configuration, as internal/config fills them in.
*/}}
{{- define "tenantguard.config" -}}
{{- $c := deepCopy (.Values.config | default dict) -}}
{{- if and (hasKey $c "guardNamespace") (ne (toString $c.guardNamespace) .Release.Namespace) -}}
{{- fail (printf "config.guardNamespace is %q but the release namespace is %q: the guard runs in the release namespace; drop config.guardNamespace or install into %q" (toString $c.guardNamespace) .Release.Namespace (toString $c.guardNamespace)) -}}
{{- end -}}
{{- if and (hasKey $c "guardServiceAccount") (ne (toString $c.guardServiceAccount) .Values.serviceAccount.name) -}}
{{- fail (printf "config.guardServiceAccount is %q but serviceAccount.name is %q: set serviceAccount.name instead" (toString $c.guardServiceAccount) .Values.serviceAccount.name) -}}
{{- end -}}
{{- $_ := set $c "apiVersion" "tenantguard.dev/v1alpha1" -}}
{{- $_ = set $c "kind" "GuardConfig" -}}
{{- $_ = set $c "guardNamespace" .Release.Namespace -}}
{{- $_ = set $c "guardServiceAccount" .Values.serviceAccount.name -}}
{{- if not (hasKey $c "excludedNamespaces") -}}
{{- $_ = set $c "excludedNamespaces" (list "kube-system" "kube-public" "kube-node-lease") -}}
{{- end -}}
{{- if not (has .Release.Namespace $c.excludedNamespaces) -}}
{{- $_ = set $c "excludedNamespaces" (append $c.excludedNamespaces .Release.Namespace) -}}
{{- end -}}
{{- if not (hasKey $c "adminGroups") -}}
{{- $_ = set $c "adminGroups" (list "system:masters") -}}
{{- end -}}
{{- if not (hasKey $c "nonTenantFailurePolicy") -}}
{{- $_ = set $c "nonTenantFailurePolicy" "Fail" -}}
{{- end -}}
{{- toYaml $c -}}
{{- end }}
