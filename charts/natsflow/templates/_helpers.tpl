{{/*
Names, labels and the shared pod template of every natsflow component.
Callers that need a component pass a dict: (dict "root" $ "component" "engine").
*/}}

{{- define "natsflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "natsflow.fullname" -}}
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

{{- define "natsflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "natsflow.componentName" -}}
{{- printf "%s-%s" (include "natsflow.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades, never add a version here. */}}
{{- define "natsflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "natsflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "natsflow.labels" -}}
helm.sh/chart: {{ include "natsflow.chart" .root }}
{{ include "natsflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: natsflow
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "natsflow.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The NATS URL: explicit value, else the bundled server, else the official chart installed as
release "nats" in namespace "nats". Always a name that resolves from every namespace: the
operator hands it to the worker Deployments it creates in tenant namespaces.
*/}}
{{- define "natsflow.natsUrl" -}}
{{- if .Values.nats.url }}
{{- .Values.nats.url }}
{{- else if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "natsflow.componentName" (dict "root" . "component" "nats")) .Release.Namespace }}
{{- else }}
{{- "nats://nats.nats.svc:4222" }}
{{- end }}
{{- end }}

{{- define "natsflow.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "natsflow.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "natsflow.workload.serviceAccountName" -}}
{{- if .Values.workloadServiceAccount.create }}
{{- default (include "natsflow.componentName" (dict "root" . "component" "workload")) .Values.workloadServiceAccount.name }}
{{- else }}
{{- default "default" .Values.workloadServiceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the operator's per-tenant platform credentials are mounted (tenancy.enabled). */}}
{{- define "natsflow.tenantCredsDir" -}}
/etc/natsflow/tenants
{{- end }}

{{/* "true" when the component serves tenant accounts from the platform credentials Secret. */}}
{{- define "natsflow.tenantCreds" -}}
{{- if and .root.Values.tenancy.enabled (has .component (list "engine" "trigger-server" "console")) -}}
true
{{- end }}
{{- end }}

{{/* Where the NATS credentials file is mounted. */}}
{{- define "natsflow.natsCredsDir" -}}
/etc/natsflow/nats
{{- end }}

{{/*
Pod template shared by operator, engine and trigger server.
Arguments: root, component (name), values (the component's values), args (container args),
serviceAccountName, automountToken (bool), extraEnv (list of extra env entries, optional).
*/}}
{{- define "natsflow.podTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $ctx := dict "root" $root "component" .component -}}
metadata:
  labels:
    {{- include "natsflow.labels" $ctx | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := dict }}
  {{- if $root.Values.metrics.podAnnotations }}
  {{- $_ := set $annotations "prometheus.io/scrape" "true" }}
  {{- $_ := set $annotations "prometheus.io/port" (toString $root.Values.health.port) }}
  {{- $_ := set $annotations "prometheus.io/path" "/metrics" }}
  {{- end }}
  {{- $annotations = merge (deepCopy ($v.podAnnotations | default dict)) $annotations }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ .serviceAccountName }}
  automountServiceAccountToken: {{ .automountToken }}
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- if $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml $v.topologySpreadConstraints | nindent 4 }}
  {{- else if $root.Values.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
      topologyKey: {{ $root.Values.topologySpread.topologyKey }}
      whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "natsflow.selectorLabels" $ctx | nindent 10 }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 30
  containers:
    - name: {{ .component }}
      image: {{ include "natsflow.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        - name: NATS_URL
          value: {{ include "natsflow.natsUrl" $root | quote }}
        {{- if $root.Values.nats.credentialsSecret.name }}
        - name: NATS_CREDS
          value: {{ printf "%s/%s" (include "natsflow.natsCredsDir" $root) $root.Values.nats.credentialsSecret.key | quote }}
        {{- end }}
        - name: NATSFLOW_LOG_FORMAT
          value: {{ $root.Values.logging.format | quote }}
        - name: NATSFLOW_LOG_LEVEL
          value: {{ $root.Values.logging.level | quote }}
        - name: NATSFLOW_HEALTH_PORT
          value: {{ $root.Values.health.port | quote }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- if include "natsflow.tenantCreds" . }}
        - name: NATSFLOW_TENANT_CREDENTIALS_DIR
          value: {{ include "natsflow.tenantCredsDir" $root | quote }}
        {{- end }}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ $root.Values.health.port }}
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $root.Values.nats.credentialsSecret.name }}
        - name: nats-creds
          mountPath: {{ include "natsflow.natsCredsDir" $root }}
          readOnly: true
        {{- end }}
        {{- if include "natsflow.tenantCreds" . }}
        - name: tenant-creds
          mountPath: {{ include "natsflow.tenantCredsDir" $root }}
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $root.Values.nats.credentialsSecret.name }}
    - name: nats-creds
      secret:
        secretName: {{ $root.Values.nats.credentialsSecret.name }}
        defaultMode: 0440
        items:
          - key: {{ $root.Values.nats.credentialsSecret.key }}
            path: {{ $root.Values.nats.credentialsSecret.key }}
    {{- end }}
    {{- if include "natsflow.tenantCreds" . }}
    - name: tenant-creds
      secret:
        # written by the operator: <tenant>.creds per Ready Tenant; optional so that pods start
        # before the first Tenant, the kubelet fills the directory when the Secret appears
        secretName: natsflow-tenant-credentials
        optional: true
        defaultMode: 0440
    {{- end }}
{{- end }}
