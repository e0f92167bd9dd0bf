package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// The -o/--output formats, as kubectl and talosctl name them.
const (
	// outTable is the human-readable form, the default of every command.
	outTable = "table"
	// outWide is the table with more columns and values not cut short.
	outWide = "wide"
	// outJSON is indented JSON, pkg/api's shapes; streams write one
	// compact object per line.
	outJSON = "json"
	// outYAML is the JSON form written as YAML; streams write one document
	// per value, each after a "---" line.
	outYAML = "yaml"
)

// outputFormat is the value of a command's -o/--output flag. Set refuses
// a format the command cannot print, so a wrong -o is a usage error
// before the command runs.
type outputFormat struct {
	value   string
	allowed []string
}

func (o *outputFormat) String() string { return o.value }

// Type is the flag's value type in help.
func (o *outputFormat) Type() string { return "format" }

// Set takes one of the allowed formats.
func (o *outputFormat) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("this command prints %s", strings.Join(o.allowed, ", "))
	}
	o.value = s
	return nil
}

// addOutput defines -o/--output on cmd, taking the formats allowed (the
// first is the default), and completes them.
func addOutput(cmd *cobra.Command, allowed ...string) *outputFormat {
	o := &outputFormat{value: allowed[0], allowed: allowed}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(allowed, ", "))
	if err := cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err) // the flag was defined just above: a programming error
	}
	return o
}

// structured says whether the format is json or yaml.
func (o *outputFormat) structured() bool { return o.value == outJSON || o.value == outYAML }

// print writes v as indented JSON or as YAML, by the format.
func (o *outputFormat) print(w io.Writer, v any) error {
	if o.value == outYAML {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return printJSON(w, v)
}

// printItem writes one value of a stream: a compact JSON line, or a YAML
// document after "---".
func (o *outputFormat) printItem(w io.Writer, v any) error {
	if o.value == outYAML {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "---\n%s", b)
		return err
	}
	return json.NewEncoder(w).Encode(v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// usageError makes err a usage error of cmd: exit status 2, with a
// pointer to the command's help.
func usageError(cmd *cobra.Command, err error) error {
	if es := (*exitStatus)(nil); errors.As(err, &es) {
		return err
	}
	return &exitStatus{2, fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
}

// usageArgs wraps an argument validator so that what it refuses is a
// usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError(cmd, err)
		}
		return nil
	}
}

// macArgs checks that there are between min and max arguments and that
// the first is a MAC address (setUsageErrors makes a refusal a usage
// error).
func macArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return fmt.Errorf("missing MAC (usage: %s)", cmd.UseLine())
		case len(args) > max:
			return fmt.Errorf("too many arguments: %q (usage: %s)", args[max:], cmd.UseLine())
		}
		if _, err := machine.ParseMAC(args[0]); err != nil {
			return err
		}
		return nil
	}
}

// setUsageErrors makes every usage mistake under root a usage error
// (exit 2): a bad flag, wrong arguments, and an unknown or missing
// subcommand. Cobra would print help and succeed for `cache ls`, since a
// command that only groups others does not run: such a command gets a
// RunE refusing to run without a subcommand.
func setUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, err) })
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, c := range cmd.Commands() {
			walk(c)
		}
		if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
			cmd.Args = usageArgs(unknownSubcommand)
			cmd.RunE = func(cmd *cobra.Command, _ []string) error {
				if !cmd.HasParent() {
					return cmd.Help()
				}
				return usageError(cmd, fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(subcommands(cmd), ", ")))
			}
			return
		}
		if cmd.Args != nil {
			cmd.Args = usageArgs(cmd.Args)
		}
	}
	walk(root)
}

// unknownSubcommand refuses any argument of a command that only groups
// others, suggesting the nearest subcommand's name.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

// subcommands names cmd's available subcommands.
func subcommands(cmd *cobra.Command) []string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return names
}
