// Package deploy holds tinderbox's deployment files and no code: the
// systemd unit (systemd/), the .deb's config and scripts (package/), the
// kustomize base, example overlay and ServiceMonitor component for k3s
// (kubernetes/), the Helm chart (helm/tinderbox/) and the Grafana dashboard
// (grafana/). Its tests decode every Kubernetes manifest strictly into the
// API types, render the example overlay with kustomize and the chart with
// Helm's Go SDK under several value sets, check the invariants the daemon
// depends on (host network, one replica, Recreate, capabilities, probes,
// mounts matching the config, the admin listener on loopback), and check
// that every metric and label the dashboard queries is one the daemon
// exposes, as cmd/tinderbox/testdata/metrics.golden records them.
package deploy
