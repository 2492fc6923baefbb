{{/*
Names, labels, image references and the storage settings shared by the templates.
*/}}

{{- define "stereo-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name; short enough for "-operator" / "-watcher" suffixes. */}}
{{- define "stereo-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stereo-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Kubernetes recommended labels. */}}
{{- define "stereo-operator.labels" -}}
helm.sh/chart: {{ include "stereo-operator.chart" . }}
{{ include "stereo-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stereo-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "stereo-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stereo-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: include with (dict "ctx" $ "component" "operator"). */}}
{{- define "stereo-operator.componentLabels" -}}
{{ include "stereo-operator.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "stereo-operator.componentSelectorLabels" -}}
{{ include "stereo-operator.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "stereo-operator.operator.fullname" -}}
{{ include "stereo-operator.fullname" . }}-operator
{{- end }}

{{- define "stereo-operator.watcher.fullname" -}}
{{ include "stereo-operator.fullname" . }}-watcher
{{- end }}

{{- define "stereo-operator.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "stereo-operator.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stereo-operator.watcher.serviceAccountName" -}}
{{- if .Values.watcher.serviceAccount.create }}
{{- default (include "stereo-operator.watcher.fullname" .) .Values.watcher.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.watcher.serviceAccount.name }}
{{- end }}
{{- end }}

{{- /* The operator's heartbeat Lease (liveness), named in its config and its RBAC. */}}
{{- define "stereo-operator.heartbeatLease" -}}
{{ include "stereo-operator.fullname" . }}-heartbeat
{{- end }}

{{- define "stereo-operator.peeringName" -}}
{{- default (include "stereo-operator.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest, else repository:tag,
the tag defaulting to the chart's appVersion. Include with (dict "image" ... "ctx" $).
*/}}
{{- define "stereo-operator.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The media Jobs' image: its own when a repository is set, else the inference image. */}}
{{- define "stereo-operator.mediaImage" -}}
{{- if .Values.jobs.media.image.repository }}
{{- include "stereo-operator.imageRef" (dict "image" .Values.jobs.media.image "ctx" .) }}
{{- else }}
{{- include "stereo-operator.imageRef" (dict "image" .Values.jobs.inference.image "ctx" .) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- storage */}}

{{- define "stereo-operator.s3Compatible" -}}
{{- if has .Values.storage.kind (list "s3" "minio" "seaweedfs") }}true{{ end }}
{{- end }}

{{/* The workspace URI: s3://bucket/prefix, gs://bucket/prefix or file:///path/prefix. */}}
{{- define "stereo-operator.workspace" -}}
{{- $s := .Values.storage }}
{{- $prefix := trimAll "/" $s.rootPrefix }}
{{- if eq $s.kind "file" }}
{{- $root := trimSuffix "/" $s.file.path }}
{{- if $prefix }}{{ printf "file://%s/%s" $root $prefix }}{{ else }}{{ printf "file://%s" $root }}{{ end }}
{{- else }}
{{- if not $s.bucket }}
{{- fail (printf "storage.bucket is required for storage.kind=%s" $s.kind) }}
{{- end }}
{{- $scheme := ternary "gs" "s3" (eq $s.kind "gcs") }}
{{- if $prefix }}{{ printf "%s://%s/%s" $scheme $s.bucket $prefix }}{{ else }}{{ printf "%s://%s" $scheme $s.bucket }}{{ end }}
{{- end }}
{{- end }}

{{- define "stereo-operator.pathStyle" -}}
{{- if kindIs "bool" .Values.storage.pathStyle }}
{{- .Values.storage.pathStyle }}
{{- else }}
{{- has .Values.storage.kind (list "minio" "seaweedfs") }}
{{- end }}
{{- end }}

{{- define "stereo-operator.region" -}}
{{- if .Values.storage.region }}
{{- .Values.storage.region }}
{{- else if has .Values.storage.kind (list "minio" "seaweedfs") }}
{{- "us-east-1" }}
{{- end }}
{{- end }}

{{/* Name of the Secret with the storage credentials, or empty. */}}
{{- define "stereo-operator.storageSecretName" -}}
{{- if .Values.storage.existingSecret }}
{{- .Values.storage.existingSecret }}
{{- else if .Values.storage.devCredentials.accessKeyId }}
{{- include "stereo-operator.fullname" . }}-storage
{{- end }}
{{- end }}

{{/* Where the operator and watcher mount the storage Secret (key.json for gcs). */}}
{{- define "stereo-operator.storageSecretDir" -}}
/var/run/secrets/stereo/storage
{{- end }}

{{/*
A stereo_storage.StorageConfig as JSON (field names of that model): the operator config's
`storage`, and STEREO_STORAGE_CONFIG of the Jobs. Include with (dict "ctx" $ "mounted" true)
where the credentials Secret is mounted as a directory.
*/}}
{{- define "stereo-operator.storageConfigJson" -}}
{{- $ctx := .ctx }}
{{- $s := $ctx.Values.storage }}
{{- $cfg := dict }}
{{- if $s.endpoint }}{{ $_ := set $cfg "endpoint_url" $s.endpoint }}{{ end }}
{{- $region := include "stereo-operator.region" $ctx }}
{{- if $region }}{{ $_ := set $cfg "region" $region }}{{ end }}
{{- if include "stereo-operator.s3Compatible" $ctx }}
{{- $_ := set $cfg "path_style" (eq (include "stereo-operator.pathStyle" $ctx) "true") }}
{{- end }}
{{- if and (eq $s.kind "gcs") $s.gcsProject }}{{ $_ := set $cfg "gcs_project" $s.gcsProject }}{{ end }}
{{- if and .mounted (include "stereo-operator.storageSecretName" $ctx) }}
{{- $_ := set $cfg "secret_dir" (include "stereo-operator.storageSecretDir" $ctx) }}
{{- end }}
{{- if eq $s.kind "file" }}{{ $_ := set $cfg "local_root" (trimSuffix "/" $s.file.path) }}{{ end }}
{{- toJson $cfg }}
{{- end }}

{{/*
Environment variables that point the storage SDKs (boto3, google-cloud-storage) at the store
(they read these themselves), and for the Jobs STEREO_STORAGE_CONFIG (a StorageConfig as
JSON). A YAML list, possibly empty; include with (dict "ctx" $ "mounted" bool "json" bool).
*/}}
{{- define "stereo-operator.storageEnv" -}}
{{- $ctx := .ctx }}
{{- $s := $ctx.Values.storage }}
{{- if .json }}
- name: STEREO_STORAGE_CONFIG
  value: {{ include "stereo-operator.storageConfigJson" . | quote }}
{{- end }}
{{- $region := include "stereo-operator.region" $ctx }}
{{- if and (include "stereo-operator.s3Compatible" $ctx) $region }}
- name: AWS_REGION
  value: {{ $region | quote }}
{{- end }}
{{- if and (include "stereo-operator.s3Compatible" $ctx) $s.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ $s.endpoint | quote }}
{{- end }}
{{- if and (eq $s.kind "gcs") $s.gcsProject }}
- name: GOOGLE_CLOUD_PROJECT
  value: {{ $s.gcsProject | quote }}
{{- end }}
{{- if and .mounted (eq $s.kind "gcs") (include "stereo-operator.storageSecretName" $ctx) }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: {{ printf "%s/key.json" (include "stereo-operator.storageSecretDir" $ctx) | quote }}
{{- end }}
{{- end }}

{{/* envFrom for the S3 credentials Secret (a YAML list, possibly empty). */}}
{{- define "stereo-operator.storageEnvFrom" -}}
{{- $secret := include "stereo-operator.storageSecretName" . }}
{{- if and $secret (include "stereo-operator.s3Compatible" .) }}
- secretRef:
    name: {{ $secret }}
{{- end }}
{{- end }}

{{/* Volumes and mounts of the operator and watcher for storage (Secret dir, shared volume). */}}
{{- define "stereo-operator.storageVolumes" -}}
{{- $secret := include "stereo-operator.storageSecretName" . }}
{{- if $secret }}
- name: storage-credentials
  secret:
    secretName: {{ $secret }}
{{- end }}
{{- if and (eq .Values.storage.kind "file") .Values.storage.file.volume }}
- name: workspace
  {{- toYaml .Values.storage.file.volume | nindent 2 }}
{{- end }}
{{- end }}

{{- define "stereo-operator.storageVolumeMounts" -}}
{{- if include "stereo-operator.storageSecretName" . }}
- name: storage-credentials
  mountPath: {{ include "stereo-operator.storageSecretDir" . }}
  readOnly: true
{{- end }}
{{- if and (eq .Values.storage.kind "file") .Values.storage.file.volume }}
- name: workspace
  mountPath: {{ .Values.storage.file.path }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- webhook */}}

{{- define "stereo-operator.webhookFlavor" -}}
{{- if .Values.events.webhook.flavor }}
{{- .Values.events.webhook.flavor }}
{{- else if eq .Values.storage.kind "seaweedfs" }}
{{- "seaweedfs" }}
{{- else }}
{{- "minio" }}
{{- end }}
{{- end }}

{{/* The watcher runs only where storage notifications exist (not for file storage). */}}
{{- define "stereo-operator.watcherEnabled" -}}
{{- if and .Values.watcher.enabled (ne .Values.storage.kind "file") }}true{{ end }}
{{- end }}

{{/* Pub/Sub delivers by pushing to the watcher's /events/pubsub. */}}
{{- define "stereo-operator.pubsubPush" -}}
{{- if and (eq .Values.events.source "pubsub") (eq .Values.events.pubsub.delivery "push") }}true{{ end }}
{{- end }}

{{/* An endpoint of the watcher accepts the shared bearer token (webhooks, Pub/Sub push). */}}
{{- define "stereo-operator.webhookToken" -}}
{{- if or (eq .Values.events.source "webhook") (include "stereo-operator.pubsubPush" .) }}true{{ end }}
{{- end }}

{{- define "stereo-operator.webhookSecretName" -}}
{{- default (printf "%s-webhook-token" (include "stereo-operator.fullname" .)) .Values.events.webhook.token.existingSecret }}
{{- end }}

{{/* ---------------------------------------------------------------- pods */}}

{{/* The emptyDir every component gets for /tmp (the root file system is read-only). */}}
{{- define "stereo-operator.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{- define "stereo-operator.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* ---------------------------------------------------------------- watcher config */}}

{{/* The watcher's config file (stereo_operator.watcher.config.WatcherConfig), as YAML. */}}
{{- define "stereo-operator.watcherConfig" -}}
{{- $w := .Values.watcher }}
{{- $ev := .Values.events }}
{{- $flavor := include "stereo-operator.webhookFlavor" . }}
{{- $webhook := dict "minio" false "seaweedfs" false }}
{{- if eq $ev.source "webhook" }}
{{- $_ := set $webhook $flavor true }}
{{- $_ := set $webhook "tokenFile" (printf "/var/run/secrets/stereo/webhook/%s" $ev.webhook.token.key) }}
{{- if eq $flavor "seaweedfs" }}
{{- $_ := set $webhook "spoolDir" "/var/spool/stereo-watcher" }}
{{- end }}
{{- end }}
{{- if include "stereo-operator.pubsubPush" . }}
{{- $push := $ev.pubsub.push }}
{{- $_ := set $webhook "pubsub" true }}
{{- $_ := set $webhook "tokenFile" (printf "/var/run/secrets/stereo/webhook/%s" $ev.webhook.token.key) }}
{{- if $push.audience }}
{{- $oidc := dict "audience" $push.audience }}
{{- with $push.serviceAccountEmail }}{{ $_ := set $oidc "serviceAccountEmail" . }}{{ end }}
{{- $_ := set $webhook "pubsubOidc" $oidc }}
{{- end }}
{{- end }}
{{- $config := dict
  "roots" (prepend $w.extraRoots (include "stereo-operator.workspace" .) | uniq)
  "namespaces" .Values.watchNamespaces
  "webhook" $webhook
  "http" (dict "port" $w.port)
  "maxConcurrency" $w.maxConcurrency
  "logLevel" $w.logLevel }}
{{- if eq $ev.source "sqs" }}
{{- $queue := dict
  "queueUrl" (required "events.sqs.queueUrl is required for events.source=sqs" $ev.sqs.queueUrl)
  "waitTimeSeconds" $ev.sqs.waitTimeSeconds
  "maxMessages" $ev.sqs.maxMessages
  "visibilityTimeoutSeconds" $ev.sqs.visibilityTimeoutSeconds }}
{{- with (default .Values.storage.region $ev.sqs.region) }}{{ $_ := set $queue "region" . }}{{ end }}
{{- $_ := set $config "sqs" (list $queue) }}
{{- else if and (eq $ev.source "pubsub") (not (include "stereo-operator.pubsubPush" .)) }}
{{- $sub := required "events.pubsub.subscription is required for events.source=pubsub" $ev.pubsub.subscription }}
{{- $_ := set $config "pubsub" (list (dict "subscription" $sub)) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* ---------------------------------------------------------------- operator config */}}

{{/*
One PodTemplate of OperatorConfig (camelCase keys, as its aliases) as YAML; include with
(dict "ctx" $ "template" .Values.jobs.inference "image" "<ref>" "pullPolicy" "<policy>") and
read back with fromYaml.
*/}}
{{- define "stereo-operator.podTemplateConfig" -}}
{{- $ctx := .ctx }}
{{- $t := .template }}
{{- /* S3 keys reach the Jobs as envFrom; a GCS key file is mounted, as in the operator. */}}
{{- $secret := include "stereo-operator.storageSecretName" $ctx }}
{{- $mountKey := and (eq $ctx.Values.storage.kind "gcs") (ne $secret "") }}
{{- $volumes := $t.volumes }}
{{- $mounts := $t.volumeMounts }}
{{- if $mountKey }}
{{- $volumes = append $volumes (dict "name" "storage-credentials" "secret" (dict "secretName" $secret)) }}
{{- $mounts = append $mounts (dict "name" "storage-credentials" "mountPath" (include "stereo-operator.storageSecretDir" $ctx) "readOnly" true) }}
{{- end }}
{{- $out := dict
  "image" .image
  "imagePullPolicy" .pullPolicy
  "command" $t.command
  "gpus" $t.gpus
  "resources" $t.resources
  "nodeSelector" $t.nodeSelector
  "tolerations" $t.tolerations
  "env" (concat $t.env (fromYamlArray (include "stereo-operator.storageEnv" (dict "ctx" $ctx "mounted" $mountKey "json" true))) | default (list))
  "envFrom" (concat $t.envFrom (fromYamlArray (include "stereo-operator.storageEnvFrom" $ctx)) | default (list))
  "labels" $t.labels
  "ttlSecondsAfterFinished" $t.ttlSecondsAfterFinished
  "volumes" $volumes
  "volumeMounts" $mounts
  "podSecurityContext" $t.podSecurityContext
  "securityContext" $t.securityContext }}
{{- with $t.serviceAccountName }}{{ $_ := set $out "serviceAccountName" . }}{{ end }}
{{- with $t.priorityClassName }}{{ $_ := set $out "priorityClassName" . }}{{ end }}
{{- with $t.runtimeClassName }}{{ $_ := set $out "runtimeClassName" . }}{{ end }}
{{- toYaml $out }}
{{- end }}

{{/* The operator's config file (stereo_operator.config.OperatorConfig), as YAML. */}}
{{- define "stereo-operator.operatorConfig" -}}
{{- $j := .Values.jobs }}
{{- $inferenceImage := include "stereo-operator.imageRef" (dict "image" $j.inference.image "ctx" .) }}
{{- /* Media Jobs use the inference image, and its pull policy, unless given their own. */}}
{{- $mediaPullPolicy := ternary $j.media.image.pullPolicy $j.inference.image.pullPolicy (not (empty $j.media.image.repository)) }}
{{- $config := dict
  "workspace" (include "stereo-operator.workspace" .)
  "maxInflight" $j.maxInflight
  "reconcileSeconds" $j.reconcileSeconds
  "segmentCreatesPerTick" $j.segmentCreatesPerTick
  "cleanupAttempts" $j.cleanupAttempts
  "storage" (include "stereo-operator.storageConfigJson" (dict "ctx" . "mounted" true) | fromJson)
  "inference" (include "stereo-operator.podTemplateConfig" (dict "ctx" . "template" $j.inference "image" $inferenceImage "pullPolicy" $j.inference.image.pullPolicy) | fromYaml)
  "media" (include "stereo-operator.podTemplateConfig" (dict "ctx" . "template" $j.media "image" (include "stereo-operator.mediaImage" .) "pullPolicy" $mediaPullPolicy) | fromYaml) }}
{{- with $j.queueName }}{{ $_ := set $config "queueName" . }}{{ end }}
{{- $liveness := .Values.operator.liveness }}
{{- $_ := set $config "liveness" (dict "leaseName" (include "stereo-operator.heartbeatLease" .) "heartbeatSeconds" $liveness.heartbeatSeconds "timeoutSeconds" $liveness.timeoutSeconds) }}
{{- toYaml $config }}
{{- end }}
