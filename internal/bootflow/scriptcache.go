package bootflow

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// scriptKey is everything a machine's script body is made from, beside
// its MAC (the cache's map key) and the Flow's options, which do not
// change: two requests with equal keys get byte-equal bodies.
type scriptKey struct {
	action boot.Action
	// local is the address the script's base URL and tinderbox's own
	// arguments name (Flow.endpointsAt): the request's local address, or
	// the zero AddrPort for Options.BaseURL and Options.Own.
	local netip.AddrPort
	// uuid is the record's UUID as stored; the body has its canonical
	// form, a function of it.
	uuid     string
	hostname string
	// talos is the image booted, its arch decided.
	talos   profiles.Talos
	cmdline string
	// generation is the record's, for a netboot: the config token is
	// state.Backend.Token of the record's MAC and generation, the only
	// fields of the record it reads (state's token). 0 for the other
	// actions, whose bodies carry no token.
	generation uint64
}

// scriptPage is a script body as it is written to the answer, with its
// status and Content-Length header value. It is never changed once made,
// so answers share it.
type scriptPage struct {
	status int
	body   []byte
	length []string
}

// newPage returns the page of body answered with status.
func newPage(status int, body string) *scriptPage {
	return &scriptPage{status: status, body: []byte(body), length: []string{strconv.Itoa(len(body))}}
}

// cachedScript is one script of a machine and what it was made from.
type cachedScript struct {
	key scriptKey
	// args are the kernel arguments of the profile or of a maintenance
	// boot, compared element by element: a profile reload that changes
	// them misses, one that keeps them hits.
	args []string
	page *scriptPage
}

// Bounds of the script cache. A script is about 1 KiB (a netboot's with
// the factory's command line, tinderbox's own arguments and a token),
// at most 3 KiB (a kernel command line at the kernel's 2047-byte limit,
// boot.CmdlineLimit, plus the script's other lines); an entry adds about
// 200 bytes. So the cache holds at most scriptShards × maxScriptsPerShard
// = 8192 scripts: about 10 MiB for a fleet of that many machines, never
// more than 26 MiB.
const (
	// maxScriptsPerMachine keeps a machine's scripts for two sets of
	// inputs: a machine that boots through two of the server's
	// addresses, or that alternates between netboot and local boot, is
	// not rendered again on each switch.
	maxScriptsPerMachine = 2
	// scriptShards spreads the cache's locks: 32 connections reading one
	// RWMutex contend on its reader count.
	scriptShards = 32
	// maxScriptsPerShard bounds each shard; past it, one machine's
	// scripts are dropped for each machine added.
	maxScriptsPerShard = 256
)

// scriptCache keeps rendered scripts by machine and inputs (scriptKey and
// the kernel arguments), so a machine whose inputs have not changed is
// answered without rendering. A lookup allocates nothing. It is safe for
// concurrent use.
type scriptCache struct {
	shards [scriptShards]scriptShard
}

type scriptShard struct {
	mu sync.RWMutex
	// m holds each machine's scripts, newest first; a slice is replaced,
	// never changed, once stored.
	m map[machine.MAC][]cachedScript
	n int // scripts held
	// pad keeps shards' locks on separate cache lines.
	_ [64]byte
}

func (c *scriptCache) shard(mac machine.MAC) *scriptShard {
	// The NIC-specific half of a MAC varies across a fleet.
	return &c.shards[(uint(mac[4])<<8|uint(mac[5]))%scriptShards]
}

// get returns the page of mac's script made from k and args, or nil.
func (c *scriptCache) get(mac machine.MAC, k scriptKey, args []string) *scriptPage {
	s := c.shard(mac)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.m[mac] {
		if e.key == k && slices.Equal(e.args, args) {
			return e.page
		}
	}
	return nil
}

// put keeps p as mac's script made from k and args, the newest of its
// maxScriptsPerMachine.
func (c *scriptCache) put(mac machine.MAC, k scriptKey, args []string, p *scriptPage) {
	s := c.shard(mac)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[machine.MAC][]cachedScript{}
	}
	old, ok := s.m[mac]
	if !ok && s.n >= maxScriptsPerShard {
		for victim, es := range s.m { // an arbitrary machine: map order
			delete(s.m, victim)
			s.n -= len(es)
			break
		}
	}
	es := make([]cachedScript, 0, maxScriptsPerMachine)
	es = append(es, cachedScript{key: k, args: slices.Clone(args), page: p})
	for _, e := range old {
		if len(es) == maxScriptsPerMachine {
			break
		}
		if e.key != k || !slices.Equal(e.args, args) {
			es = append(es, e)
		}
	}
	s.n += len(es) - len(old)
	s.m[mac] = es
}

// size returns how many scripts the cache holds.
func (c *scriptCache) size() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += s.n
		s.mu.RUnlock()
	}
	return n
}

// Header values of every script answer, shared: net/http only reads a
// header's values, and an append to a slice of length and capacity 1
// copies it.
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
)

// writePage writes p as the answer: its status, its length and its body,
// with no copy of the body and no allocation for the headers.
func writePage(w http.ResponseWriter, p *scriptPage) {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["Cache-Control"] = noStore
	h["Content-Length"] = p.length
	w.WriteHeader(p.status)
	_, _ = w.Write(p.body)
}
