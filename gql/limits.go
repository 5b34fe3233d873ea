package gql

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// unpagedList is the cost multiplier of a list field without first: rules of a role, subjects of a binding, paths
// of an answer. They are short in practice; counting them as ten keeps nesting them honest.
const unpagedList = 10

// limits rejects an operation deeper than maxDepth or costlier than maxCost before it runs. The cost of a field is
// one plus the cost of its selections, times its page size (the first argument, or its default) for paged fields
// and times unpagedList for other lists, so that a cost bounds the work a query can ask for, nesting included.
// gqlgen has a complexity limit that ignores page sizes unless every field is given a function, and no depth
// limit at all: this walks the operation once for both.
type limits struct {
	maxDepth, maxCost int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = limits{}

func (limits) ExtensionName() string                          { return "KiemLimits" }
func (limits) Validate(schema graphql.ExecutableSchema) error { return nil }

func (l limits) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	w := walker{doc: oc.Doc, vars: oc.Variables}
	cost, depth := w.selections(oc.Operation.SelectionSet, 1, false, map[string]bool{})
	if depth > l.maxDepth {
		return &gqlerror.Error{Message: fmt.Sprintf("query depth %d exceeds the limit of %d", depth, l.maxDepth),
			Extensions: map[string]any{"code": "QUERY_TOO_DEEP"}}
	}
	if cost > l.maxCost {
		return &gqlerror.Error{Message: fmt.Sprintf("query cost %d exceeds the limit of %d (page sizes multiply: ask for smaller pages or fewer nested lists)", cost, l.maxCost),
			Extensions: map[string]any{"code": "QUERY_TOO_COMPLEX"}}
	}
	return nil
}

type walker struct {
	doc  *ast.QueryDocument
	vars map[string]any
}

// capCost keeps sums from overflowing: anything beyond it is over every limit anyway.
const capCost = 1 << 40

// selections returns the cost and depth of a selection set; fragments in visiting guards against fragment cycles
// (validation refuses them, but the walk must not depend on it).
// paged says the set is a paged field's: its lists (nodes, edges) are the page already counted.
func (w walker) selections(set ast.SelectionSet, depth int, paged bool, visiting map[string]bool) (cost, maxDepth int) {
	maxDepth = depth - 1
	for _, sel := range set {
		var c, d int
		switch s := sel.(type) {
		case *ast.Field:
			c, d = w.field(s, depth, paged, visiting)
		case *ast.InlineFragment:
			c, d = w.selections(s.SelectionSet, depth, paged, visiting)
		case *ast.FragmentSpread:
			if visiting[s.Name] {
				continue
			}
			def := s.Definition
			if def == nil && w.doc != nil {
				def = w.doc.Fragments.ForName(s.Name)
			}
			if def == nil {
				continue
			}
			visiting[s.Name] = true
			c, d = w.selections(def.SelectionSet, depth, paged, visiting)
			delete(visiting, s.Name)
		}
		cost = min(cost+c, capCost)
		maxDepth = max(maxDepth, d)
	}
	return cost, maxDepth
}

func (w walker) field(f *ast.Field, depth int, inPage bool, visiting map[string]bool) (cost, maxDepth int) {
	if len(f.SelectionSet) == 0 {
		return 1, depth
	}
	mult, paged := 1, false
	if f.Definition != nil {
		if f.Definition.Arguments.ForName("first") != nil {
			paged = true
			if n, ok := asInt(f.ArgumentMap(w.vars)["first"]); ok {
				mult = max(n, 1)
			}
		} else if f.Definition.Type.Elem != nil && !inPage {
			mult = unpagedList
		}
	}
	child, d := w.selections(f.SelectionSet, depth+1, paged, visiting)
	return min(1+mult*child, capCost), d
}

func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	}
	return 0, false
}
