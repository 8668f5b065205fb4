{{/* Name of a region's objects: <release>-<region>. */}}
{{- define "causeway.regionName" -}}
{{- printf "%s-%s" .root.Release.Name .region.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "causeway.labels" -}}
app.kubernetes.io/name: causeway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "causeway.selector" -}}
app.kubernetes.io/name: causeway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The gossip address of a region's pod, through its headless Service. */}}
{{- define "causeway.gossipAddr" -}}
{{- $name := include "causeway.regionName" . -}}
{{- printf "%s-0.%s.%s.svc.cluster.local:%v" $name $name .root.Release.Namespace .root.Values.ports.gossip -}}
{{- end -}}

{{/* The Secret holding a region's certificates: regions[].tlsSecretName, else
tls.secretName with "{region}" replaced by the region's name. */}}
{{- define "causeway.tlsSecret" -}}
{{- .region.tlsSecretName | default (replace "{region}" .region.name .root.Values.tls.secretName) -}}
{{- end -}}
