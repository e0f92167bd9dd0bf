package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dashboardFile = "grafana/tinderbox.json"

// metricsGolden lists every tinderbox metric family the daemon exposes, one
// line each (name type label,label # help), written by cmd/tinderbox's
// metrics test from the real daemon's /metrics.
const metricsGolden = "../cmd/tinderbox/testdata/metrics.golden"

// family is a metric family as metricsGolden records it.
type family struct {
	typ    string
	labels []string
}

// registeredMetrics reads metricsGolden: each family's type and label
// names, by metric name.
func registeredMetrics(t *testing.T) map[string]family {
	t.Helper()
	f, err := os.Open(metricsGolden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]family{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		decl, _, _ := strings.Cut(sc.Text(), " # ")
		fields := strings.Fields(decl)
		if len(fields) < 2 || len(fields) > 3 {
			t.Fatalf("%s:%d: got %q, want name type [label,label] # help", metricsGolden, line, sc.Text())
		}
		fam := family{typ: fields[1]}
		if len(fields) == 3 {
			fam.labels = strings.Split(fields[2], ",")
		}
		out[fields[0]] = fam
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no metric", metricsGolden)
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

// seriesLabels returns the family a series name belongs to (its own, or a
// histogram's for a _bucket, _sum or _count series) and the label names
// the series has: the family's, and le on a histogram's buckets.
func seriesLabels(known map[string]family, name string) (base string, labels []string, ok bool) {
	if f, ok := known[name]; ok {
		return name, f.labels, true
	}
	for _, s := range histogramSuffixes {
		if b, cut := strings.CutSuffix(name, s); cut {
			if f, ok := known[b]; ok && f.typ == "histogram" {
				if s == "_bucket" {
					return b, append(slices.Clone(f.labels), "le"), true
				}
				return b, f.labels, true
			}
		}
	}
	return "", nil, false
}

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
// queries is one the daemon exposes (as metricsGolden records), and every
// label it matches or groups by is one of that metric's labels (or le, a
// histogram bucket's).
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
				labels := map[string]bool{}
				for _, ref := range refs {
					name := ref[1]
					base, ls, ok := seriesLabels(known, name)
					if !ok {
						t.Errorf("query %q: metric %s is not in %s", tg.Expr, name, metricsGolden)
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
