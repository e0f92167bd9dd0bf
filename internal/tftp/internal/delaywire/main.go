// Command delaywire is a network cable with a delay, for
// scripts/bench-tftp.sh on kernels without the netem qdisc: it creates two
// TAP devices and copies every Ethernet frame from one to the other after
// -delay, in order, in both directions. The script moves each device into
// its own network namespace. It runs until killed. TAP devices are
// Linux's: elsewhere it exits with an error saying so.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	a := flag.String("a", "", "name of the first TAP device to create")
	b := flag.String("b", "", "name of the second TAP device to create")
	delay := flag.Duration("delay", time.Millisecond, "one-way delay")
	flag.Parse()
	if err := run(*a, *b, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "delaywire:", err)
		os.Exit(1)
	}
}

func run(a, b string, delay time.Duration) error {
	if a == "" || b == "" {
		return fmt.Errorf("-a and -b are required")
	}
	ta, err := openTap(a)
	if err != nil {
		return err
	}
	tb, err := openTap(b)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- pipe(ta, tb, delay) }()
	go func() { errc <- pipe(tb, ta, delay) }()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-errc:
		return err
	}
}

type frame struct {
	due  time.Time
	data []byte
}

// pipe copies frames from src to dst, each delay after it arrived.
func pipe(src, dst *os.File, delay time.Duration) error {
	q := make(chan frame, 8192)
	errc := make(chan error, 1)
	go func() {
		for f := range q {
			time.Sleep(time.Until(f.due))
			if _, err := dst.Write(f.data); err != nil {
				// A device that is not up yet drops the frame, like a cable
				// into a switched-off port.
				if errors.Is(err, syscall.EIO) {
					continue
				}
				errc <- fmt.Errorf("write %s: %w", dst.Name(), err)
				return
			}
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return fmt.Errorf("read %s: %w", src.Name(), err)
		}
		select {
		case q <- frame{due: time.Now().Add(delay), data: append([]byte(nil), buf[:n]...)}:
		case err := <-errc:
			return err
		default: // queue full: the cable drops it
		}
	}
}
