package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// quickstartCommand matches a tinderbox command in docs/quickstart.md: a
// line of a shell block, or an inline code span, starting with
// "tinderbox " (after "sudo -u tinderbox ", as the package's user runs it).
var quickstartCommand = regexp.MustCompile("(?m)(?:^|`)(?:sudo -u tinderbox )?(tinderbox [^`\n#]*)")

// TestQuickstartCommands checks that every tinderbox command the quickstart
// gives exists and takes the flags and arguments written there: each is
// looked up in the command tree and its flags and arguments parsed and
// validated, as a run would, without running it.
func TestQuickstartCommands(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range quickstartCommand.FindAllStringSubmatch(string(b), -1) {
		lines = append(lines, strings.TrimSpace(m[1]))
	}
	if len(lines) < 8 {
		t.Fatalf("got %d tinderbox commands in docs/quickstart.md, want its walk-through's (8 or more): %q", len(lines), lines)
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			args := strings.Fields(line)[1:]
			root := newRootCmd(io.Discard, io.Discard)
			cmd, rest, err := root.Find(args)
			if err != nil {
				t.Fatalf("no such command: %v", err)
			}
			if cmd == root {
				t.Fatalf("%q names no subcommand", line)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Fatalf("%s: flags: %v", cmd.CommandPath(), err)
			}
			if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
				t.Fatalf("%s: arguments: %v", cmd.CommandPath(), err)
			}
		})
	}
}
