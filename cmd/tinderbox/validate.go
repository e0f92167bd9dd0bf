package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// validation is `validate -o json`'s shape: what the table prints, as
// values.
type validation struct {
	// Config is the config file read, "" for the built-in defaults.
	Config      string `json:"config"`
	ProfilesDir string `json:"profilesDir,omitempty"`
	// OK is false when there is any problem (validate exits 1).
	OK bool `json:"ok"`
	// Machines counts the machines rendered.
	Machines int `json:"machines"`
	// Unknown is what a MAC without a profile gets (defaults.yaml's unknown).
	Unknown  string   `json:"unknown,omitempty"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
}

func newValidateCmd() *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the config and every profile; print every problem found",
		Long: `validate loads the config file and every profile, renders every known
machine, checks the machines against each other and builds their kernel
command lines, and prints every problem and warning found, with file and
line where possible and the fix. It exits 1 if there is any problem, 0 when
there are only warnings. With -o json or yaml the same report is one value
on standard output.

A machine whose render inputs have not changed since the daemon (this same
build, with the same state.dir) last loaded the profiles is not rendered
again: its config, warnings and checks are taken from the renders kept in
state.dir/profile-renders.db, which are what a render now would give.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				if out.structured() {
					v := validation{Problems: messages(problem.Leaves(err))}
					if cfg != nil {
						v.Config = cfg.File
					}
					return printValidation(cmd, out, v)
				}
				printProblems(cmd, err)
				return errReported
			}
			if out.structured() {
				return validateStructured(cmd, out, cfg)
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
			pc := checkProfiles(cmd.Context(), cfg, fc)
			if pc.unread {
				printProblems(cmd, errors.Join(pc.problems...))
				return errReported
			}
			set, problems, warns := pc.set, pc.problems, pc.warnings
			w := cmd.ErrOrStderr()
			for _, e := range problems {
				fmt.Fprintln(w, e)
			}
			for _, e := range warns {
				fmt.Fprintln(w, e)
			}
			if len(problems) > 0 {
				fmt.Fprintf(w, "%d problem(s) and %d warning(s) found\n", len(problems), len(warns))
				return errReported
			}
			fmt.Fprintf(cmd.OutOrStdout(), "profiles %s: ok, %d machine(s) rendered, %d warning(s), unknown machines: %s\n", cfg.Profiles.Dir, set.Len(), len(warns), set.Unknown())
			return nil
		},
	}
	out = addOutput(cmd, outTable, outJSON, outYAML)
	return cmd
}

// validateStructured is validate for -o json and yaml: the checks of the
// table, reported as one validation value.
func validateStructured(cmd *cobra.Command, out *outputFormat, cfg *config.Config) error {
	v := validation{Config: cfg.File, ProfilesDir: cfg.Profiles.Dir}
	fc, err := schematicResolver(cfg, newLogger(config.Log{Level: "error", Format: cfg.Log.Format}, cmd.ErrOrStderr()))
	if err != nil {
		v.Problems = []string{err.Error()}
		return printValidation(cmd, out, v)
	}
	pc := checkProfiles(cmd.Context(), cfg, fc)
	if pc.set != nil {
		v.Machines, v.Unknown = pc.set.Len(), string(pc.set.Unknown())
	}
	v.Problems, v.Warnings = messages(pc.problems), messages(pc.warnings)
	return printValidation(cmd, out, v)
}

// profileChecks is what validate finds in the profiles, for either of its
// outputs.
type profileChecks struct {
	set      *profiles.Set // the set, when every machine loaded
	problems []error       // load problems, then kernel command lines'
	warnings []error
	// unread is true when the directory did not load far enough to
	// render any machine (problems then holds why).
	unread bool
}

// checkProfiles loads the profiles and checks every rendered machine's
// kernel command line (checkCmdlines), also when other machines have
// problems, so that every problem is reported at once.
func checkProfiles(ctx context.Context, cfg *config.Config, fc profiles.SchematicResolver) profileChecks {
	var pc profileChecks
	opts := profileOptions(cfg, fc)
	// The daemon's renders of machines whose inputs have not changed
	// since, made by this same build, are what a render now would give.
	opts.RenderCache = renderCachePath(cfg)
	set, err := profiles.Load(ctx, opts)
	var machines []profiles.Profile
	var loadErr *profiles.LoadError
	switch {
	case err == nil:
		pc.set, machines, pc.warnings = set, set.Machines(), set.Warnings()
	case errors.As(err, &loadErr):
		machines, pc.warnings = loadErr.Machines, loadErr.Warnings
	default:
		pc.unread = true
	}
	cmdWarns, cmdErr := checkCmdlines(cfg, machines)
	pc.warnings = append(pc.warnings, cmdWarns...)
	pc.problems = problem.Leaves(errors.Join(err, cmdErr))
	return pc
}

// printValidation prints v, whose problems decide the exit status.
func printValidation(cmd *cobra.Command, out *outputFormat, v validation) error {
	v.OK = len(v.Problems) == 0
	if v.Problems == nil {
		v.Problems = []string{}
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	if err := out.print(cmd.OutOrStdout(), v); err != nil {
		return err
	}
	if !v.OK {
		return errReported
	}
	return nil
}

// messages is each error's message.
func messages(errs []error) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
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

// factoryReserve is room left on a kernel command line for the Image
// Factory's own arguments (cmdline-metal-ARCH: about 200 bytes today,
// talos.platform, console, hardening and module options), which validate
// cannot see without asking the factory. /ipxe checks the whole line.
const factoryReserve = 512

// longestIPv4 is an IPv4 address of the greatest length in dotted form
// (15 bytes), for checking command lines whose address is not known yet.
const longestIPv4 = "255.255.255.255"

// checkCmdlines builds each machine's kernel command line as a netboot
// would, without the factory's arguments: talos.config with a token,
// tinderbox's own arguments, the profile's kernelArgs. A value that would
// change the script (boot.KernelArgs' rules) is a problem; a line that
// leaves less than factoryReserve bytes of what the kernel keeps gets a
// warning, since /ipxe would refuse it once the factory's are added.
// With advertise not pinned, each node is sent to the address of the
// interface it reached tinderbox on, which validate cannot know: the
// check assumes the longest IPv4 address (longestIPv4).
func checkCmdlines(cfg *config.Config, machines []profiles.Profile) (warnings []error, _ error) {
	host := cfg.Advertise
	if !cfg.AdvertisePinned {
		host = longestIPv4
	}
	base := bootURL(host, cfg.HTTP.Listen)
	var own []string
	if cfg.Reports.Enabled {
		own = reportArgs(host, listenPort(cfg.Reports.EventsListen), listenPort(cfg.Reports.LogsListen))
	}
	var errs []error
	for _, p := range machines {
		arch := p.Talos.Arch
		if arch == "" {
			arch = machine.ArchAMD64
		}
		args, err := boot.KernelArgs(boot.NetbootParams{
			BaseURL: base, MAC: p.MAC, Hostname: p.Hostname, Arch: arch, KernelArgs: p.KernelArgs, Own: own,
			ConfigURL: base + "/config/" + p.MAC.Dashed() + "?token=" + strings.Repeat("0", 32),
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := len("kernel-"+string(arch)+" initrd=initramfs-"+string(arch)+".xz") + len(strings.Join(args, " ")) + 1
		if limit := boot.CmdlineLimit(arch); n > limit-factoryReserve {
			warnings = append(warnings, fmt.Errorf("warning: machine %s (%s): its kernel command line is %d bytes before the Image Factory's arguments; an %s kernel keeps %d, so less than %d bytes are left for them and /ipxe may refuse its script",
				p.MAC, p.Hostname, n, arch, limit, factoryReserve))
		}
	}
	return warnings, errors.Join(errs...)
}

// listenPort is a listen address's port, 0 when it has none.
func listenPort(listen string) int {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
