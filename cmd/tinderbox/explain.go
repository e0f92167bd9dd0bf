package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/served"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// maxShown bounds a value in explain's table: certificates and long
// strings are cut, their origin is what the table is for.
const maxShown = 60

func newExplainCmd() *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "explain MAC [PATH]",
		Short: "Show which file and line set each value of a machine's profile and config",
		Long: `explain loads the profiles as render does, offline, and prints where each
value of MAC's effective profile was set (defaults.yaml, a group or the
machine's file, with the line), then each field of its rendered config with
the base config or patch, and line, that last set it, or "filled by
tinderbox" for what tinderbox puts in itself (the install image, the
hostname). PATH keeps only the keys and fields under it
(machine.network, values.region, HostnameConfig). Secret values are
masked; long values are cut.

A problem that stops the config from rendering is printed instead, and
explain exits 1; a config that renders but that validate would refuse is
explained all the same.`,
		Example:           "  tinderbox explain 52:54:00:12:34:56\n  tinderbox explain 52-54-00-12-34-56 machine.install --config tinderbox.yaml",
		Args:              macArgs(1, 2),
		ValidArgsFunction: completeProfileMACs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mac, err := machine.ParseMAC(args[0])
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 2 {
				prefix = args[1]
			}
			cfg, popts, err := offlineProfiles(cmd)
			if err != nil {
				return err
			}
			ex, err := profiles.Explain(cmd.Context(), popts, mac)
			if errors.Is(err, profiles.ErrUnknownMachine) {
				return fmt.Errorf("%s has no profile: there is no machines/%s.yaml in %s", mac, mac.Dashed(), cfg.Profiles.Dir)
			}
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			if out.structured() {
				origins, err := explanationOrigins(ex, cfg.Profiles.Dir, prefix)
				if err != nil {
					return err
				}
				return out.print(cmd.OutOrStdout(), origins)
			}
			return printExplanation(cmd.OutOrStdout(), ex, cfg.Profiles.Dir, prefix)
		},
	}
	out = addOutput(cmd, outTable, outJSON, outYAML)
	return cmd
}

// origin is one value of `explain -o json`: a profile key or a config
// field, its value (secrets masked, not cut) and where it was set.
type origin struct {
	// Section is "profile" or "config".
	Section string `json:"section"`
	// Path is the profile key or the config field's path.
	Path  string `json:"path"`
	Value string `json:"value"`
	// File is relative to the profiles directory; "" for a profile
	// key's default or a field tinderbox fills in (Filled).
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Filled bool   `json:"filled,omitempty"`
}

// explanationOrigins lists the explanation's values under prefix, as
// printExplanation's table does but whole.
func explanationOrigins(ex *profiles.Explanation, dir, prefix string) ([]origin, error) {
	out := []origin{}
	for _, k := range ex.Keys {
		if under(k.Key, prefix) {
			out = append(out, origin{Section: "profile", Path: k.Key, Value: k.Value, File: relTo(dir, k.File), Line: k.Line})
		}
	}
	for _, o := range ex.Config {
		if !under(o.Path, prefix) {
			continue
		}
		value := o.Value
		if secretPath(o.Path) {
			value = "<masked>"
		}
		e := origin{Section: "config", Path: o.Path, Value: value, Filled: o.Filled}
		if o.File != "" {
			e.File, e.Line = relTo(dir, o.File), o.Line
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nothing under %q in the profile or config of %s", prefix, ex.Profile.MAC)
	}
	return out, nil
}

// relTo is file relative to dir when it lies under it, else file.
func relTo(dir, file string) string {
	if rel, err := filepath.Rel(dir, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}

// printExplanation writes the profile's keys, then the config's fields,
// each with its value and origin, keeping those under prefix.
func printExplanation(w io.Writer, ex *profiles.Explanation, dir, prefix string) error {
	src := func(file string, line int) string {
		file = relTo(dir, file)
		if line > 0 {
			return file + ":" + strconv.Itoa(line)
		}
		return file
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	n := 0
	for _, k := range ex.Keys {
		if !under(k.Key, prefix) {
			continue
		}
		if n == 0 {
			fmt.Fprintf(tw, "Profile of %s\n", ex.Profile.MAC)
		}
		n++
		from := "default"
		if k.File != "" {
			from = src(k.File, k.Line)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Key, shown(dash(k.Value)), from)
	}
	m := 0
	for _, o := range ex.Config {
		if !under(o.Path, prefix) {
			continue
		}
		if m == 0 {
			if n > 0 {
				fmt.Fprintln(tw)
			}
			fmt.Fprintln(tw, "Config")
		}
		m++
		value := o.Value
		if secretPath(o.Path) {
			value = "<masked>"
		}
		from := "filled by tinderbox"
		switch {
		case !o.Filled:
			from = src(o.File, o.Line)
		case o.File != "":
			from = "from the secrets bundle " + src(o.File, 0)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Path, shown(value), from)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n+m == 0 {
		return fmt.Errorf("nothing under %q in the profile or config of %s", prefix, ex.Profile.MAC)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// under says whether path is prefix or lies under it.
func under(path, prefix string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+".") || strings.HasPrefix(path, prefix+"[")
}

// secretPath says whether a config path ends in a secret field (or an
// item of one).
func secretPath(path string) bool {
	for {
		i := strings.LastIndexByte(path, '[')
		if i < 0 || !strings.HasSuffix(path, "]") {
			break
		}
		path = path[:i]
	}
	return served.SecretField(path[strings.LastIndexByte(path, '.')+1:])
}

// shown cuts a value to maxShown runes.
func shown(s string) string {
	s = strings.ReplaceAll(s, "\n", `\n`)
	if r := []rune(s); len(r) > maxShown {
		return string(r[:maxShown-1]) + "…"
	}
	return s
}
