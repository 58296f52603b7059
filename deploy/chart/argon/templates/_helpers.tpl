{{/* The prefix of every object's name. */}}
{{- define "argon.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels of every object; pass (dict "root" $ "component" NAME). */}}
{{- define "argon.labels" -}}
app.kubernetes.io/part-of: argon
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* The labels a workload selects its pods by. */}}
{{- define "argon.selector" -}}
app.kubernetes.io/part-of: argon
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The argon image. */}}
{{- define "argon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding the server's token. */}}
{{- define "argon.tokenSecret" -}}
{{- printf "%s-server-token" (include "argon.fullname" .) -}}
{{- end -}}

{{/* The pod security of every Argon pod: the image's non-root user. */}}
{{- define "argon.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
