package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// stranger is a machine that booted through tinderbox without a profile.
const stranger = "52:54:00:aa:bb:cc"

// cliDaemon starts a daemon on a copy of the example profiles, with a
// machine that booted without a profile, and writes a config file that
// names its profiles, its fake factory and its admin listener (so client
// commands find it without --server). It returns the config file and the
// admin URL.
func cliDaemon(t *testing.T) (conf, server string) {
	t.Helper()
	cfg := exampleConfig(t)
	d, _ := startDaemon(t, cfg)
	if _, err := d.state.Update(machine.MustParseMAC(stranger), func(m *state.Machine, _ bool) error {
		m.Events = append(m.Events, machine.Event{Time: time.Now(), Kind: machine.EventDHCPOffer})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	conf = cliConfig(t, "127.0.0.1:0", "factory: {url: "+cfg.Factory.URL+"}\nadmin: {listen: "+d.adminAddr.String()+"}\n")
	copyTree(t, cfg.Profiles.Dir, filepath.Dir(conf))
	return conf, "http://" + d.adminAddr.String()
}

// TestCLIConventions: every command's -o formats and the ones it
// refuses, the exit statuses (0 ok, 1 failed or found problems, 2 usage),
// which flags each command has, reinstall's refusal, and the completion
// of MACs and -o values from the daemon and from the profiles directory.
func TestCLIConventions(t *testing.T) {
	conf, server := cliDaemon(t)
	const cp = "1c:69:7a:00:00:11"
	tests := []cliCase{
		{name: "version -o json", args: []string{"version", "-o", "json"}, wantStdout: []string{`"version": "dev"`, `"goVersion": "go1.`}},
		{name: "version -o yaml", args: []string{"version", "-o", "yaml"}, wantStdout: []string{"version: dev\n", "commit: unknown\n"}},
		{name: "version -o wide is refused", args: []string{"version", "-o", "wide"}, wantCode: 2, wantStderr: []string{`invalid argument "wide" for "-o, --output"`, "this command prints table, json, yaml"}},
		{
			name: "version has no daemon flags", args: []string{"version", "--help"},
			wantStdout: []string{"--output"}, notStdout: []string{"--advertise", "--profiles-dir", "--http-listen", "--config", "--server"},
		},
		{
			name: "machines has the client flags only", args: []string{"machines", "--help"},
			wantStdout: []string{"--server", "--token", "--config", "--watch", "--output"}, notStdout: []string{"--advertise", "--profiles-dir", "--cache-dir"},
		},
		{name: "serve has the daemon flags", args: []string{"serve", "--help"}, wantStdout: []string{"--advertise", "--profiles-dir", "--http-listen", "--config"}, notStdout: []string{"--output"}},
		{name: "validate has the daemon flags", args: []string{"validate", "--help"}, wantStdout: []string{"--profiles-dir", "--factory-url", "--output"}},

		{name: "no subcommand", args: []string{"cache"}, wantCode: 2, wantStderr: []string{"tinderbox cache needs a subcommand: list, prefetch, prune", "(see 'tinderbox cache --help')"}},
		{name: "unknown subcommand", args: []string{"cache", "lst"}, wantCode: 2, wantStderr: []string{`unknown command "lst" for "tinderbox cache"; did you mean list?`}},
		{name: "unknown flag", args: []string{"validate", "--frob"}, wantCode: 2, wantStderr: []string{"unknown flag: --frob"}},
		{name: "missing MAC", args: []string{"machines", "show"}, wantCode: 2, wantStderr: []string{"missing MAC (usage: tinderbox machines show MAC"}},
		{name: "not a MAC", args: []string{"render", "cp-01", "--config", conf}, wantCode: 2, wantStderr: []string{`"cp-01" is not a MAC address`}},
		{name: "too many arguments", args: []string{"explain", cp, "machine", "more"}, wantCode: 2, wantStderr: []string{`too many arguments: ["more"]`}},
		{name: "script has no -o", args: []string{"script", cp, "-o", "json"}, wantCode: 2, wantStderr: []string{"unknown shorthand flag: 'o'"}},
		{name: "render has no -o", args: []string{"render", cp, "-o", "yaml"}, wantCode: 2, wantStderr: []string{"unknown shorthand flag: 'o'"}},
		{name: "forget has no -o", args: []string{"machines", "forget", cp, "-o", "json"}, wantCode: 2, wantStderr: []string{"unknown shorthand flag: 'o'"}},

		{name: "validate -o json", args: []string{"validate", "--config", conf, "-o", "json"}, wantStdout: []string{`"ok": true`, `"machines": 4`, `"problems": []`}},
		{name: "validate -o yaml", args: []string{"validate", "--config", conf, "-o", "yaml"}, wantStdout: []string{"ok: true\n", "machines: 4\n"}},
		{
			name: "validate -o json with problems exits 1", args: []string{"validate", "--config", filepath.Join("..", "..", "testdata/config/many-problems.yaml"), "-o", "json"},
			wantCode: 1, wantStdout: []string{`"ok": false`, `"config: advertise: \"not-an-ip\" is not an IP address"`},
		},
		{name: "validate -o wide is refused", args: []string{"validate", "-o", "wide"}, wantCode: 2, wantStderr: []string{"this command prints table, json, yaml"}},
		{name: "explain -o json", args: []string{"explain", cp, "hostname", "--config", conf, "-o", "json"}, wantStdout: []string{`"section": "profile"`, `"path": "hostname"`, `"value": "cp-01"`, `"file": "machines/1c-69-7a-00-00-11.yaml"`}},
		{name: "explain -o yaml", args: []string{"explain", cp, "hostname", "--config", conf, "-o", "yaml"}, wantStdout: []string{"- file: machines/1c-69-7a-00-00-11.yaml\n", "section: profile\n"}},
		{name: "cache ls -o yaml", args: []string{"cache", "ls", "--config", conf, "-o", "yaml"}, wantStdout: []string{"[]\n"}},
		{name: "cache list -o wide", args: []string{"cache", "list", "--config", conf, "-o", "wide"}, wantStdout: []string{"SHA256", "FETCHED", "0 assets"}},
		{name: "cache list -o xml is refused", args: []string{"cache", "list", "-o", "xml"}, wantCode: 2, wantStderr: []string{`invalid argument "xml"`}},

		{name: "machines, the config's admin.listen", args: []string{"machines", "--config", conf}, wantStdout: []string{"MAC", cp, "cp-01", stranger}, notStdout: []string{"PROFILE"}},
		{name: "machines -o wide", args: []string{"machines", "--server", server, "-o", "wide"}, wantStdout: []string{"PROFILE", "UUID", "FIRST SEEN"}},
		{name: "machines list -o json", args: []string{"machines", "list", "--server", server, "-o", "json"}, wantStdout: []string{`"mac": "` + cp + `"`, `"hostname": "cp-01"`}},
		{name: "machines list -o yaml", args: []string{"machines", "list", "--server", server, "-o", "yaml"}, wantStdout: []string{"- arch: ", "mac: " + cp + "\n", "hostname: cp-01\n"}},
		{name: "machines show -o yaml", args: []string{"machines", "show", cp, "--server", server, "-o", "yaml"}, wantStdout: []string{"hostname: cp-01\n", "profile: true\n"}},
		{name: "machines show -o wide is refused", args: []string{"machines", "show", cp, "--server", server, "-o", "wide"}, wantCode: 2, wantStderr: []string{"this command prints table, json, yaml"}},
		{
			name: "reinstall without a profile is refused", args: []string{"machines", "reinstall", stranger, "--server", server},
			wantCode: 1, wantStderr: []string{"it has no profile, so it boots as an unknown machine and installs nothing", "HTTP 409"}, notStdout: []string{"install on its next boot"},
		},
		{name: "reinstall -o json", args: []string{"machines", "reinstall", cp, "--server", server, "-o", "json"}, wantStdout: []string{`"state": "pending"`}},
		{name: "diff -o wide is refused", args: []string{"diff", cp, "-o", "wide"}, wantCode: 2, wantStderr: []string{"this command prints table, json, yaml"}},
		{name: "diff of a machine never served", args: []string{"diff", cp, "--server", server, "-o", "yaml"}, wantCode: 2},

		{
			name: "complete a MAC from the daemon", args: []string{"__complete", "machines", "show", "--config", conf, ""},
			wantStdout: []string{cp + "\tcp-01, ", stranger + "\n", ":4\n"},
		},
		{
			name: "complete a MAC from the profiles when the daemon is away", args: []string{"__complete", "machines", "reinstall", "--config", conf, "--server", "http://127.0.0.1:1", ""},
			wantStdout: []string{cp + "\tcp-01\n", "52:54:00:00:00:21\tworker-01\n"}, notStdout: []string{stranger},
		},
		{
			name: "complete render's MAC from the profiles, by prefix", args: []string{"__complete", "render", "--config", conf, "1c:69:7a:00:00:1"},
			wantStdout: []string{cp + "\tcp-01\n", "1c:69:7a:00:00:13\tcp-03\n"}, notStdout: []string{"52:54:00:00:00:21", stranger},
		},
		{name: "complete -o values", args: []string{"__complete", "machines", "-o", ""}, wantStdout: []string{"table\n", "wide\n", "json\n", "yaml\n"}},
		{name: "complete show's -o values", args: []string{"__complete", "machines", "show", cp, "-o", ""}, wantStdout: []string{"table\n", "yaml\n"}, notStdout: []string{"wide"}},
		{name: "completion bash", args: []string{"completion", "bash"}, wantStdout: []string{"__start_tinderbox"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, wantStdout: []string{"#compdef tinderbox"}},
		{name: "completion fish", args: []string{"completion", "fish"}, wantStdout: []string{"complete -c tinderbox"}},
	}
	runCLICases(t, tests)
}

// TestMachinesWatch: `machines -w` prints the table, then each change as
// it happens, until interrupted; with -o json, the machines then the
// changes as one JSON object a line.
func TestMachinesWatch(t *testing.T) {
	_, server := cliDaemon(t)
	const cp = "1c:69:7a:00:00:12"
	for _, tt := range []struct {
		output      string
		first, then string
	}{
		{"table", "MAC  ", cp + "  cp-02        pending     reinstall"},
		{"json", `"mac":"52:54:00:aa:bb:cc"`, `"mac":"` + cp + `","hostname":"cp-02","state":"pending"`},
	} {
		t.Run(tt.output, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var out, errOut lockedBuffer
			done := make(chan error, 1)
			go func() {
				done <- execute(ctx, []string{"machines", "-w", "--server", server, "-o", tt.output}, &out, &errOut)
			}()
			waitFor := func(want string) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("output lacks %q after 10s:\n%s\nstderr: %s", want, out.String(), errOut.String())
					}
				}
			}
			waitFor(tt.first)
			if err := execute(t.Context(), []string{"machines", "reinstall", cp, "--server", server}, &bytes.Buffer{}, os.Stderr); err != nil {
				t.Fatal(err)
			}
			waitFor(tt.then)
			cancel()
			if err := <-done; err != nil {
				t.Errorf("machines -w after interrupt: got %v, want nil", err)
			}
		})
	}
}

// TestManPages: `docs man DIR` writes a page for every visible command.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	var stderr bytes.Buffer
	if err := execute(t.Context(), []string{"docs", "man", dir}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("docs man: %v\n%s", err, stderr.String())
	}
	for _, page := range []string{"tinderbox.1", "tinderbox-serve.1", "tinderbox-machines-reinstall.1", "tinderbox-cache-list.1", "tinderbox-completion-bash.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no page %s: %v", page, err)
			continue
		}
		if !bytes.Contains(b, []byte(".SH NAME")) || !bytes.Contains(b, []byte(".TH \"TINDERBOX\" \"1\"")) {
			t.Errorf("%s is not a section 1 man page:\n%s", page, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tinderbox-docs.1")); err == nil {
		t.Error("the hidden docs command has a man page")
	}
}
