// Command httpload is the HTTP load generator of the bench scripts
// (scripts/bench-*.sh): C clients, each on its own keep-alive connection,
// request URLs for a duration or once each, and it prints one line of
// key=value figures:
//
//	requests=N rps=R mbps=M p50_ms=… p99_ms=… max_ms=… errors=E status_other=O
//
// A URL may contain {i}, replaced by a counter that rotates through -n
// values, and {mac}, replaced by the MAC address 02:00:00:xx:xx:xx for that
// counter: one process asks for 1000 machines' boot scripts the way 1000
// machines would. A non-2xx answer or a body shorter than its
// Content-Length is an error, not a request.
//
// Two modes:
//
//   - Closed loop (-rate 0, the default): each client sends its next request
//     when the answer to the last one has been read, as fast as it can.
//     This measures throughput at saturation; a latency is the time from
//     sending the request to reading the last byte of the body, and with C
//     clients busy all the time the mean latency is C divided by the
//     throughput (Little's law), so the tail is mostly the queue the load
//     itself makes.
//   - Open loop (-rate R, -d required): requests fall due at R per second
//     in total whatever the answers do, and a latency is counted from when
//     the request was due, not from when it was sent: a client still
//     waiting for an answer sends its next request late, and that wait is
//     in the latency (no coordinated omission: a stalled server cannot
//     delay the requests that would have measured its stall). The line
//     then ends with "mode=open rate=R achieved=A late=L late_idle=I": A
//     is the answers (of any status, and errors) per second over the run,
//     L the requests sent more than 1 ms after they were due, and I those
//     of L whose connection had its answer before the due time: the load
//     generator itself was not running in time (a busy machine), not the
//     server behind. See [runOpen] for the schedule.
//
// It is a benchmark tool, not part of tinderbox: it lives under internal/
// so that the scripts build it from the module with `go build`.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		url      = flag.String("url", "", "URL to request; {i} and {mac} rotate through -n values")
		n        = flag.Int("n", 1, "how many distinct values {i} and {mac} take")
		c        = flag.Int("c", 1, "concurrent clients, one connection each")
		d        = flag.Duration("d", 0, "run for this long, each client repeating (0: one request per client)")
		rate     = flag.Float64("rate", 0, "open loop: requests due per second in total, spread over the -c clients (0: closed loop)")
		freeport = flag.Bool("freeport", false, "print a free loopback TCP port and exit")
	)
	flag.Parse()
	if *freeport {
		p, err := freePort()
		if err != nil {
			fail(err)
		}
		fmt.Println(p)
		return
	}
	if *url == "" || *c < 1 || *n < 1 || *rate < 0 || (*rate > 0 && *d <= 0) {
		fmt.Fprintln(os.Stderr, "httpload: -url is required; -c and -n must be at least 1; -rate must not be negative and needs -d")
		os.Exit(2)
	}
	var r result
	if *rate > 0 {
		r = runOpen(*url, *n, *c, *rate, *d)
	} else {
		r = run(*url, *n, *c, *d)
	}
	fmt.Println(r)
	if r.requests == 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "httpload:", err)
	os.Exit(1)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// result is one run's figures.
type result struct {
	requests, errors, other int
	bytes                   int64
	seconds                 float64
	lat                     []time.Duration // sorted
	firstErr                string

	// Open loop only (rate > 0): the requests due per second, how many
	// were sent more than lateAfter after they were due, and how many of
	// those had their connection idle at their due time.
	rate           float64
	late, lateIdle int
}

// add counts one exchange: its latency lat when it succeeded.
func (r *result) add(nb int64, status int, err error, lat time.Duration) {
	switch {
	case err != nil:
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
	case status/100 != 2:
		r.other++
		if r.firstErr == "" {
			r.firstErr = "status " + strconv.Itoa(status)
		}
	default:
		r.requests++
		r.bytes += nb
		r.lat = append(r.lat, lat)
	}
}

// merge adds one client's figures to r.
func (r *result) merge(mine result) {
	r.requests += mine.requests
	r.errors += mine.errors
	r.other += mine.other
	r.bytes += mine.bytes
	r.late += mine.late
	r.lateIdle += mine.lateIdle
	r.lat = append(r.lat, mine.lat...)
	if r.firstErr == "" {
		r.firstErr = mine.firstErr
	}
}

func (r result) String() string {
	q := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		i := int(p * float64(len(r.lat)-1))
		return float64(r.lat[i].Microseconds()) / 1000
	}
	s := fmt.Sprintf("requests=%d rps=%.0f mbps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d status_other=%d",
		r.requests, float64(r.requests)/r.seconds, float64(r.bytes)/1e6/r.seconds, q(0.50), q(0.99), q(1), r.errors, r.other)
	if r.rate > 0 {
		s += fmt.Sprintf(" mode=open rate=%.0f achieved=%.0f late=%d late_idle=%d",
			r.rate, float64(r.requests+r.errors+r.other)/r.seconds, r.late, r.lateIdle)
	}
	if r.firstErr != "" {
		s += " first_error=" + strconv.Quote(r.firstErr)
	}
	return s
}

func run(tmpl string, n, c int, d time.Duration) result {
	reqs, addr, err := requests(tmpl, n)
	if err != nil {
		return result{errors: c, firstErr: err.Error()}
	}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		total    result
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(d)
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine result
			cl := &client{addr: addr}
			defer cl.close()
			buf := make([]byte, 256<<10)
			for {
				i := int(next.Add(1)-1) % len(reqs)
				t0 := time.Now()
				nb, status, err := cl.fetch(reqs[i], buf)
				mine.add(nb, status, err, time.Since(t0))
				if d == 0 || !time.Now().Before(deadline) {
					break
				}
			}
			mu.Lock()
			total.merge(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.seconds = time.Since(start).Seconds()
	slices.Sort(total.lat)
	return total
}

// lateAfter is how far past its due time a request may be sent before the
// open loop counts it late: a millisecond is half the 2 ms p99 the boot
// HTTP goal allows, and well above the timer's own lateness (tens of
// microseconds with a timerfd, see waiter).
const lateAfter = time.Millisecond

// runOpen is the open loop: request number k (k = 0, 1, 2, …) falls due at
// start + k/rate, for every k due before start + d, and goes to client
// k mod c. So each client has its own schedule, evenly spaced c/rate
// apart and offset 1/rate from its neighbour's, and the c schedules
// together are one even schedule of rate per second. A client sends each
// of its requests at its due time, or, when it is still reading the
// answer to the one before, as soon as that answer is read; the latency is
// counted from the due time either way. Every request due before the end
// is sent, however late: a server that cannot keep up makes the run last
// longer (and achieved lower than rate), it does not shed the requests
// that would show it. Each client having a schedule of its own, rather
// than taking the next due time from one shared counter, is what a fleet
// of machines does (each asks on its own, none answers for another), and
// keeps the clients from contending on a shared counter; a client that
// stalls delays only its own requests, and the stall shows in their
// latencies. Request k asks for URL value k mod n. Connections are dialled
// before the schedule starts.
func runOpen(tmpl string, n, c int, rate float64, d time.Duration) result {
	reqs, addr, err := requests(tmpl, n)
	if err != nil {
		return result{errors: c, firstErr: err.Error(), rate: rate}
	}
	waiters := make([]*waiter, c)
	for id := range waiters {
		if waiters[id], err = newWaiter(); err != nil {
			for _, w := range waiters[:id] {
				w.close()
			}
			return result{errors: c, firstErr: err.Error(), rate: rate}
		}
	}
	var (
		mu     sync.Mutex
		total  = result{rate: rate}
		dialed sync.WaitGroup
		wg     sync.WaitGroup
		begin  = make(chan time.Time)
	)
	for id, w := range waiters {
		dialed.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			cl := &client{addr: addr}
			defer cl.close()
			// A dial that fails here is made again, and counted, by the
			// first fetch.
			_ = cl.dial()
			dialed.Done()
			start := <-begin

			var (
				mine result
				buf  = make([]byte, 256<<10)
				done = start // when the last answer was read
			)
			deadline := start.Add(d)
			for k := id; ; k += c {
				due := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
				if !due.Before(deadline) {
					break
				}
				w.until(due)
				if time.Since(due) > lateAfter {
					mine.late++
					if done.Before(due) {
						mine.lateIdle++
					}
				}
				nb, status, err := cl.fetch(reqs[k%len(reqs)], buf)
				done = time.Now()
				mine.add(nb, status, err, done.Sub(due))
			}
			mu.Lock()
			total.merge(mine)
			mu.Unlock()
		}()
	}
	dialed.Wait()
	start := time.Now()
	for range c {
		begin <- start
	}
	wg.Wait()
	total.seconds = time.Since(start).Seconds()
	slices.Sort(total.lat)
	return total
}

// requests returns the GET request of each of the n values of tmpl's
// counter (one when tmpl has none), written out once before the run, and
// the host:port they go to. Only http:// URLs on one host are asked for.
func requests(tmpl string, n int) (reqs [][]byte, addr string, err error) {
	if !strings.Contains(tmpl, "{") {
		n = 1
	}
	reqs = make([][]byte, n)
	for i := range reqs {
		u, err := url.Parse(expand(tmpl, i))
		if err != nil {
			return nil, "", err
		}
		if u.Scheme != "http" {
			return nil, "", fmt.Errorf("%s: only http:// URLs are asked for", u.Redacted())
		}
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
		reqs[i] = []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: httpload\r\n\r\n")
	}
	return reqs, addr, nil
}

// expand fills {i} and {mac} for counter i.
func expand(tmpl string, i int) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i))
	return strings.NewReplacer("{i}", strconv.Itoa(i), "{mac}", mac).Replace(tmpl)
}

// requestTimeout bounds one request, from writing it to reading the last
// byte of its body.
const requestTimeout = 60 * time.Second

// client is one keep-alive connection, used by one goroutine: it writes a
// request and reads its response itself, where net/http's Transport
// hands each request and response between three goroutines (the
// caller's and the connection's reader and writer). On two shared cores
// those hand-offs were scheduler work and tail latency of the load
// generator's own, charged to whichever server it measured.
type client struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader
}

// fetch sends req and reads the whole body into buf (over and over),
// returning its length and the status code; a body shorter than its
// Content-Length is an error. A failed exchange, or an answer that ends
// the connection, closes it; the next fetch dials again.
func (c *client) fetch(req, buf []byte) (int64, int, error) {
	if err := c.dial(); err != nil {
		return 0, 0, err
	}
	if err := c.nc.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		c.close()
		return 0, 0, err
	}
	if _, err := c.nc.Write(req); err != nil {
		c.close()
		return 0, 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, 0, err
	}
	var nb int64
	for {
		m, err := resp.Body.Read(buf)
		nb += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			c.close()
			return nb, resp.StatusCode, err
		}
	}
	if resp.Close {
		c.close()
	}
	if resp.ContentLength >= 0 && nb != resp.ContentLength {
		c.close()
		return nb, resp.StatusCode, fmt.Errorf("got %d of %d bytes", nb, resp.ContentLength)
	}
	return nb, resp.StatusCode, nil
}

// dial opens the connection unless one is open.
func (c *client) dial() error {
	if c.nc != nil {
		return nil
	}
	nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		return err
	}
	c.nc, c.br = nc, bufio.NewReaderSize(nc, 64<<10)
	return nil
}

// close closes the connection, if one is open.
func (c *client) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.br = nil, nil
	}
}
