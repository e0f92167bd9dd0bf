package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// completionTimeout bounds the daemon's answer when completing a MAC: a
// shell waits on it at every Tab, and the profiles directory is the
// fallback.
const completionTimeout = 2 * time.Second

// completeMACs completes the MAC argument of a command that talks to the
// daemon: every machine of the running daemon's list (GET
// /api/v1/machines), described by hostname and state, or when the daemon
// does not answer, the machines of the profiles directory.
func (f *clientFlags) completeMACs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if c, err := f.client(cmd); err == nil {
		c.HTTP.Timeout = completionTimeout
		if list, err := c.Machines(cmd.Context()); err == nil {
			var out []cobra.Completion
			for _, m := range list {
				desc := string(m.State)
				if m.Hostname != "" {
					desc = m.Hostname + ", " + desc
				}
				out = appendMAC(out, m.MAC, desc, toComplete)
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	return completeProfileMACs(cmd, args, toComplete)
}

// completeProfileMACs completes a MAC argument from the profiles
// directory of the command's config: each machines/MAC.yaml, described by
// its hostname. Files are read as they are, without loading the profiles
// (which may ask the Image Factory).
func completeProfileMACs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, _ := loadConfig(cmd)
	if cfg == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return profileMACs(cfg, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// profileMACs lists the machines of cfg's profiles directory whose MAC
// starts with prefix, each described by the hostname its file sets.
func profileMACs(cfg *config.Config, prefix string) []cobra.Completion {
	files, _ := filepath.Glob(filepath.Join(cfg.Profiles.Dir, "machines", "*.yaml"))
	var out []cobra.Completion
	for _, file := range files {
		mac, err := machine.ParseMAC(strings.TrimSuffix(filepath.Base(file), ".yaml"))
		if err != nil {
			continue
		}
		var p struct {
			Hostname string `yaml:"hostname"`
		}
		if b, err := os.ReadFile(file); err == nil {
			_ = yaml.Unmarshal(b, &p) // a broken file still completes, without its hostname
		}
		out = appendMAC(out, mac, p.Hostname, prefix)
	}
	return out
}

// appendMAC appends mac, with its description, when it starts with prefix
// (any case).
func appendMAC(out []cobra.Completion, mac machine.MAC, desc, prefix string) []cobra.Completion {
	s := mac.String()
	if !strings.HasPrefix(s, strings.ToLower(prefix)) || slices.ContainsFunc(out, func(c string) bool { return strings.HasPrefix(c, s) }) {
		return out
	}
	if desc == "" {
		return append(out, s)
	}
	return append(out, cobra.CompletionWithDesc(s, desc))
}
