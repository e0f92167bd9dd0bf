package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/client"
)

// clientFlags are the flags of the commands that talk to a running
// daemon: where it is and the token, and the config file to take them
// from when not given.
type clientFlags struct {
	server, token string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	config.AddConfigFlag(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "admin API URL (default: from admin.listen in the config)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "bearer token (default: $TINDERBOX_TOKEN, then admin.tokenFile)")
}

// client builds the admin client from the flags, falling back on the
// config file for the address and token. Config problems unrelated to
// reaching the daemon (a missing profiles dir, say) do not stop it.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	server, token := f.server, f.token
	if token == "" {
		token = os.Getenv("TINDERBOX_TOKEN")
	}
	if server == "" || token == "" {
		cfg, err := loadConfig(cmd)
		if cfg == nil {
			return nil, err
		}
		if server == "" {
			server = adminURL(cfg.Admin.Listen)
		}
		if token == "" && cfg.Admin.TokenFile != "" {
			if token, err = config.ReadToken(cfg.Admin.TokenFile); err != nil {
				return nil, fmt.Errorf("admin.tokenFile: %w (or pass --token)", err)
			}
		}
	}
	return client.New(server, token), nil
}

// adminURL turns a listen address into a URL a local client can reach.
func adminURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func newMachinesCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "List and manage machines through a running daemon's admin API",
		Long: `machines talks to a running tinderbox's admin API (admin.listen).

  tinderbox machines [-w]             every machine, booted or with a profile (-w: then every change)
  tinderbox machines show MAC         one machine with its boot events
  tinderbox machines reinstall MAC    re-arm: netboot and install again on the next boot
  tinderbox machines forget MAC       delete what tinderbox recorded of the machine
  tinderbox machines logs MAC [-f]    the machine's Talos log (its install console)
  tinderbox machines watch            machine changes as they happen`,
		Args: cobra.NoArgs,
	}
	f.add(cmd)
	addListFlags(cmd, &f)
	list := &cobra.Command{Use: "list", Short: "List every machine; -w then prints every change", Args: cobra.NoArgs}
	addListFlags(list, &f)
	cmd.AddCommand(list, newShowCmd(&f), newReinstallCmd(&f), newForgetCmd(&f), newLogsCmd(&f), newWatchCmd(&f))
	return cmd
}

// addListFlags gives cmd the machine listing: -o and -w, and its RunE.
func addListFlags(cmd *cobra.Command, f *clientFlags) {
	out := addOutput(cmd, outTable, outWide, outJSON, outYAML)
	var watch bool
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after the list, print every change as it happens (as `machines watch`), until interrupted")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		list := func() error {
			machines, err := c.Machines(cmd.Context())
			if err != nil {
				return err
			}
			return printList(w, out, machines, watch)
		}
		if !watch {
			return list()
		}
		// The stream is open before the list is taken: no change between
		// the two is lost.
		return c.WatchFrom(cmd.Context(), list, func(m api.MachineEvent) error { return printChange(w, out, m) })
	}
}

func newShowCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use: "show MAC", Short: "Show one machine with its boot events", Args: macArgs(1, 1),
		ValidArgsFunction: f.completeMACs,
	}
	out := addOutput(cmd, outTable, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		m, err := c.Machine(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if out.structured() {
			return out.print(cmd.OutOrStdout(), m)
		}
		return printMachine(cmd.OutOrStdout(), m)
	}
	return cmd
}

func newReinstallCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reinstall MAC",
		Short: "Re-arm a machine: it netboots and installs again on its next boot",
		Long: `reinstall re-arms a machine: on its next network boot it is served its
config and installs again. A machine without a profile is refused (exit 1):
it would boot as an unknown machine, not install.`,
		Args: macArgs(1, 1), ValidArgsFunction: f.completeMACs,
	}
	out := addOutput(cmd, outTable, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		m, err := c.Reinstall(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if out.structured() {
			return out.print(cmd.OutOrStdout(), m)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is %s: it will netboot and install on its next boot\n", m.MAC, m.State)
		return err
	}
	return cmd
}

func newForgetCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "forget MAC", Short: "Delete what tinderbox recorded of a machine (its profile stays)",
		Args: macArgs(1, 1), ValidArgsFunction: f.completeMACs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Forget(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s forgotten\n", args[0])
			return err
		},
	}
}

func newWatchCmd(f *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use: "watch", Short: "Print machine changes as they happen (state, step, attention) until interrupted", Args: cobra.NoArgs,
	}
	out := addOutput(cmd, outTable, outWide, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		return c.Watch(cmd.Context(), func(m api.MachineEvent) error { return printChange(w, out, m) })
	}
	return cmd
}

// printChange writes one machine change: a line with the time, or a
// value of a json or yaml stream.
func printChange(w io.Writer, out *outputFormat, m api.MachineEvent) error {
	if out.structured() {
		return out.printItem(w, m)
	}
	now := time.Now().Format(time.TimeOnly)
	if m.Gone {
		_, err := fmt.Fprintf(w, "%s  %s  gone\n", now, m.MAC)
		return err
	}
	wide := ""
	if out.value == outWide {
		wide = fmt.Sprintf(" %-6s %-15s", dash(string(m.Arch)), dash(m.IP))
	}
	_, err := fmt.Fprintf(w, "%s  %s  %-12s %-11s%s %s%s\n", now, m.MAC, dash(m.Hostname), m.State, wide, dash(m.LastStep), attention(m))
	return err
}

// newLogsCmd is `machines logs MAC`: the machine's Talos log lines as
// tinderbox received them, and with -f the new ones as they arrive.
func newLogsCmd(f *clientFlags) *cobra.Command {
	var (
		follow bool
		lines  int
		grep   string
	)
	cmd := &cobra.Command{
		Use:               "logs MAC",
		Short:             "Show a machine's Talos log (its kernel log, with machined's [talos] lines); -f follows it",
		Args:              macArgs(1, 1),
		ValidArgsFunction: f.completeMACs,
	}
	out := addOutput(cmd, outTable, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		show := func(l api.LogLine) error {
			if out.structured() {
				return out.printItem(w, l)
			}
			_, err := fmt.Fprintf(w, "%s  %-5s  %s\n", l.Time.Local().Format("2006-01-02 15:04:05.000"), dash(l.Level), l.Msg)
			return err
		}
		got, err := c.Logs(cmd.Context(), args[0], lines, grep)
		if err != nil {
			return err
		}
		for _, l := range got.Lines {
			if err := show(l); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		return c.FollowLogs(cmd.Context(), args[0], func(l api.LogLine) error {
			if grep != "" && !strings.Contains(strings.ToLower(l.Msg), strings.ToLower(grep)) {
				return nil
			}
			return show(l)
		})
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing lines as they arrive, until interrupted")
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "how many of the newest lines to print first (default: the server's, 200)")
	cmd.Flags().StringVar(&grep, "grep", "", "only lines holding this text (any case)")
	return cmd
}

// attention is a machine's attention, set off for a listing; "" when none.
func attention(m api.MachineEvent) string {
	if m.Attention == "" {
		return ""
	}
	return "  ! " + m.Attention
}

// printList writes the machines: a table (wide adds the profile, UUID,
// first sighting and Talos' stage), or one json or yaml value; with
// stream (-w) each machine is a value of a stream, as the changes after it.
func printList(w io.Writer, out *outputFormat, list []api.Machine, stream bool) error {
	if out.structured() {
		if !stream {
			if list == nil {
				list = []api.Machine{}
			}
			return out.print(w, list)
		}
		for _, m := range list {
			if err := out.printItem(w, api.MachineEvent{Machine: m}); err != nil {
				return err
			}
		}
		return nil
	}
	wide := out.value == outWide
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "MAC\tHOSTNAME\tSTATE\tARCH\tIP\tLAST SEEN\tLAST STEP\tATTENTION"
	if wide {
		head += "\tPROFILE\tUUID\tFIRST SEEN\tTALOS"
	}
	fmt.Fprintln(tw, head)
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", m.MAC, dash(m.Hostname), m.State, dash(string(m.Arch)), dash(m.IP), ago(m.LastSeen), dash(m.LastStep), dash(m.Attention))
		if wide {
			stage := "-"
			if m.Talos != nil {
				stage = dash(m.Talos.Stage)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", yesNo(m.Profile), dash(m.UUID), stamp(m.FirstSeen), stage)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// yesNo is a boolean for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printMachine(w io.Writer, m api.Machine) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"MAC", m.MAC.String()}, {"Hostname", dash(m.Hostname)}, {"State", string(m.State)}, {"Profile", fmt.Sprint(m.Profile)},
		{"Arch", dash(string(m.Arch))}, {"UUID", dash(m.UUID)}, {"IP", dash(m.IP)},
		{"First seen", stamp(m.FirstSeen)}, {"Last seen", stamp(m.LastSeen)},
		{"Talos", talosStatus(m.Talos)}, {"Attention", dash(m.Attention)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(m.Events) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nEvents:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range m.Events {
		size := ""
		if e.Bytes > 0 {
			size = fmt.Sprintf("%d bytes", e.Bytes)
		}
		if e.Times() > 1 {
			size += fmt.Sprintf(" ×%d since %s", e.Times(), e.First().Local().Format(time.DateTime))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Kind, e.Detail, strings.TrimSpace(size))
	}
	return tw.Flush()
}

// talosStatus says what the machine's Talos last reported.
func talosStatus(t *api.TalosReport) string {
	if t == nil {
		return "no reports (the state is inferred from its boots)"
	}
	s := t.Stage
	if t.Ready {
		s += ", ready"
	}
	return s + " (" + t.At.Local().Format(time.DateTime) + ")"
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}

func ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return time.Since(*t).Round(time.Second).String() + " ago"
}
