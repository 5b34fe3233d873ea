package filters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kiem-io/kiem/graph"
)

// Store is where filters are kept: *graph.Store's side records.
type Store interface {
	ViewSide(ctx context.Context, fn func(*graph.SideTxn) error) error
	UpdateSide(ctx context.Context, fn func(*graph.SideTxn) error) error
}

// Key layout (side records):
//
//	filter/<id>   a saved filter (JSON Filter)
const keyPrefix = "filter/"

func key(id string) []byte { return []byte(keyPrefix + id) }

// Save validates f and stores it, replacing the filter of the same ID (Created is kept). It returns the
// filter as stored.
func Save(ctx context.Context, st Store, f Filter, now time.Time) (Filter, error) {
	if _, err := Compile(f); err != nil {
		return Filter{}, err
	}
	if f.Source == "" {
		f.Source = "api"
	}
	err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		f.Created, f.Updated = now, now
		if old, err := tx.Get(key(f.ID)); err == nil {
			var prev Filter
			if json.Unmarshal(old, &prev) == nil {
				f.Created = prev.Created
			}
		} else if !errors.Is(err, graph.ErrNotFound) {
			return err
		}
		v, err := json.Marshal(f)
		if err != nil {
			return err
		}
		return tx.Set(key(f.ID), v)
	})
	if err != nil {
		return Filter{}, fmt.Errorf("save filter %s: %w", f.ID, err)
	}
	return f, nil
}

// Delete removes a filter; graph.ErrNotFound when there is none.
func Delete(ctx context.Context, st Store, id string) error {
	err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		if _, err := tx.Get(key(id)); err != nil {
			return err
		}
		return tx.Delete(key(id))
	})
	if err != nil {
		return fmt.Errorf("delete filter %s: %w", id, err)
	}
	return nil
}

// List returns every saved filter, by ID.
func List(ctx context.Context, st Store) ([]Filter, error) {
	var out []Filter
	err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		return tx.Scan([]byte(keyPrefix), nil, false, func(_, val []byte) (bool, error) {
			var f Filter
			if err := json.Unmarshal(val, &f); err != nil {
				return false, err
			}
			out = append(out, f)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list filters: %w", err)
	}
	return out, nil
}

// ReadFile reads filters declared in a YAML file (a list, or {filters: [...]}) for GitOps. Every filter is
// validated; errors about the file's content name the file and the line, and wrap ErrInvalid.
func ReadFile(path string) ([]Filter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(line int, format string, a ...any) error {
		return &fileError{path: path, line: line, msg: fmt.Sprintf(format, a...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &fileError{path: path, msg: strings.TrimPrefix(err.Error(), "yaml: "), err: err}
		if n, rest, ok := strings.Cut(strings.TrimPrefix(e.msg, "line "), ": "); ok && strings.HasPrefix(e.msg, "line ") {
			if line, err := strconv.Atoi(n); err == nil && line > 0 {
				e.line, e.msg = line, rest
			}
		}
		return nil, e
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	list := doc.Content[0]
	if list.Kind == yaml.MappingNode {
		list = nil
		for i := 0; i+1 < len(doc.Content[0].Content); i += 2 {
			if k := doc.Content[0].Content[i]; k.Value == "filters" {
				list = doc.Content[0].Content[i+1]
			} else {
				return nil, bad(k.Line, "unknown field %q (want filters)", k.Value)
			}
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, bad(doc.Content[0].Line, "want a list of filters")
	}
	var out []Filter
	seen := map[string]int{}
	for _, n := range list.Content {
		if n.Kind != yaml.MappingNode {
			return nil, bad(n.Line, "want a filter (a mapping)")
		}
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; !slices.Contains(fileFields, k.Value) {
				return nil, bad(k.Line, "unknown field %q (one of %s)", k.Value, strings.Join(fileFields, ", "))
			}
		}
		var f Filter
		if err := n.Decode(&f); err != nil {
			return nil, bad(n.Line, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if line, dup := seen[f.ID]; dup {
			return nil, bad(n.Line, "filter %s already declared at line %d", f.ID, line)
		}
		seen[f.ID] = n.Line
		if _, err := Compile(f); err != nil {
			return nil, &fileError{path: path, line: n.Line, msg: err.Error(), err: err}
		}
		f.Source = path
		out = append(out, f)
	}
	return out, nil
}

// fileError is what is wrong with a filters file, and where: "path:line: message", or "path: message" when the
// YAML parser gives no line. It wraps ErrInvalid (and err, when there is one).
type fileError struct {
	path string
	line int
	msg  string
	err  error
}

func (e *fileError) Error() string {
	if e.line == 0 {
		return e.path + ": " + e.msg
	}
	return e.path + ":" + strconv.Itoa(e.line) + ": " + e.msg
}

func (e *fileError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.err}
}

// fileFields are the fields a filter file may set.
var fileFields = []string{"id", "name", "description", "owner", "target", "kind", "expression"}

// Declare stores the filters of a file, replacing those an earlier start declared from the same file and
// removing those it no longer declares. Filters saved through the API are left alone.
func Declare(ctx context.Context, st Store, path string, fs []Filter, now time.Time) error {
	current, err := List(ctx, st)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if _, err := Save(ctx, st, f, now); err != nil {
			return err
		}
	}
	for _, f := range current {
		if f.Source == path && !slices.ContainsFunc(fs, func(g Filter) bool { return g.ID == f.ID }) {
			if err := Delete(ctx, st, f.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
