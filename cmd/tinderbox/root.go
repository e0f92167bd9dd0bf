package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/version"
)

// execute runs the command line args, writing to stdout and stderr.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tinderbox",
		Short: "Network-boot Talos Linux machines: proxyDHCP, TFTP and HTTP in one daemon",
		Long: `tinderbox network-boots Talos Linux machines. It answers PXE firmware as a
proxyDHCP server beside the router's DHCP, chain-loads iPXE over TFTP, fetches
and caches Talos kernels and initramfs from the Image Factory, and serves each
machine, by MAC address, its own rendered machine config.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate(version.String() + "\n")
	config.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newServeCmd(),
		newCacheCmd(),
		newMachinesCmd(),
		newRenderCmd(),
		newExplainCmd(),
		newDiffCmd(),
		newScriptCmd(),
		newSecretsCmd(),
		newValidateCmd(),
		newVersionCmd(),
	)
	return root
}

// loadConfig loads the config named by the command's flags.
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	return config.Load(config.Options{Flags: cmd.Flags()})
}

// newLogger builds the daemon's logger from the log section.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(c.Level))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version.String())
			return err
		},
	}
}
