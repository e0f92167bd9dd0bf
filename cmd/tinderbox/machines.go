package main

import (
	"encoding/json"
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

// clientFlags are the flags of the commands that talk to a running daemon.
type clientFlags struct {
	server, token, output string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "admin API URL (default: from admin.listen in the config)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "bearer token (default: $TINDERBOX_TOKEN, then admin.tokenFile)")
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
}

// client builds the admin client from the flags, falling back on the
// config file for the address and token. Config problems unrelated to
// reaching the daemon (a missing profiles dir, say) do not stop it.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("--output %q: want table or json", f.output)
	}
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

  tinderbox machines list             every machine, booted or with a profile
  tinderbox machines show MAC         one machine with its boot events
  tinderbox machines reinstall MAC    re-arm: netboot and install again on the next boot
  tinderbox machines forget MAC       delete what tinderbox recorded of the machine
  tinderbox machines logs MAC [-f]    the machine's Talos log (its install console)
  tinderbox machines watch            machine changes as they happen`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runList(cmd, &f) },
	}
	f.add(cmd)
	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List every machine", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return runList(cmd, &f) },
		},
		&cobra.Command{
			Use: "show MAC", Short: "Show one machine with its boot events", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.client(cmd)
				if err != nil {
					return err
				}
				m, err := c.Machine(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printMachine(cmd.OutOrStdout(), f.output, m)
			},
		},
		&cobra.Command{
			Use: "reinstall MAC", Short: "Re-arm a machine: it netboots and installs again on its next boot", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.client(cmd)
				if err != nil {
					return err
				}
				m, err := c.Reinstall(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), m)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is %s: it will netboot and install on its next boot\n", m.MAC, m.State)
				return err
			},
		},
		&cobra.Command{
			Use: "forget MAC", Short: "Delete what tinderbox recorded of a machine (its profile stays)", Args: cobra.ExactArgs(1),
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
		},
		newLogsCmd(&f),
		&cobra.Command{
			Use: "watch", Short: "Print machine changes as they happen (state, step, attention) until interrupted", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := f.client(cmd)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				return c.Watch(cmd.Context(), func(m api.MachineEvent) error {
					if f.output == "json" {
						return json.NewEncoder(out).Encode(m)
					}
					if m.Gone {
						_, err := fmt.Fprintf(out, "%s  %s  gone\n", time.Now().Format(time.TimeOnly), m.MAC)
						return err
					}
					_, err := fmt.Fprintf(out, "%s  %s  %-12s %-11s %s%s\n", time.Now().Format(time.TimeOnly), m.MAC, dash(m.Hostname), m.State, dash(m.LastStep), attention(m))
					return err
				})
			},
		},
	)
	return cmd
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
		Use:   "logs MAC",
		Short: "Show a machine's Talos log (its kernel log, with machined's [talos] lines); -f follows it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			show := func(l api.LogLine) error {
				if f.output == "json" {
					return json.NewEncoder(out).Encode(l)
				}
				_, err := fmt.Fprintf(out, "%s  %-5s  %s\n", l.Time.Local().Format("2006-01-02 15:04:05.000"), dash(l.Level), l.Msg)
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
		},
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

func runList(cmd *cobra.Command, f *clientFlags) error {
	c, err := f.client(cmd)
	if err != nil {
		return err
	}
	list, err := c.Machines(cmd.Context())
	if err != nil {
		return err
	}
	if f.output == "json" {
		return printJSON(cmd.OutOrStdout(), list)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tHOSTNAME\tSTATE\tARCH\tIP\tLAST SEEN\tLAST STEP\tATTENTION")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MAC, dash(m.Hostname), m.State, dash(string(m.Arch)), dash(m.IP), ago(m.LastSeen), dash(m.LastStep), dash(m.Attention))
	}
	return tw.Flush()
}

func printMachine(w io.Writer, output string, m api.Machine) error {
	if output == "json" {
		return printJSON(w, m)
	}
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
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Kind, e.Detail, size)
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
