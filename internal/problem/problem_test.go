package problem

import (
	"errors"
	"testing"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		name, file string
		line       int
		subject    string
		want       string
	}{
		{name: "everything", file: "a.yaml", line: 3, subject: "dhcp.port", want: "a.yaml:3: dhcp.port: bad"},
		{name: "no line", file: "a.yaml", subject: "dhcp.port", want: "a.yaml: dhcp.port: bad"},
		{name: "no subject", file: "a.yaml", line: 3, want: "a.yaml:3: bad"},
		{name: "message only", line: 3, want: "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Format(tt.file, tt.line, tt.subject, "bad"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestYAML(t *testing.T) {
	tests := []struct {
		in       string
		wantLine int
		wantMsg  string
	}{
		{"yaml: line 4: found unexpected end of stream", 4, "found unexpected end of stream"},
		{"line 7: mapping values are not allowed", 7, "mapping values are not allowed"},
		{"yaml: unmarshal errors", 0, "unmarshal errors"},
		{"yaml: line x: odd", 0, "line x: odd"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			line, msg := YAML(errors.New(tt.in))
			if line != tt.wantLine || msg != tt.wantMsg {
				t.Errorf("got %d %q, want %d %q", line, msg, tt.wantLine, tt.wantMsg)
			}
		})
	}
}

func TestLeaves(t *testing.T) {
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	got := Leaves(errors.Join(a, errors.Join(b, nil, c)))
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Errorf("got %v, want [a b c]", got)
	}
	if Leaves(nil) != nil {
		t.Error("Leaves(nil) is not nil")
	}
	if got := Leaves(a); len(got) != 1 || got[0] != a {
		t.Errorf("a single error: got %v", got)
	}
}
