// Package fakefactory is a Talos Image Factory of tinderbox's own for tests
// and `make e2e`: it speaks the real HTTP API (the image-factory
// repository's docs/api.md, siderolabs/image-factory) with the real quirks
// — 201 on POST /schematics, 400 with the decoder's text for an unknown
// schematic field, no ETag and no Range (every GET is a full 200),
// versions with or without the leading v, optionally a 302 to a second
// host — and has switches for the faults a real factory or the path to it
// shows: slowness (a held-back tail or a byte rate), 5xx, cut-off bodies,
// a Content-Length larger than the body, garbage (an HTML page with 200),
// and a body that stalls. It counts requests per path, so a test can assert
// exactly one upstream fetch.
package fakefactory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Fault is a misbehaviour of GET /image/… answers.
type Fault int

// The faults SetFault switches on.
const (
	// None answers normally.
	None Fault = iota
	// ServerError answers 503 with a text body.
	ServerError
	// Truncate announces the full Content-Length, sends half the body and
	// drops the connection.
	Truncate
	// WrongLength announces a Content-Length 1000 bytes larger than the
	// body, sends the body and drops the connection.
	WrongLength
	// Garbage answers 200 with an HTML error page, as a captive portal or a
	// proxy does.
	Garbage
	// Stall sends the headers and half the body, then nothing until the
	// client goes away.
	Stall
)

func (f Fault) String() string {
	return [...]string{"none", "5xx", "truncate", "wrong-length", "garbage", "stall"}[f]
}

// ParseFault reads a fault by its String name.
func ParseFault(s string) (Fault, error) {
	for f := None; f <= Stall; f++ {
		if f.String() == s {
			return f, nil
		}
	}
	return None, fmt.Errorf("fakefactory: unknown fault %q: want none, 5xx, truncate, wrong-length, garbage or stall", s)
}

// DefaultVersions are the Talos versions the fake offers unless told otherwise.
var DefaultVersions = []string{"v1.11.6", "v1.12.7", "v1.13.0"}

// Options configures Start.
type Options struct {
	// Versions offered; an image request for any other answers 404.
	Versions []string
	// Redirect makes GET /image/… answer 302 to a second host, as the real
	// factory does to its object store.
	Redirect bool
	// User and Password, when set, are required as basic auth on the main
	// host (never on the second).
	User, Password string
	// InitramfsSize is the size of the generated initramfs files (default
	// 256 KiB); kernels are a quarter of it.
	InitramfsSize int
	// Rate limits image bodies to this many bytes a second; 0: unlimited.
	Rate int64
}

// Server is a running fake factory on two loopback listeners.
type Server struct {
	// URL is the factory's base URL; BlobURL the second host redirects go to.
	URL, BlobURL string

	opts  Options
	main  *http.Server
	blob  *http.Server
	ctx   context.Context
	close context.CancelFunc

	mu         sync.Mutex
	assets     map[string][]byte
	fault      Fault
	holdTail   int
	release    chan struct{}
	counts     map[string]int
	schematics map[string]bool
	blobAuth   []string
	agents     []string
}

// Start binds two listeners on 127.0.0.1 and serves the fake factory on
// them until Close.
func Start(opts Options) (*Server, error) {
	if len(opts.Versions) == 0 {
		opts.Versions = DefaultVersions
	}
	if opts.InitramfsSize <= 0 {
		opts.InitramfsSize = 256 << 10
	}
	s := &Server{opts: opts, assets: map[string][]byte{}, counts: map[string]int{}, schematics: map[string]bool{}}
	s.ctx, s.close = context.WithCancel(context.Background())
	for _, arch := range []string{"amd64", "arm64"} {
		for _, f := range []string{"kernel-" + arch, "initramfs-" + arch + ".xz", "cmdline-metal-" + arch} {
			s.assets[f] = Content(f, opts.InitramfsSize)
		}
	}
	mainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakefactory: listen: %w", err)
	}
	blobLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		mainLn.Close()
		return nil, fmt.Errorf("fakefactory: listen: %w", err)
	}
	s.URL = "http://" + mainLn.Addr().String()
	s.BlobURL = "http://" + blobLn.Addr().String()
	base := func(net.Listener) context.Context { return s.ctx }
	s.main = &http.Server{Handler: http.HandlerFunc(s.serveMain), BaseContext: base, ReadHeaderTimeout: 10 * time.Second}
	s.blob = &http.Server{Handler: http.HandlerFunc(s.serveBlob), BaseContext: base, ReadHeaderTimeout: 10 * time.Second}
	go s.main.Serve(mainLn)
	go s.blob.Serve(blobLn)
	return s, nil
}

// Close stops both listeners and ends every request in flight.
func (s *Server) Close() {
	s.close()
	s.main.Close()
	s.blob.Close()
}

// SetAsset sets the body served for a file name (kernel-amd64, …) for every
// schematic and version.
func (s *Server) SetAsset(file string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.assets[file] = body
}

// Asset returns the body served for a file name.
func (s *Server) Asset(file string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assets[file]
}

// SetFault makes every image answer from now on misbehave as f (None: stop).
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// HoldTail makes image bodies stop n bytes before their end until release
// is called (or the client goes away), so a test can see bytes arrive
// before the upstream download completes.
func (s *Server) HoldTail(n int) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.holdTail, s.release = n, ch
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.holdTail = 0
			s.mu.Unlock()
			close(ch)
		})
	}
}

// Count returns how many requests the main host got for path, e.g.
// "/image/<id>/v1.12.7/kernel-amd64".
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Counts returns the request count of every path the main host was asked for.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// BlobAuthorizations returns the Authorization headers the second host
// received (a client must send it none).
func (s *Server) BlobAuthorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.blobAuth)
}

// UserAgents returns the User-Agent of every request the main host got.
func (s *Server) UserAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.agents)
}

func (s *Server) serveMain(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts[r.URL.Path]++
	s.agents = append(s.agents, r.UserAgent())
	s.mu.Unlock()
	if r.URL.Path == "/_fake/counts" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Counts())
		return
	}
	if s.opts.User != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.opts.User || p != s.opts.Password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	switch {
	case r.URL.Path == "/schematics" && r.Method == http.MethodPost:
		s.postSchematic(w, r)
	case r.URL.Path == "/versions" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.opts.Versions)
	case strings.HasPrefix(r.URL.Path, "/image/") && r.Method == http.MethodGet:
		file, status, msg := s.lookup(r.URL.Path)
		if status != http.StatusOK {
			http.Error(w, msg, status)
			return
		}
		if s.opts.Redirect {
			http.Redirect(w, r, s.BlobURL+"/blob"+r.URL.Path, http.StatusFound)
			return
		}
		s.serveImage(w, r, file)
	default:
		http.Error(w, "404 page not found", http.StatusNotFound)
	}
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if a := r.Header.Get("Authorization"); a != "" {
		s.blobAuth = append(s.blobAuth, a)
	}
	s.mu.Unlock()
	file, status, msg := s.lookup(strings.TrimPrefix(r.URL.Path, "/blob"))
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	s.serveImage(w, r, file)
}

// lookup checks /image/{id}/{version}/{file} as the factory does.
func (s *Server) lookup(path string) (file string, status int, msg string) {
	parts := strings.Split(strings.TrimPrefix(path, "/image/"), "/")
	if len(parts) != 3 {
		return "", http.StatusNotFound, "404 page not found"
	}
	id, ver, file := parts[0], parts[1], parts[2]
	if len(id) != 64 {
		return "", http.StatusBadRequest, "invalid schematic ID"
	}
	if !slices.Contains(s.opts.Versions, "v"+strings.TrimPrefix(ver, "v")) {
		return "", http.StatusNotFound, fmt.Sprintf("version %s not found", ver)
	}
	s.mu.Lock()
	_, ok := s.assets[file]
	s.mu.Unlock()
	if !ok {
		return "", http.StatusNotFound, fmt.Sprintf("unknown path %q", file)
	}
	return file, http.StatusOK, ""
}

func (s *Server) serveImage(w http.ResponseWriter, r *http.Request, file string) {
	s.mu.Lock()
	body, fault, hold, release := s.assets[file], s.fault, s.holdTail, s.release
	s.mu.Unlock()
	h := w.Header()
	switch fault {
	case ServerError:
		http.Error(w, "upstream registry unavailable", http.StatusServiceUnavailable)
		return
	case Garbage:
		page := []byte("<html><head><title>Service Unavailable</title></head><body>Please log in to continue.</body></html>\n")
		h.Set("Content-Type", "text/html")
		h.Set("Content-Length", strconv.Itoa(len(page)))
		w.Write(page)
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	n := len(body)
	if fault == WrongLength {
		n += 1000
	}
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	switch fault {
	case Truncate:
		s.write(w, r, body[:len(body)/2])
		panic(http.ErrAbortHandler)
	case WrongLength:
		s.write(w, r, body)
		panic(http.ErrAbortHandler)
	case Stall:
		s.write(w, r, body[:len(body)/2])
		<-r.Context().Done()
		return
	}
	if hold > 0 && hold <= len(body) {
		if !s.write(w, r, body[:len(body)-hold]) {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		body = body[len(body)-hold:]
	}
	s.write(w, r, body)
}

// write sends b at the configured rate, flushing as it goes; false when the
// client went away.
func (s *Server) write(w http.ResponseWriter, r *http.Request, b []byte) bool {
	const chunk = 64 << 10
	rc := http.NewResponseController(w)
	start, sent := time.Now(), 0
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return false
		}
		rc.Flush()
		b, sent = b[n:], sent+n
		if s.opts.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / float64(s.opts.Rate) * float64(time.Second)))
			select {
			case <-time.After(time.Until(due)):
			case <-r.Context().Done():
				return false
			}
		}
	}
	return true
}

// schematic is the factory's schematic document; decoding rejects unknown
// fields, as the factory does.
type schematic struct {
	Overlay struct {
		Image   string         `yaml:"image,omitempty"`
		Name    string         `yaml:"name,omitempty"`
		Options map[string]any `yaml:"options,omitempty"`
	} `yaml:"overlay,omitempty"`
	Customization struct {
		ExtraKernelArgs []string `yaml:"extraKernelArgs,omitempty"`
		Meta            []struct {
			Key   uint8  `yaml:"key"`
			Value string `yaml:"value"`
		} `yaml:"meta,omitempty"`
		SystemExtensions struct {
			OfficialExtensions []string `yaml:"officialExtensions,omitempty"`
		} `yaml:"systemExtensions,omitempty"`
		SecureBoot struct {
			IncludeWellKnownCertificates bool `yaml:"includeWellKnownCertificates,omitempty"`
		} `yaml:"secureboot,omitempty"`
		Bootloader string `yaml:"bootloader,omitempty"`
	} `yaml:"customization,omitempty"`
}

func (s *Server) postSchematic(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if _, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var sc schematic
	dec := yaml.NewDecoder(&b)
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	canon, err := yaml.Marshal(&sc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(canon)
	id := hex.EncodeToString(sum[:])
	s.mu.Lock()
	s.schematics[id] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]string{"id": id})
}

// Registered reports whether id was returned by POST /schematics.
func (s *Server) Registered(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.schematics[id]
}

// Content returns deterministic content for a factory file name that passes
// tinderbox's content checks: a kernel with its boot header magic, an
// initramfs with an xz header, a Talos command line. size applies to the
// initramfs; kernels are a quarter of it (at least 4 KiB).
func Content(file string, size int) []byte {
	arch := "amd64"
	if strings.Contains(file, "arm64") {
		arch = "arm64"
	}
	switch {
	case strings.HasPrefix(file, "cmdline-metal-"):
		console := "console=tty0"
		if arch == "arm64" {
			console = "console=ttyAMA0"
		}
		return []byte("talos.platform=metal " + console + " init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never\n")
	case strings.HasPrefix(file, "kernel-"):
		b := random(file, max(size/4, 4096))
		copy(b, "MZ")
		if arch == "amd64" {
			copy(b[0x202:], "HdrS")
		} else {
			copy(b[0x38:], "ARM\x64")
		}
		return b
	default:
		b := random(file, max(size, 64))
		copy(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00})
		return b
	}
}

func random(seed string, n int) []byte {
	var key [32]byte
	copy(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}
