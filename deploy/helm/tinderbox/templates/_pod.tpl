{{/*
The pod of the Deployment (replicas.mode single) and of the DaemonSet
(daemonset): its metadata and spec, at the left margin.
*/}}
{{- define "tinderbox.podTemplate" -}}
{{- $profilesDir := include "tinderbox.profilesDir" . }}
{{- $source := .Values.profiles.source -}}
metadata:
  labels:
    {{- include "tinderbox.labels" . | nindent 4 }}
  annotations:
    # A changed config or profile set rolls the pod: what runs is what
    # the release says.
    checksum/config: {{ include "tinderbox.config" . | sha256sum }}
    {{- if eq $source "chart" }}
    checksum/profiles: {{ include "tinderbox.profileFiles" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # proxyDHCP answers broadcasts on the PXE LAN, which only the node's
  # own network sees. Every port the pod opens is on the node's
  # addresses: hence the admin listener on 127.0.0.1.
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 30
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  {{- if eq $source "gitSync" }}
  # The first clone, before tinderbox starts: profiles.dir must exist.
  initContainers:
    - name: git-sync-init
      {{- include "tinderbox.gitSyncContainer" (dict "root" . "oneTime" true) | nindent 6 }}
  {{- end }}
  containers:
    - name: tinderbox
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - {{ include "tinderbox.configDir" . }}/tinderbox.yaml
      ports:
        - name: dhcp
          containerPort: 67
          protocol: UDP
        - name: tftp
          containerPort: 69
          protocol: UDP
        - name: pxe
          containerPort: 4011
          protocol: UDP
        - name: http
          containerPort: 8080
          protocol: TCP
        # On 127.0.0.1 only: kubectl port-forward reaches it, as the
        # runtime dials localhost in the pod's (here the node's)
        # network namespace.
        - name: admin
          containerPort: {{ .Values.admin.port }}
          protocol: TCP
        - name: talos-events
          containerPort: 8091
          protocol: TCP
        - name: talos-logs
          containerPort: 8092
          protocol: TCP
        - name: talos-logs-udp
          containerPort: 8092
          protocol: UDP
      # Readiness: /readyz fails (503) while a machine could not boot
      # (state disk full, read-only or frozen; a listener down).
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 10
      # Liveness: /livez only asks whether the process answers: a
      # restart mends neither a bad disk nor bad profiles.
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        initialDelaySeconds: 10
        periodSeconds: 20
        failureThreshold: 3
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        # A non-root container gets no ambient capabilities: the
        # image's binary carries the file capability
        # cap_net_bind_service (ports 67, 69, 4011), which
        # no_new_privs would void. The bounding set is
        # NET_BIND_SERVICE alone; proxyDHCP needs no CAP_NET_RAW.
        allowPrivilegeEscalation: true
        readOnlyRootFilesystem: true
        capabilities:
          drop:
            - ALL
          add:
            - NET_BIND_SERVICE
      volumeMounts:
        - name: config
          mountPath: {{ include "tinderbox.configDir" . }}
          readOnly: true
        - name: admin-token
          mountPath: {{ include "tinderbox.tokenDir" . }}
          readOnly: true
        {{- if eq $source "chart" }}
        - name: profiles
          mountPath: {{ $profilesDir }}
          readOnly: true
        {{- else if eq $source "existingSecrets" }}
        # One Secret per subdirectory, mounted into an emptyDir (a
        # Secret volume without items cannot hold subdirectories).
        - name: profiles
          mountPath: {{ $profilesDir }}
        - name: profiles-defaults
          mountPath: {{ $profilesDir }}/defaults.yaml
          subPath: defaults.yaml
          readOnly: true
        # Without a secrets.yaml key Kubernetes mounts an empty
        # directory here, which tinderbox takes for no bundle.
        - name: profiles-defaults
          mountPath: {{ $profilesDir }}/secrets.yaml
          subPath: secrets.yaml
          readOnly: true
        {{- range $sub := list "configs" "groups" "machines" "patches" "schematics" "secrets" }}
        - name: profiles-{{ $sub }}
          mountPath: {{ $profilesDir }}/{{ $sub }}
          readOnly: true
        {{- end }}
        {{- else }}
        - name: profiles
          mountPath: {{ include "tinderbox.gitRoot" . }}
          readOnly: true
        {{- end }}
        - name: data
          mountPath: {{ include "tinderbox.dataDir" . }}
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.replicas.mode "daemonset" }}
        - name: etcd-tls
          mountPath: {{ include "tinderbox.etcdTLSDir" . }}
          readOnly: true
        {{- end }}
    {{- if eq $source "gitSync" }}
    - name: git-sync
      {{- include "tinderbox.gitSyncContainer" (dict "root" . "oneTime" false) | nindent 6 }}
    {{- end }}
    {{- if .Values.admin.tls.enabled }}
    # TLS on the node's addresses, forwarding to the loopback admin
    # listener; the browser's Host header passes through unchanged.
    - name: admin-tls
      image: "{{ .Values.admin.tls.image.repository }}:{{ .Values.admin.tls.image.tag }}"
      imagePullPolicy: {{ .Values.admin.tls.image.pullPolicy }}
      args:
        - server
        - --listen=:{{ .Values.admin.tls.port }}
        - --target=127.0.0.1:{{ .Values.admin.port }}
        - --cert=/etc/tinderbox/tls/tls.crt
        - --key=/etc/tinderbox/tls/tls.key
        # The admin API checks its bearer token itself; no client
        # certificates.
        - --disable-authentication
      ports:
        - name: admin-tls
          containerPort: {{ .Values.admin.tls.port }}
          protocol: TCP
      readinessProbe:
        tcpSocket:
          port: admin-tls
        periodSeconds: 10
      {{- with .Values.admin.tls.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop:
            - ALL
      volumeMounts:
        - name: admin-tls
          mountPath: /etc/tinderbox/tls
          readOnly: true
    {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "tinderbox.fullname" . }}-config
    - name: admin-token
      secret:
        secretName: {{ include "tinderbox.tokenSecret" . }}
        defaultMode: 0440
    {{- if eq $source "chart" }}
    - name: profiles
      secret:
        secretName: {{ include "tinderbox.fullname" . }}-profiles
        defaultMode: 0440
        items:
          {{- range $rel, $_ := include "tinderbox.profileFiles" . | fromJson }}
          - key: {{ include "tinderbox.profileKey" $rel }}
            path: {{ $rel }}
          {{- end }}
    {{- else if eq $source "existingSecrets" }}
    - name: profiles
      emptyDir:
        sizeLimit: 1Mi
    - name: profiles-defaults
      secret:
        secretName: {{ .Values.profiles.existingSecrets.defaults }}
        defaultMode: 0440
    {{- range $sub := list "configs" "groups" "machines" "patches" "schematics" "secrets" }}
    - name: profiles-{{ $sub }}
      secret:
        secretName: {{ index $.Values.profiles.existingSecrets $sub }}
        defaultMode: 0440
        optional: true
    {{- end }}
    {{- else }}
    - name: profiles
      emptyDir:
        sizeLimit: 64Mi
    - name: git-tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- with .Values.gitSync.credentialsSecret }}
    - name: git-credentials
      secret:
        secretName: {{ . }}
        defaultMode: 0440
    {{- end }}
    {{- end }}
    - name: data
      {{- if eq .Values.replicas.mode "daemonset" }}
      # The replica's own: the asset cache and the last good profiles.
      # Machine records, tokens and events are on etcd.
      {{- if eq .Values.replicas.local.type "hostPath" }}
      hostPath:
        path: {{ .Values.replicas.local.hostPath }}
        type: DirectoryOrCreate
      {{- else }}
      emptyDir: {}
      {{- end }}
      {{- else if eq .Values.persistence.type "pvc" }}
      persistentVolumeClaim:
        claimName: {{ include "tinderbox.claimName" . }}
      {{- else if eq .Values.persistence.type "hostPath" }}
      hostPath:
        path: {{ .Values.persistence.hostPath }}
        type: DirectoryOrCreate
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if .Values.admin.tls.enabled }}
    - name: admin-tls
      secret:
        secretName: {{ .Values.admin.tls.secretName }}
        defaultMode: 0440
    {{- end }}
    {{- if eq .Values.replicas.mode "daemonset" }}
    - name: etcd-tls
      secret:
        secretName: {{ .Values.etcd.tls.secretName }}
        defaultMode: 0440
    {{- end }}
{{- end -}}
