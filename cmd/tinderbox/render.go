package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func newRenderCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "render MAC",
		Short: "Print the machine config MAC would be served",
		Long: `render loads the config and every profile, and prints the machine config
the server would serve MAC, byte for byte: its base config with the
patches applied, the install image and hostname filled in, and a leading
comment with the URL it is served at. Schematic names are resolved through
the Image Factory, or offline from the IDs remembered under state.dir.

Any problem in the profiles is printed instead (the server would keep
serving its last good set), and render exits 1. It prints the config as it
is served, so it has no -o.`,
		Example:           "  tinderbox render 52:54:00:12:34:56 --config tinderbox.yaml",
		Args:              macArgs(1, 1),
		ValidArgsFunction: completeProfileMACs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mac, err := machine.ParseMAC(args[0])
			if err != nil {
				return err
			}
			cfg, popts, err := offlineProfiles(cmd)
			if err != nil {
				return err
			}
			set, err := profiles.Load(cmd.Context(), popts)
			if err != nil {
				printProblems(cmd, err)
				return errReported
			}
			out, err := set.Render(cmd.Context(), mac)
			if errors.Is(err, profiles.ErrUnknownMachine) {
				return fmt.Errorf("%s has no profile: there is no machines/%s.yaml in %s", mac, mac, cfg.Profiles.Dir)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}

// offlineProfiles loads the config and the options that read its profiles
// without a daemon, as render and explain do: schematic names resolve from
// the IDs remembered under state.dir (or the factory, when reachable). A
// config problem is printed, and errReported returned.
func offlineProfiles(cmd *cobra.Command) (*config.Config, profiles.Options, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		printProblems(cmd, err)
		return nil, profiles.Options{}, errReported
	}
	fc, err := schematicResolver(cfg, newLogger(cfg.Log, cmd.ErrOrStderr()))
	if err != nil {
		return nil, profiles.Options{}, err
	}
	return cfg, profileOptions(cfg, fc), nil
}
