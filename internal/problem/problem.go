// Package problem formats what is wrong with a file a user wrote (the config
// file, a profile, a patch) the one way tinderbox reports it everywhere:
// "file:line: what: message", so editors and terminals can jump to it.
package problem

import (
	"strconv"
	"strings"
)

// Format joins a problem's location, subject and message:
// "file:line: subject: msg". A part that is empty (or a line of 0) is left
// out with its separator.
func Format(file string, line int, subject, msg string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if line > 0 {
			b.WriteString(":" + strconv.Itoa(line))
		}
		b.WriteString(": ")
	}
	if subject != "" {
		b.WriteString(subject + ": ")
	}
	b.WriteString(msg)
	return b.String()
}

// YAML splits a YAML decoder error ("yaml: line N: msg", or "line N: msg")
// into its line, 0 when it names none, and its message.
func YAML(err error) (line int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		n, tail, _ := strings.Cut(rest, ":")
		if l, err := strconv.Atoi(n); err == nil {
			return l, strings.TrimSpace(tail)
		}
	}
	return 0, msg
}

// Leaves unpacks a tree of joined errors (errors.Join, possibly nested)
// into its leaves, in order; nil for nil.
func Leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Leaves(e)...)
		}
		return out
	}
	return []error{err}
}
