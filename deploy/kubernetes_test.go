package deploy

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

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
	baseDir     = "kubernetes/base"
	exampleDir  = "kubernetes/example"
	profilesDir = "../profiles"
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
	for _, dir := range []string{baseDir, exampleDir} {
		t.Run(dir, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var k kusttypes.Kustomization
			decodeStrict(t, dir, data, &k)
			if k.Kind != kusttypes.KustomizationKind {
				t.Errorf("kind: got %q, want %q", k.Kind, kusttypes.KustomizationKind)
			}
		})
	}
}

// rendered is the example overlay as kustomize renders it, each object
// decoded strictly into its API type.
type rendered struct {
	namespaces []*corev1.Namespace
	deployment *appsv1.Deployment
	services   []*corev1.Service
	pvcs       map[string]*corev1.PersistentVolumeClaim
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	// namespaceOf maps "Kind/name" to the object's namespace.
	namespaceOf map[string]string
}

// renderExample renders the example overlay exactly as `kubectl apply -k`
// would, with the base and overlay copied into an in-memory file system
// beside the repository's example profiles and a test admin token, made
// as strong as tinderbox requires (the token is the user's to write; it is
// not in the repository).
func renderExample(t *testing.T) *rendered {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	copyTree(t, mem, baseDir, "/k/base")
	copyTree(t, mem, exampleDir, "/k/example")
	copyTree(t, mem, profilesDir, "/k/example/profiles")
	if err := mem.WriteFile("/k/example/admin-token", []byte(rand.Text()+rand.Text()+"\n")); err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/k/example")
	if err != nil {
		t.Fatalf("kustomize build example: %v", err)
	}
	r := &rendered{
		pvcs:        map[string]*corev1.PersistentVolumeClaim{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		namespaceOf: map[string]string{},
	}
	for _, res := range m.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind, name := res.GetKind(), res.GetName()
		id := kind + "/" + name
		r.namespaceOf[id] = res.GetNamespace()
		switch kind {
		case "Namespace":
			o := &corev1.Namespace{}
			decodeStrict(t, id, data, o)
			r.namespaces = append(r.namespaces, o)
		case "Deployment":
			if r.deployment != nil {
				t.Fatalf("two Deployments: %s and %s", r.deployment.Name, name)
			}
			r.deployment = &appsv1.Deployment{}
			decodeStrict(t, id, data, r.deployment)
		case "Service":
			o := &corev1.Service{}
			decodeStrict(t, id, data, o)
			r.services = append(r.services, o)
		case "PersistentVolumeClaim":
			o := &corev1.PersistentVolumeClaim{}
			decodeStrict(t, id, data, o)
			r.pvcs[name] = o
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			decodeStrict(t, id, data, o)
			r.configMaps[name] = o
		case "Secret":
			o := &corev1.Secret{}
			decodeStrict(t, id, data, o)
			r.secrets[name] = o
		default:
			t.Fatalf("rendered %s: no API type checked for kind %s", id, kind)
		}
	}
	if r.deployment == nil {
		t.Fatal("rendered no Deployment")
	}
	return r
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

func container(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("containers: got %d, want 1", n)
	}
	return &d.Spec.Template.Spec.Containers[0]
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

func TestExampleDeployment(t *testing.T) {
	r := renderExample(t)
	d := r.deployment
	pod := d.Spec.Template.Spec
	c := container(t, d)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "replicas", got: *d.Spec.Replicas, want: int32(1)},
		{name: "strategy", got: d.Spec.Strategy.Type, want: appsv1.RecreateDeploymentStrategyType},
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
		{name: "namespace", got: r.namespaceOf["Deployment/"+d.Name], want: "tinderbox"},
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
}

// equal compares the scalar and slice values TestExampleDeployment checks.
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
	d := r.deployment
	ns := r.namespaceOf["Deployment/"+d.Name]
	if len(r.namespaces) != 1 || r.namespaces[0].Name != ns {
		t.Errorf("namespaces: got %d, want one named %s", len(r.namespaces), ns)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		var kind, name string
		switch {
		case v.ConfigMap != nil:
			kind, name = "ConfigMap", v.ConfigMap.Name
			if r.configMaps[name] == nil {
				t.Errorf("volume %s: ConfigMap %s is not rendered", v.Name, name)
			}
		case v.Secret != nil:
			kind, name = "Secret", v.Secret.SecretName
			if r.secrets[name] == nil {
				if v.Secret.Optional != nil && *v.Secret.Optional {
					continue // the example need not have it
				}
				t.Errorf("volume %s: Secret %s is not rendered", v.Name, name)
			}
		case v.PersistentVolumeClaim != nil:
			kind, name = "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName
			if r.pvcs[name] == nil {
				t.Errorf("volume %s: claim %s is not rendered", v.Name, name)
			}
		default:
			continue
		}
		if got := r.namespaceOf[kind+"/"+name]; got != ns {
			t.Errorf("volume %s: %s %s in namespace %q, want %q", v.Name, kind, name, got, ns)
		}
	}
	c := container(t, d)
	if len(r.services) == 0 {
		t.Fatal("no Service rendered")
	}
	for _, s := range r.services {
		for k, v := range s.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, pod labels: %v", s.Name, k, v, d.Spec.Template.Labels)
			}
		}
		for _, p := range s.Spec.Ports {
			containerPort(t, c, p.TargetPort.String())
		}
	}
	var names []string
	for _, s := range r.services {
		for _, p := range s.Spec.Ports {
			names = append(names, p.Name)
		}
	}
	for _, want := range []string{"admin", "metrics"} {
		if !slices.Contains(names, want) {
			t.Errorf("Service ports: got %v, want one named %q", names, want)
		}
	}
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

func volumeOf(t *testing.T, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// TestExampleConfigMatchesPod loads the rendered config with tinderbox's
// own config loader and checks that the pod provides what it names: the
// --config file, the token, the profiles, the state and cache volume, and
// container ports for every listener.
func TestExampleConfigMatchesPod(t *testing.T) {
	r := renderExample(t)
	d := r.deployment
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
	// Paths inside the pod do not exist here; every other problem counts.
	podPaths := map[string]bool{"admin.tokenFile": true, "profiles.dir": true, "ipxe.dir": true, "cache.dir": true, "state.dir": true}
	for _, e := range problem.Leaves(err) {
		var p *config.Problem
		if !errors.As(e, &p) || !podPaths[p.Key] {
			t.Errorf("config problem: %v", e)
		}
	}

	t.Run("admin token", func(t *testing.T) {
		dir, _ := mountOf(t, c, "admin-token")
		if filepath.Dir(cfg.Admin.TokenFile) != dir {
			t.Errorf("admin.tokenFile %s: got directory %s, want the token volume's %s", cfg.Admin.TokenFile, filepath.Dir(cfg.Admin.TokenFile), dir)
		}
		s := r.secrets[volumeOf(t, d, "admin-token").Secret.SecretName]
		tok, ok := s.Data[filepath.Base(cfg.Admin.TokenFile)]
		if !ok {
			t.Errorf("Secret %s has no key %s", s.Name, filepath.Base(cfg.Admin.TokenFile))
		} else if err := config.CheckToken(strings.TrimSpace(string(tok))); err != nil {
			t.Errorf("Secret %s: %v", s.Name, err)
		}
	})
	t.Run("state and cache on the claim", func(t *testing.T) {
		dir, _ := mountOf(t, c, "data")
		if cfg.State.Dir != dir {
			t.Errorf("state.dir: got %s, want the data volume's %s", cfg.State.Dir, dir)
		}
		if rel, err := filepath.Rel(dir, cfg.Cache.Dir); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("cache.dir %s is not on the data volume %s", cfg.Cache.Dir, dir)
		}
		pvc := r.pvcs[volumeOf(t, d, "data").PersistentVolumeClaim.ClaimName]
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if max := resource.NewQuantity(int64(cfg.Cache.MaxSize), resource.BinarySI); size.Cmp(*max) <= 0 {
			t.Errorf("claim %s: got %s, want more than cache.maxSize %s", pvc.Name, size.String(), max.String())
		}
	})
	t.Run("profiles", func(t *testing.T) {
		dir, _ := mountOf(t, c, "profiles")
		if cfg.Profiles.Dir != dir {
			t.Errorf("profiles.dir: got %s, want the profiles volume's %s", cfg.Profiles.Dir, dir)
		}
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
