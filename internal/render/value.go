package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Map is a YAML mapping that keeps its keys in order, so a rendered config
// lists its keys the way its base config does (version first, as talosctl
// writes it) and the same inputs always give the same bytes.
type Map []Pair

// Pair is one key of a Map.
type Pair struct {
	Key   string
	Value any
}

// Get returns the value under key.
func (m Map) Get(key string) (any, bool) {
	if i := m.index(key); i >= 0 {
		return m[i].Value, true
	}
	return nil, false
}

func (m Map) index(key string) int {
	for i, p := range m {
		if p.Key == key {
			return i
		}
	}
	return -1
}

// Set returns m with key set to v, in place when the key exists, appended
// when not.
func (m Map) Set(key string, v any) Map {
	if i := m.index(key); i >= 0 {
		m[i].Value = v
		return m
	}
	return append(m, Pair{key, v})
}

// Delete returns m without key.
func (m Map) Delete(key string) Map {
	if i := m.index(key); i >= 0 {
		return append(m[:i:i], m[i+1:]...)
	}
	return m
}

// A document's values are Map, []any, string, Number, bool or nil, and
// int, int64 or float64 where a JSON patch put a number.

// Number is a YAML int or float as the file wrote it ("08", "0x1F", "1e3",
// "1_000", ".inf"). Keeping the text, not a Go number, means a rendered
// config says what its sources said: decoded and encoded again, "08" (a
// float to YAML 1.1 readers) came out as 8, and a Talos field that takes a
// string then got "8".
type Number string

// MarshalJSON writes n as a JSON number, as YAML reads it (JSON has no
// infinities or NaN: those are an error).
func (n Number) MarshalJSON() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal([]byte(n), &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// maxValues bounds how many values one document may expand to, so that
// aliases nested on aliases (a "billion laughs" document) fail instead of
// exhausting memory. A full Talos config has a few hundred.
const maxValues = 20_000

// fromNode converts a parsed YAML node into a value.
func fromNode(n *yaml.Node) (any, error) {
	budget := maxValues
	return convert(n, &budget)
}

func convert(n *yaml.Node, budget *int) (any, error) {
	*budget--
	if *budget < 0 {
		return nil, fmt.Errorf("line %d: document expands to more than %d values (aliases?)", n.Line, maxValues)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return convert(n.Content[0], budget)
	case yaml.AliasNode:
		return convert(n.Alias, budget)
	case yaml.MappingNode:
		m := make(Map, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: YAML merge keys (<<) are not supported", k.Line)
			}
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: map key is not a scalar", k.Line)
			}
			if m.index(k.Value) >= 0 {
				return nil, fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			val, err := convert(v, budget)
			if err != nil {
				return nil, err
			}
			m = append(m, Pair{k.Value, val})
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c, budget)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!timestamp", "!!binary":
			// Timestamps stay text: Talos reads them as strings.
			return n.Value, nil
		case "!!int", "!!float":
			if n.Style&yaml.TaggedStyle == 0 { // an explicit !!int or !!float is decoded
				return Number(n.Value), nil
			}
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// yaml11Bools are the strings YAML 1.1 reads as booleans: written plain,
// an older reader would take "off" for false. The encoder quotes them when
// it encodes a Go string; a node built by hand must say so itself.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": true, "N": true, "no": true, "No": true, "NO": true, "off": true, "Off": true, "OFF": true,
}

// base60 matches YAML 1.1's sexagesimal numbers ("0000:02:00.0", a PCI
// bus path, would be one), which the encoder also quotes in a Go string.
var base60 = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

// toNode converts a value into a YAML node for encoding.
func toNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, p := range v {
			c, err := toNode(p.Value)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p.Key}, c)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range v {
			c, err := toNode(e)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	}
	// Scalars directly: yaml.Node.Encode would run a whole encoder and
	// parser per value, the main cost of rendering a fleet.
	switch v := v.(type) {
	case string:
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
		if yaml11Bools[v] || base60.MatchString(v) {
			n.Style = yaml.DoubleQuotedStyle // as the encoder quotes a Go string
		}
		return n, nil
	case Number:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: string(v)}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}, nil
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}

// parseDocs parses every document of a multi-document YAML text, returning
// each as a value and as its node (for line numbers). Empty documents are
// dropped.
func parseDocs(text []byte) ([]any, []*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var vals []any
	var nodes []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return vals, nodes, nil
		}
		if err != nil {
			return nil, nil, err
		}
		v, err := fromNode(&n)
		if err != nil {
			return nil, nil, err
		}
		if v == nil {
			continue
		}
		vals = append(vals, v)
		nodes = append(nodes, &n)
	}
}

// MarshalJSON writes the map as a JSON object in key order.
func (m Map) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(p.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(p.Value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// fromJSON decodes JSON into a value, keeping object keys in order and
// numbers as int64 where they are integers.
func fromJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := jsonValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func jsonValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := Map{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := jsonValue(dec)
				if err != nil {
					return nil, err
				}
				m = m.Set(kt.(string), v)
			}
			_, err := dec.Token()
			return m, err
		case '[':
			s := []any{}
			for dec.More() {
				v, err := jsonValue(dec)
				if err != nil {
					return nil, err
				}
				s = append(s, v)
			}
			_, err := dec.Token()
			return s, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			if int64(int(i)) == i {
				return int(i), nil
			}
			return i, nil
		}
		return t.Float64()
	}
	return t, nil
}
