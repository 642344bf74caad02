{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: prefix of every resource name. */}}
{{- define "tollgate.fullname" -}}
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

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- end }}

{{/* Labels that select the gateway pods: never change them on upgrade (selectors are immutable). */}}
{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image reference: repository plus digest, or tag. Argument: dict with img and default tag. */}}
{{- define "tollgate.image" -}}
{{- if .img.digest }}
{{- printf "%s@%s" .img.repository .img.digest }}
{{- else }}
{{- printf "%s:%s" .img.repository (.img.tag | default .tag) }}
{{- end }}
{{- end }}

{{/* Paths inside the pod. */}}
{{- define "tollgate.socketDir" -}}/var/run/tollgate{{- end }}
{{- define "tollgate.routingDir" -}}/etc/tollgate/routing{{- end }}
{{- define "tollgate.policyDir" -}}/etc/tollgate/policy{{- end }}
{{- define "tollgate.keysDir" -}}/etc/tollgate/keys{{- end }}
{{- define "tollgate.credentialsDir" -}}/etc/tollgate/credentials{{- end }}
{{- define "tollgate.ledgerConfigDir" -}}/etc/tollgate/ledger{{- end }}
{{- define "tollgate.ledgerDataDir" -}}/var/lib/tollgate/ledger{{- end }}
{{- define "tollgate.ledgerDSNDir" -}}/etc/tollgate/ledger-dsn{{- end }}
{{- define "tollgate.adminDir" -}}/etc/tollgate/admin{{- end }}

{{/* The ledger/admin ConfigMap is rendered when either section has something to say. */}}
{{- define "tollgate.ledgerConfigEnabled" -}}
{{- if or .Values.ledger.enabled .Values.admin.existingSecret }}true{{ end }}
{{- end }}

{{/* A SQLite ledger: a volume with the database file. */}}
{{- define "tollgate.sqliteLedger" -}}
{{- if and .Values.ledger.enabled (eq .Values.ledger.backend "sqlite") }}true{{ end }}
{{- end }}

{{- define "tollgate.ledgerClaimName" -}}
{{- .Values.ledger.sqlite.existingClaim | default (printf "%s-ledger" (include "tollgate.fullname" .)) }}
{{- end }}
{{- define "tollgate.envoyConfigDir" -}}/etc/envoy/bootstrap{{- end }}
{{- define "tollgate.envoyTLSDir" -}}/etc/envoy/tls{{- end }}

{{/* tollgate serve --grpc-addr, and the same address for `tollgate health`. */}}
{{- define "tollgate.grpcAddr" -}}
{{- if eq .Values.tollgate.transport "unix" -}}
unix://{{ include "tollgate.socketDir" . }}/extproc.sock
{{- else -}}
127.0.0.1:{{ .Values.tollgate.grpcPort }}
{{- end }}
{{- end }}

{{/* Name of the gateway listener's container and Service port. */}}
{{- define "tollgate.listenerPortName" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* Whether the policy ConfigMap is rendered. */}}
{{- define "tollgate.policyEnabled" -}}
{{- if .Values.policy.config }}true{{ end }}
{{- end }}

{{/* A gateway config file: version first, then the main lists in reading order, then the rest. */}}
{{- define "tollgate.configFile" -}}
version: {{ .version }}
{{- range $k := list "providers" "models" "tenants" }}
{{- if hasKey $ $k }}
{{ dict $k (get $ $k) | toYaml }}
{{- end }}
{{- end }}
{{- with omit . "version" "providers" "models" "tenants" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tollgate.keysSecretName" -}}
{{- if .Values.devMode.enabled }}
{{- printf "%s-dev-keys" (include "tollgate.fullname" .) }}
{{- else }}
{{- .Values.keys.existingSecret }}
{{- end }}
{{- end }}

{{- define "tollgate.credentialsSecretName" -}}
{{- if .Values.devMode.enabled }}
{{- printf "%s-dev-credentials" (include "tollgate.fullname" .) }}
{{- else }}
{{- .Values.credentials.existingSecret }}
{{- end }}
{{- end }}

{{- define "tollgate.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-dev-tls" (include "tollgate.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Checks across values that the JSON schema cannot express. Included by the Deployment, so a bad combination
fails `helm install` and `helm template` before anything is applied.
*/}}
{{- define "tollgate.validate" -}}
{{- $v := .Values }}
{{- $needed := add $v.lifecycle.preStopDelaySeconds $v.tollgate.drainTimeoutSeconds }}
{{- if le (int $v.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than lifecycle.preStopDelaySeconds + tollgate.drainTimeoutSeconds (%d), or in-flight streams are killed" (int $v.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- $ports := dict }}
{{- $named := list (list "envoy.port" $v.envoy.port) (list "envoy.healthPort" $v.envoy.healthPort) (list "envoy.adminPort" $v.envoy.adminPort) (list "tollgate.adminPort" $v.tollgate.adminPort) }}
{{- if eq $v.tollgate.transport "tcp" }}
{{- $named = append $named (list "tollgate.grpcPort" $v.tollgate.grpcPort) }}
{{- end }}
{{- range $named }}
{{- $p := toString (index . 1) }}
{{- if hasKey $ports $p }}
{{- fail (printf "%s and %s are both port %s: the containers share the pod's network namespace" (get $ports $p) (index . 0) $p) }}
{{- end }}
{{- $_ := set $ports $p (index . 0) }}
{{- end }}
{{- /* The chart's Envoy has no cluster of its own for providers: each needs a url, from which tollgate serve
generates its cluster and serves it over ADS. */}}
{{- range $cfg := list $v.routing.config ($v.policy.config | default dict) }}
{{- range ($cfg.providers | default list) }}
{{- if and (not .url) (ne (.schema | default "") "mock") }}
{{- fail (printf "routing: provider %q needs a url: the chart's Envoy gets every provider cluster from tollgate over xDS (an externally managed cluster cannot be added to it)" .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "tollgate.sqliteLedger" . }}
{{- if or $v.autoscaling.enabled (gt (int $v.replicaCount) 1) }}
{{- fail "ledger.backend sqlite keeps the ledger in one file on one volume: set replicaCount to 1 without autoscaling, or use ledger.backend postgres" }}
{{- end }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) (not $v.devMode.enabled) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- end }}
