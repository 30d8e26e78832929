{{/* Chart name, overridable with nameOverride. */}}
{{- define "mimical.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified object-name prefix, trimmed to 63 chars (DNS label limit). */}}
{{- define "mimical.fullname" -}}
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

{{/* Name of one component's objects: FULLNAME-COMPONENT, still within 63 chars. */}}
{{- define "mimical.componentName" -}}
{{- printf "%s-%s" (include "mimical.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "mimical.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels on every object; pass (dict "root" $ "component" "backend"). */}}
{{- define "mimical.labels" -}}
helm.sh/chart: {{ include "mimical.chart" .root }}
{{ include "mimical.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: mimical
{{- end }}

{{/* Labels a component's Service, PDB and NetworkPolicy select its pods by. */}}
{{- define "mimical.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mimical.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference; pass (dict "root" $ "image" .Values.backend.image). */}}
{{- define "mimical.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) }}
{{- end }}

{{/* Restricted Pod Security Standard: pod-level security context. */}}
{{- define "mimical.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security Standard: container-level security context. */}}
{{- define "mimical.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Name of the TF Serving model-config ConfigMap the operator maintains. */}}
{{- define "mimical.modelConfigMap" -}}
{{- .Values.tfserving.modelConfigMap | default (include "mimical.componentName" (dict "root" . "component" "tfserving-models")) }}
{{- end }}

{{/* Name of the Secret holding the chatbots' password hashes and owner-token digests. */}}
{{- define "mimical.chatbotSecrets" -}}
{{- include "mimical.componentName" (dict "root" . "component" "chatbot-secrets") }}
{{- end }}

{{/* host:port of the shared TF Serving gRPC endpoint. */}}
{{- define "mimical.modelServer" -}}
{{- printf "%s:8500" (include "mimical.componentName" (dict "root" . "component" "tfserving")) }}
{{- end }}

{{/* The object-storage root URL every component shares. */}}
{{- define "mimical.storageUrl" -}}
{{- if .Values.storage.prefix }}
{{- printf "s3://%s/%s" .Values.storage.bucket (trimAll "/" .Values.storage.prefix) }}
{{- else }}
{{- printf "s3://%s" .Values.storage.bucket }}
{{- end }}
{{- end }}

{{/* Environment for S3 access: storage root, endpoint, region and optional credentials. */}}
{{- define "mimical.storageEnv" -}}
- name: MIMICAL_STORAGE_URL
  value: {{ include "mimical.storageUrl" . | quote }}
- name: AWS_REGION
  value: {{ .Values.storage.region | quote }}
{{- with .Values.storage.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: AWS_ACCESS_KEY_ID}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: AWS_SECRET_ACCESS_KEY}
{{- end }}
{{- end }}

{{/* The Secret with the built-in Redis's password (key `password`). */}}
{{- define "mimical.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (include "mimical.componentName" (dict "root" . "component" "redis")) }}
{{- end }}

{{/* REDIS_URL: the built-in StatefulSet's Service (with its password), an external URL, or a Secret. */}}
{{- define "mimical.redisEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "mimical.redisSecret" . | quote }}, key: password}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "mimical.componentName" (dict "root" . "component" "redis")) | quote }}
{{- else if .Values.redis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.existingSecret | quote }}, key: REDIS_URL}
{{- else }}
- name: REDIS_URL
  value: {{ required "redis.externalUrl (or redis.existingSecret) is required when redis.enabled is false" .Values.redis.externalUrl | quote }}
{{- end }}
{{- end }}

{{/* Settings the backend and webhook share (names match mimical/config.py). */}}
{{- define "mimical.webEnv" -}}
- name: MIMICAL_ORCHESTRATOR
  value: kubernetes
- name: MIMICAL_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
- name: MIMICAL_MODEL_SERVER
  value: {{ include "mimical.modelServer" . | quote }}
- name: MIMICAL_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: MIMICAL_CHATBOT_SECRETS
  value: {{ include "mimical.chatbotSecrets" . | quote }}
- name: MIMICAL_TRUSTED_PROXY_HOPS
  value: {{ .Values.trustedProxyHops | quote }}
- name: MIMICAL_HOME
  value: /tmp/mimical
{{ include "mimical.storageEnv" . }}
{{ include "mimical.redisEnv" . }}
{{- end }}

{{/* Messenger settings of the webhook pod's containers (the Secret's keys as variables). */}}
{{- define "mimical.messengerEnv" -}}
- name: MIMICAL_GRAPH_API_URL
  value: {{ .Values.messenger.graphApiUrl | quote }}
- name: MIMICAL_MESSENGER_HUMAN_PAUSE_SECONDS
  value: {{ .Values.messenger.humanPauseSeconds | int | quote }}
- name: MIMICAL_MESSENGER_DISCLOSURE
  value: {{ .Values.messenger.disclosure | quote }}
- name: MIMICAL_MESSENGER_INBOX_APP_ID
  value: {{ .Values.messenger.inboxAppId | quote }}
{{- with .Values.messenger.appId }}
- name: MIMICAL_FB_APP_ID
  value: {{ . | quote }}
{{- end }}
{{- with .Values.messenger.privacyContact }}
- name: MIMICAL_PRIVACY_CONTACT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.messenger.existingSecret }}
- name: MIMICAL_FB_APP_SECRET
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: FB_APP_SECRET}
- name: MIMICAL_FB_VERIFY_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: FB_VERIFY_TOKEN}
- name: MIMICAL_FB_PAGE_ACCESS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: FB_PAGE_ACCESS_TOKEN}
{{- end }}
{{- end }}

{{/* The writable scratch volume every read-only-root container mounts at /tmp. */}}
{{- define "mimical.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit | default "256Mi" }}
{{- end }}

{{/* Settings of the model-mirror containers in the TF Serving pod. */}}
{{- define "mimical.mirrorEnv" -}}
- name: MIMICAL_MIRROR_ENTRIES
  value: /etc/mimical/serving/models.json
- name: MIMICAL_MIRROR_DIR
  value: /models
- name: MIMICAL_MIRROR_INTERVAL
  value: {{ .Values.tfserving.mirror.intervalSeconds | quote }}
- name: MIMICAL_HOME
  value: /tmp/mimical
{{ include "mimical.storageEnv" . }}
{{- end }}

{{/* Volumes of the model-mirror containers: the model cache, the operator's entries, /tmp. */}}
{{- define "mimical.mirrorMounts" -}}
- name: models
  mountPath: /models
- name: entries
  mountPath: /etc/mimical/serving
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}
