package deploy

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/problem"
)

const (
	baseDir       = "kubernetes/base"
	exampleDir    = "kubernetes/example"
	componentsDir = "kubernetes/components"
	profilesDir   = "../profiles"
)

// decodeStrict decodes one YAML document into obj, failing on unknown or
// duplicate fields, as the API server's strict field validation does.
func decodeStrict(t *testing.T, name string, data []byte, obj any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestBaseManifestsDecodeStrictly(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		obj        any
		apiVersion string
		kind       string
	}{
		{name: "namespace", file: "namespace.yaml", obj: &corev1.Namespace{}, apiVersion: "v1", kind: "Namespace"},
		{name: "pvc", file: "pvc.yaml", obj: &corev1.PersistentVolumeClaim{}, apiVersion: "v1", kind: "PersistentVolumeClaim"},
		{name: "deployment", file: "deployment.yaml", obj: &appsv1.Deployment{}, apiVersion: "apps/v1", kind: "Deployment"},
		{name: "service", file: "service.yaml", obj: &corev1.Service{}, apiVersion: "v1", kind: "Service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(baseDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "\n---") {
				t.Fatalf("%s: one object per file, found a document separator", tt.file)
			}
			decodeStrict(t, tt.file, data, tt.obj)
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(data, &meta); err != nil {
				t.Fatal(err)
			}
			if meta.APIVersion != tt.apiVersion || meta.Kind != tt.kind {
				t.Errorf("%s: got %s %s, want %s %s", tt.file, meta.APIVersion, meta.Kind, tt.apiVersion, tt.kind)
			}
		})
	}
}

func TestKustomizationsDecodeStrictly(t *testing.T) {
	for _, tt := range []struct{ dir, kind string }{
		{baseDir, kusttypes.KustomizationKind},
		{exampleDir, kusttypes.KustomizationKind},
		{componentsDir + "/servicemonitor", kusttypes.ComponentKind},
		{componentsDir + "/replicas", kusttypes.ComponentKind},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(tt.dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var k kusttypes.Kustomization
			decodeStrict(t, tt.dir, data, &k)
			if k.Kind != tt.kind {
				t.Errorf("kind: got %q, want %q", k.Kind, tt.kind)
			}
		})
	}
}

// TestExampleServiceMonitorComponent renders the example overlay with the
// servicemonitor component and checks the ServiceMonitor decodes strictly
// into the Prometheus Operator's type and selects the Service's metrics
// port.
func TestExampleServiceMonitorComponent(t *testing.T) {
	r := renderExample(t, "servicemonitor")
	if len(r.serviceMonitors) != 1 {
		t.Fatalf("ServiceMonitors: got %d, want 1", len(r.serviceMonitors))
	}
	checkReferences(t, r)
	if plain := renderExample(t); len(plain.serviceMonitors) != 0 {
		t.Errorf("without the component: got %d ServiceMonitors, want 0", len(plain.serviceMonitors))
	}
}

// rendered is a set of manifests (the example overlay as kustomize renders
// it, or the Helm chart as Helm renders it), each object decoded strictly
// into its API type.
type rendered struct {
	namespaces []*corev1.Namespace
	// deployment or daemonSet is the workload (exactly one is rendered);
	// workload is its "Kind/name" and pod its pod template.
	deployment      *appsv1.Deployment
	daemonSet       *appsv1.DaemonSet
	workload        string
	pod             *corev1.PodTemplateSpec
	services        []*corev1.Service
	pvcs            map[string]*corev1.PersistentVolumeClaim
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	serviceMonitors []*monitoringv1.ServiceMonitor
	// namespaceOf maps "Kind/name" to the object's namespace.
	namespaceOf map[string]string
	// userMade holds "Kind/name" of the objects the pod refers to that
	// the user makes, not the renderer (an existing Secret or claim).
	userMade map[string]bool
}

// object is one rendered manifest: its kind, name and namespace as the
// renderer reports them, and its YAML.
type object struct {
	kind, name, namespace string
	data                  []byte
}

// decodeObjects decodes every object strictly into its API type, failing
// on a kind it has no type for, on a second workload (Deployment or
// DaemonSet), and on none.
func decodeObjects(t *testing.T, objs []object) *rendered {
	t.Helper()
	r := &rendered{
		pvcs:        map[string]*corev1.PersistentVolumeClaim{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		namespaceOf: map[string]string{},
	}
	for _, o := range objs {
		id := o.kind + "/" + o.name
		if _, dup := r.namespaceOf[id]; dup {
			t.Fatalf("rendered %s twice", id)
		}
		r.namespaceOf[id] = o.namespace
		switch o.kind {
		case "Namespace":
			v := &corev1.Namespace{}
			decodeStrict(t, id, o.data, v)
			r.namespaces = append(r.namespaces, v)
		case "Deployment":
			if r.workload != "" {
				t.Fatalf("two workloads: %s and %s", r.workload, id)
			}
			r.deployment = &appsv1.Deployment{}
			decodeStrict(t, id, o.data, r.deployment)
			r.workload, r.pod = id, &r.deployment.Spec.Template
		case "DaemonSet":
			if r.workload != "" {
				t.Fatalf("two workloads: %s and %s", r.workload, id)
			}
			r.daemonSet = &appsv1.DaemonSet{}
			decodeStrict(t, id, o.data, r.daemonSet)
			r.workload, r.pod = id, &r.daemonSet.Spec.Template
		case "Service":
			v := &corev1.Service{}
			decodeStrict(t, id, o.data, v)
			r.services = append(r.services, v)
		case "PersistentVolumeClaim":
			v := &corev1.PersistentVolumeClaim{}
			decodeStrict(t, id, o.data, v)
			r.pvcs[o.name] = v
		case "ConfigMap":
			v := &corev1.ConfigMap{}
			decodeStrict(t, id, o.data, v)
			r.configMaps[o.name] = v
		case "Secret":
			v := &corev1.Secret{}
			decodeStrict(t, id, o.data, v)
			r.secrets[o.name] = v
		case "ServiceMonitor":
			v := &monitoringv1.ServiceMonitor{}
			decodeStrict(t, id, o.data, v)
			r.serviceMonitors = append(r.serviceMonitors, v)
		default:
			t.Fatalf("rendered %s: no API type checked for kind %s", id, o.kind)
		}
	}
	if r.workload == "" {
		t.Fatal("rendered no Deployment or DaemonSet")
	}
	return r
}

// renderExample renders the example overlay exactly as `kubectl apply -k`
// would, with the base and overlay copied into an in-memory file system
// beside the repository's example profiles and a test admin token, made
// as strong as tinderbox requires (the token is the user's to write; it is
// not in the repository). Each of components is a directory under
// kubernetes/components added to the overlay's components.
func renderExample(t *testing.T, components ...string) *rendered {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	copyTree(t, mem, baseDir, "/k/base")
	copyTree(t, mem, exampleDir, "/k/example")
	copyTree(t, mem, componentsDir, "/k/components")
	copyTree(t, mem, profilesDir, "/k/example/profiles")
	if err := mem.WriteFile("/k/example/admin-token", []byte(rand.Text()+rand.Text()+"\n")); err != nil {
		t.Fatal(err)
	}
	if len(components) > 0 {
		data, err := mem.ReadFile("/k/example/kustomization.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var k kusttypes.Kustomization
		decodeStrict(t, "example", data, &k)
		for _, c := range components {
			k.Components = append(k.Components, "../components/"+c)
		}
		if data, err = yaml.Marshal(&k); err != nil {
			t.Fatal(err)
		}
		if err := mem.WriteFile("/k/example/kustomization.yaml", data); err != nil {
			t.Fatal(err)
		}
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/k/example")
	if err != nil {
		t.Fatalf("kustomize build example: %v", err)
	}
	var objs []object
	for _, res := range m.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{kind: res.GetKind(), name: res.GetName(), namespace: res.GetNamespace(), data: data})
	}
	return decodeObjects(t, objs)
}

// copyTree copies the directory src on disk to dst in mem.
func copyTree(t *testing.T, mem filesys.FileSystem, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dst, filepath.ToSlash(rel))
		if d.IsDir() {
			return mem.MkdirAll(target)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(target, data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// container returns the pod's tinderbox container.
func container(t *testing.T, pod *corev1.PodTemplateSpec) *corev1.Container {
	t.Helper()
	for i, c := range pod.Spec.Containers {
		if c.Name == "tinderbox" {
			return &pod.Spec.Containers[i]
		}
	}
	t.Fatal("the pod has no container named tinderbox")
	return nil
}

func containerPort(t *testing.T, c *corev1.Container, name string) corev1.ContainerPort {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, name)
	return corev1.ContainerPort{}
}

// podPort reports whether a container of the pod has a port named name.
func podPort(pod *corev1.PodTemplateSpec, name string) bool {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func TestExampleDeployment(t *testing.T) {
	checkDeployment(t, renderExample(t))
}

// checkDeployment checks a single replica's invariants: one replica and
// Recreate (the old pod frees the node's ports first), then checkPod's.
func checkDeployment(t *testing.T, r *rendered) {
	t.Helper()
	d := r.deployment
	if d == nil {
		t.Fatalf("rendered %s, want a Deployment", r.workload)
	}
	if got := *d.Spec.Replicas; got != 1 {
		t.Errorf("replicas: got %d, want 1", got)
	}
	if got := d.Spec.Strategy.Type; got != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy: got %s, want Recreate", got)
	}
	checkPod(t, r)
}

// checkPod checks the invariants the daemon depends on in any workload:
// the node's network, the image's user with NET_BIND_SERVICE alone,
// readiness on /readyz and liveness on /livez, the boot ports, and
// sidecars without privileges.
func checkPod(t *testing.T, r *rendered) {
	t.Helper()
	pod := r.pod.Spec
	c := container(t, r.pod)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "hostNetwork", got: pod.HostNetwork, want: true},
		{name: "dnsPolicy", got: pod.DNSPolicy, want: corev1.DNSClusterFirstWithHostNet},
		{name: "nodeSelector set", got: len(pod.NodeSelector) > 0, want: true},
		{name: "runAsNonRoot", got: *pod.SecurityContext.RunAsNonRoot, want: true},
		{name: "runAsUser is the image's user", got: *pod.SecurityContext.RunAsUser, want: int64(65532)},
		{name: "capabilities dropped", got: c.SecurityContext.Capabilities.Drop, want: []corev1.Capability{"ALL"}},
		{name: "capabilities added", got: c.SecurityContext.Capabilities.Add, want: []corev1.Capability{"NET_BIND_SERVICE"}},
		{name: "privileged", got: c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged, want: true},
		{name: "readOnlyRootFilesystem", got: *c.SecurityContext.ReadOnlyRootFilesystem, want: true},
		{name: "readiness path", got: c.ReadinessProbe.HTTPGet.Path, want: "/readyz"},
		{name: "liveness path", got: c.LivenessProbe.HTTPGet.Path, want: "/livez"},
		{name: "readiness port", got: c.ReadinessProbe.HTTPGet.Port.String(), want: "http"},
		{name: "liveness port", got: c.LivenessProbe.HTTPGet.Port.String(), want: "http"},
		{name: "cpu request", got: c.Resources.Requests.Cpu().IsZero(), want: false},
		{name: "memory request", got: c.Resources.Requests.Memory().IsZero(), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	for _, p := range []struct {
		name     string
		port     int32
		protocol corev1.Protocol
	}{
		{"dhcp", 67, corev1.ProtocolUDP}, {"tftp", 69, corev1.ProtocolUDP}, {"pxe", 4011, corev1.ProtocolUDP},
	} {
		t.Run("port "+p.name, func(t *testing.T) {
			got := containerPort(t, c, p.name)
			if got.ContainerPort != p.port || got.Protocol != p.protocol {
				t.Errorf("got %d/%s, want %d/%s", got.ContainerPort, got.Protocol, p.port, p.protocol)
			}
		})
	}
	t.Run("sidecars", func(t *testing.T) {
		for _, o := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if o.Name == c.Name {
				continue
			}
			sc := o.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container %s: want no privilege escalation and every capability dropped, got %+v", o.Name, sc)
			}
		}
	})
}

// equal compares the scalar and slice values checkDeployment checks.
func equal(a, b any) bool {
	if as, ok := a.([]corev1.Capability); ok {
		bs, _ := b.([]corev1.Capability)
		return slices.Equal(as, bs)
	}
	return a == b
}

// TestExampleReferencesResolve checks every ConfigMap, Secret and claim the
// pod mounts is rendered, in the same namespace, and every Service port
// targets a named container port of pods it selects.
func TestExampleReferencesResolve(t *testing.T) {
	r := renderExample(t)
	if ns := r.namespaceOf[r.workload]; len(r.namespaces) != 1 || r.namespaces[0].Name != ns {
		t.Errorf("namespaces: got %d, want one named %s", len(r.namespaces), ns)
	}
	checkReferences(t, r)
}

// checkReferences checks every ConfigMap, Secret and claim the pod mounts
// or reads is rendered (a Secret marked optional may be absent), every
// object is in the workload's namespace, every Service selects the pod
// and targets named ports of its containers, and every ServiceMonitor
// selects a Service with the port it scrapes.
func checkReferences(t *testing.T, r *rendered) {
	t.Helper()
	d := r.pod
	ns := r.namespaceOf[r.workload]
	if ns == "" {
		t.Errorf("%s has no namespace", r.workload)
	}
	for id, got := range r.namespaceOf {
		if !strings.HasPrefix(id, "Namespace/") && got != ns {
			t.Errorf("%s: namespace %q, want %q", id, got, ns)
		}
	}
	for _, v := range d.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			if r.configMaps[v.ConfigMap.Name] == nil && !r.userMade["ConfigMap/"+v.ConfigMap.Name] {
				t.Errorf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			s := r.secrets[v.Secret.SecretName]
			if s == nil {
				if (v.Secret.Optional == nil || !*v.Secret.Optional) && !r.userMade["Secret/"+v.Secret.SecretName] {
					t.Errorf("volume %s: Secret %s is not rendered", v.Name, v.Secret.SecretName)
				}
				continue
			}
			for _, it := range v.Secret.Items {
				if _, ok := s.Data[it.Key]; !ok {
					t.Errorf("volume %s: Secret %s has no key %s (for %s)", v.Name, s.Name, it.Key, it.Path)
				}
			}
		case v.PersistentVolumeClaim != nil:
			if r.pvcs[v.PersistentVolumeClaim.ClaimName] == nil && !r.userMade["PersistentVolumeClaim/"+v.PersistentVolumeClaim.ClaimName] {
				t.Errorf("volume %s: claim %s is not rendered", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	pod := d.Spec
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		for _, m := range c.VolumeMounts {
			if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
				t.Errorf("container %s mounts volume %s, which the pod does not have", c.Name, m.Name)
			}
		}
	}
	if len(r.services) == 0 {
		t.Fatal("no Service rendered")
	}
	for _, s := range r.services {
		for k, v := range s.Spec.Selector {
			if d.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, pod labels: %v", s.Name, k, v, d.Labels)
			}
		}
		for _, p := range s.Spec.Ports {
			if !podPort(d, p.TargetPort.String()) {
				t.Errorf("Service %s port %s: no container port named %s", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for _, m := range r.serviceMonitors {
		found := false
		for _, s := range r.services {
			if !labelsMatch(m.Spec.Selector.MatchLabels, s.Labels) {
				continue
			}
			for _, e := range m.Spec.Endpoints {
				found = found || slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port && e.Path == "/metrics" })
			}
		}
		if !found {
			t.Errorf("ServiceMonitor %s selects no Service with its endpoint's port and /metrics", m.Name)
		}
	}
}

// labelsMatch reports whether labels has every key and value of selector.
func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// mountOf returns the mount path of volume vol in c, and its subPath.
func mountOf(t *testing.T, c *corev1.Container, vol string) (string, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			return m.MountPath, m.SubPath
		}
	}
	t.Fatalf("container %s does not mount volume %q", c.Name, vol)
	return "", ""
}

func volumeOf(t *testing.T, pod *corev1.PodTemplateSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// TestExampleConfigMatchesPod loads the rendered config with tinderbox's
// own config loader and checks that the pod provides what it names, and
// that the kustomize layout mounts each profiles subdirectory where the
// config's profiles.dir expects it.
func TestExampleConfigMatchesPod(t *testing.T) {
	r := renderExample(t)
	cfg := checkConfigMatchesPod(t, r)
	c := container(t, r.pod)
	for _, sub := range []string{"configs", "groups", "machines", "patches", "schematics"} {
		got, _ := mountOf(t, c, "profiles-"+sub)
		if want := path.Join(cfg.Profiles.Dir, sub); got != want {
			t.Errorf("profiles-%s: got mount %s, want %s", sub, got, want)
		}
	}
	got, sub := mountOf(t, c, "profiles-defaults")
	if want := path.Join(cfg.Profiles.Dir, "defaults.yaml"); got != want || sub != "defaults.yaml" {
		t.Errorf("profiles-defaults: got %s (subPath %q), want %s (subPath defaults.yaml)", got, sub, want)
	}
}

// checkConfigMatchesPod loads the rendered config with tinderbox's own
// config loader and checks that the pod provides what it names: the
// --config file, the token, the profiles, the state and cache volume,
// container ports for every listener, and an admin listener on loopback
// that no Service claims to reach. It returns the config.
func checkConfigMatchesPod(t *testing.T, r *rendered) *config.Config {
	t.Helper()
	d := r.pod
	c := container(t, d)

	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("args %v: want --config PATH", c.Args)
	}
	cfgPath := c.Args[i+1]
	cfgDir, _ := mountOf(t, c, "config")
	if filepath.Dir(cfgPath) != cfgDir {
		t.Fatalf("--config %s is not in the config volume, mounted at %s", cfgPath, cfgDir)
	}
	cm := r.configMaps[volumeOf(t, d, "config").ConfigMap.Name]
	if cm == nil {
		t.Fatalf("ConfigMap %s is not rendered", volumeOf(t, d, "config").ConfigMap.Name)
	}
	data, ok := cm.Data[filepath.Base(cfgPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, filepath.Base(cfgPath))
	}
	file := filepath.Join(t.TempDir(), "tinderbox.yaml")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Options{Path: file, SearchPath: []string{}})
	if cfg == nil {
		t.Fatalf("config does not load: %v", err)
	}
	// Paths inside the pod and the node's interfaces do not exist here;
	// every other problem counts.
	// The etcd client certificate's files are the etcd-tls Secret's,
	// mounted in the pod (checked against the Secret by the replicas' tests).
	podPaths := map[string]bool{"admin.tokenFile": true, "profiles.dir": true, "ipxe.dir": true, "cache.dir": true, "state.dir": true,
		"state.etcd.tls.ca": true, "state.etcd.tls.cert": true, "state.etcd.tls.key": true}
	nodeInterface := func(e error) bool {
		for _, name := range append([]string{cfg.DHCP.Interface}, cfg.DHCP.Interfaces...) {
			if name != "" && strings.Contains(e.Error(), fmt.Sprintf("no network interface %q", name)) {
				return true
			}
		}
		return false
	}
	for _, e := range problem.Leaves(err) {
		var p *config.Problem
		switch {
		case errors.As(e, &p) && podPaths[p.Key]:
		case nodeInterface(e): // the node's, not this host's
		default:
			t.Errorf("config problem: %v", e)
		}
	}

	t.Run("admin token", func(t *testing.T) {
		dir, _ := mountOf(t, c, "admin-token")
		if filepath.Dir(cfg.Admin.TokenFile) != dir {
			t.Errorf("admin.tokenFile %s: got directory %s, want the token volume's %s", cfg.Admin.TokenFile, filepath.Dir(cfg.Admin.TokenFile), dir)
		}
		name := volumeOf(t, d, "admin-token").Secret.SecretName
		s := r.secrets[name]
		if s == nil {
			t.Skipf("Secret %s is the user's", name)
		}
		tok, ok := s.Data[filepath.Base(cfg.Admin.TokenFile)]
		if !ok {
			t.Errorf("Secret %s has no key %s", s.Name, filepath.Base(cfg.Admin.TokenFile))
		} else if err := config.CheckToken(strings.TrimSpace(string(tok))); err != nil {
			t.Errorf("Secret %s: %v", s.Name, err)
		}
	})
	t.Run("state and cache on the data volume", func(t *testing.T) {
		dir, _ := mountOf(t, c, "data")
		if cfg.State.Dir != dir {
			t.Errorf("state.dir: got %s, want the data volume's %s", cfg.State.Dir, dir)
		}
		if rel, err := filepath.Rel(dir, cfg.Cache.Dir); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("cache.dir %s is not on the data volume %s", cfg.Cache.Dir, dir)
		}
		claim := volumeOf(t, d, "data").PersistentVolumeClaim
		if claim == nil {
			return
		}
		pvc := r.pvcs[claim.ClaimName]
		if pvc == nil {
			t.Skipf("claim %s is the user's", claim.ClaimName)
		}
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if max := resource.NewQuantity(int64(cfg.Cache.MaxSize), resource.BinarySI); size.Cmp(*max) <= 0 {
			t.Errorf("claim %s: got %s, want more than cache.maxSize %s", pvc.Name, size.String(), max.String())
		}
	})
	t.Run("profiles", func(t *testing.T) {
		dir, _ := mountOf(t, c, "profiles")
		if rel, err := filepath.Rel(dir, cfg.Profiles.Dir); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("profiles.dir %s is not on the profiles volume, mounted at %s", cfg.Profiles.Dir, dir)
		}
	})
	t.Run("listeners", func(t *testing.T) {
		for _, l := range []struct {
			port   string
			listen string
		}{
			{"http", cfg.HTTP.Listen}, {"admin", cfg.Admin.Listen}, {"tftp", cfg.TFTP.Listen},
			{"dhcp", ":" + strconv.Itoa(cfg.DHCP.Port)}, {"pxe", ":" + strconv.Itoa(cfg.DHCP.PXEPort)},
		} {
			_, p, err := net.SplitHostPort(l.listen)
			if err != nil {
				t.Fatalf("%s: %v", l.port, err)
			}
			if got := strconv.Itoa(int(containerPort(t, c, l.port).ContainerPort)); got != p {
				t.Errorf("container port %s: got %s, want %s (config %s)", l.port, got, p, l.listen)
			}
		}
	})
	t.Run("admin on loopback", func(t *testing.T) {
		// With hostNetwork every listener is on the node's LAN address:
		// the admin UI and API must not be, over plain HTTP.
		if !config.IsLoopback(cfg.Admin.Listen) {
			t.Errorf("admin.listen %s: want a loopback address (the pod has the node's network)", cfg.Admin.Listen)
		}
		for _, s := range r.services {
			for _, p := range s.Spec.Ports {
				if p.TargetPort.String() == "admin" || p.TargetPort.IntValue() == int(containerPort(t, c, "admin").ContainerPort) {
					t.Errorf("Service %s port %s targets the loopback admin listener, which a Service cannot reach", s.Name, p.Name)
				}
			}
		}
	})
	return cfg
}

// TestExampleListsEveryProfile checks the example overlay puts every file
// of the repository's example profiles in the Secret its directory is
// mounted from, so that the deployed set is the one `tinderbox validate`
// checks.
func TestExampleListsEveryProfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(exampleDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kusttypes.Kustomization
	decodeStrict(t, "example", data, &k)
	listed := map[string]string{} // file under profiles/ → Secret
	for _, g := range k.SecretGenerator {
		for _, f := range g.FileSources {
			_, p, _ := strings.Cut(f, "=")
			if p == "" {
				p = f
			}
			if rest, ok := strings.CutPrefix(p, "profiles/"); ok {
				listed[rest] = g.Name
			}
		}
	}
	var files []string
	err = filepath.WalkDir(profilesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel, err := filepath.Rel(profilesDir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no profiles found in %s", profilesDir)
	}
	for _, f := range files {
		want := "tinderbox-profiles"
		if dir := path.Dir(f); dir != "." {
			want += "-" + dir
		}
		if got, ok := listed[f]; !ok {
			t.Errorf("profiles/%s: not listed in %s/kustomization.yaml (want it in Secret %s)", f, exampleDir, want)
		} else if got != want {
			t.Errorf("profiles/%s: got Secret %s, want %s", f, got, want)
		}
		delete(listed, f)
	}
	for f := range listed {
		t.Errorf("profiles/%s: listed in the example overlay but not in %s", f, profilesDir)
	}
}

// replicasWant is what a multi-replica render must hold.
type replicasWant struct {
	endpoints []string
	prefix    string
	tlsSecret string
	// dataHostPath is the node directory of the data volume; "" wants an
	// emptyDir.
	dataHostPath string
	nodeSelector map[string]string
}

// checkReplicas checks a multi-replica render: a DaemonSet (one pod per
// selected node) whose selector picks its own pods, on the nodes the
// values select, with the node's network; no PersistentVolumeClaim made
// or mounted; the config's state on etcd with the endpoints and prefix
// asked and client TLS read from the Secret, mounted read-only; the admin
// listener on loopback as in a single replica; and a Service over the
// replicas' boot HTTP, event and log ports. It returns the config as a
// generic map, whatever keys internal/config knows.
func checkReplicas(t *testing.T, r *rendered, want replicasWant) map[string]any {
	t.Helper()
	ds := r.daemonSet
	if ds == nil {
		t.Fatalf("rendered %s, want a DaemonSet", r.workload)
	}
	checkPod(t, r)
	checkReferences(t, r)
	if !labelsMatch(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("selector %v does not select the pod's labels %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	if got := ds.Spec.Template.Spec.NodeSelector; !maps.Equal(got, want.nodeSelector) {
		t.Errorf("nodeSelector: got %v, want %v", got, want.nodeSelector)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxSurge == nil || u.RollingUpdate.MaxSurge.IntValue() != 0 {
		t.Errorf("updateStrategy: got %+v, want RollingUpdate without surge (the old pod frees the node's ports first)", u)
	}
	if len(r.pvcs) != 0 {
		t.Errorf("rendered claims %v: the replicas keep no state volume", keys(r.pvcs))
	}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s: a claim (%s); the replicas' state is on etcd", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	data := volumeOf(t, r.pod, "data")
	switch {
	case want.dataHostPath != "" && (data.HostPath == nil || data.HostPath.Path != want.dataHostPath):
		t.Errorf("volume data: got %+v, want hostPath %s", data.VolumeSource, want.dataHostPath)
	case want.dataHostPath == "" && data.EmptyDir == nil:
		t.Errorf("volume data: got %+v, want an emptyDir", data.VolumeSource)
	}

	c := container(t, r.pod)
	tlsVol := volumeOf(t, r.pod, "etcd-tls")
	if tlsVol.Secret == nil || tlsVol.Secret.SecretName != want.tlsSecret {
		t.Errorf("volume etcd-tls: got %+v, want Secret %s", tlsVol.VolumeSource, want.tlsSecret)
	}
	var tlsDir string
	for _, m := range c.VolumeMounts {
		if m.Name == "etcd-tls" {
			tlsDir = m.MountPath
			if !m.ReadOnly || m.SubPath != "" {
				t.Errorf("etcd-tls mount: got %+v, want the whole Secret read-only", m)
			}
		}
	}
	if tlsDir == "" {
		t.Fatal("the etcd-tls volume is not mounted")
	}

	cm := r.configMaps[volumeOf(t, r.pod, "config").ConfigMap.Name]
	if cm == nil {
		t.Fatal("the config's ConfigMap is not rendered")
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["tinderbox.yaml"]), &cfg); err != nil {
		t.Fatalf("tinderbox.yaml: %v", err)
	}
	get := func(path string) any {
		var v any = cfg
		for k := range strings.SplitSeq(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	if got := get("state.backend"); got != "etcd" {
		t.Errorf("state.backend: got %v, want etcd", got)
	}
	if got, _ := get("state.etcd.endpoints").([]any); !slices.Equal(stringsOf(got), want.endpoints) {
		t.Errorf("state.etcd.endpoints: got %v, want %v", got, want.endpoints)
	}
	if got := get("state.etcd.prefix"); got != want.prefix {
		t.Errorf("state.etcd.prefix: got %v, want %s", got, want.prefix)
	}
	for key, file := range map[string]string{"ca": "ca.crt", "cert": "tls.crt", "key": "tls.key"} {
		if got, want := get("state.etcd.tls."+key), path.Join(tlsDir, file); got != want {
			t.Errorf("state.etcd.tls.%s: got %v, want %s (the etcd-tls Secret's key %s)", key, got, want, file)
		}
	}
	if got := get("state.dir"); got != mustMount(t, c, "data") {
		t.Errorf("state.dir: got %v, want the data volume", got)
	}
	if got, _ := get("admin.listen").(string); !config.IsLoopback(got) || strconv.Itoa(int(containerPort(t, c, "admin").ContainerPort)) != got[strings.LastIndex(got, ":")+1:] {
		t.Errorf("admin.listen %q: want loopback on the container's admin port", got)
	}

	var boot *corev1.Service
	for _, s := range r.services {
		if slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "talos-events" }) {
			boot = s
		}
	}
	if boot == nil {
		t.Fatal("no Service over the replicas' boot ports")
	}
	for _, name := range []string{"http", "talos-events", "talos-logs", "talos-logs-udp"} {
		if !slices.ContainsFunc(boot.Spec.Ports, func(p corev1.ServicePort) bool {
			return p.TargetPort.String() == name && p.Port == containerPort(t, c, name).ContainerPort
		}) {
			t.Errorf("Service %s: no port %s on the container's port number", boot.Name, name)
		}
	}
	if boot.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Errorf("Service %s: type %s, want LoadBalancer (its address is the shared one)", boot.Name, boot.Spec.Type)
	}
	if boot.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: externalTrafficPolicy %q, want Local (binding needs the client's own address)", boot.Name, boot.Spec.ExternalTrafficPolicy)
	}

	t.Run("tinderbox loads it", func(t *testing.T) {
		checkConfigMatchesPod(t, r)
	})
	return cfg
}

func stringsOf(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// mustMount is the mount path of volume vol in c.
func mustMount(t *testing.T, c *corev1.Container, vol string) string {
	t.Helper()
	p, _ := mountOf(t, c, vol)
	return p
}

// TestExampleReplicasComponent renders the example overlay with the
// replicas component: the DaemonSet on etcd that checkReplicas describes,
// and a pod that is the base Deployment's but for the data volume (the
// node's directory) and the etcd client certificate.
func TestExampleReplicasComponent(t *testing.T) {
	r := renderExample(t, "replicas")
	r.userMade = map[string]bool{"Secret/tinderbox-etcd-client": true}
	checkReplicas(t, r, replicasWant{
		endpoints:    []string{"https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"},
		prefix:       "/tinderbox/",
		tlsSecret:    "tinderbox-etcd-client",
		dataHostPath: "/var/lib/tinderbox",
		nodeSelector: map[string]string{"tinderbox/pxe-lan": "true"},
	})

	single := renderExample(t)
	want := single.deployment.Spec.Template.DeepCopy()
	got := r.daemonSet.Spec.Template.DeepCopy()
	for _, p := range []*corev1.PodTemplateSpec{want, got} {
		p.Spec.Volumes = slices.DeleteFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "data" || v.Name == "etcd-tls" })
		c := &p.Spec.Containers[0]
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "etcd-tls" })
	}
	// The config's ConfigMap differs (the component's config), and so
	// does the admin token each render writes: so do their generated
	// names.
	for _, p := range []*corev1.PodTemplateSpec{want, got} {
		for i, v := range p.Spec.Volumes {
			switch v.Name {
			case "config":
				p.Spec.Volumes[i].ConfigMap.Name = "tinderbox-config"
			case "admin-token":
				p.Spec.Volumes[i].Secret.SecretName = "tinderbox-admin"
			}
		}
	}
	a, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("the DaemonSet's pod is not the base Deployment's but for data and etcd-tls:\nbase:\n%s\ncomponent:\n%s", a, b)
	}
}
