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

{{/*
The app role's connections: DATABASE_URL (through the pooler when database.pooler is
enabled) and the optional read replica DATABASE_READ_URL.
*/}}
{{- define "qc-collector.databaseEnv" -}}
{{ include "qc-collector.secretEnv" (list . "DATABASE_URL" (ternary "databasePoolerUrl" "databaseUrl" .Values.database.pooler.enabled) false) }}
{{- if .Values.database.pooler.enabled }}
{{/* LISTEN needs a session: the job queue's and the API's tenant-change listener go direct */}}
{{ include "qc-collector.secretEnv" (list . "WORKER_DATABASE_URL" "databaseUrl" false) }}
{{- end }}
{{ include "qc-collector.secretEnv" (list . "DATABASE_READ_URL" "databaseReadUrl" true) }}
{{- end }}

{{/* The API's secret environment. */}}
{{- define "qc-collector.apiSecretEnv" -}}
{{- $production := eq .Values.config.environment "production" -}}
{{ include "qc-collector.databaseEnv" . }}
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
{{ include "qc-collector.databaseEnv" . }}
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

{{/*
The release's worst-case PostgreSQL connections, checked against database.maxConnections:
rendering fails, with the arithmetic, when the pods could open more than the server
allows. API pods count at the HPA's maxReplicas (or replicaCount) + 1 rollout surge pod;
worker pods roll with maxSurge 0, so they count at replicaCount.
*/}}
{{- define "qc-collector.connectionBudget" -}}
{{- $db := .Values.database }}
{{- $b := $db.budget }}
{{- $reserved := int $b.reserved }}
{{- $apiPods := add1 (int (ternary .Values.autoscaling.maxReplicas .Values.api.replicaCount .Values.autoscaling.enabled)) }}
{{- $workerPods := ternary (int .Values.worker.replicaCount) 0 .Values.worker.enabled }}
{{- if $db.pooler.enabled }}
{{- $direct := add (mul $apiPods (int .Values.config.webConcurrency)) (mul $workerPods (int $b.queuePool)) }}
{{- $total := add (int $db.pooler.serverConnections) $direct $reserved }}
{{- if gt $total (int $db.maxConnections) }}
{{- fail (printf "database connections: the pooler's %d server connections + %d direct sessions for LISTEN (%d API pods x %d processes + %d worker pods x %d queue) + %d reserved = %d exceed database.maxConnections %d: lower database.pooler.serverConnections or raise max_connections" (int $db.pooler.serverConnections) $direct $apiPods (int .Values.config.webConcurrency) $workerPods (int $b.queuePool) $reserved $total (int $db.maxConnections)) }}
{{- end }}
{{- else }}
{{- $perProcess := add (int .Values.config.dbPoolMax) (int $b.apiProcessExtra) }}
{{- $perApiPod := mul (int .Values.config.webConcurrency) $perProcess }}
{{- $api := mul $apiPods $perApiPod }}
{{- $perWorkerPod := add (int .Values.config.workerConcurrency) (int $b.workerPoolExtra) (int $b.queuePool) }}
{{- $worker := mul $workerPods $perWorkerPod }}
{{- $total := add $api $worker $reserved }}
{{- if gt $total (int $db.maxConnections) }}
{{- fail (printf "database connections: API %d pods (maxReplicas + 1 surge) x %d processes (webConcurrency) x (%d dbPoolMax + %d) = %d, + worker %d pods x (%d workerConcurrency + %d + %d queue) = %d, + %d reserved = %d > database.maxConnections %d: lower autoscaling.maxReplicas, config.webConcurrency or config.dbPoolMax, enable database.pooler, or raise max_connections" $apiPods (int .Values.config.webConcurrency) (int .Values.config.dbPoolMax) (int $b.apiProcessExtra) $api $workerPods (int .Values.config.workerConcurrency) (int $b.workerPoolExtra) (int $b.queuePool) $worker $reserved $total (int $db.maxConnections)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Rollouts that drop nothing: the preStop sleep (endpoint propagation), then gunicorn's
graceful timeout, must end before Kubernetes' SIGKILL, with 5 s to spare.
*/}}
{{- define "qc-collector.checkGracePeriod" -}}
{{- $needed := add (int .Values.api.preStopSleepSeconds) (int .Values.config.gracefulTimeoutSeconds) 5 }}
{{- if gt $needed (int .Values.api.terminationGracePeriodSeconds) }}
{{- fail (printf "api.terminationGracePeriodSeconds %d is too short: api.preStopSleepSeconds %d + config.gracefulTimeoutSeconds %d + 5 s margin = %d" (int .Values.api.terminationGracePeriodSeconds) (int .Values.api.preStopSleepSeconds) (int .Values.config.gracefulTimeoutSeconds) $needed) }}
{{- end }}
{{- end }}

{{/*
Default topology spread of a component (api or worker): over zones and over nodes, best
effort (ScheduleAnyway), so one zone or node outage never takes every pod.
include "qc-collector.topologySpread" (list $ "api")
*/}}
{{- define "qc-collector.topologySpread" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
- maxSkew: 1
  topologyKey: {{ . }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "qc-collector.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ $component }}
  matchLabelKeys:
    - pod-template-hash
{{- end }}
{{- end }}

{{/*
Whether a Prometheus Operator object renders: enabled, and the cluster serves the CRD
(or requireCRDs is false). include "qc-collector.monitoringEnabled" (list $ .Values.serviceMonitor "ServiceMonitor")
*/}}
{{- define "qc-collector.monitoringEnabled" -}}
{{- $root := index . 0 -}}
{{- $values := index . 1 -}}
{{- if and $values.enabled (or (not $values.requireCRDs) ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" (index . 2)))) -}}
true
{{- end }}
{{- end }}
