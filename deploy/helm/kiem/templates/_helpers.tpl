{{/* The chart name, or nameOverride. */}}
{{- define "kiem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else the release name when it contains the chart name, else
RELEASE-NAME. Truncated to 63 characters (DNS labels). The StatefulSet's pods append -0 and its claims data-...-0,
which stay within limits for names up to 52 characters.
*/}}
{{- define "kiem.fullname" -}}
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

{{/* chart-version for the helm.sh/chart label. */}}
{{- define "kiem.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "kiem.labels" -}}
helm.sh/chart: {{ include "kiem.chart" . }}
{{ include "kiem.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kiem
{{- end }}

{{/* Labels that select kiem's pod; they never change across upgrades. */}}
{{- define "kiem.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kiem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount kiem runs as. */}}
{{- define "kiem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kiem.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: by digest when one is given, else by tag (default: appVersion). */}}
{{- define "kiem.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The container port: the port of `listen` (host:port or [v6]:port). */}}
{{- define "kiem.port" -}}
{{- $port := .Values.listen | toString | splitList ":" | last }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "listen %q: want HOST:PORT, e.g. 0.0.0.0:8080" (.Values.listen | toString)) }}
{{- end }}
{{- $port }}
{{- end }}

{{/* http or https, the scheme of the probes and the name of the port. */}}
{{- define "kiem.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* The name of the ConfigMap the chart makes from filters.content. */}}
{{- define "kiem.filtersConfigMap" -}}
{{- printf "%s-filters" (include "kiem.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fails rendering on values that cannot work, with what to set. */}}
{{- define "kiem.validate" -}}
{{- if not (has .Values.auth.mode (list "kubernetes" "token")) }}
{{- fail (printf "auth.mode %q: want kubernetes or token" .Values.auth.mode) }}
{{- end }}
{{- if and (eq .Values.auth.mode "token") (not .Values.auth.tokenFile.secretName) }}
{{- fail "auth.mode token needs auth.tokenFile.secretName: an existing Secret holding the TOKEN,USER,ROLE file (docs/auth.md)" }}
{{- end }}
{{- if and (eq .Values.auth.mode "token") .Values.auth.audiences }}
{{- fail "auth.audiences applies to auth.mode kubernetes only" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: an existing kubernetes.io/tls Secret" }}
{{- end }}
{{- if not (has .Values.logLevel (list "debug" "info" "warn" "error")) }}
{{- fail (printf "logLevel %q: want debug, info, warn or error" .Values.logLevel) }}
{{- end }}
{{- end }}
