package render

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"go.yaml.in/yaml/v3"
)

// Funcs returns the functions templates can call: sprig's hermetic set
// (default, quote, indent, nindent, list and string helpers…, but nothing
// that reads the environment, the clock or a random source, so that a
// config renders to the same bytes every time) plus:
//
//	toYaml V             V as YAML, without a trailing newline
//	required MSG V       V, or fails the render with MSG when V is empty
//	cidrhost PREFIX N    the Nth address of PREFIX ("192.168.1.0/24" 10 → 192.168.1.10); negative N counts from the end (-1 is the broadcast address)
//	cidrnetmask PREFIX   the IPv4 netmask of PREFIX ("…/24" → 255.255.255.0)
//	cidrprefix ADDR      the network of ADDR/BITS ("192.168.1.11/24" → 192.168.1.0/24)
//	cidrip ADDR          the address of ADDR/BITS without its length ("192.168.1.11/24" → 192.168.1.11)
//	cidrbits ADDR        the prefix length of ADDR/BITS ("192.168.1.11/24" → 24)
func Funcs() template.FuncMap { return maps.Clone(funcs()) }

// funcs is Funcs' map, built once: sprig builds its map anew on every
// call, and text/template reflects over every function a template is
// given. Templates copy it; nothing writes to it.
var funcs = sync.OnceValue(func() template.FuncMap {
	f := sprig.HermeticTxtFuncMap()
	maps.Copy(f, template.FuncMap{
		"toYaml":      toYAML,
		"required":    required,
		"cidrhost":    cidrHost,
		"cidrnetmask": cidrNetmask,
		"cidrprefix":  cidrPrefix,
		"cidrip":      cidrIP,
		"cidrbits":    cidrBits,
	})
	return f
})

// parseTemplate parses a template file with Funcs, failing on a missing
// key when executed.
func parseTemplate(name string, text []byte) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(funcs()).Parse(string(text))
}

// run executes a parsed template over data. A template is safe to run
// from several goroutines at once.
func run(t *template.Template, data Data) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data.templateData()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Templates keeps base configs and patches as classified and parsed, by
// file name and text, so that the renders of many machines from the same
// files (one load of a profiles directory) classify and parse each file
// once. It also keeps the YAML each file expanded to, parsed, for up to
// maxParsedTexts different expansions a file: a file that expands to the
// same text for many machines (a base config that only reads group
// values, a plain patch) is parsed once for all of them. The zero value is
// ready to use; it is safe for concurrent use. It only grows: keep one per
// load, not for the life of a process.
type Templates struct {
	mu    sync.Mutex
	files map[templateKey]*parsedFile
}

type templateKey struct{ name, text string }

// parsedFile is one file as classify and the parser left it, and the
// YAML texts it expanded to, parsed.
type parsedFile struct {
	once sync.Once
	tmpl bool
	note string
	t    *template.Template
	err  error // the parse error of a template

	mu    sync.Mutex
	texts map[string]*parsedText
}

// maxParsedTexts bounds how many expansions of one file a Templates keeps
// parsed. A file that expands differently for every machine (one that
// reads the MAC or the address) fills it after that many machines and is
// parsed per machine from then on; the bound keeps those parses from
// being held for the whole load.
const maxParsedTexts = 64

// parsedText is a YAML text parsed by parseDocs: its documents, as values
// and as nodes, or the parse error. Nothing changes it once made: a
// render copies the values it changes.
type parsedText struct {
	once  sync.Once
	docs  []any
	nodes []*yaml.Node
	err   error
}

// parse returns text, one expansion of the file pf, parsed by parseDocs:
// kept from an earlier render when it expanded the same way, parsed now
// otherwise. The values and nodes returned are shared with other renders
// and must not be changed.
func (pf *parsedFile) parse(text []byte) ([]any, []*yaml.Node, error) {
	pf.mu.Lock()
	pt, ok := pf.texts[string(text)]
	if !ok {
		pt = &parsedText{}
		if len(pf.texts) < maxParsedTexts {
			if pf.texts == nil {
				pf.texts = map[string]*parsedText{}
			}
			pf.texts[string(text)] = pt
		}
	}
	pf.mu.Unlock()
	pt.once.Do(func() { pt.docs, pt.nodes, pt.err = parseDocs(text) })
	return pt.docs, pt.nodes, pt.err
}

// file returns f classified, and parsed when it is a template.
func (ts *Templates) file(f File) *parsedFile {
	k := templateKey{f.Name, string(f.Text)}
	ts.mu.Lock()
	pf, ok := ts.files[k]
	if !ok {
		if ts.files == nil {
			ts.files = map[templateKey]*parsedFile{}
		}
		pf = &parsedFile{}
		ts.files[k] = pf
	}
	ts.mu.Unlock()
	pf.once.Do(func() {
		pf.tmpl, pf.note = classify(f.Text)
		if pf.tmpl {
			pf.t, pf.err = parseTemplate(f.Name, f.Text)
		}
	})
	return pf
}

func toYAML(v any) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func required(msg string, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, errors.New(msg)
	case string:
		if x == "" {
			return nil, errors.New(msg)
		}
	}
	return v, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address/bits prefix: %w", s, err)
	}
	return p, nil
}

// cidrHost returns the nth address of prefix, counting from its network
// address; a negative n counts back from its last address.
func cidrHost(prefix string, n int) (string, error) {
	p, err := parsePrefix(prefix)
	if err != nil {
		return "", fmt.Errorf("cidrhost: %w", err)
	}
	p = p.Masked()
	bits := p.Addr().BitLen()
	size := new(big.Int).Lsh(big.NewInt(1), uint(bits-p.Bits()))
	off := big.NewInt(int64(n))
	if n < 0 {
		off.Add(off, size)
	}
	if off.Sign() < 0 || off.Cmp(size) >= 0 {
		return "", fmt.Errorf("cidrhost: %s has no host number %d", p, n)
	}
	base := new(big.Int).SetBytes(p.Addr().AsSlice())
	buf := base.Add(base, off).FillBytes(make([]byte, bits/8))
	a, _ := netip.AddrFromSlice(buf)
	return a.String(), nil
}

func cidrNetmask(prefix string) (string, error) {
	p, err := parsePrefix(prefix)
	if err != nil {
		return "", fmt.Errorf("cidrnetmask: %w", err)
	}
	if !p.Addr().Is4() {
		return "", fmt.Errorf("cidrnetmask: %s is not IPv4", p)
	}
	m := uint32(0xffffffff) << (32 - p.Bits())
	if p.Bits() == 0 {
		m = 0
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String(), nil
}

func cidrPrefix(addr string) (string, error) {
	p, err := parsePrefix(addr)
	if err != nil {
		return "", fmt.Errorf("cidrprefix: %w", err)
	}
	return p.Masked().String(), nil
}

func cidrIP(addr string) (string, error) {
	p, err := parsePrefix(addr)
	if err != nil {
		return "", fmt.Errorf("cidrip: %w", err)
	}
	return p.Addr().String(), nil
}

func cidrBits(addr string) (int, error) {
	p, err := parsePrefix(addr)
	if err != nil {
		return 0, fmt.Errorf("cidrbits: %w", err)
	}
	return p.Bits(), nil
}
