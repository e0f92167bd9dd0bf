package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsGolden records every tinderbox metric family the daemon exposes,
// one line each, sorted by name:
//
//	name type label,label # help
//
// (no label field when the family has none). deploy/grafana_test.go checks
// the dashboard's queries against it. The Go runtime and process families
// are left out: which of them exist depends on the Go version and the OS.
const metricsGolden = "testdata/metrics.golden"

var update = flag.Bool("update", false, "rewrite "+metricsGolden+" from the daemon's /metrics and "+validateGolden+" from validate")

// descName finds a metric's name in prometheus.Desc.String(), the only
// place a Desc shows it.
var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// checkMetrics scrapes the daemon's GET /metrics on the boot listener and
// compares its tinderbox families with metricsGolden, lints them with
// promlint, and checks that every family the daemon's registry describes
// was exposed. A vector has no series, and so is not exposed, until it is
// used: the caller drives traffic of every kind first.
func checkMetrics(t *testing.T, d *daemon) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + d.httpAddr.String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	all, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	var families []*dto.MetricFamily
	for name, mf := range all {
		if strings.HasPrefix(name, "tinderbox_") {
			families = append(families, mf)
		}
	}
	slices.SortFunc(families, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })

	for _, name := range describedNames(t, d.registry) {
		if all[name] == nil {
			t.Errorf("%s is registered but has no series: drive traffic that uses it before checkMetrics", name)
		}
	}

	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	var b strings.Builder
	for _, mf := range families {
		b.WriteString(goldenLine(mf))
	}
	got := b.String()
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(metricsGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(metricsGolden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if diff := lineDiff(string(want), got); diff != "" {
		t.Errorf("%s differs from the daemon's /metrics (- file, + daemon); run with -update if the change is meant:\n%s", metricsGolden, diff)
	}
}

// lineDiff lists the lines only in want (marked -) and only in got (+), or
// returns "" when both hold the same lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// goldenLine is mf's line in metricsGolden: its name, type, the union of
// its series' label names, sorted, and its help.
func goldenLine(mf *dto.MetricFamily) string {
	var labels []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(labels, l.GetName()) {
				labels = append(labels, l.GetName())
			}
		}
	}
	slices.Sort(labels)
	fields := []string{mf.GetName(), strings.ToLower(mf.GetType().String())}
	if len(labels) > 0 {
		fields = append(fields, strings.Join(labels, ","))
	}
	return fmt.Sprintf("%s # %s\n", strings.Join(fields, " "), mf.GetHelp())
}

// describedNames returns the name of every tinderbox metric r describes,
// used or not.
func describedNames(t *testing.T, r *prometheus.Registry) []string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		r.Describe(ch)
		close(ch)
	}()
	var names []string
	for desc := range ch {
		m := descName.FindStringSubmatch(desc.String())
		if m == nil {
			t.Errorf("no metric name in %s", desc)
			continue
		}
		if strings.HasPrefix(m[1], "tinderbox_") {
			names = append(names, m[1])
		}
	}
	return names
}
