package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newDiffCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "diff MAC",
		Short: "Show what changed in a machine's config since it was last served",
		Long: `diff asks a running tinderbox (admin.listen) how the config MAC would be
served now differs from the one it was last served at /config/MAC, and
prints the unified diff, secrets masked on both sides: a secret reads as
<masked:TAG>, TAG a short keyed hash, so a changed secret is a changed
line without its value.

Like diff(1), it exits 0 when nothing changed, 1 when the configs differ,
and 2 on trouble (the daemon unreachable, a machine never served a config,
a profile that no longer renders).`,
		Example:           "  tinderbox diff 52:54:00:12:34:56",
		Args:              macArgs(1, 1),
		ValidArgsFunction: f.completeMACs,
	}
	f.add(cmd)
	out := addOutput(cmd, outTable, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return &exitStatus{2, err}
		}
		d, err := c.ConfigDiff(cmd.Context(), args[0])
		if err != nil {
			return &exitStatus{2, err}
		}
		w := cmd.OutOrStdout()
		if out.structured() {
			if err := out.print(w, d); err != nil {
				return &exitStatus{2, err}
			}
		} else {
			served := d.ServedAt.Local().Format(time.DateTime)
			switch {
			case !d.Changed:
				_, err = fmt.Fprintf(w, "no change since %s was served its config (%s)\n", d.MAC, served)
			case d.Diff == "":
				_, err = fmt.Fprintf(w, "the config of %s changed since it was served (%s): %s\n", d.MAC, served, d.Note)
			default:
				_, err = fmt.Fprintf(w, "# %s: config served %s → config now\n%s", d.MAC, served, d.Diff)
			}
			if err != nil {
				return &exitStatus{2, err}
			}
		}
		if d.Changed {
			return errReported
		}
		return nil
	}
	return cmd
}
