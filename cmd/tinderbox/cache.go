package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List, prefetch and prune the cached Image Factory assets",
		Long: `cache works on the asset cache in cache.dir directly; a running daemon may
share the directory (each download holds a lock on its temporary file).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCacheListCmd(), newCachePrefetchCmd(), newCachePruneCmd())
	return cmd
}

// withCache loads the config and opens the cache for one command.
func withCache(cmd *cobra.Command, fn func(cfg *config.Config, c *cache.Cache) error) error {
	cfg, err := loadConfig(cmd)
	if err != nil {
		printProblems(cmd, err)
		return errReported
	}
	// The command's output is its result: log only warnings and errors,
	// unless debugging.
	lc := cfg.Log
	if lc.Level != "debug" {
		lc.Level = "warn"
	}
	log := newLogger(lc, cmd.ErrOrStderr())
	fc, err := newFactory(cfg, log, nil)
	if err != nil {
		return err
	}
	c, err := openCache(cfg, fc, nil, log, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cfg, c)
}

func newCacheListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List cached assets with size, sha256 and last use",
		Args:    cobra.NoArgs,
	}
	out := addOutput(cmd, outTable, outWide, outJSON, outYAML)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withCache(cmd, func(_ *config.Config, c *cache.Cache) error {
			return printEntries(cmd.OutOrStdout(), c.List(), out)
		})
	}
	return cmd
}

// printEntries writes the cache's entries: a table with the schematic
// and digest cut short (wide: whole, and when fetched), or one json or
// yaml value.
func printEntries(w io.Writer, entries []cache.Entry, out *outputFormat) error {
	if out.structured() {
		if entries == nil {
			entries = []cache.Entry{}
		}
		return out.print(w, entries)
	}
	wide := out.value == outWide
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "SCHEMATIC\tVERSION\tFILE\tSIZE\tSHA256\tLAST USED"
	if wide {
		head += "\tFETCHED"
	}
	fmt.Fprintln(tw, head)
	var total int64
	for _, e := range entries {
		schematic, sum := e.Schematic[:12]+"…", e.SHA256[:16]+"…"
		if wide {
			schematic, sum = e.Schematic, e.SHA256
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s", schematic, e.Version, e.File, humanBytes(e.Size),
			sum, e.LastUsed.Local().Format(time.DateTime))
		if wide {
			fmt.Fprintf(tw, "\t%s", e.Fetched.Local().Format(time.DateTime))
		}
		fmt.Fprintln(tw)
		total += e.Size
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d assets, %s\n", len(entries), humanBytes(total))
	return err
}

func newCachePrefetchCmd() *cobra.Command {
	var schematics, versions, arches []string
	cmd := &cobra.Command{
		Use:   "prefetch",
		Short: "Fetch the kernel, initramfs and kernel command line the profiles need, or of given schematics and versions",
		Long: `prefetch fetches the PXE files (kernel, initramfs, kernel command line) into
the cache, with a progress bar on a terminal. Without --schematic and
--version it fetches everything the profiles reference: each machine's Talos
version, schematic and arch (amd64 when its profile names none), and the
maintenance image of defaults.yaml. With them, it fetches each
--schematic/--version/--arch set; repeat the flags for several sets, and a
flag given once applies to every set.`,
		Example: `  tinderbox cache prefetch --schematic 376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba --version v1.12.7 --arch amd64`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fromProfiles := len(schematics) == 0 && len(versions) == 0
			var targets []cache.Target
			if !fromProfiles {
				var err error
				if targets, err = prefetchTargets(schematics, versions, arches); err != nil {
					return err
				}
			}
			return withCache(cmd, func(cfg *config.Config, c *cache.Cache) error {
				if fromProfiles {
					var err error
					if targets, err = profileTargets(cmd, cfg); err != nil {
						return err
					}
				}
				return prefetch(cmd.Context(), c, targets, cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().StringArrayVar(&schematics, "schematic", nil, "schematic ID (64 hex); repeatable")
	cmd.Flags().StringArrayVar(&versions, "version", nil, "Talos version, e.g. v1.12.7; repeatable")
	cmd.Flags().StringArrayVar(&arches, "arch", []string{"amd64"}, "architecture: amd64 or arm64; repeatable")
	return cmd
}

// profileTargets lists the assets the profiles reference, each once.
func profileTargets(cmd *cobra.Command, cfg *config.Config) ([]cache.Target, error) {
	fc, err := schematicResolver(cfg, newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, cmd.ErrOrStderr()))
	if err != nil {
		return nil, err
	}
	set, err := profiles.Load(cmd.Context(), profileOptions(cfg, fc))
	if err != nil {
		return nil, fmt.Errorf("cache prefetch: the profiles do not load (`tinderbox validate` lists every problem): %w", err)
	}
	targets := cache.TargetsOf(set.Images())
	if len(targets) == 0 {
		return nil, errors.New("cache prefetch: the profiles name no Talos version and schematic; give --schematic and --version")
	}
	return targets, nil
}

// prefetchTargets pairs the flags' values by position; a flag given once
// applies to every set.
func prefetchTargets(schematics, versions, arches []string) ([]cache.Target, error) {
	n := max(len(schematics), len(versions), len(arches))
	if len(schematics) == 0 || len(versions) == 0 {
		return nil, errors.New("cache prefetch: give --schematic and --version (and --arch, default amd64)")
	}
	pick := func(name string, vals []string, i int) (string, error) {
		switch len(vals) {
		case 1:
			return vals[0], nil
		case n:
			return vals[i], nil
		}
		return "", fmt.Errorf("cache prefetch: --%s given %d times; give it once or %d times", name, len(vals), n)
	}
	var out []cache.Target
	for i := range n {
		var t cache.Target
		var err error
		if t.Schematic, err = pick("schematic", schematics, i); err != nil {
			return nil, err
		}
		if t.Version, err = pick("version", versions, i); err != nil {
			return nil, err
		}
		arch, err := pick("arch", arches, i)
		if err != nil {
			return nil, err
		}
		t.Arch = machine.Arch(arch)
		if _, err := t.Keys(); err != nil {
			return nil, fmt.Errorf("cache prefetch: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// prefetch fetches every target's PXE files into c, drawing a progress bar
// when out is a terminal and printing one line per asset otherwise.
func prefetch(ctx context.Context, c *cache.Cache, targets []cache.Target, out io.Writer) error {
	bar := &progressBar{w: out, tty: isTerminal(out)}
	entries, err := c.Prefetch(ctx, targets, bar.update)
	bar.finish()
	for _, e := range entries {
		fmt.Fprintf(out, "cached %s  %s  sha256 %s\n", e.Key, humanBytes(e.Size), e.SHA256)
	}
	return err
}

// progressBar draws one line per asset, redrawn in place at most every
// 100 ms.
type progressBar struct {
	w    io.Writer
	tty  bool
	key  cache.Key
	last time.Time
}

func (p *progressBar) update(k cache.Key, done, total int64) {
	if !p.tty {
		return
	}
	if k != p.key {
		p.finish()
		p.key = k
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = now
	const width = 30
	line := fmt.Sprintf("%s %s", k.File, humanBytes(done))
	if total > 0 {
		fill := int(done * width / total)
		line = fmt.Sprintf("%-22s [%s%s] %3d%% %s / %s", k.File, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			done*100/total, humanBytes(done), humanBytes(total))
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

// finish ends the bar's line.
func (p *progressBar) finish() {
	if p.tty && p.key != (cache.Key{}) {
		fmt.Fprintln(p.w)
		p.key = cache.Key{}
	}
}

func newCachePruneCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Evict least recently used assets down to cache.maxSize (or all of them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCache(cmd, func(cfg *config.Config, c *cache.Cache) error {
				limit := int64(cfg.Cache.MaxSize)
				if all {
					limit = 0
				} else if limit == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "cache.maxSize is 0 (no bound): nothing to prune; use --all to empty the cache")
					return nil
				}
				gone := c.Prune(limit)
				var freed int64
				for _, e := range gone {
					freed += e.Size
					fmt.Fprintf(cmd.OutOrStdout(), "evicted %s  %s\n", e.Key, humanBytes(e.Size))
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "evicted %d assets, %s; %s left\n", len(gone), humanBytes(freed), humanBytes(c.Size()))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "evict every asset not being served")
	return cmd
}

// humanBytes formats n with a binary unit: one decimal under 10 units
// ("1.5 KiB"), none above ("320 KiB").
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
