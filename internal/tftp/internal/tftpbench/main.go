// Command tftpbench times TFTP downloads for scripts/bench-tftp.sh: it
// fetches one file several times with pack.ag/tftp's client (which can ask
// for windowsize, unlike curl and tftp-hpa), checks every copy against a
// local file, and prints the median time in seconds.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"pack.ag/tftp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tftpbench:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "", "tftp://HOST:PORT/FILE to fetch")
	want := flag.String("want", "", "local copy of the file; every download must match it")
	blksize := flag.Int("blksize", 1468, "blksize to ask for")
	windowsize := flag.Int("windowsize", 1, "windowsize to ask for (1: the option is not sent)")
	runs := flag.Int("runs", 5, "downloads to time")
	flag.Parse()
	if *url == "" || *want == "" {
		return fmt.Errorf("-url and -want are required")
	}
	expected, err := os.ReadFile(*want)
	if err != nil {
		return err
	}
	opts := []tftp.ClientOpt{tftp.ClientBlocksize(*blksize), tftp.ClientTransferSize(true), tftp.ClientRetransmit(5)}
	if *windowsize > 1 {
		opts = append(opts, tftp.ClientWindowsize(*windowsize))
	}
	client, err := tftp.NewClient(opts...)
	if err != nil {
		return err
	}
	var times []time.Duration
	for range *runs {
		start := time.Now()
		resp, err := client.Get(*url)
		if err != nil {
			return fmt.Errorf("get %s: %w", *url, err)
		}
		got, err := io.ReadAll(resp)
		if err != nil {
			return fmt.Errorf("read %s: %w", *url, err)
		}
		times = append(times, time.Since(start))
		if !bytes.Equal(got, expected) {
			return fmt.Errorf("%s: got %d bytes, want %d identical to %s", *url, len(got), len(expected), *want)
		}
	}
	slices.Sort(times)
	fmt.Printf("%.4f\n", times[len(times)/2].Seconds())
	return nil
}
