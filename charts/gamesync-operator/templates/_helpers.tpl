{{/*
The chart name, overridable. Truncated at 63 characters because some Kubernetes name fields are
limited to that (DNS label, RFC 1123).
*/}}
{{- define "gamesync-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified app name: release name plus chart name unless the release name already holds
it. Truncated at 63 characters for the same DNS reason.
*/}}
{{- define "gamesync-operator.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "gamesync-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels for every object. They carry the chart version, so they change on upgrade and must
never be used as selectors (selectors are immutable): see selectorLabels.
*/}}
{{- define "gamesync-operator.labels" -}}
helm.sh/chart: {{ include "gamesync-operator.chart" . }}
{{ include "gamesync-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gamesync
{{- end }}

{{/*
Selector labels: name and instance only, stable for the life of the release.
*/}}
{{- define "gamesync-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gamesync-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "gamesync-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gamesync-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches when it is not cluster-wide: the listed ones, or the
release namespace.
*/}}
{{- define "gamesync-operator.watchNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- join "," (uniq .Values.watch.namespaces) }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: the tag defaults to the chart's appVersion,
and a digest, when given, pins the image whatever the tag says.
*/}}
{{- define "gamesync-operator.image" -}}
{{- $tag := .image.tag | default .chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in each namespace it manages: exactly the calls it makes (a test
records every API call of the operator's KMock suite and compares them with these, both ways;
docs/operator.md has the same table with reasons). Shared by the namespaced Role and the
cluster-wide ClusterRole, so that both modes grant exactly the same. Children are listed and
watched so that a deleted or edited child is repaired at once; Secrets and ConfigMaps are not
(read one by one, by name, and repaired by the resync).
*/}}
{{- define "gamesync-operator.namespacedRules" -}}
# The custom resource: kopf lists and watches it (and patches off the finalizer that earlier
# versions added); the operator reads it fresh before each pass and writes /status.
- apiGroups: ["gamesync.nommie.dev"]
  resources: ["gamesyncclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["gamesync.nommie.dev"]
  resources: ["gamesyncclusters/status"]
  verbs: ["patch"]
# Children carry `blockOwnerDeletion: true`, which needs this where the
# OwnerReferencesPermissionEnforcement admission plugin is on (no request shows it).
- apiGroups: ["gamesync.nommie.dev"]
  resources: ["gamesyncclusters/finalizers"]
  verbs: ["update"]
# Children, read by name, written with create + server-side apply (a patch), watched for
# repairs. Deleted by the operator only when spec.gateway.shards changes (the previous layout's
# Deployments and shard Services); otherwise ownerReference garbage collection does that.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The runtime ConfigMap and the two key Secrets: read by name only, never listed or watched.
- apiGroups: [""]
  resources: ["configmaps", "secrets"]
  verbs: ["get", "create", "patch"]
# Optional children, deleted when their mode or switch is turned off.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Gateway pods: find them to read their /v1/stats, set pod-deletion-cost before a scale-down.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
# Events for rotations, scaling, rebalancing, conflicts and failures.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
The gateway images a GameSyncCluster may run: operator.allowedImages, or by default the
chart's own gateway repository at any tag or digest.
*/}}
{{- define "gamesync-operator.allowedImages" -}}
{{- if .Values.operator.allowedImages }}
{{- toYaml .Values.operator.allowedImages }}
{{- else }}
- {{ printf "%s:*" .Values.gatewayImage.repository }}
- {{ printf "%s@*" .Values.gatewayImage.repository }}
{{- end }}
{{- end }}
