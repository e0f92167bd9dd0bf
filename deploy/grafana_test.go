package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/factory"
	"github.com/tinderbox-boot/tinderbox/internal/httpserver"
	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/tftp"
)

const dashboardFile = "grafana/tinderbox.json"

// recorder is a Registerer that registers on a real registry (so clashes
// still fail) and keeps every collector, to read their descriptions: a
// vector with no label values yet is described but not gathered.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// registeredMetrics builds every tinderbox component that registers metrics,
// the way the daemon does, on one registry, and returns each metric's name
// with its label names.
func registeredMetrics(t *testing.T) map[string][]string {
	t.Helper()
	reg := &recorder{Registry: metrics.NewRegistry()}
	dir := t.TempDir()

	httpserver.NewMetrics(reg)
	proxydhcp.NewMetrics(reg)
	tftp.NewMetrics(reg)
	fc, err := factory.New(factory.Options{URL: "http://127.0.0.1:9", StateDir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(cache.Options{Dir: t.TempDir(), Upstream: cache.FromFactory(fc), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := profiles.NewStore(t.Context(), profiles.Options{Dir: t.TempDir()}, profiles.StoreOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	bootflow.New(bootflow.Options{Store: st, Registerer: reg})

	out := map[string][]string{}
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range reg.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		s := d.String()
		m := descName.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("no metric name in %s", s)
		}
		var labels []string
		if l := descLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
			labels = strings.Split(l[1], ",")
		}
		out[m[1]] = labels
	}
	return out
}

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var (
	metricRef = regexp.MustCompile(`\b(tinderbox_[a-z0-9_]+)(\{[^}]*\})?`)
	matcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	grouping  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// histogramSuffixes are the series a histogram exposes beside its name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboardQueriesRegisteredMetrics checks that every metric a panel
// queries is one tinderbox registers, and every label it matches or groups
// by is one of that metric's labels (or le, a histogram bucket's).
func TestDashboardQueriesRegisteredMetrics(t *testing.T) {
	known := registeredMetrics(t)
	d := loadDashboard(t)
	queried := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			t.Run(p.Title, func(t *testing.T) {
				refs := metricRef.FindAllStringSubmatch(tg.Expr, -1)
				if len(refs) == 0 {
					t.Fatalf("query %q names no tinderbox metric", tg.Expr)
				}
				labels := map[string]bool{"le": true}
				for _, ref := range refs {
					name := ref[1]
					base := name
					for _, s := range histogramSuffixes {
						if b, ok := strings.CutSuffix(name, s); ok {
							if _, isMetric := known[b]; isMetric {
								base = b
							}
						}
					}
					ls, ok := known[base]
					if !ok {
						t.Errorf("query %q: metric %s is not registered by tinderbox", tg.Expr, name)
						continue
					}
					queried[base] = true
					for _, l := range ls {
						labels[l] = true
					}
					for _, m := range matcher.FindAllStringSubmatch(ref[2], -1) {
						if !slices.Contains(ls, m[1]) {
							t.Errorf("query %q: %s has no label %q (labels: %v)", tg.Expr, name, m[1], ls)
						}
					}
				}
				for _, g := range grouping.FindAllStringSubmatch(tg.Expr, -1) {
					for _, l := range strings.Split(g[1], ",") {
						if l = strings.TrimSpace(l); l != "" && !labels[l] {
							t.Errorf("query %q: groups by %q, a label none of its metrics has", tg.Expr, l)
						}
					}
				}
			})
		}
	}
	// The panels: boots per step, cache hit ratio, factory
	// fetches, TFTP and DHCP rates, machines by state.
	for _, want := range []string{
		"tinderbox_boot_steps_total", "tinderbox_cache_lookups_total", "tinderbox_factory_fetches_total",
		"tinderbox_tftp_transfers_total", "tinderbox_dhcp_packets_total", "tinderbox_machines",
	} {
		if !queried[want] {
			t.Errorf("no panel queries %s", want)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both set", d.UID, d.Title)
	}
	if len(d.Templating.List) != 1 || d.Templating.List[0].Name != "datasource" {
		t.Errorf("templating: got %+v, want one datasource variable", d.Templating.List)
	}
	ids := map[int]string{}
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d: used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
	}
}
