//go:build !linux

package main

import "time"

// waiter puts one goroutine to sleep until a due time. Outside Linux it is
// time.Sleep, whose wake-ups can be about a millisecond late on an idle
// process (the runtime's poller waits in whole milliseconds): the open
// loop's late count shows it. Not safe for concurrent use; close it when
// done.
type waiter struct{}

// newWaiter returns a waiter; it does not fail here.
func newWaiter() (*waiter, error) { return &waiter{}, nil }

// until blocks until t, returning at once when t has passed.
func (*waiter) until(t time.Time) { time.Sleep(time.Until(t)) }

// close does nothing here.
func (*waiter) close() {}
