package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// piece is a unit of decoding: a whole document, or one item of a List the reader cut apart.
type piece struct {
	file string
	line int // line where the document starts: the objects' origin and the place of errors
	base int // line of data's first line, to place the lines go-yaml reports
	data []byte
	yaml bool
	// For an item of a List cut apart: its index, the type it inherits from a typed List, and the List.
	item int
	def  typeMeta
	list *listDoc

	// Results, written by the worker that decodes the piece.
	objs     []object
	empty    bool // a null document, which kubectl ignores too
	fallback bool // the item did not parse alone: the List must be decoded whole
	err      error
}

// listDoc is a List document whose items were cut apart. For YAML it holds the column of the items' dashes,
// which the workers blank (see blankDash), and the List as one piece, decoded when an item does not parse alone;
// a JSON List is validated before it is cut.
type listDoc struct {
	dash  int
	whole piece
}

func (p *piece) origin() string { return p.file + ":" + strconv.Itoa(p.line) }

// run decodes the piece, recording the outcome in it.
func (c *converter) run(p *piece) {
	at := ""
	if p.list != nil {
		at = itemPath("", p.item)
	}
	if !p.yaml {
		if p.list == nil && jsonType(p.data) == "null" {
			p.empty = true
			return
		}
		objs, err := c.decodeJSON(p.data, p.origin(), p.def, at, nil)
		if err != nil {
			p.err = &DocumentError{File: p.file, Line: p.line, Err: err}
		}
		p.objs = objs
		return
	}
	data := p.data
	if p.list != nil {
		data = blankDash(data, p.list.dash)
	}
	objs, empty, parseErr, err := c.decodeYAML(data, p.base, p.origin(), p.def, at)
	switch {
	case parseErr != nil && p.list != nil:
		p.fallback = true
	case parseErr != nil:
		lines := yamlLines{data: data, base: p.base}
		if line, msg, ok := yamlErrorLine(parseErr, lines); ok {
			p.err = &DocumentError{File: p.file, Line: line, Err: errors.New(msg)}
		} else if line, ok := lines.badCharLine(parseErr); ok {
			p.err = &DocumentError{File: p.file, Line: line, Err: parseErr}
		} else {
			p.err = &DocumentError{File: p.file, Line: p.line, Err: parseErr}
		}
	case err != nil:
		p.err = &DocumentError{File: p.file, Line: p.line, Err: err}
	}
	p.objs, p.empty = objs, empty
}

// reader reads files and cuts them into pieces, sent in batches in input order.
type reader struct {
	fsys  fileSystem
	cut   bool              // cut YAML Lists into items
	send  func(*batch) bool // false once ctx is done
	files int
	cur   *batch
	size  int
}

func (r *reader) read(ctx context.Context, files []string) {
	for _, name := range files {
		if err := r.file(ctx, name); err != nil {
			if ctx.Err() == nil {
				r.fail(err)
			}
			return
		}
	}
	r.flush()
}

func (r *reader) file(ctx context.Context, name string) error {
	f, err := r.fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	r.files++
	if isJSONFile(name) {
		return splitJSON(name, f, ctx.Err, func(d jsonDoc) error {
			if def, items, ok := jsonListItems(d.data); ok && len(items) > 0 {
				list := &listDoc{}
				for i, item := range items {
					if !r.add(&piece{file: name, line: d.line, data: item, item: i, def: def, list: list}) {
						return ctx.Err()
					}
				}
				return nil
			}
			if !r.add(&piece{file: name, line: d.line, data: d.data, item: -1}) {
				return ctx.Err()
			}
			return nil
		})
	}
	data, err := readAll(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return splitYAML(name, data, func(d yamlDoc) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		whole := piece{file: name, line: d.line, base: d.base, data: d.data, yaml: true, item: -1}
		if r.cut && d.items >= 0 {
			if env, items, dash, ok := listItems(d.data, d.items); ok {
				if def, ok := yamlListType(env); ok {
					list := &listDoc{dash: dash, whole: whole}
					for i, item := range items {
						p := &piece{file: name, line: d.line, base: d.base + item.line, data: item.data, yaml: true,
							item: i, def: def, list: list}
						if !r.add(p) {
							return ctx.Err()
						}
					}
					return nil
				}
			}
		}
		if !r.add(&whole) {
			return ctx.Err()
		}
		return nil
	})
}

// add queues p; it returns false once ctx is done.
func (r *reader) add(p *piece) bool {
	if r.cur == nil {
		r.cur = &batch{done: make(chan struct{})}
	}
	r.cur.pieces = append(r.cur.pieces, p)
	r.size += len(p.data)
	if r.size >= batchBytes || len(r.cur.pieces) >= batchPieces {
		return r.flush()
	}
	return true
}

func (r *reader) flush() bool {
	b := r.cur
	r.cur, r.size = nil, 0
	return b == nil || r.send(b)
}

// fail sends what was read so far, then err at its place in the input order.
func (r *reader) fail(err error) {
	if !r.flush() {
		return
	}
	done := make(chan struct{})
	close(done)
	r.send(&batch{err: err, done: done})
}

// readAll reads a whole file into one buffer sized from its length, without the copies of growing.
func readAll(f fs.File) ([]byte, error) {
	size := 0
	if fi, err := f.Stat(); err == nil {
		size = int(fi.Size())
	}
	data := make([]byte, 0, size+512)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}
