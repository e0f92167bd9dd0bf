package deploy

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "helm/tinderbox"
	// chartNamespace is the namespace the test installs into; every
	// namespaced object must land there.
	chartNamespace = "pxe"
)

// loadChart loads the chart from chartDir as `helm install` would from
// the folder, with the files of profiles (a directory on disk, or "" for
// none) copied into the chart's profiles/ folder.
func loadChart(t *testing.T, profiles string) *chartv2.Chart {
	t.Helper()
	var files []*archive.BufferedFile
	add := func(root, prefix string) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files = append(files, &archive.BufferedFile{Name: path.Join(prefix, filepath.ToSlash(rel)), Data: data})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	add(chartDir, "")
	if profiles != "" {
		add(profiles, "profiles")
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// renderChart renders c as `helm template --namespace pxe tb` would with
// the --set values sets (strvals syntax), returning the engine's error.
func renderChart(t *testing.T, c *chartv2.Chart, sets ...string) ([]object, error) {
	t.Helper()
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	top, err := util.ToRenderValues(c, vals, common.ReleaseOptions{Name: "tb", Namespace: chartNamespace, IsInstall: true}, nil)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Render(c, top)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	var objs []object
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, helpers
		}
		for doc := range strings.SplitSeq(out[name], "\n---") {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			if meta.Kind == "" {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Fatalf("%s: a document without a kind:\n%s", name, doc)
				}
				continue
			}
			objs = append(objs, object{kind: meta.Kind, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace, data: []byte(doc)})
		}
	}
	return objs, nil
}

// stripComments drops YAML comment lines.
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// mustRender renders and decodes every object strictly.
func mustRender(t *testing.T, c *chartv2.Chart, sets ...string) *rendered {
	t.Helper()
	objs, err := renderChart(t, c, sets...)
	if err != nil {
		t.Fatalf("helm template %v: %v", sets, err)
	}
	return decodeObjects(t, objs)
}

// TestChartDefaultsRefuseEveryInterface checks that the chart's own
// defaults do not render: with the node's network, a proxyDHCP bound to no
// interface would answer PXE clients on every network the node is on.
func TestChartDefaultsRefuseEveryInterface(t *testing.T) {
	c := loadChart(t, "")
	_, err := renderChart(t, c)
	if err == nil || !strings.Contains(err.Error(), "dhcp.interface is not set") {
		t.Fatalf("got %v, want the refusal naming dhcp.interface", err)
	}
	for _, tt := range []struct {
		name string
		sets []string
		want string
	}{
		{"both interface keys", []string{"dhcp.interface=eth0,dhcp.interfaces={eth1}"}, "both set"},
		{"unknown profiles source", []string{"dhcp.interface=eth0,profiles.source=nfs"}, "profiles.source"},
		{"git-sync without a repo", []string{"dhcp.interface=eth0,profiles.source=gitSync,gitSync.image.repository=git-sync"}, "gitSync.repo"},
		{"git-sync without an image", []string{"dhcp.interface=eth0,profiles.source=gitSync,gitSync.repo=https://git.example/p.git"}, "gitSync.image.repository"},
		{"TLS without a certificate", []string{"dhcp.interface=eth0,admin.tls.enabled=true"}, "admin.tls.secretName"},
		{"a file path a Secret key cannot hold", []string{"dhcp.interface=eth0", "profiles.files.groups/a b\\.yaml=x: 1"}, "may hold only"},
		{"two paths, one key", []string{"dhcp.interface=eth0", "profiles.files.groups/a\\.yaml=x: 1", "profiles.files.groups_a\\.yaml=x: 2"}, "same Secret key"},
		{"unknown replicas mode", []string{"dhcp.interface=eth0,replicas.mode=statefulset"}, "replicas.mode"},
		{"replicas without etcd", []string{"dhcp.interface=eth0,replicas.mode=daemonset,etcd.tls.secretName=c"}, "etcd.endpoints"},
		{"replicas without etcd TLS", []string{"dhcp.interface=eth0,replicas.mode=daemonset,etcd.endpoints={https://10.0.0.11:2379}"}, "etcd.tls.secretName"},
		{"replicas on a claim", []string{"dhcp.interface=eth0,replicas.mode=daemonset,etcd.endpoints={https://10.0.0.11:2379},etcd.tls.secretName=c,replicas.local.type=pvc"}, "replicas.local.type"},
		{"replicas on every node", []string{"dhcp.interface=eth0,replicas.mode=daemonset,etcd.endpoints={https://10.0.0.11:2379},etcd.tls.secretName=c,nodeSelector=null"}, "nodeSelector"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, c, tt.sets...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// chartCases are the value sets every chart test renders.
var chartCases = []struct {
	name string
	// profiles is copied into the chart's profiles/ folder ("" for none).
	profiles string
	sets     []string
	// userMade are the objects the values name that the user makes.
	userMade []string
}{
	{name: "interface, repository profiles", profiles: profilesDir, sets: []string{"dhcp.interface=enp1s0"}},
	{name: "interfaces list, advertise, profiles from values", sets: []string{
		"dhcp.interfaces={enp1s0,enp2s0},advertise=192.168.1.5",
		"profiles.files.defaults\\.yaml=talos:\n  version: v1.12.0\n",
		"profiles.files.groups/worker\\.yaml=role: worker\n",
	}},
	{name: "existing secrets, existing token, existing claim", sets: []string{
		"dhcp.interface=enp1s0,profiles.source=existingSecrets,admin.token.existingSecret=my-token,persistence.existingClaim=my-data",
	}, userMade: []string{"Secret/my-token", "Secret/tinderbox-profiles", "PersistentVolumeClaim/my-data"}},
	{name: "git-sync", sets: []string{
		"dhcp.allInterfaces=true,profiles.source=gitSync,gitSync.repo=https://git.example/lab.git,gitSync.image.repository=git-sync,gitSync.path=profiles,gitSync.credentialsSecret=git-creds",
	}, userMade: []string{"Secret/git-creds"}},
	{name: "ServiceMonitor, TLS, hostPath", profiles: profilesDir, sets: []string{
		"dhcp.interface=enp1s0,serviceMonitor.enabled=true,admin.tls.enabled=true,admin.tls.secretName=tinderbox-tls,advertise=192.168.1.5,persistence.type=hostPath",
	}, userMade: []string{"Secret/tinderbox-tls"}},
}

// TestChartRenders renders every value set, decodes every object strictly
// into its API type, and checks the invariants, references and rendered
// config the kustomize example is held to.
func TestChartRenders(t *testing.T) {
	for _, tt := range chartCases {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, loadChart(t, tt.profiles), tt.sets...)
			r.userMade = map[string]bool{}
			for _, id := range tt.userMade {
				r.userMade[id] = true
			}
			if got := r.namespaceOf[r.workload]; got != chartNamespace {
				t.Errorf("%s namespace: got %q, want %q", r.workload, got, chartNamespace)
			}
			if len(r.namespaces) != 0 {
				t.Errorf("the chart made %d Namespaces; Helm's --namespace is the user's", len(r.namespaces))
			}
			checkDeployment(t, r)
			checkReferences(t, r)
			checkConfigMatchesPod(t, r)
		})
	}
}

// TestChartProfilesWholeDirectory checks that every file of the
// repository's example profiles, dropped into the chart's profiles/
// folder, lands at its own path in the profiles volume with its content,
// with no list of files to keep.
func TestChartProfilesWholeDirectory(t *testing.T) {
	r := mustRender(t, loadChart(t, profilesDir), "dhcp.interface=enp1s0")
	v := volumeOf(t, r.pod, "profiles")
	if v.Secret == nil {
		t.Fatalf("volume profiles: got %+v, want a Secret", v.VolumeSource)
	}
	s := r.secrets[v.Secret.SecretName]
	projected := map[string][]byte{}
	for _, it := range v.Secret.Items {
		projected[it.Path] = s.Data[it.Key]
	}
	n := 0
	err := filepath.WalkDir(profilesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(profilesDir, p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if got, ok := projected[filepath.ToSlash(rel)]; !ok {
			t.Errorf("profiles/%s: not in the profiles volume", rel)
		} else if string(got) != string(want) {
			t.Errorf("profiles/%s: content differs from the file", rel)
		}
		delete(projected, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no profiles found in %s", profilesDir)
	}
	for p := range projected {
		t.Errorf("%s: in the profiles volume but not in %s", p, profilesDir)
	}
	if d := container(t, r.pod); !slices.ContainsFunc(d.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "profiles" && m.ReadOnly && m.SubPath == ""
	}) {
		t.Error("the profiles volume is not mounted whole and read-only")
	}
	// A changed profile must roll the pod.
	other := mustRender(t, loadChart(t, profilesDir), "dhcp.interface=enp1s0", "profiles.files.machines/52-54-00-00-00-99\\.yaml=hostname: extra\n")
	a, b := r.deployment.Spec.Template.Annotations["checksum/profiles"], other.deployment.Spec.Template.Annotations["checksum/profiles"]
	if a == "" || a == b {
		t.Errorf("checksum/profiles: got %q and %q, want two different checksums", a, b)
	}
}

// TestChartGitSync checks the git-sync layout: a first clone before
// tinderbox starts, a sidecar following the ref, both on the volume whose
// link profiles.dir goes through, and tinderbox reading it read-only.
func TestChartGitSync(t *testing.T) {
	r := mustRender(t, loadChart(t, ""), "dhcp.interface=enp1s0,profiles.source=gitSync,gitSync.repo=https://git.example/lab.git,gitSync.image.repository=git-sync,gitSync.path=profiles")
	cfg := checkConfigMatchesPod(t, r)
	pod := r.deployment.Spec.Template.Spec
	if len(pod.InitContainers) != 1 || !slices.Contains(pod.InitContainers[0].Args, "--one-time") {
		t.Fatalf("init containers: got %+v, want one git-sync --one-time", pod.InitContainers)
	}
	var sidecar *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "git-sync" {
			sidecar = &pod.Containers[i]
		}
	}
	if sidecar == nil {
		t.Fatal("no git-sync container")
	}
	for _, g := range []*corev1.Container{&pod.InitContainers[0], sidecar} {
		root, _ := mountOf(t, g, "profiles")
		for _, want := range []string{"--repo=https://git.example/lab.git", "--root=" + root, "--link=profiles"} {
			if !slices.Contains(g.Args, want) {
				t.Errorf("%s args %v: want %s", g.Name, g.Args, want)
			}
		}
		if want := path.Join(root, "profiles", "profiles"); cfg.Profiles.Dir != want {
			t.Errorf("profiles.dir: got %s, want %s (the link, then gitSync.path)", cfg.Profiles.Dir, want)
		}
	}
	for _, m := range container(t, r.pod).VolumeMounts {
		if m.Name == "profiles" && !m.ReadOnly {
			t.Error("tinderbox mounts the git-sync volume writable")
		}
	}
}

// TestChartAdminTLS checks the TLS option: a sidecar listening on the TLS
// port forwards to the loopback admin listener, the Service's port admin
// targets the sidecar, and the advertised address is an accepted Host.
func TestChartAdminTLS(t *testing.T) {
	r := mustRender(t, loadChart(t, ""), "dhcp.interface=enp1s0,admin.tls.enabled=true,admin.tls.secretName=tinderbox-tls,advertise=192.168.1.5")
	cfg := checkConfigMatchesPod(t, r)
	var proxy *corev1.Container
	for i, c := range r.deployment.Spec.Template.Spec.Containers {
		if c.Name == "admin-tls" {
			proxy = &r.deployment.Spec.Template.Spec.Containers[i]
		}
	}
	if proxy == nil {
		t.Fatal("no admin-tls container")
	}
	if want := "--target=" + cfg.Admin.Listen; !slices.Contains(proxy.Args, want) {
		t.Errorf("admin-tls args %v: want %s", proxy.Args, want)
	}
	if p := containerPort(t, proxy, "admin-tls"); !slices.Contains(proxy.Args, "--listen=:8443") || p.ContainerPort != 8443 {
		t.Errorf("admin-tls: args %v, port %d: want it listening on 8443", proxy.Args, p.ContainerPort)
	}
	if v := volumeOf(t, r.pod, "admin-tls"); v.Secret == nil || v.Secret.SecretName != "tinderbox-tls" {
		t.Errorf("volume admin-tls: got %+v, want Secret tinderbox-tls", v.VolumeSource)
	}
	found := false
	for _, s := range r.services {
		for _, p := range s.Spec.Ports {
			found = found || (p.Name == "admin" && p.TargetPort.String() == "admin-tls")
		}
	}
	if !found {
		t.Error("no Service port admin targeting admin-tls")
	}
	if !slices.Contains(cfg.Admin.Hosts, "192.168.1.5:8443") {
		t.Errorf("admin.hosts: got %v, want 192.168.1.5:8443", cfg.Admin.Hosts)
	}
}

// TestChartServiceMonitor checks the ServiceMonitor is rendered only when
// asked for (its CRD may be missing) and scrapes the Service's metrics.
func TestChartServiceMonitor(t *testing.T) {
	c := loadChart(t, "")
	if r := mustRender(t, c, "dhcp.interface=enp1s0"); len(r.serviceMonitors) != 0 {
		t.Errorf("by default: got %d ServiceMonitors, want 0", len(r.serviceMonitors))
	}
	r := mustRender(t, c, "dhcp.interface=enp1s0,serviceMonitor.enabled=true")
	if len(r.serviceMonitors) != 1 {
		t.Fatalf("got %d ServiceMonitors, want 1", len(r.serviceMonitors))
	}
	checkReferences(t, r)
}

// TestChartToken checks the generated token is one tinderbox accepts and
// differs per install, and an existing Secret replaces it.
func TestChartToken(t *testing.T) {
	c := loadChart(t, "")
	tokens := map[string]bool{}
	for range 2 {
		r := mustRender(t, c, "dhcp.interface=enp1s0")
		s := r.secrets["tb-tinderbox-admin"]
		if s == nil {
			t.Fatalf("no Secret tb-tinderbox-admin; got %v", keys(r.secrets))
		}
		tokens[string(s.Data["token"])] = true
	}
	if len(tokens) != 2 {
		t.Errorf("two installs made the same token")
	}
	name := "mine-" + strings.ToLower(rand.Text()[:8])
	r := mustRender(t, c, "dhcp.interface=enp1s0,admin.token.existingSecret="+name+",admin.token.key=bearer")
	if s := r.secrets["tb-tinderbox-admin"]; s != nil {
		t.Errorf("with an existing Secret: the chart made its own, %s", s.Name)
	}
	if v := volumeOf(t, r.pod, "admin-token"); v.Secret.SecretName != name {
		t.Errorf("admin-token volume: got Secret %s, want %s", v.Secret.SecretName, name)
	}
	if cfg := checkConfigMatchesPod(t, r); filepath.Base(cfg.Admin.TokenFile) != "bearer" {
		t.Errorf("admin.tokenFile: got %s, want the key bearer", cfg.Admin.TokenFile)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// replicaSets are the values of the multi-replica variant the tests render.
const replicaSets = "dhcp.interface=enp1s0,replicas.mode=daemonset,advertise=192.168.1.10," +
	"etcd.endpoints={https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379},etcd.tls.secretName=tinderbox-etcd-client"

// TestChartReplicasDaemonSet renders replicas.mode daemonset, decodes every
// object strictly, and checks what checkReplicas describes: a DaemonSet on
// the nodes the values select (nodeSelector, affinity and tolerations
// passed through), host network, state on etcd with client TLS from the
// Secret, no claim (the node's directory or an emptyDir for the cache),
// and the shared Service over the boot ports.
func TestChartReplicasDaemonSet(t *testing.T) {
	c := loadChart(t, profilesDir)
	want := replicasWant{
		endpoints:    []string{"https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"},
		prefix:       "/tinderbox/",
		tlsSecret:    "tinderbox-etcd-client",
		dataHostPath: "/var/lib/tinderbox",
		nodeSelector: map[string]string{"tinderbox/pxe-lan": "true"},
	}
	t.Run("defaults", func(t *testing.T) {
		r := mustRender(t, c, replicaSets)
		r.userMade = map[string]bool{"Secret/tinderbox-etcd-client": true}
		cfg := checkReplicas(t, r, want)
		if got := cfg["advertise"]; got != "192.168.1.10" {
			t.Errorf("advertise: got %v, want the shared address 192.168.1.10", got)
		}
		if r.namespaceOf[r.workload] != chartNamespace {
			t.Errorf("%s namespace: got %q, want %q", r.workload, r.namespaceOf[r.workload], chartNamespace)
		}
	})
	t.Run("emptyDir, other nodes, own prefix", func(t *testing.T) {
		r := mustRender(t, c, replicaSets+",replicas.local.type=emptyDir,etcd.prefix=/site-a/", "nodeSelector.tinderbox/pxe-lan=null,nodeSelector.site=a",
			"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=rack",
			"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
			"tolerations[0].key=node-role.kubernetes.io/control-plane,tolerations[0].operator=Exists,tolerations[0].effect=NoSchedule")
		r.userMade = map[string]bool{"Secret/tinderbox-etcd-client": true}
		w := want
		w.dataHostPath, w.prefix, w.nodeSelector = "", "/site-a/", map[string]string{"site": "a"}
		checkReplicas(t, r, w)
		pod := r.pod.Spec
		if a := pod.Affinity; a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key != "rack" {
			t.Errorf("affinity: got %+v, want the values' node affinity on rack", a)
		}
		if len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "node-role.kubernetes.io/control-plane" {
			t.Errorf("tolerations: got %+v, want the values'", pod.Tolerations)
		}
	})
	t.Run("single is the default", func(t *testing.T) {
		r := mustRender(t, c, "dhcp.interface=enp1s0,replicas.mode=single")
		if r.daemonSet != nil || r.deployment == nil || len(r.pvcs) != 1 {
			t.Errorf("replicas.mode single: got %s and %d claims, want the Deployment and its claim", r.workload, len(r.pvcs))
		}
		for _, s := range r.services {
			if strings.HasSuffix(s.Name, "-boot") {
				t.Errorf("replicas.mode single: rendered Service %s", s.Name)
			}
		}
	})
}
