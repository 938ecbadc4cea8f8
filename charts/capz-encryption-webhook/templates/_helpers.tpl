{{/* Names, labels and the pieces several templates share. */}}

{{- define "capz-encryption-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. Kept at most 45 characters so that the longest derived name
("<fullname>-serving-cert", a Secret and a Certificate) still fits the 63 characters of a label value.
*/}}
{{- define "capz-encryption-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "capz-encryption-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable for the life of the release (a Deployment's selector is immutable). */}}
{{- define "capz-encryption-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "capz-encryption-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object. app.kubernetes.io/name is what the break-glass command in NOTES.txt selects
the webhook configurations by.
*/}}
{{- define "capz-encryption-webhook.labels" -}}
helm.sh/chart: {{ include "capz-encryption-webhook.chart" . }}
{{ include "capz-encryption-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: capz-encryption-webhook
{{- end }}

{{/*
Labels of the helm test objects: the chart's, without app.kubernetes.io/instance, so that the test Pod
is never selected by the webhook's Deployment, Services, PodDisruptionBudget or NetworkPolicy (they
select name and instance); the release is named in a label of its own.
*/}}
{{- define "capz-encryption-webhook.testLabels" -}}
helm.sh/chart: {{ include "capz-encryption-webhook.chart" . }}
app.kubernetes.io/name: {{ include "capz-encryption-webhook.name" . }}
app.kubernetes.io/component: selftest
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: capz-encryption-webhook
capz-encryption-webhook.io/release: {{ .Release.Name }}
{{- end }}

{{- define "capz-encryption-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "capz-encryption-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "capz-encryption-webhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The webhook Service; its DNS name is what the serving certificate is issued for. */}}
{{- define "capz-encryption-webhook.serviceName" -}}
{{- include "capz-encryption-webhook.fullname" . }}
{{- end }}

{{- define "capz-encryption-webhook.servingCertName" -}}
{{- printf "%s-serving-cert" (include "capz-encryption-webhook.fullname" .) }}
{{- end }}

{{/* The Secret mounted at --cert-dir: cert-manager's, or the user's. */}}
{{- define "capz-encryption-webhook.tlsSecretName" -}}
{{- if .Values.certManager.enabled }}
{{- include "capz-encryption-webhook.servingCertName" . }}
{{- else }}
{{- required "tls.secretName is required when certManager.enabled is false (or enable cert-manager)" .Values.tls.secretName }}
{{- end }}
{{- end }}

{{/*
caBundle for clusters without cert-manager: tls.caBundle as base64 of PEM, or plain PEM (encoded
here). Rendering fails unless it holds a PEM certificate, so that a wrong value cannot produce
webhooks the API server can never call (which, with failurePolicy Fail, would refuse every CAPZ object).
*/}}
{{- define "capz-encryption-webhook.caBundle" -}}
{{- $v := required "tls.caBundle is required when certManager.enabled is false: the PEM (or base64 of the PEM) of the CA that signed tls.secretName" .Values.tls.caBundle | trim }}
{{- $pem := $v }}
{{- if not (hasPrefix "-----BEGIN" $v) }}
{{- $pem = b64dec (nospace $v) }}
{{- end }}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) }}
{{- fail "tls.caBundle: expected a PEM certificate (-----BEGIN CERTIFICATE-----), plain or base64-encoded" }}
{{- end }}
{{- printf "%s\n" (trim $pem) | b64enc }}
{{- end }}

{{/*
The namespaceSelector of both webhooks: never kube-system (the cluster must keep working whatever
happens to the webhook) nor the release namespace (the webhook must never gate its own namespace),
plus what the values add.
*/}}
{{- define "capz-encryption-webhook.excludedNamespaces" -}}
{{- uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.namespaceSelector.excludeNamespaces) | toJson }}
{{- end }}

{{- define "capz-encryption-webhook.namespaceSelector" -}}
{{- $ns := .Values.webhook.namespaceSelector }}
{{- $excluded := include "capz-encryption-webhook.excludedNamespaces" . | fromJsonArray }}
{{- with $ns.matchLabels }}
matchLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml $excluded | nindent 6 }}
  {{- with $ns.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The webhook rules: the one place they are written. config/webhook/manifests.yaml is generated from
this chart (make chart-config) and a test checks that `kustomize build config/default` agrees.
Mutation is CREATE only: CAPZ treats these specs as immutable, so defaults can only be injected when
an object is created. DELETE is in neither list: a deletion is never blocked. Every version the
apiserver serves is matched ("*"): the handler reads any version, and a CAPZ release that adds one
and drops v1beta1 must not end enforcement without anyone noticing (matchPolicy Equivalent would
only cover a version the apiserver converts to one listed here).
*/}}
{{- define "capz-encryption-webhook.mutatingRules" -}}
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  apiVersions: ["*"]
  operations: ["CREATE"]
  resources:
    - azuremachinetemplates
    - azuremachines
    - azuremachinepools
  scope: Namespaced
{{- end }}

{{- define "capz-encryption-webhook.validatingRules" -}}
- apiGroups: ["infrastructure.cluster.x-k8s.io"]
  apiVersions: ["*"]
  operations: ["CREATE", "UPDATE"]
  resources:
    - azuremachinetemplates
    - azuremachines
    - azuremachinepools
    - azuremanagedmachinepools
    - azuremanagedmachinepooltemplates
    - azuremanagedcontrolplanes
    - azuremanagedcontrolplanetemplates
    - azureasomanagedmachinepools
    - azureasomanagedmachinepooltemplates
    - azureasomanagedcontrolplanes
    - azureasomanagedcontrolplanetemplates
  scope: Namespaced
{{- end }}

{{/*
The binding-time check's rules: the CAPI objects that bind a template to a cluster
(internal/capiref BindingKinds; test/chart/kindtable holds this list to it). Every served version,
as for the CAPZ kinds: each request comes in its own, and the webhook reads both CAPI shapes.
*/}}
{{- define "capz-encryption-webhook.bindingRules" -}}
- apiGroups: ["cluster.x-k8s.io"]
  apiVersions: ["*"]
  operations: ["CREATE", "UPDATE"]
  resources:
    - machinedeployments
    - machinepools
  scope: Namespaced
- apiGroups: ["controlplane.cluster.x-k8s.io"]
  apiVersions: ["*"]
  operations: ["CREATE", "UPDATE"]
  resources:
    - kubeadmcontrolplanes
  scope: Namespaced
{{- end }}

{{/* True ("true") when the Palette pack values (cloud.azure.*) are the policy source. */}}
{{- define "capz-encryption-webhook.usePalette" -}}
{{- $azure := dig "azure" dict (.Values.cloud | default dict) }}
{{- if or (hasKey $azure "diskEncryptionSetID") (hasKey $azure "encryptionAtHost") }}true{{ end }}
{{- end }}

{{/*
The policy file. Palette pack values replace `policy` entirely, since their shape carries only one
default (a DES and encryptionAtHost for every region and namespace); so setting both is refused rather
than silently dropping the `policy` settings.
*/}}
{{- define "capz-encryption-webhook.policyFile" -}}
{{- if include "capz-encryption-webhook.usePalette" . }}
{{- $p := .Values.policy }}
{{- $set := list }}
{{- if $p.warnOnly }}{{ $set = append $set "warnOnly" }}{{ end }}
{{- if $p.dryRun }}{{ $set = append $set "dryRun" }}{{ end }}
{{- if $p.defaultLocation }}{{ $set = append $set "defaultLocation" }}{{ end }}
{{- if $p.requireCustomerManagedKeys }}{{ $set = append $set "requireCustomerManagedKeys" }}{{ end }}
{{- if $p.allowedDESSubscriptions }}{{ $set = append $set "allowedDESSubscriptions" }}{{ end }}
{{- if $p.keyExpiryWarning }}{{ $set = append $set "keyExpiryWarning" }}{{ end }}
{{- if $p.rules }}{{ $set = append $set "rules" }}{{ end }}
{{- if $p.defaults }}{{ $set = append $set "defaults" }}{{ end }}
{{- if $set }}
{{- fail (printf "cloud.azure (Palette pack values) replaces the whole policy, so these settings would be lost: policy.%s. Put the DES and encryptionAtHost in a policy.defaults entry instead of cloud.azure, or unset them" (join ", policy." $set)) }}
{{- end }}
# Palette pack values, rendered by Helm from values.cloud: the default for every region and namespace.
{{ toYaml (dict "cloud" (dict "azure" (pick .Values.cloud.azure "diskEncryptionSetID" "encryptionAtHost"))) }}
{{- else }}
# Rendered by Helm from values.policy. Change the release values, not this ConfigMap: an upgrade
# overwrites it. The webhook reloads it when it changes.
apiVersion: {{ .Values.policy.apiVersion }}
kind: {{ .Values.policy.kind }}
{{ toYaml (omit .Values.policy "apiVersion" "kind") }}
{{- end }}
{{- end }}

{{/* True ("true") when serve keeps the compiled admission policies in sync (cel.mode other than webhook-only). */}}
{{- define "capz-encryption-webhook.celSync" -}}
{{- if ne .Values.cel.mode "webhook-only" }}true{{ end }}
{{- end }}

{{/*
What the webhook must see besides what the compiled admission policies decide, from the values, as
celpolicy.ScopeFor derives it from the policy (test/chart checks the two agree): live Azure data
(every DES an object names is looked up); a policy that needs the webhook for every machine (a default
for some regions or namespaces, or one that sets encryptionAtHost, or a region rule at deny); a single
default with a Disk Encryption Set (the webhook says why it could not fill one).
*/}}
{{- define "capz-encryption-webhook.celScope" -}}
{{- $every := false }}
{{- $des := false }}
{{- if include "capz-encryption-webhook.usePalette" . }}
{{- $azure := .Values.cloud.azure }}
{{- if $azure.encryptionAtHost }}
{{- $every = true }}
{{- else if $azure.diskEncryptionSetID }}
{{- $des = true }}
{{- end }}
{{- else }}
{{- $p := .Values.policy }}
{{- $rules := $p.rules | default dict }}
{{- range list "catalog-region-missing" "location-annotation-ignored" "location-mismatch" }}
{{- if eq (get $rules .) "deny" }}
{{- $every = true }}
{{- end }}
{{- end }}
{{- with $p.defaults }}
{{- $d := first . }}
{{- $sel := $d.namespaceSelector | default dict }}
{{- if or $d.regions $sel.matchLabels $sel.matchExpressions $d.encryptionAtHost }}
{{- $every = true }}
{{- else if or $d.diskEncryptionSetID $d.dataDiskEncryptionSetID }}
{{- $des = true }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (dict "liveAzure" (not (empty .Values.azure.subscriptionID)) "everyMachine" $every "defaultDES" $des) }}
{{- end }}

{{/* The kinds the webhook guards, as resources: the validating webhook's (test/chart/kindtable holds it to policy.Kinds()). */}}
{{- define "capz-encryption-webhook.guardedResources" -}}
{{- (include "capz-encryption-webhook.validatingRules" . | fromYamlArray | first).resources | toYaml }}
{{- end }}

{{/* The Lease of the leader election (background audit, CEL sync). */}}
{{- define "capz-encryption-webhook.leaseName" -}}
{{- printf "%s-audit" (include "capz-encryption-webhook.fullname" .) }}
{{- end }}

{{/* audit.interval in seconds (h, m and s parts), for the PrometheusRule. */}}
{{- define "capz-encryption-webhook.auditIntervalSeconds" -}}
{{- $d := .Values.audit.interval }}
{{- $s := 0 }}
{{- range $part := regexFindAll "[0-9]+[hms]" $d -1 }}
{{- $n := trimSuffix "h" (trimSuffix "m" (trimSuffix "s" $part)) | atoi }}
{{- if hasSuffix "h" $part }}{{ $s = add $s (mul $n 3600) }}{{ else if hasSuffix "m" $part }}{{ $s = add $s (mul $n 60) }}{{ else }}{{ $s = add $s $n }}{{ end }}
{{- end }}
{{- $s }}
{{- end }}

{{/* True ("true") when one replica is elected (background audit, or the CEL sync of a cel.mode). */}}
{{- define "capz-encryption-webhook.leaderElection" -}}
{{- if or .Values.audit.enabled (include "capz-encryption-webhook.celSync" .) }}true{{ end }}
{{- end }}
