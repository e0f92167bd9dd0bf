package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newScriptCmd() *cobra.Command {
	var f clientFlags
	var arch string
	cmd := &cobra.Command{
		Use:   "script MAC",
		Short: "Print the iPXE script MAC would be served now",
		Long: `script prints the iPXE script a running tinderbox would serve MAC on its
next network boot, given its profile and state, without recording a boot.
It prints the script as it is served, so it has no -o.`,
		Args:              macArgs(1, 1),
		ValidArgsFunction: f.completeMACs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.Script(cmd.Context(), args[0], arch)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), s)
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&arch, "arch", "x86_64", "iPXE build arch the machine reports (x86_64, i386, arm64), used when its profile names none")
	return cmd
}
