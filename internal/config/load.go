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
	"time"

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

// ConfigEnv names the environment variable that names the config file
// when --config is not given, before DefaultSearchPath is searched.
const ConfigEnv = EnvPrefix + "_CONFIG"

// AddConfigFlag defines --config alone on fs, for commands that read the
// config file only for a few keys (the admin API's address and token).
func AddConfigFlag(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (default $"+ConfigEnv+", then ./tinderbox.yaml, then /etc/tinderbox/tinderbox.yaml)")
}

// AddFlags defines --config and the flags for the common config keys on fs.
func AddFlags(fs *pflag.FlagSet) {
	AddConfigFlag(fs)
	for _, f := range flagKeys {
		fs.String(f.flag, "", f.usage+" ("+f.key+")")
	}
}

// Options says where Load finds its inputs.
type Options struct {
	// Path is the config file named by --config; "" takes $TINDERBOX_CONFIG
	// (ConfigEnv), then searches SearchPath.
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
	if path == "" {
		path = os.Getenv(ConfigEnv)
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
		clean, errs, ok := checkKeys(path, data)
		if !ok {
			// A file that does not parse is not decoded at all.
			return nil, errors.Join(errs...)
		}
		// Keys that are unknown or of the wrong shape are reported and
		// left out; the rest is decoded and checked, so that every
		// problem is reported at once.
		problems = append(problems, errs...)
		data = clean
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	cfg := &Config{File: path}
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		splitList,
		mapstructure.TextUnmarshallerHookFunc(),
		durationHook,
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
	cfg.AdvertisePinned = cfg.Advertise != ""
	if !cfg.AdvertisePinned {
		var iface string
		if devs := cfg.DHCP.Devices(); len(devs) > 0 {
			iface = devs[0]
		}
		addr, err := DefaultAdvertise(iface)
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

// splitList reads a list key set from the environment, one string of
// comma-separated values.
func splitList(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(reflect.ValueOf(data).String())
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts, nil
}

// durationHook decodes a duration written as Go writes one ("24h",
// "1h30m"). A bare number other than 0 is refused rather than read as
// nanoseconds, which no one writing "ttl: 3600" means.
func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	want := "want a duration with a unit, such as 24h or 90m, or 0"
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration: %s", v, want)
		}
		return d, nil
	case int, int64, uint64, float64:
		if reflect.ValueOf(v).IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v has no unit: %s", v, want)
	}
	return data, nil
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
func checkKeys(path string, data []byte) (clean []byte, _ []error, ok bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []error{fmt.Errorf("config: %s: %w", path, err)}, false
	}
	if len(doc.Content) == 0 {
		return data, nil, true // an empty file: built-in defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, []error{&Problem{File: path, Line: root.Line, Msg: "want a mapping of keys at the top level"}}, false
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
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			before := len(errs)
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
				if !isList(vn) {
					errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: key + " wants a list of values"})
				}
			case leaves[lk]:
				if vn.Kind != yaml.ScalarNode {
					errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: key + " wants a single value"})
				}
			default:
				errs = append(errs, &Problem{File: path, Line: kn.Line, Msg: fmt.Sprintf("unknown key %q%s", key, suggest(lk, leaves))})
			}
			if len(errs) == before {
				kept = append(kept, kn, vn)
			}
		}
		n.Content = kept
	}
	walk("", root)
	if len(errs) == 0 {
		return data, nil, true
	}
	clean, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, append(errs, fmt.Errorf("config: %s: %w", path, err)), false
	}
	return clean, errs, true
}

// isList reports whether n is a list of single values, or empty.
func isList(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		return n.Tag == "!!null"
	}
	if n.Kind != yaml.SequenceNode {
		return false
	}
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
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
