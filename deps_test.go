package tinderbox_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tinderbox-boot/tinderbox/"

// forbidden lists the package edges the layout rules out, each with the
// reason. A rule's from and to match a package and everything below it.
// Only non-test imports count: tests may reach further.
var forbidden = []struct{ from, to, why string }{
	{"pkg/", "internal/", "pkg/ is public API: a public type must not lead into internal/ (or other modules could not name it)"},
	{"pkg/machine", "", "pkg/machine is the leaf vocabulary: it imports nothing of tinderbox"},
	{"pkg/fakefactory", "", "the fake Image Factory is standalone: it speaks the factory's HTTP API, nothing of tinderbox"},
	{"internal/", "cmd/", "commands are wired from packages, never the other way"},
	{"internal/tftp", "internal/ipxe", "the TFTP server serves any read-only file tree; iPXE is what the daemon puts in it"},
	{"internal/proxydhcp", "internal/state", "protocol servers report through hooks; the boot flow records state"},
	{"internal/proxydhcp", "internal/bootflow", "protocol servers report through hooks; the boot flow implements them"},
	{"internal/tftp", "internal/state", "protocol servers report through hooks; the boot flow records state"},
	{"internal/tftp", "internal/bootflow", "protocol servers report through hooks; the boot flow implements them"},
	{"internal/httpserver", "internal/state", "HTTP plumbing knows no machines"},
	{"internal/httpserver", "internal/bootflow", "HTTP plumbing knows no machines"},
	{"internal/cache", "internal/state", "the asset cache reports through its Recorder hook"},
	{"internal/cache", "internal/bootflow", "the asset cache reports through its Recorder hook"},
	{"internal/profiles", "internal/state", "profiles describe what a machine should be, not what it did"},
	{"internal/profiles", "internal/boot", "profiles describe machines; boot decisions are the boot flow's"},
	{"internal/profiles", "internal/bootflow", "the boot flow consumes profiles, not the reverse"},
	{"internal/profiles", "internal/admin", "the admin API calls profiles, not the reverse"},
	{"internal/state", "internal/profiles", "the state store records what happened; it does not read profiles"},
	{"internal/state", "internal/bootflow", "the state store is below the boot flow"},
	{"internal/boot", "net/http", "boot decides and writes scripts as values; HTTP answers are the boot flow's"},
	{"internal/boot", "internal/state", "boot decides from the vocabulary's states, not from the store"},
	{"internal/render", "internal/profiles", "rendering is a pure function over a base config and patches"},
}

// TestDependencies checks the package graph against forbidden, with the
// imports `go list` reports for the module's own packages.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		graph[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	if len(graph) < 10 {
		t.Fatalf("go list found %d packages of the module; want the whole tree", len(graph))
	}
	for pkg, imports := range graph {
		for _, imp := range imports {
			own := strings.HasPrefix(imp, module)
			rel := strings.TrimPrefix(imp, module)
			for _, r := range forbidden {
				if !under(pkg, r.from) {
					continue
				}
				var hit bool
				switch {
				case r.to == "":
					hit = own
				case strings.Contains(r.to, "/") && !strings.HasPrefix(r.to, "internal/") && !strings.HasPrefix(r.to, "pkg/") && !strings.HasPrefix(r.to, "cmd/"):
					hit = !own && under(imp, r.to) // a standard or third-party package
				default:
					hit = own && under(rel, r.to)
				}
				if hit {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
}

// under reports whether pkg is prefix or a package below it ("internal/"
// matches every internal package).
func under(pkg, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}
