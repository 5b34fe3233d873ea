package workload

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Write turns each item's JSON (from encoding/json) into block YAML with the transcoder below rather than with
// sigs.k8s.io/yaml: the latter re-parses the JSON with a YAML parser and re-emits it, about 140 µs of CPU per
// object, which made L take 18 s on two cores; this takes about 1 µs. The output keeps the JSON's key order
// (struct order: apiVersion, kind, metadata, …) and is laid out as go-yaml lays it out (sequences at the
// indentation of their key, maps two spaces in).
//
// Strings are written plain only when no YAML 1.1 or 1.2 reader can take them for anything but that string: a
// letter first, then only letters, digits and "-._/:", not ending in ':', and not a boolean or null word. Every
// other string is written as its JSON literal, which is a valid YAML double-quoted scalar with the same value:
// encoding/json only emits the escapes \" \\ \b \f \n \r \t \uXXXX, all of which YAML shares. The characters
// YAML forbids raw or reads as line breaks (DEL, the C1 controls with NEL, BOM, U+FFFE, U+FFFF), which
// encoding/json leaves raw, are escaped as \uXXXX.

// maxImplicitKey is the longest key, in bytes, written as "key: value"; YAML readers refuse implicit keys of
// more than 1024 characters.
const maxImplicitKey = 1000

// errBadJSON is returned for input that is not the compact JSON encoding/json writes.
var errBadJSON = errors.New("transcode json to yaml: unexpected input")

// appendYAMLItem appends the JSON object src as an entry of a block sequence at indentation 0: "- " and the
// object's first key on one line, its other keys indented by two.
func appendYAMLItem(dst, src []byte) ([]byte, error) {
	t := transcoder{src: src, dst: append(dst, "- "...)}
	if err := t.value(2, true); err != nil {
		return dst, err
	}
	if t.pos != len(src) {
		return dst, errBadJSON
	}
	return t.dst, nil
}

// transcoder converts one compact JSON value to YAML, reading src from pos and appending to dst.
type transcoder struct {
	src []byte
	pos int
	dst []byte
}

// value writes the value at pos. The caller has written the text that precedes it on the current line ("- " or
// "key:"); indent is the indentation of the value's own lines. inSeq says the value follows "- ", where a map's
// first key and a sequence's first entry continue the line.
func (t *transcoder) value(indent int, inSeq bool) error {
	if t.pos >= len(t.src) {
		return errBadJSON
	}
	switch t.src[t.pos] {
	case '{':
		if t.peek(1) == '}' {
			t.pos += 2
			t.scalarPrefix(inSeq)
			t.dst = append(t.dst, "{}"...)
			return nil
		}
		return t.object(indent, inSeq)
	case '[':
		if t.peek(1) == ']' {
			t.pos += 2
			t.scalarPrefix(inSeq)
			t.dst = append(t.dst, "[]"...)
			return nil
		}
		return t.array(indent, inSeq)
	case '"':
		t.scalarPrefix(inSeq)
		return t.str()
	}
	// A number, true, false or null: the same text in YAML.
	start := t.pos
	for t.pos < len(t.src) && !strings.ContainsRune(",}]", rune(t.src[t.pos])) {
		t.pos++
	}
	if t.pos == start {
		return errBadJSON
	}
	t.scalarPrefix(inSeq)
	t.dst = append(t.dst, t.src[start:t.pos]...)
	return nil
}

// scalarPrefix writes the space between "key:" and an inline value.
func (t *transcoder) scalarPrefix(inSeq bool) {
	if !inSeq {
		t.dst = append(t.dst, ' ')
	}
}

func (t *transcoder) peek(off int) byte {
	if t.pos+off < len(t.src) {
		return t.src[t.pos+off]
	}
	return 0
}

// object writes the map at pos, one "key: value" a line at indent; after "- " the first key continues the line.
func (t *transcoder) object(indent int, inSeq bool) error {
	t.pos++ // {
	for first := true; ; first = false {
		if !first || !inSeq {
			t.newline(indent)
		}
		if t.peek(0) != '"' {
			return errBadJSON
		}
		start := len(t.dst)
		if err := t.str(); err != nil {
			return err
		}
		if len(t.dst)-start > maxImplicitKey {
			// YAML limits implicit keys to 1024 characters; longer ones need the explicit "? key" form.
			t.dst = slices.Insert(t.dst, start, '?', ' ')
			t.newline(indent)
		}
		if t.peek(0) != ':' {
			return errBadJSON
		}
		t.pos++
		t.dst = append(t.dst, ':')
		// A map under a key is indented by two; a sequence, go-yaml style, starts at the key's own indentation.
		child := indent
		if t.peek(0) == '{' {
			child += 2
		}
		if err := t.value(child, false); err != nil {
			return err
		}
		switch t.peek(0) {
		case ',':
			t.pos++
		case '}':
			t.pos++
			return nil
		default:
			return errBadJSON
		}
	}
}

// array writes the sequence at pos, one "- value" a line at indent; after "- " the first entry continues the line.
func (t *transcoder) array(indent int, inSeq bool) error {
	t.pos++ // [
	for first := true; ; first = false {
		if !first || !inSeq {
			t.newline(indent)
		}
		t.dst = append(t.dst, "- "...)
		if err := t.value(indent+2, true); err != nil {
			return err
		}
		switch t.peek(0) {
		case ',':
			t.pos++
		case ']':
			t.pos++
			return nil
		default:
			return errBadJSON
		}
	}
}

// newline ends the current line and indents the next one.
func (t *transcoder) newline(indent int) {
	t.dst = append(t.dst, '\n')
	for range indent {
		t.dst = append(t.dst, ' ')
	}
}

// str writes the JSON string at pos, plain when that is safe and as the JSON literal otherwise.
func (t *transcoder) str() error {
	start := t.pos
	t.pos++
	for t.pos < len(t.src) && t.src[t.pos] != '"' {
		if t.src[t.pos] == '\\' {
			t.pos++
		}
		t.pos++
	}
	if t.pos >= len(t.src) {
		return errBadJSON
	}
	t.pos++
	lit := t.src[start:t.pos]
	switch s := lit[1 : len(lit)-1]; {
	case plainSafe(s):
		t.dst = append(t.dst, s...)
	case !bytes.ContainsFunc(lit, yamlUnprintable):
		t.dst = append(t.dst, lit...)
	default:
		for _, r := range string(lit) {
			if yamlUnprintable(r) {
				t.dst = fmt.Appendf(t.dst, "\\u%04X", r)
			} else {
				t.dst = utf8.AppendRune(t.dst, r)
			}
		}
	}
	return nil
}

// yamlUnprintable reports whether YAML forbids r raw in a document or reads it as a line break, where JSON
// allows it raw.
func yamlUnprintable(r rune) bool {
	return r == 0x7f || 0x80 <= r && r <= 0x9f || r == 0xfeff || r == 0xfffe || r == 0xffff
}

// plainSafe reports whether s (the inside of a JSON string literal) reads back as the same string when written
// as a plain YAML scalar, in YAML 1.1 and 1.2 alike, as a key or a value.
func plainSafe(s []byte) bool {
	if len(s) == 0 || !isLetter(s[0]) || s[len(s)-1] == ':' {
		return false
	}
	for _, c := range s {
		if !isLetter(c) && !('0' <= c && c <= '9') && c != '-' && c != '.' && c != '_' && c != '/' && c != ':' {
			return false
		}
	}
	if len(s) > 5 {
		return true
	}
	switch strings.ToLower(string(s)) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
