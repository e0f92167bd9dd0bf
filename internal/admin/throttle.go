package admin

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed authentication attempts (a wrong bearer token, a wrong token at
// the UI's login) are throttled per source: FailureBurst of them in a row,
// then one more per FailureWindow/FailureBurst (12 s), the bucket
// refilling whole after FailureWindow without failures. A throttled
// source gets 429 with Retry-After for every bearer or login attempt, the
// right token included, so guessing stays at 5 tries a minute per source.
const (
	FailureBurst  = 5
	FailureWindow = time.Minute
)

// maxSources bounds the sources the throttle remembers. A source whose
// bucket is full again is forgotten when room is needed; beyond the bound,
// new sources share one bucket (an attacker with more than 4096 addresses
// throttles only itself and other newcomers, never a remembered source).
const maxSources = 4096

// throttle counts failed attempts per source address. It is safe for
// concurrent use.
type throttle struct {
	mu       sync.Mutex
	now      func() time.Time
	sources  map[netip.Prefix]*rate.Limiter
	overflow *rate.Limiter
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, sources: map[netip.Prefix]*rate.Limiter{}, overflow: newBucket()}
}

func newBucket() *rate.Limiter {
	return rate.NewLimiter(rate.Every(FailureWindow/FailureBurst), FailureBurst)
}

// wait is how long src must wait before its next attempt; 0 when it may
// try now.
func (t *throttle) wait(src netip.Prefix) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	lim := t.sources[src]
	if lim == nil {
		if len(t.sources) < maxSources {
			return 0
		}
		lim = t.overflow
	}
	tokens := lim.TokensAt(t.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// fail records a failed attempt from src and says whether src is now
// throttled.
func (t *throttle) fail(src netip.Prefix) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	lim := t.sources[src]
	if lim == nil {
		if len(t.sources) >= maxSources {
			t.sweep(now)
		}
		if len(t.sources) < maxSources {
			lim = newBucket()
			t.sources[src] = lim
		} else {
			lim = t.overflow
		}
	}
	lim.AllowN(now, 1)
	return lim.TokensAt(now) < 1
}

// sweep forgets the sources whose bucket has refilled: they have not
// failed for a FailureWindow, and a new bucket is the same as theirs.
func (t *throttle) sweep(now time.Time) {
	for src, lim := range t.sources {
		if lim.TokensAt(now) >= FailureBurst {
			delete(t.sources, src)
		}
	}
}

// source is the throttle's key for r: the client's IPv4 address, or its
// IPv6 /64 (one host commonly holds a whole /64). A RemoteAddr that does
// not parse (never, from net/http) gets the zero prefix, one shared key.
func source(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// retryAfter is the Retry-After header value for d: whole seconds,
// rounded up, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
