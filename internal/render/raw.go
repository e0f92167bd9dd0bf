package render

import (
	"bytes"
	"fmt"
	"text/template/parse"
)

// The first-line markers that say how a base config or patch is read
// (docs/profiles.md, "Templates or plain YAML"). A marker is a YAML
// comment, so the file stays valid for talosctl.
const (
	// RawMarker makes a file plain YAML: its {{ }} reach the config as
	// written (a PrometheusRule's {{ $labels.instance }}, say).
	RawMarker = "# tinderbox: raw"
	// TemplateMarker makes a file a template whatever it holds, so that
	// every template error is reported as one.
	TemplateMarker = "# tinderbox: template"
)

// dataFields are the top-level fields of Data that a template can use.
var dataFields = map[string]bool{"Machine": true, "Values": true, "Talos": true}

// classify says whether a file is read as a template. A marker on the
// first line decides; without one, a file is a template when it has an
// action ({{ … }}) that uses tinderbox's data (.Machine, .Values or .Talos,
// or the same through $). A file with actions that are not tinderbox's,
// such as a Prometheus rule's {{ $labels.instance }}, an Alertmanager
// template's {{ .CommonLabels }} or a Grafana legend's {{instance}}, is read
// as plain YAML, and note says why, for a warning: a typo in a file whose
// only action is misspelt (.Valuse) would otherwise be served unnoticed.
// A file whose actions do not parse is a template (so its error is
// reported) when it names .Machine, .Values or .Talos anywhere.
func classify(text []byte) (template bool, note string) {
	first, _, _ := bytes.Cut(text, []byte("\n"))
	switch string(bytes.TrimRight(first, " \t\r")) {
	case RawMarker:
		return false, ""
	case TemplateMarker:
		return true, ""
	}
	if !bytes.Contains(text, []byte("{{")) {
		return false, ""
	}
	t := parse.New("classify")
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(string(text), "", "", trees); err != nil {
		if mentionsData(text) {
			return true, "" // a broken template of tinderbox's: report its error
		}
		return false, fmt.Sprintf("read as plain YAML: its {{ }} do not parse as a tinderbox template (%v); start the file with %q to make this an error, or %q to silence it", err, TemplateMarker, RawMarker)
	}
	trees[""] = t // {{ define }} blocks are in trees, the rest in t
	for _, tree := range trees {
		if usesData(tree.Root) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("read as plain YAML: no {{ }} in it uses .Machine, .Values or .Talos; start the file with %q if it is meant as a template, or %q to silence this", TemplateMarker, RawMarker)
}

// mentionsData says whether text names a field of Data right after a
// "." or "$.", as a template that does not parse may still show.
func mentionsData(text []byte) bool {
	for f := range dataFields {
		if bytes.Contains(text, []byte("."+f)) {
			return true
		}
	}
	return false
}

// usesData says whether a parse tree refers to a field of Data anywhere.
func usesData(n parse.Node) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if usesData(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return usesData(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if usesData(c) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if usesData(a) {
				return true
			}
		}
	case *parse.FieldNode:
		return len(n.Ident) > 0 && dataFields[n.Ident[0]]
	case *parse.VariableNode:
		return len(n.Ident) > 1 && n.Ident[0] == "$" && dataFields[n.Ident[1]]
	case *parse.ChainNode:
		return usesData(n.Node)
	case *parse.IfNode:
		return usesData(&n.BranchNode)
	case *parse.RangeNode:
		return usesData(&n.BranchNode)
	case *parse.WithNode:
		return usesData(&n.BranchNode)
	case *parse.BranchNode:
		return usesData(n.Pipe) || usesData(n.List) || usesData(n.ElseList)
	case *parse.TemplateNode:
		return usesData(n.Pipe)
	}
	return false
}
