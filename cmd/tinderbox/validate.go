package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config and every profile; print every problem found",
		Long: `validate loads the config file and every profile, renders every known
machine, and prints every problem found, with file and line where possible.
It exits 1 if there is any problem.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			src := "built-in defaults"
			if cfg.File != "" {
				src = cfg.File
			}
			fmt.Fprintf(cmd.OutOrStdout(), "config %s: ok\n", src)
			fc, err := schematicResolver(cfg, newLogger(cfg.Log, cmd.ErrOrStderr()))
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			set, err := profiles.Load(cmd.Context(), profileOptions(cfg, fc))
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			fmt.Fprintf(cmd.OutOrStdout(), "profiles %s: ok, %d machine(s) rendered, unknown machines: %s\n", cfg.Profiles.Dir, set.Len(), set.Unknown())
			return nil
		},
	}
}

// printProblems writes each joined error on its own line to stderr.
func printProblems(cmd *cobra.Command, err error) {
	w := cmd.ErrOrStderr()
	n := 0
	for _, e := range problem.Leaves(err) {
		fmt.Fprintln(w, e)
		n++
	}
	fmt.Fprintf(w, "%d problem(s) found\n", n)
}
