package render

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML of a rendered config is what yaml.v3's encoder writes for its
// documents with a four-space indent (encodeDocsYAML). Encoding through
// yaml.v3 costs more than all the rest of a render, so encodeDocs writes
// the same bytes itself for what configs are made of: block maps and
// lists, keys and strings that yaml.v3 writes plain, numbers, booleans
// and nulls. Any other string (one to quote, an empty one) is written as
// yaml.v3 writes it alone (scalarYAML); anything else (a key yaml.v3
// would not write plain, a multi-line string, a float) sends the whole
// config through yaml.v3. TestEmitMatchesYAML holds the two to the same
// bytes.

// errSlowPath says fastDocs met a value it leaves to yaml.v3.
var errSlowPath = errors.New("render: value left to yaml.v3")

// encodeDocs writes documents as YAML, separated by "---", with the
// four-space indent talosctl writes: the bytes encodeDocsYAML writes.
func encodeDocs(docs []any) ([]byte, error) {
	var e emitter
	if err := e.docs(docs); err == nil {
		return e.b.Bytes(), nil
	} else if !errors.Is(err, errSlowPath) {
		return nil, err
	}
	return encodeDocsYAML(docs)
}

// encodeDocsYAML writes documents through yaml.v3's encoder.
func encodeDocsYAML(docs []any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(4)
	for _, d := range docs {
		n, err := toNode(d)
		if err != nil {
			return nil, err
		}
		if err := enc.Encode(n); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// emitter writes documents as yaml.v3 does with a four-space indent.
type emitter struct {
	b bytes.Buffer
}

const emitIndent = 4

func (e *emitter) docs(docs []any) error {
	for i, d := range docs {
		if i > 0 {
			e.b.WriteString("---\n")
		}
		if err := e.root(d); err != nil {
			return err
		}
	}
	return nil
}

// root writes one document: a map at column 0.
func (e *emitter) root(d any) error {
	switch d := d.(type) {
	case Map:
		if len(d) == 0 {
			e.b.WriteString("{}\n")
			return nil
		}
		return e.mapping(d, 0, false)
	case []any:
		if len(d) == 0 {
			e.b.WriteString("[]\n")
			return nil
		}
		return e.sequence(d, 0, false)
	}
	return errSlowPath
}

// nested is the indent of a block collection under a map key whose map
// is at indent: the next multiple of emitIndent, as yaml.v3 aligns it.
func nested(indent int) int {
	return emitIndent * ((indent + emitIndent) / emitIndent)
}

// mapping writes a non-empty map whose keys are at column indent; inline
// says the first key follows a "- " already written.
func (e *emitter) mapping(m Map, indent int, inline bool) error {
	for i, p := range m {
		if !plainKey(p.Key) {
			return errSlowPath
		}
		if i > 0 || !inline {
			e.pad(indent)
		}
		e.b.WriteString(p.Key)
		e.b.WriteByte(':')
		if err := e.value(p.Value, nested(indent)); err != nil {
			return err
		}
	}
	return nil
}

// sequence writes a non-empty list whose "- " are at column indent.
func (e *emitter) sequence(s []any, indent int, inline bool) error {
	for i, v := range s {
		if i > 0 || !inline {
			e.pad(indent)
		}
		e.b.WriteByte('-')
		switch v := v.(type) {
		case Map:
			if len(v) > 0 {
				e.b.WriteByte(' ')
				if err := e.mapping(v, indent+2, true); err != nil {
					return err
				}
				continue
			}
		case []any:
			if len(v) > 0 {
				e.b.WriteByte(' ')
				if err := e.sequence(v, indent+2, true); err != nil {
					return err
				}
				continue
			}
		}
		if err := e.scalarOrEmpty(v); err != nil {
			return err
		}
	}
	return nil
}

// value writes what follows "key:": a scalar or empty collection on the
// same line, a block collection on the next lines at indent.
func (e *emitter) value(v any, indent int) error {
	switch v := v.(type) {
	case Map:
		if len(v) > 0 {
			e.b.WriteByte('\n')
			return e.mapping(v, indent, false)
		}
	case []any:
		if len(v) > 0 {
			e.b.WriteByte('\n')
			return e.sequence(v, indent, false)
		}
	}
	return e.scalarOrEmpty(v)
}

// scalarOrEmpty writes " VALUE\n" for a scalar or an empty collection.
func (e *emitter) scalarOrEmpty(v any) error {
	e.b.WriteByte(' ')
	switch v := v.(type) {
	case Map:
		e.b.WriteString("{}")
	case []any:
		e.b.WriteString("[]")
	case string:
		if plainString(v) {
			e.b.WriteString(v)
			break
		}
		if v == "" {
			e.b.WriteString(`""`) // as yaml.v3 quotes it: plain, it would read as null
			break
		}
		s, err := scalarYAML(v)
		if err != nil {
			return err
		}
		e.b.WriteString(s)
	case Number:
		if !plainNumber(string(v)) {
			return errSlowPath
		}
		e.b.WriteString(string(v))
	case bool:
		e.b.WriteString(strconv.FormatBool(v))
	case nil:
		e.b.WriteString("null")
	case int:
		e.b.WriteString(strconv.Itoa(v))
	case int64:
		e.b.WriteString(strconv.FormatInt(v, 10))
	default:
		return errSlowPath
	}
	e.b.WriteByte('\n')
	return nil
}

func (e *emitter) pad(indent int) {
	for range indent {
		e.b.WriteByte(' ')
	}
}

// scalarYAML is a string as yaml.v3 writes it as a list item or a map
// value (quoted, or plain when plainString was only too careful): the
// same in both places as long as it is one line. A string yaml.v3 writes
// on several lines is errSlowPath.
func scalarYAML(s string) (string, error) {
	n, err := toNode(s)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(emitIndent)
	if err := enc.Encode(&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{n}}); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	out, ok := strings.CutPrefix(b.String(), "- ")
	out, ok2 := strings.CutSuffix(out, "\n")
	if !ok || !ok2 || strings.Contains(out, "\n") {
		return "", errSlowPath
	}
	return out, nil
}

// plainKey says whether yaml.v3 writes a map key as it is: a plain
// string (plainString) short enough to be a simple key.
func plainKey(k string) bool {
	return len(k) <= 128 && plainString(k)
}

// plainString says, conservatively, whether yaml.v3 writes s plain:
// either s starts with a letter, is no null or boolean word, and holds
// only ASCII letters, digits, . _ / - + = ( ) ", a ':' not last nor before
// a space, and single spaces not last nor before a '#'; or s starts with a
// digit, holds only digits, '.' and '/', and has a '/' or two dots (an
// address or a prefix, never a number or a date). toNode's quoting of
// YAML 1.1 booleans and sexagesimal numbers is left to scalarYAML.
func plainString(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		if yaml11Bools[s] || strings.EqualFold(s, "null") || strings.EqualFold(s, "true") || strings.EqualFold(s, "false") {
			return false
		}
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			case c == '.', c == '_', c == '/', c == '-', c == '+', c == '=', c == '(', c == ')', c == '"':
			case c == ':':
				// ": " and a last ':' would read as a key.
				if i == len(s)-1 || s[i+1] == ' ' {
					return false
				}
			case c == ' ':
				// " #" would start a comment; a last space would be lost.
				if i == len(s)-1 || s[i+1] == '#' || s[i+1] == ' ' {
					return false
				}
			default:
				return false
			}
		}
		return true
	case '0' <= c && c <= '9':
		dots, slash := 0, false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case '0' <= c && c <= '9':
			case c == '.':
				dots++
			case c == '/':
				slash = true
			default:
				return false
			}
		}
		return slash || dots >= 2
	}
	return false
}

// plainNumber says whether yaml.v3 writes a Number's text as it is: an
// unsigned decimal integer or a decimal with one dot between digits.
func plainNumber(s string) bool {
	if s == "" {
		return false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
		case c == '.' && i > 0 && i < len(s)-1:
			dots++
		default:
			return false
		}
	}
	return dots <= 1
}
