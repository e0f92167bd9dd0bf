package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes every environment variable that sets a config key:
// TINDERBOX_ + the key path in upper case with "_" for "." (TINDERBOX_HTTP_LISTEN).
const EnvPrefix = "TINDERBOX"

// DefaultSearchPath lists the files tried, in order, when no --config is given.
var DefaultSearchPath = []string{"tinderbox.yaml", "/etc/tinderbox/tinderbox.yaml"}

// flagKeys maps the command-line flags for the common keys to their config keys.
var flagKeys = []struct{ flag, key, usage string }{
	{"advertise", "advertise", "address nodes use to reach tinderbox"},
	{"http-listen", "http.listen", "boot HTTP listen address"},
	{"admin-listen", "admin.listen", "admin UI and API listen address"},
	{"dhcp-interface", "dhcp.interface", "network interface the proxyDHCP responder binds to"},
	{"ipxe-dir", "ipxe.dir", "directory holding the iPXE binaries"},
	{"factory-url", "factory.url", "Talos Image Factory URL"},
	{"cache-dir", "cache.dir", "asset cache directory"},
	{"state-dir", "state.dir", "machine-state directory"},
	{"profiles-dir", "profiles.dir", "profiles directory"},
	{"log-level", "log.level", "log level: debug, info, warn or error"},
	{"log-format", "log.format", "log format: text or json"},
}

// AddFlags defines --config and the flags for the common config keys on fs.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (default ./tinderbox.yaml, then /etc/tinderbox/tinderbox.yaml)")
	for _, f := range flagKeys {
		fs.String(f.flag, "", f.usage+" ("+f.key+")")
	}
}

// Options says where Load finds its inputs.
type Options struct {
	// Path is the config file named by --config; "" searches SearchPath.
	Path string
	// SearchPath overrides DefaultSearchPath when non-nil.
	SearchPath []string
	// Flags, when non-nil, holds flags defined by AddFlags; those the user
	// set override the file and the environment.
	Flags *pflag.FlagSet
}

// Load reads the config file, environment and flags, and validates the
// result. It returns the config even when there are problems, so a caller
// can show them all; the error joins every problem found.
func Load(opts Options) (*Config, error) {
	path := opts.Path
	if path == "" && opts.Flags != nil {
		if f := opts.Flags.Lookup("config"); f != nil {
			path = f.Value.String()
		}
	}
	search := opts.SearchPath
	if search == nil {
		search = DefaultSearchPath
	}
	if path == "" {
		for _, p := range search {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
	}

	v := viper.New()
	for k, val := range defaults() {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if opts.Flags != nil {
		for _, f := range flagKeys {
			if fl := opts.Flags.Lookup(f.flag); fl != nil {
				if err := v.BindPFlag(f.key, fl); err != nil {
					return nil, fmt.Errorf("config: bind flag --%s: %w", f.flag, err)
				}
			}
		}
	}

	var problems []error
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("config: %s: file does not exist", path)
			}
			return nil, fmt.Errorf("config: %w", err)
		}
		if errs := checkKeys(path, data); len(errs) > 0 {
			// A file that does not parse or names unknown keys is not
			// decoded: its values cannot be trusted.
			return nil, errors.Join(errs...)
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	cfg := &Config{File: path}
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.TextUnmarshallerHookFunc(),
		// A list from the environment: TINDERBOX_ADMIN_HOSTS=a.example,b.example.
		mapstructure.StringToSliceHookFunc(","),
	))
	// Keys whose value did not decode are reported once, by the decoder;
	// Validate would only repeat them as zero values.
	badKeys := map[string]bool{}
	if err := v.UnmarshalExact(cfg, hook); err != nil {
		for _, p := range decodeProblems(path, err) {
			problems = append(problems, p)
			badKeys[strings.ToLower(p.Key)] = true
		}
	}
	if cfg.Advertise == "" {
		addr, err := DefaultAdvertise(cfg.DHCP.Interface)
		if err != nil {
			problems = append(problems, err)
		} else {
			cfg.Advertise = addr.String()
		}
	}
	if err := cfg.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if p, ok := e.(*Problem); !ok || !badKeys[strings.ToLower(p.Key)] {
				problems = append(problems, e)
			}
		}
	}
	return cfg, errors.Join(problems...)
}

// decodeProblems turns the decoder's one multi-line error into one Problem
// per key.
func decodeProblems(path string, err error) []*Problem {
	var leaves []*Problem
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		if de, ok := e.(*mapstructure.DecodeError); ok {
			msg := de.Unwrap().Error()
			var pe *mapstructure.ParseError
			if errors.As(de, &pe) {
				msg = fmt.Sprintf("%q is not a valid %s", fmt.Sprint(pe.Value), pe.Expected.Type())
				if pe.Expected.Type() == reflect.TypeFor[ByteSize]() && pe.Err != nil {
					msg = pe.Err.Error()
				}
			}
			leaves = append(leaves, &Problem{File: path, Key: de.Name(), Msg: msg})
			return
		}
		if u := errors.Unwrap(e); u != nil {
			walk(u)
			return
		}
		leaves = append(leaves, &Problem{File: path, Msg: e.Error()})
	}
	walk(err)
	return leaves
}

// checkKeys parses the YAML and reports, with file and line, every key that
// tinderbox does not know and every value of the wrong shape (a scalar
// where a section belongs, or the reverse).
func checkKeys(path string, data []byte) []error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []error{fmt.Errorf("config: %s: %w", path, err)}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file: built-in defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return []error{&Problem{File: path, Line: root.Line, Msg: "want a mapping of keys at the top level"}}
	}
	leaves := map[string]bool{}
	lists := map[string]bool{}
	sections := map[string]bool{}
	for k, v := range defaults() {
		leaves[strings.ToLower(k)] = true
		if _, ok := v.([]string); ok {
			lists[strings.ToLower(k)] = true
		}
		for i := strings.Index(k, "."); i >= 0; i = indexFrom(k, ".", i+1) {
			sections[strings.ToLower(k[:i])] = true
		}
	}
	var errs []error
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			key := kn.Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lk := strings.ToLower(key)
			switch {
			case sections[lk]:
				if vn.Kind == yaml.MappingNode {
					walk(key, vn)
				} else if !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null") {
					errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: key + " is a section: want a mapping of keys"})
				}
			case lists[lk]:
				if vn.Kind != yaml.SequenceNode && !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null") {
					errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: key + " wants a list"})
				} else {
					for _, e := range vn.Content {
						if e.Kind != yaml.ScalarNode {
							errs = append(errs, &Problem{File: path, Line: e.Line, Msg: key + " wants a list of single values"})
						}
					}
				}
			case leaves[lk]:
				if vn.Kind != yaml.ScalarNode {
					errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: key + " wants a single value"})
				}
			default:
				errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: fmt.Sprintf("unknown key %q%s", key, suggest(lk, leaves))})
			}
		}
	}
	walk("", root)
	return errs
}

func indexFrom(s, sub string, from int) int {
	i := strings.Index(s[from:], sub)
	if i < 0 {
		return -1
	}
	return from + i
}

// suggest names a known key that shares the unknown key's last segment, the
// usual mistake being a key placed in the wrong section.
func suggest(key string, known map[string]bool) string {
	last := key[strings.LastIndex(key, ".")+1:]
	var hits []string
	for k := range known {
		if k[strings.LastIndex(k, ".")+1:] == last {
			hits = append(hits, k)
		}
	}
	if len(hits) == 0 {
		return ""
	}
	slices.Sort(hits)
	return fmt.Sprintf(" (did you mean %s?)", strings.Join(hits, " or "))
}

// Keys returns every config key tinderbox knows, sorted, in the spelling of
// the config file (docs/configuration.md).
func Keys() []string {
	var keys []string
	for k := range defaults() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
