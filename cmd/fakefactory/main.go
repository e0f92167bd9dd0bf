// Command fakefactory runs the fake Image Factory on loopback for scripts
// (make e2e, scripts/bench-cache.sh). It prints the factory's base URL on
// the first line of stdout and serves until SIGINT or SIGTERM.
// GET /_fake/counts on that URL returns the request count per path as JSON.
//
// Files are generated unless given: -asset kernel-amd64=/path/to/bzImage
// -asset initramfs-amd64.xz=/path/to/initrd serve real files (e2e tests boot
// them), for every schematic and version.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

func main() {
	var (
		size     = flag.Int("initramfs-size", 256<<10, "size of the initramfs files in bytes (kernels are a quarter of it)")
		rate     = flag.Int64("rate", 0, "limit image bodies to this many bytes a second (0: unlimited)")
		redirect = flag.Bool("redirect", false, "answer image requests with a 302 to a second host")
		fault    = flag.String("fault", "none", "misbehave: none, 5xx, truncate, wrong-length, garbage or stall")
	)
	assets := map[string]string{}
	flag.Func("asset", "serve a file for a name: NAME=PATH, e.g. kernel-amd64=/boot/vmlinuz (repeatable)", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("want NAME=PATH, got %q", v)
		}
		assets[name] = path
		return nil
	})
	flag.Parse()
	f, err := fakefactory.ParseFault(*fault)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv, err := fakefactory.Start(fakefactory.Options{InitramfsSize: *size, Rate: *rate, Redirect: *redirect})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, path := range assets {
		b, err := os.ReadFile(path)
		if err != nil {
			srv.Close()
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv.SetAsset(name, b)
	}
	srv.SetFault(f)
	fmt.Println(srv.URL)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Close()
}
