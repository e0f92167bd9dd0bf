package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

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
	// The daemon's flags (listen addresses, directories, --advertise…)
	// belong to the commands that read the config for them; the client
	// commands have --config, --server and --token only.
	for _, cmd := range []*cobra.Command{newServeCmd(), newCacheCmd(), newRenderCmd(), newExplainCmd(), newValidateCmd()} {
		config.AddFlags(cmd.PersistentFlags())
		root.AddCommand(cmd)
	}
	root.AddCommand(
		newMachinesCmd(),
		newDiffCmd(),
		newScriptCmd(),
		newSecretsCmd(),
		newVersionCmd(),
		newDocsCmd(),
	)
	root.InitDefaultCompletionCmd()
	setUsageErrors(root)
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

// versionInfo is `version -o json`'s shape.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
	}
	out := addOutput(cmd, outTable, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if out.structured() {
			return out.print(cmd.OutOrStdout(), versionInfo{
				Version: version.Version, Commit: version.Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
			})
		}
		_, err := fmt.Fprintln(cmd.OutOrStdout(), version.String())
		return err
	}
	return cmd
}

// newDocsCmd is the hidden `docs man DIR`: man pages for every command,
// generated from the commands themselves (`make man`).
func newDocsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Generate documentation from the command line's own definitions",
		Hidden: true,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page (section 1) for every command into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("docs man: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Title: "TINDERBOX", Section: "1", Source: "tinderbox " + version.Version, Manual: "tinderbox manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("docs man: %w", err)
			}
			return nil
		},
	})
	return cmd
}
