package indexer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiem-io/kiem/graph"
)

// batch is a run of consecutive pieces, or an error met while reading, at its place in the input order.
type batch struct {
	pieces []*piece
	err    error
	done   chan struct{} // closed once every piece is decoded
}

func (b *batch) decode(ctx context.Context, conv *converter) {
	for _, p := range b.pieces {
		if err := ctx.Err(); err != nil {
			b.err = err
			return
		}
		conv.run(p)
	}
}

// merger assembles decoded batches in input order into the result.
type merger struct {
	conv  *converter
	stats *Stats
	objs  graph.Objects
	seen  map[graph.ObjectRef]slot
}

// slot is where an object loaded earlier sits in its kind's slice, and where it came from.
type slot struct {
	index  int
	origin string
}

func (m *merger) run(ctx context.Context, ordered <-chan *batch) error {
	for b := range ordered {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
		for _, p := range b.pieces {
			if err := m.piece(p); err != nil {
				return err
			}
		}
	}
	// The reader stops early, without an error batch, only when ctx is done.
	return ctx.Err()
}

// errCutList reports a List whose items did not all parse alone although the List parses whole: the load is
// done again without cutting Lists apart.
var errCutList = errors.New("list item does not parse alone")

func (m *merger) piece(p *piece) error {
	if p.list != nil && p.yaml && (p.fallback || p.err != nil) {
		// The whole document decides: either it is malformed (maybe only in a later item: a List that does not
		// parse has no items to blame, found by FuzzLoad, testdata/fuzz/FuzzLoad/4111520d9e43dabd), or an item
		// needs another (an alias to an anchor), and what was merged of the List so far cannot stand.
		whole := p.list.whole
		m.conv.run(&whole)
		if whole.err != nil {
			return whole.err
		}
		return errCutList
	}
	if p.err != nil {
		return p.err
	}
	if (p.list == nil && !p.empty) || (p.list != nil && p.item == 0) {
		m.stats.Documents++
	}
	m.add(p.objs, p.origin())
	return nil
}

// add appends objects to the result; an object seen before is replaced where it stands.
func (m *merger) add(objs []object, origin string) {
	for _, o := range objs {
		if o.value == nil {
			m.stats.Skipped[o.skipped]++
			continue
		}
		ref := o.value.Ref()
		at := -1
		if prev, ok := m.seen[ref]; ok {
			at = prev.index
			m.stats.Duplicates = append(m.stats.Duplicates,
				fmt.Sprintf("%s at %s replaces %s", ref, origin, prev.origin))
		}
		switch v := o.value.(type) {
		case *graph.Namespace:
			at = put(&m.objs.Namespaces, at, v)
		case *graph.ServiceAccount:
			at = put(&m.objs.ServiceAccounts, at, v)
		case *graph.Role:
			if v.Kind == graph.KindRole {
				at = put(&m.objs.Roles, at, v)
			} else {
				at = put(&m.objs.ClusterRoles, at, v)
			}
		case *graph.Binding:
			if v.Kind == graph.KindRoleBinding {
				at = put(&m.objs.RoleBindings, at, v)
			} else {
				at = put(&m.objs.ClusterRoleBindings, at, v)
			}
		case *graph.Pod:
			at = put(&m.objs.Pods, at, v)
		case *graph.Node:
			at = put(&m.objs.Nodes, at, v)
		case *graph.Secret:
			at = put(&m.objs.Secrets, at, v)
		}
		m.seen[ref] = slot{index: at, origin: origin}
	}
}

// put stores *v at index at of *s, or appends it when at is -1, and returns its index.
func put[T any](s *[]T, at int, v *T) int {
	if at < 0 {
		*s = append(*s, *v)
		return len(*s) - 1
	}
	(*s)[at] = *v
	return at
}
