package indexer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// yamlDoc is one document of a YAML stream.
type yamlDoc struct {
	data []byte // the document's text, separator lines excluded
	base int    // line number of data's first line: a decoder's "line N" is line base+N-1 of the file
	line int    // line number of the document's first line that is neither blank nor a comment
	// items is the offset in data of a top-level "items:" line, -1 if there is none: the document may be a
	// List whose items can be cut apart and decoded in parallel.
	items int
}

// splitYAML cuts a YAML stream into documents where kubectl does: at lines that start with "---" followed by
// nothing but spaces or a comment. Documents holding only blanks and comments are dropped. A line that starts
// with "---" followed by anything else is an error, as it is for kubectl.
func splitYAML(file string, data []byte, emit func(yamlDoc) error) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	doc := yamlDoc{base: 1, items: -1}
	start := 0
	flush := func(end int) error {
		if doc.line == 0 {
			return nil
		}
		doc.data = data[start:end]
		return emit(doc)
	}
	for off, n := 0, 1; off < len(data); n++ {
		end, next := lineAt(data, off)
		line := data[off:end]
		switch {
		case bytes.HasPrefix(line, []byte("---")):
			rest := bytes.TrimSpace(line[3:])
			if len(rest) > 0 && rest[0] != '#' {
				return &DocumentError{File: file, Line: n, Err: fmt.Errorf("invalid document separator %q", line)}
			}
			if err := flush(off); err != nil {
				return err
			}
			doc, start = yamlDoc{base: n + 1, items: -1}, next
		case doc.line == 0 && !isBlankOrComment(line):
			doc.line = n
		}
		if doc.items < 0 && isItemsKey(line) {
			doc.items = off - start
		}
		off = next
	}
	return flush(len(data))
}

// listItem is one item of a List cut apart, as text: a sequence entry, "- " included.
type listItem struct {
	data []byte
	line int // line of data's first line, counted from the document's first line (0)
}

// listItems cuts the items of a List document written in block style, as kubectl and most tools write it:
// "items:" at column 0 followed by one "- " entry per item, all at the same indentation. It returns the document
// without its items (the envelope, holding apiVersion and kind), the items, and the column of their dashes; ok
// is false when the layout is anything else.
//
// The cut is exact whenever every piece parses alone: a quoted scalar that spans a cut leaves the piece before
// the cut unterminated, block and plain scalars cannot hold a less indented line, and an alias to an anchor of
// another item does not resolve. The caller decodes the whole document instead when a piece does not parse.
// An item with a line indented less than its content (the column after "- ") but more than its dash is not cut
// either: in the List such a line ends the item's content, an error where nothing else may follow, while alone,
// with its dash blanked, the item may parse (found by FuzzLoad, testdata/fuzz/FuzzLoad/7e6814e07fff4489). Nor is
// a List with a comment between "items:" and its first item, which would be in no piece.
func listItems(doc []byte, itemsOff int) (envelope []byte, items []listItem, dash int, ok bool) {
	_, off := lineAt(doc, itemsOff)
	line := bytes.Count(doc[:off], []byte("\n"))
	indent, end, start := -1, len(doc), 0
	content := -1 // the column of the current item's content; -1 until a line holds it
	for ; off < len(doc); line++ {
		lineEnd, next := lineAt(doc, off)
		text := doc[off:lineEnd]
		n := indentation(text)
		if isBlankOrComment(text[n:]) {
			if indent < 0 && len(bytes.Trim(text, " \r")) > 0 {
				// A comment before the first item would be in no piece, and go-yaml rejects a comment too (one
				// that is not UTF-8, or holds control characters; FuzzLoad, testdata/fuzz/FuzzLoad/de2b2fb8452202ff).
				return nil, nil, 0, false
			}
			off = next
			continue
		}
		dash := text[n] == '-' && (n+1 == len(text) || text[n+1] == ' ' || text[n+1] == '\r')
		if indent < 0 {
			if !dash {
				return nil, nil, 0, false
			}
			indent = n
		}
		if n < indent || (n == indent && !dash) {
			if n != 0 {
				return nil, nil, 0, false
			}
			end = off
			break
		}
		switch {
		case n == indent:
			if len(items) > 0 {
				items[len(items)-1].data = doc[start:off]
			}
			items = append(items, listItem{line: line})
			start = off
			content = -1
			if after := n + 1 + indentation(text[n+1:]); !isBlankOrComment(text[after:]) {
				content = after
			}
		case content < 0:
			content = n
		case n < content:
			return nil, nil, 0, false
		}
		off = next
	}
	if len(items) == 0 {
		return nil, nil, 0, false
	}
	items[len(items)-1].data = doc[start:end]
	envelope = append(append(make([]byte, 0, itemsOff+len(doc)-end), doc[:itemsOff]...), doc[end:]...)
	return envelope, items, indent, true
}

// blankDash copies a sequence entry with its dash, at column col of the first line, turned into a space: the
// entry becomes a mapping whose lines all keep their columns, so that it decodes alone like a document.
func blankDash(entry []byte, col int) []byte {
	out := bytes.Clone(entry)
	out[col] = ' '
	return out
}

// lineAt returns the end of the line starting at off (before its '\n') and the start of the next line.
func lineAt(data []byte, off int) (end, next int) {
	i := bytes.IndexByte(data[off:], '\n')
	if i < 0 {
		return len(data), len(data)
	}
	return off + i, off + i + 1
}

// indentation returns the number of spaces that start line.
func indentation(line []byte) int {
	n := 0
	for n < len(line) && line[n] == ' ' {
		n++
	}
	return n
}

func isBlankOrComment(line []byte) bool {
	for _, c := range line {
		switch c {
		case ' ', '\t', '\r':
			continue
		case '#':
			return true
		}
		return false
	}
	return true
}

func isItemsKey(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("items:"))
	return ok && isBlankOrComment(rest) && bytes.IndexByte(rest, '#') < 0
}

// jsonDoc is one top-level value of a JSON stream.
type jsonDoc struct {
	data []byte
	line int // line number of the value's first byte
}

// splitJSON reads the concatenated JSON values of r with a streaming decoder. Values are returned raw, validated
// but not decoded.
func splitJSON(file string, r io.Reader, next func() error, emit func(jsonDoc) error) error {
	lr := &lineReader{r: r}
	dec := json.NewDecoder(lr)
	for {
		if err := next(); err != nil {
			return err
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case lr.err != nil:
			return fmt.Errorf("read %s: %w", file, lr.err)
		case err != nil:
			return &DocumentError{File: file, Line: lr.errorLine(dec, err), Err: err}
		}
		end := lr.linesBefore(dec)
		if err := emit(jsonDoc{data: raw, line: end - bytes.Count(raw, []byte("\n")) + 1}); err != nil {
			return err
		}
	}
}

// lineReader counts the newlines it hands to a json.Decoder, so that the line of the decoder's position is the
// count minus the newlines the decoder holds buffered. Reads are kept small so that this remainder stays small.
type lineReader struct {
	r     io.Reader
	lines int
	err   error // the first read error other than io.EOF
}

const maxRead = 32 << 10

func (l *lineReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p[:min(len(p), maxRead)])
	l.lines += bytes.Count(p[:n], []byte("\n"))
	if err != nil && !errors.Is(err, io.EOF) && l.err == nil {
		l.err = err
	}
	return n, err
}

// linesBefore returns the number of newlines before the decoder's input offset.
func (l *lineReader) linesBefore(dec *json.Decoder) int {
	var c newlineCounter
	// Buffered is a bytes.Reader, whose WriteTo hands its slice over without copying it.
	_, _ = io.Copy(&c, dec.Buffered())
	return l.lines - c.n
}

// errorLine returns the line of a decoding error: the byte a syntax error names, else the start of the value
// that could not be read (a value cut short by the end of the file).
func (l *lineReader) errorLine(dec *json.Decoder, err error) int {
	before := l.linesBefore(dec)
	rest, _ := io.ReadAll(dec.Buffered())
	at := len(rest) - len(bytes.TrimLeft(rest, " \t\r\n"))
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// The decoder's offset counts bytes from the start of the stream, up to and including the bad one.
		at = int(syn.Offset-dec.InputOffset()) - 1
	}
	at = max(0, min(at, len(rest)))
	return before + bytes.Count(rest[:at], []byte("\n")) + 1
}

// newlineCounter is an io.Writer that counts the newlines written to it.
type newlineCounter struct{ n int }

func (c *newlineCounter) Write(p []byte) (int, error) {
	c.n += bytes.Count(p, []byte("\n"))
	return len(p), nil
}
