{{/* The objects' name: the release's, with "tinderbox" added unless it has it. */}}
{{- define "tinderbox.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tinderbox.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tinderbox.labels" -}}
{{ include "tinderbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "tinderbox.configDir" -}}/etc/tinderbox/config{{- end -}}
{{- define "tinderbox.tokenDir" -}}/etc/tinderbox/admin{{- end -}}
{{- define "tinderbox.dataDir" -}}/var/lib/tinderbox{{- end -}}
{{- define "tinderbox.gitRoot" -}}/git{{- end -}}
{{- define "tinderbox.etcdTLSDir" -}}/etc/tinderbox/etcd{{- end -}}

{{/* The profiles directory tinderbox reads. */}}
{{- define "tinderbox.profilesDir" -}}
{{- if eq .Values.profiles.source "gitSync" -}}
{{- $dir := printf "%s/profiles" (include "tinderbox.gitRoot" .) -}}
{{- with trimAll "/" .Values.gitSync.path -}}{{- $dir = printf "%s/%s" $dir . -}}{{- end -}}
{{- $dir -}}
{{- else -}}
/etc/tinderbox/profiles
{{- end -}}
{{- end -}}

{{- define "tinderbox.tokenSecret" -}}
{{- .Values.admin.token.existingSecret | default (printf "%s-admin" (include "tinderbox.fullname" .)) -}}
{{- end -}}

{{- define "tinderbox.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "tinderbox.fullname" .)) -}}
{{- end -}}

{{/*
The profile files of profiles.source chart, as a JSON object from their path in
the profiles directory to their content: every file under the chart's
profiles/ folder, then profiles.files (which wins). JSON, not YAML: a
toYaml/fromYaml round trip drops the last file's final newline.
*/}}
{{- define "tinderbox.profileFiles" -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "profiles/**" -}}
{{- $rel := trimPrefix "profiles/" $path -}}
{{- if ne (base $rel) ".gitkeep" -}}
{{- $_ := set $files $rel ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- range $rel, $content := .Values.profiles.files -}}
{{- $_ := set $files (trimAll "/" $rel) $content -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
The Secret key of a profile file: its path with "/" made "_" (a Secret key
holds no "/"; the volume's items put each key back at its path).
*/}}
{{- define "tinderbox.profileKey" -}}
{{- . | replace "/" "_" -}}
{{- end -}}

{{/* Render-time checks: one message per mistake, before anything is made. */}}
{{- define "tinderbox.validate" -}}
{{- $d := .Values.dhcp -}}
{{- if and $d.interface $d.interfaces -}}
{{- fail "dhcp.interface and dhcp.interfaces are both set: name every interface in dhcp.interfaces" -}}
{{- end -}}
{{- if not (or $d.interface $d.interfaces $d.allInterfaces) -}}
{{- fail "dhcp.interface is not set: name the node's PXE LAN interface (--set dhcp.interface=enp1s0), list several in dhcp.interfaces, or set dhcp.allInterfaces=true to answer PXE clients on every network the node is on" -}}
{{- end -}}
{{- if not (has .Values.profiles.source (list "chart" "existingSecrets" "gitSync")) -}}
{{- fail (printf "profiles.source %q: want chart, existingSecrets or gitSync" .Values.profiles.source) -}}
{{- end -}}
{{- if eq .Values.profiles.source "gitSync" -}}
{{- if not .Values.gitSync.repo -}}{{- fail "profiles.source is gitSync: set gitSync.repo" -}}{{- end -}}
{{- if not .Values.gitSync.image.repository -}}{{- fail "profiles.source is gitSync: set gitSync.image.repository (the git-sync v4 image)" -}}{{- end -}}
{{- end -}}
{{- if eq .Values.profiles.source "chart" -}}
{{- $keys := dict -}}
{{- range $rel, $_ := include "tinderbox.profileFiles" . | fromJson -}}
{{- $key := include "tinderbox.profileKey" $rel -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $key) -}}
{{- fail (printf "profiles: file %q: a path may hold only letters, digits, '-', '_', '.' and '/'" $rel) -}}
{{- end -}}
{{- if hasKey $keys $key -}}
{{- fail (printf "profiles: files %q and %q make the same Secret key %q: rename one" (get $keys $key) $rel $key) -}}
{{- end -}}
{{- $_ := set $keys $key $rel -}}
{{- end -}}
{{- end -}}
{{- if and .Values.admin.tls.enabled (not .Values.admin.tls.secretName) -}}
{{- fail "admin.tls.enabled: set admin.tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if not (has .Values.persistence.type (list "pvc" "hostPath" "emptyDir")) -}}
{{- fail (printf "persistence.type %q: want pvc, hostPath or emptyDir" .Values.persistence.type) -}}
{{- end -}}
{{- if not (has .Values.replicas.mode (list "single" "daemonset")) -}}
{{- fail (printf "replicas.mode %q: want single or daemonset" .Values.replicas.mode) -}}
{{- end -}}
{{- if eq .Values.replicas.mode "daemonset" -}}
{{- if not .Values.etcd.endpoints -}}
{{- fail "replicas.mode is daemonset: list the etcd cluster's client URLs in etcd.endpoints (the replicas share their state there)" -}}
{{- end -}}
{{- if not .Values.etcd.tls.secretName -}}
{{- fail "replicas.mode is daemonset: set etcd.tls.secretName, a Secret with the etcd client certificate (ca.crt, tls.crt, tls.key)" -}}
{{- end -}}
{{- if not (has .Values.replicas.local.type (list "hostPath" "emptyDir")) -}}
{{- fail (printf "replicas.local.type %q: want hostPath or emptyDir (a DaemonSet's pods cannot share one claim)" .Values.replicas.local.type) -}}
{{- end -}}
{{- if not .Values.nodeSelector -}}
{{- fail "replicas.mode is daemonset: set nodeSelector to the label of the PXE nodes, or every node of the cluster runs a proxyDHCP" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* tinderbox.yaml: .Values.config, then what the chart decides. */}}
{{- define "tinderbox.config" -}}
{{- $hosts := list -}}
{{- range .Values.admin.hosts -}}{{- $hosts = append $hosts . -}}{{- end -}}
{{- if and .Values.admin.tls.enabled .Values.advertise -}}
{{- $hosts = append $hosts (printf "%s:%v" .Values.advertise .Values.admin.tls.port) -}}
{{- end -}}
{{- $dhcp := dict "enabled" true "interface" (.Values.dhcp.interface | default "") "interfaces" (.Values.dhcp.interfaces | default list) -}}
{{- $chart := dict
  "http" (dict "listen" ":8080")
  "admin" (dict
    "listen" (printf "127.0.0.1:%v" .Values.admin.port)
    "tokenFile" (printf "%s/%s" (include "tinderbox.tokenDir" .) .Values.admin.token.key)
    "hosts" (uniq $hosts))
  "dhcp" $dhcp
  "tftp" (dict "enabled" true "listen" ":69")
  "ipxe" (dict "dir" "/usr/lib/ipxe")
  "cache" (dict "dir" (printf "%s/cache" (include "tinderbox.dataDir" .)) "maxSize" .Values.cacheMaxSize)
  "state" (dict "dir" (include "tinderbox.dataDir" .))
  "profiles" (dict "dir" (include "tinderbox.profilesDir" .))
-}}
{{- if eq .Values.replicas.mode "daemonset" -}}
{{- $tls := include "tinderbox.etcdTLSDir" . -}}
{{- $etcd := dict
  "endpoints" .Values.etcd.endpoints
  "prefix" .Values.etcd.prefix
  "tls" (dict "ca" (printf "%s/ca.crt" $tls) "cert" (printf "%s/tls.crt" $tls) "key" (printf "%s/tls.key" $tls))
-}}
{{- $_ := set $chart "state" (dict "dir" (include "tinderbox.dataDir" .) "backend" "etcd" "etcd" $etcd) -}}
{{- end -}}
{{- with .Values.advertise -}}{{- $_ := set $chart "advertise" . -}}{{- end -}}
{{- $cfg := mergeOverwrite (deepCopy (.Values.config | default dict)) $chart -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
The git-sync container after its name: the init container (oneTime) makes
the first clone, the sidecar follows the ref. gitRoot/profiles is the link
git-sync swaps to each new checkout, which tinderbox's watcher follows.
*/}}
{{- define "tinderbox.gitSyncContainer" -}}
{{- $ := .root -}}
{{- $g := $.Values.gitSync -}}
image: "{{ $g.image.repository }}:{{ $g.image.tag }}"
imagePullPolicy: {{ $g.image.pullPolicy }}
args:
  - --repo={{ $g.repo }}
  - --ref={{ $g.ref }}
  - --root={{ include "tinderbox.gitRoot" $ }}
  - --link=profiles
  - --period={{ $g.period }}
  {{- if .oneTime }}
  - --one-time
  {{- end }}
  {{- if $g.credentialsSecret }}
  {{- if $g.ssh }}
  - --ssh-key-file=/etc/git-secret/ssh
  - --ssh-known-hosts-file=/etc/git-secret/known_hosts
  {{- else }}
  - --username=$(GITSYNC_USERNAME)
  - --password-file=/etc/git-secret/password
  {{- end }}
  {{- end }}
  {{- range $g.extraArgs }}
  - {{ . }}
  {{- end }}
env:
  # git writes its own config under HOME; the root file system is read-only.
  - name: HOME
    value: /tmp
  {{- if and $g.credentialsSecret (not $g.ssh) }}
  - name: GITSYNC_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ $g.credentialsSecret }}
        key: username
  {{- end }}
{{- with $g.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop:
      - ALL
volumeMounts:
  - name: profiles
    mountPath: {{ include "tinderbox.gitRoot" $ }}
  - name: git-tmp
    mountPath: /tmp
  {{- if $g.credentialsSecret }}
  - name: git-credentials
    mountPath: /etc/git-secret
    readOnly: true
  {{- end }}
{{- end -}}
