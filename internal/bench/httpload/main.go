// Command httpload is the HTTP load generator of the bench scripts
// (scripts/bench-*.sh): C clients, each on its own keep-alive connection,
// request URLs for a duration or once each, and it prints one line of
// key=value figures:
//
//	requests=N rps=R mbps=M p50_ms=… p99_ms=… max_ms=… errors=E status_2xx=… status_other=…
//
// A URL may contain {i}, replaced by a counter that rotates through -n
// values, and {mac}, replaced by the MAC address 02:00:00:xx:xx:xx for that
// counter: one process asks for 1000 machines' boot scripts the way 1000
// machines would. Latency is the time from sending the request to reading
// the last byte of the body. A non-2xx answer or a body shorter than its
// Content-Length is an error, not a request.
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
	if *url == "" || *c < 1 || *n < 1 {
		fmt.Fprintln(os.Stderr, "httpload: -url is required; -c and -n must be at least 1")
		os.Exit(2)
	}
	r := run(*url, *n, *c, *d)
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
				switch {
				case err != nil:
					mine.errors++
					if mine.firstErr == "" {
						mine.firstErr = err.Error()
					}
				case status/100 != 2:
					mine.other++
					if mine.firstErr == "" {
						mine.firstErr = "status " + strconv.Itoa(status)
					}
				default:
					mine.requests++
					mine.bytes += nb
					mine.lat = append(mine.lat, time.Since(t0))
				}
				if d == 0 || !time.Now().Before(deadline) {
					break
				}
			}
			mu.Lock()
			total.requests += mine.requests
			total.errors += mine.errors
			total.other += mine.other
			total.bytes += mine.bytes
			total.lat = append(total.lat, mine.lat...)
			if total.firstErr == "" {
				total.firstErr = mine.firstErr
			}
			mu.Unlock()
		}()
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
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
		if err != nil {
			return 0, 0, err
		}
		c.nc, c.br = nc, bufio.NewReaderSize(nc, 64<<10)
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

// close closes the connection, if one is open.
func (c *client) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.br = nil, nil
	}
}
