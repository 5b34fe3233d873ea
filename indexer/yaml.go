package indexer

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v2"

	"github.com/kiem-io/kiem/graph"
)

// YAML is decoded with go-yaml v2 straight into the kind's struct: converting YAML to JSON first and decoding
// that (sigs.k8s.io/yaml) costs about three times the CPU, which on the reference workload is the difference
// between seconds and half a minute. The package doc says how its reading of scalars differs.

// anyDoc decodes one YAML object of any kind with a single parse: go-yaml parses a document into a node tree
// before decoding it, and an Unmarshaler may decode its node several times, here the type first and then the
// struct of that kind, or the items of a List.
type anyDoc struct {
	def     typeMeta // the type a List item cut apart inherits
	set     bool     // UnmarshalYAML ran: a null node never reaches it
	t       typeMeta // the type as written
	kind    graph.Kind
	doc     doc
	list    bool
	items   []anyDoc
	untyped yaml.MapSlice // content of an item that leaves its type to its List, decoded again once that is known
	err     error
}

// UnmarshalYAML records what it finds, errors included, and never fails, so that errors keep their item's place.
func (a *anyDoc) UnmarshalYAML(unmarshal func(any) error) error {
	a.set = true
	if err := unmarshal(&a.t); err != nil {
		a.err = notObject(unmarshal, err)
		return nil
	}
	t := a.t.withDefaults(a.def)
	if t.check() != nil {
		// kubectl writes the type of every item, so this is rare: keep the content to decode once the List's
		// type is known.
		if err := unmarshal(&a.untyped); err != nil {
			a.err = err
		} else if a.untyped == nil {
			a.untyped = yaml.MapSlice{}
		}
		return nil
	}
	if strings.HasSuffix(t.Kind, "List") {
		var l struct {
			Items *[]anyDoc `yaml:"items"`
		}
		if err := unmarshal(&l); err != nil {
			a.err = err
			return nil
		}
		if t.isList(l.Items != nil) {
			a.list = true
			if l.Items != nil {
				a.items = *l.Items
			}
			a.typeItems(t.itemDefaults())
			return nil
		}
	}
	if kind, ok := loadedKind(t); ok {
		a.kind, a.doc = kind, newDoc(kind)
		a.err = unmarshal(a.doc)
	}
	return nil
}

// typeItems decodes again, with the List's defaults, the items that left their type to it. Their text is
// re-encoded, so the lines of their errors mean nothing and are dropped.
func (a *anyDoc) typeItems(def typeMeta) {
	for i := range a.items {
		it := &a.items[i]
		if it.untyped == nil {
			continue
		}
		text, err := yaml.Marshal(it.untyped)
		sub := anyDoc{def: def}
		if err == nil {
			err = yaml.Unmarshal(text, &sub)
		}
		if err != nil {
			sub.err = err
		}
		sub.set = true
		sub.err = relineYAML(sub.err, yamlLines{})
		*it = sub
	}
}

// notObject explains why a node did not decode as an object: it is a scalar or a sequence, or err says.
func notObject(unmarshal func(any) error, err error) error {
	var v any
	if unmarshal(&v) != nil {
		return err
	}
	switch v.(type) {
	case []any:
		return errors.New("expected an object, got array")
	case string:
		return errors.New("expected an object, got string")
	case bool:
		return errors.New("expected an object, got boolean")
	case int, int64, uint64, float64:
		return errors.New("expected an object, got number")
	}
	return err
}

// decodeYAML converts the YAML text data, whose first line is line base of the file, into objects. def and at
// are the inherited type and the path of a List item cut apart. parseErr is set when data does not parse;
// empty when it holds null.
func (c *converter) decodeYAML(data []byte, base int, origin string, def typeMeta, at string) (objs []object, empty bool, parseErr, err error) {
	a := anyDoc{def: def}
	if err := yaml.Unmarshal(data, &a); err != nil {
		return nil, false, err, nil
	}
	if !a.set && at == "" {
		return nil, true, nil, nil
	}
	objs, err = c.buildYAML(&a, yamlLines{data: data, base: base}, origin, at, nil)
	return objs, false, nil, err
}

// buildYAML converts a decoded document and, for a List, its items, appending them to out.
func (c *converter) buildYAML(a *anyDoc, lines yamlLines, origin, at string, out []object) ([]object, error) {
	if !a.set {
		return out, atPath(at, errors.New("expected an object, got null"))
	}
	if a.err != nil {
		err := relineYAML(a.err, lines)
		if a.kind != "" {
			err = fmt.Errorf("%s: %w", a.kind, err)
		}
		return out, atPath(at, err)
	}
	t := a.t.withDefaults(a.def)
	if err := t.check(); err != nil {
		return out, atPath(at, err)
	}
	if a.list {
		for i := range a.items {
			var err error
			if out, err = c.buildYAML(&a.items[i], lines, origin, itemPath(at, i), out); err != nil {
				return out, err
			}
		}
		return out, nil
	}
	o, err := c.convert(t, a.doc, origin)
	if err != nil {
		return out, atPath(at, err)
	}
	return append(out, o), nil
}

// yamlListType decodes the envelope of a List cut apart and returns the type its items inherit. ok is false
// if the envelope does not parse alone, holds a second items key, or is no List after all: the document is then
// decoded whole.
func yamlListType(envelope []byte) (def typeMeta, ok bool) {
	for off := 0; off < len(envelope); {
		end, next := lineAt(envelope, off)
		if isItemsKey(envelope[off:end]) {
			return typeMeta{}, false
		}
		off = next
	}
	var t typeMeta
	if yaml.Unmarshal(envelope, &t) != nil || t.check() != nil || !t.isList(true) {
		return typeMeta{}, false
	}
	return t.itemDefaults(), true
}

// yamlLines places the lines go-yaml reports for a text in the file the text was cut from: the text's first line
// is line base of the file. A zero yamlLines (base 0) places nothing: the text was made by kiem.
type yamlLines struct {
	data []byte
	base int
}

// fileLine returns the file's line of go-yaml's line n (counted from 1 at the text's first line). go-yaml breaks
// lines at CR, LF, CRLF, NEL, LS and PS, while a file's lines, as editors, kubectl's document splitter and
// splitYAML count them, end at LF only; and go-yaml reports an error at the end of the stream on the line after
// the text's last line break, which a text without a final one does not have. A line past the text is the line
// after its final LF, or its last line when it has none.
func (l yamlLines) fileLine(n int) int {
	lf := 0
	for i := 0; i < len(l.data) && n > 1; {
		switch c := l.data[i]; {
		case c == '\r' && i+1 < len(l.data) && l.data[i+1] == '\n':
			i, lf, n = i+2, lf+1, n-1
		case c == '\n':
			i, lf, n = i+1, lf+1, n-1
		case c == '\r':
			i, n = i+1, n-1
		case c == 0xC2 && i+1 < len(l.data) && l.data[i+1] == 0x85: // NEL
			i, n = i+2, n-1
		case c == 0xE2 && i+2 < len(l.data) && l.data[i+1] == 0x80 && (l.data[i+2] == 0xA8 || l.data[i+2] == 0xA9): // LS, PS
			i, n = i+3, n-1
		default:
			i++
		}
	}
	return l.base + lf
}

// readerErrors are the messages of go-yaml's reader, which checks the characters of the input before they are
// scanned and names no line.
var readerErrors = []string{"yaml: invalid leading UTF-8 octet", "yaml: incomplete UTF-8 octet sequence",
	"yaml: invalid trailing UTF-8 octet", "yaml: invalid length of a UTF-8 sequence", "yaml: invalid Unicode character",
	"yaml: control characters are not allowed"}

// badCharLine places an error of go-yaml's reader: the file's line of the text's first character that is not
// UTF-8 or that YAML does not allow (a control character, a surrogate, U+FFFE, U+FFFF). ok is false for any
// other error, or when no such character is found.
func (l yamlLines) badCharLine(err error) (line int, ok bool) {
	if !slices.Contains(readerErrors, err.Error()) {
		return 0, false
	}
	for i := 0; i < len(l.data); {
		r, size := utf8.DecodeRune(l.data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
		case r == 0x09, r == 0x0A, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85, r >= 0xA0 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
			i += size
			continue
		}
		return l.base + bytes.Count(l.data[:i], []byte("\n")), true
	}
	return 0, false
}

// relineYAML turns a go-yaml type error, whose "line N" counts from the first line it was given, into an error
// naming that line of the file (see yamlLines); a zero lines drops the line. go-yaml reports all the fields it
// could not decode: the first is enough.
func relineYAML(err error, lines yamlLines) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	msg := te.Errors[0]
	if n, rest, ok := cutLine(msg); ok {
		if lines.base == 0 {
			return errors.New(rest)
		}
		return fmt.Errorf("line %d: %s", lines.fileLine(n), rest)
	}
	return errors.New(msg)
}

// yamlErrorLine finds the line a go-yaml syntax error names ("yaml: line 7: …", counted from the first line it
// was given) and returns the file's line (see yamlLines) and the message without it. go-yaml has no typed syntax
// error, so its message is the only source. It counts the lines of scanner errors from 1 but those of parser
// errors from 0 (go-yaml v2's fail), so the latter, told apart by their fixed messages, are moved down one line.
func yamlErrorLine(err error, lines yamlLines) (line int, msg string, ok bool) {
	rest, found := strings.CutPrefix(err.Error(), "yaml: ")
	if !found {
		return 0, "", false
	}
	n, msg, ok := cutLine(rest)
	if !ok {
		return 0, "", false
	}
	switch msg {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
		"did not find expected <document start>", "did not find expected <stream-start>", "did not find expected key",
		"did not find expected node content", "found duplicate %TAG directive", "found duplicate %YAML directive",
		"found incompatible YAML document", "found undefined tag handle":
		n++
	}
	return lines.fileLine(n), "yaml: " + msg, true
}

// cutLine splits "line N: message".
func cutLine(s string) (n int, rest string, ok bool) {
	s, found := strings.CutPrefix(s, "line ")
	if !found {
		return 0, "", false
	}
	num, rest, found := strings.Cut(s, ": ")
	n, err := strconv.Atoi(num)
	if !found || err != nil || n < 1 {
		return 0, "", false
	}
	return n, rest, true
}
