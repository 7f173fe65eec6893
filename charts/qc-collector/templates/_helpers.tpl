{{/*
Helpers shared by every template; all are named qc-collector.<thing>.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "qc-collector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart> (or fullnameOverride), DNS-label safe. */}}
{{- define "qc-collector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "qc-collector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "qc-collector.labels" -}}
helm.sh/chart: {{ include "qc-collector.chart" . }}
{{ include "qc-collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qc-collector
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the release's pods (add app.kubernetes.io/component per workload). */}}
{{- define "qc-collector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qc-collector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount of the API and worker pods. */}}
{{- define "qc-collector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qc-collector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "qc-collector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The existing Secret the pods read (never created by this chart). */}}
{{- define "qc-collector.secretName" -}}
{{- default (include "qc-collector.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/*
One env entry from the Secret: include "qc-collector.secretEnv" (list $ "ENV_NAME" "keyField" optional)
*/}}
{{- define "qc-collector.secretEnv" -}}
{{- $root := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "qc-collector.secretName" $root }}
      key: {{ index $root.Values.secrets.keys (index . 2) }}
      optional: {{ index . 3 }}
{{- end }}

{{/* The API's secret environment. */}}
{{- define "qc-collector.apiSecretEnv" -}}
{{- $production := eq .Values.config.environment "production" -}}
{{ include "qc-collector.secretEnv" (list . "DATABASE_URL" "databaseUrl" false) }}
{{ include "qc-collector.secretEnv" (list . "SIGNING_KEY" "signingKey" (not $production)) }}
{{ include "qc-collector.secretEnv" (list . "SIGNING_KEYS_RETIRED" "signingKeysRetired" true) }}
{{ include "qc-collector.secretEnv" (list . "EXPORT_SIGN_SECRET" "exportSignSecret" (not $production)) }}
{{ include "qc-collector.secretEnv" (list . "ENCRYPTION_KEY" "encryptionKey" (not $production)) }}
{{ include "qc-collector.secretEnv" (list . "ENCRYPTION_KEYS_OLD" "encryptionKeysOld" true) }}
{{ include "qc-collector.secretEnv" (list . "EXPORT_SIGN_SECRETS_OLD" "exportSignSecretsOld" true) }}
{{ include "qc-collector.secretEnv" (list . "API_KEYS" "apiKeys" true) }}
{{ include "qc-collector.secretEnv" (list . "METRICS_TOKEN" "metricsToken" (not $production)) }}
{{- end }}

{{/*
The worker's secret environment: the database and what alert delivery needs. It signs
nothing (the API signs reports and download URLs) and authenticates nobody. Its alert
dispatcher opens the channel secrets the API sealed (ENCRYPTION_KEY, required in
production like on the API; not given when config.alerts.dispatch is false) and sends
system alerts to the operators' channels (SMTP_PASSWORD, SLACK_WEBHOOK_URL,
PAGERDUTY_INTEGRATION_KEY, all optional; the API pods never send, so they get none).
*/}}
{{- define "qc-collector.workerSecretEnv" -}}
{{- $production := eq .Values.config.environment "production" -}}
{{ include "qc-collector.secretEnv" (list . "DATABASE_URL" "databaseUrl" false) }}
{{- if .Values.config.alerts.dispatch }}
{{ include "qc-collector.secretEnv" (list . "ENCRYPTION_KEY" "encryptionKey" (not $production)) }}
{{ include "qc-collector.secretEnv" (list . "ENCRYPTION_KEYS_OLD" "encryptionKeysOld" true) }}
{{- end }}
{{ include "qc-collector.secretEnv" (list . "SMTP_PASSWORD" "smtpPassword" true) }}
{{ include "qc-collector.secretEnv" (list . "SLACK_WEBHOOK_URL" "slackWebhookUrl" true) }}
{{ include "qc-collector.secretEnv" (list . "PAGERDUTY_INTEGRATION_KEY" "pagerdutyIntegrationKey" true) }}
{{- end }}

{{/* The claim shared by API and worker pods at EXPORT_DIR (when persistence is on). */}}
{{- define "qc-collector.exportsClaim" -}}
{{- default (printf "%s-exports" (include "qc-collector.fullname" .)) .Values.exports.persistence.existingClaim }}
{{- end }}

{{/*
EXPORT_DIR: the shared claim, or (persistence off, only allowed without the worker) a
per-pod emptyDir so the path is writable on the read-only root filesystem.
*/}}
{{- define "qc-collector.exportsVolume" -}}
{{- if and .Values.worker.enabled (not .Values.exports.persistence.enabled) }}
{{- fail "worker.enabled needs exports.persistence.enabled: the worker writes export files that the API pods serve, and they share no pod (set exports.persistence.existingClaim, or let the chart create a ReadWriteMany claim)" }}
{{- end }}
- name: exports
{{- if .Values.exports.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "qc-collector.exportsClaim" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{- define "qc-collector.exportsMount" -}}
- name: exports
  mountPath: {{ .Values.exports.mountPath }}
{{- end }}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "qc-collector.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end }}

{{- define "qc-collector.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/qc-collector
{{- end }}

{{/* PromQL label matchers of this release's series. */}}
{{- define "qc-collector.metricSelector" -}}
{{- default (printf "namespace=%q,job=%q" .Release.Namespace (include "qc-collector.fullname" .)) .Values.prometheusRule.selector }}
{{- end }}
