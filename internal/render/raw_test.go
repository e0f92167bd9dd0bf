package render

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		template bool
		note     string // a substring of the note; "" wants none
	}{
		{"no actions", "machine:\n  type: worker\n", false, ""},
		{"uses .Values", "a: {{ .Values.x }}\n", true, ""},
		{"uses .Machine in a pipeline", "a: {{ .Machine.MAC | quote }}\n", true, ""},
		{"uses $.Talos inside range", "{{ range .Other }}{{ $.Talos.Version }}{{ end }}\n", true, ""},
		{"uses data in a define block", "{{ define \"x\" }}{{ .Values.a }}{{ end }}a: b\n", true, ""},
		{"uses data in an if condition", "{{ if .Values.vip }}vip: true{{ end }}\n", true, ""},
		{"uses data via with", "{{ with .Machine }}h: {{ .Hostname }}{{ end }}\n", true, ""},
		{"only functions", "a: {{ cidrhost \"10.0.0.0/24\" 5 }}\n", false, "no {{ }} in it uses"},
		{"prometheus $labels", "s: \"{{ $labels.instance }} down\"\n", false, "do not parse"},
		{"alertmanager field", "s: \"{{ .CommonLabels.alertname }}\"\n", false, "no {{ }} in it uses"},
		{"grafana legend", "legend: \"{{instance}}\"\n", false, "no {{ }} in it uses"},
		{"a misspelt field alone", "a: {{ .Valuse.x }}\n", false, "no {{ }} in it uses"},
		{"broken template of tinderbox's", "a: {{ .Values.x\n", true, ""},
		{"raw marker", "# tinderbox: raw\na: {{ .Values.x }}\n", false, ""},
		{"raw marker, CRLF", "# tinderbox: raw\r\na: {{ $labels }}\r\n", false, ""},
		{"template marker", "# tinderbox: template\ns: \"{{ $labels.x }}\"\n", true, ""},
		{"marker not on the first line", "a: 1\n# tinderbox: raw\nb: {{ .Values.x }}\n", true, ""},
	} {
		tmpl, note := classify([]byte(tc.text))
		if tmpl != tc.template {
			t.Errorf("%s: template = %v, want %v (note %q)", tc.name, tmpl, tc.template, note)
		}
		if (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
			t.Errorf("%s: note %q, want one containing %q", tc.name, note, tc.note)
		}
	}
}

// TestRawFileWarnings: an imported patch with foreign {{ }} renders with
// them intact and one warning per such file, on the file's first line;
// the marked file has none.
func TestRawFileWarnings(t *testing.T) {
	in := loadCase(t, "testdata/golden/raw-imported-patch")
	_, warns, err := Check(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 2 || warns[0].File != "patch-1.yaml" || warns[1].File != "patch-2.yaml" || warns[0].Line != 1 ||
		!strings.Contains(warns[0].Error(), "warning: read as plain YAML") || !strings.Contains(warns[0].Error(), RawMarker) {
		t.Errorf("got warnings %v", warns)
	}
	in = loadCase(t, "testdata/golden/raw-marked")
	if _, warns, err := Check(in); err != nil || len(warns) != 0 {
		t.Errorf("marked files: got warnings %v, err %v", warns, err)
	}
}
