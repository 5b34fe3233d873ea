package queries

import (
	"reflect"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/kiem-io/kiem/graph"
)

// probe is one permission question a rule's expression asks with constant arguments.
type probe struct {
	action graph.Action
	some   bool
}

// permissionFunctions are the Subject functions that ask the engine.
var permissionFunctions = map[string]askKind{"can": askCan, "canSome": askSome, "canNamed": askNamed, "canURL": askURL}

// probesOf lists the permission questions expr asks. complete is false when one of them has an argument that is
// not a constant: the rule cannot be skipped then.
func probesOf(ast *cel.Ast) (out []probe, complete bool) {
	complete = true
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		kind, ok := permissionFunctions[call.FunctionName()]
		if !ok || !call.IsMemberFunction() {
			return
		}
		ps, ok := callProbes(kind, call.Args(), literalString)
		out = append(out, ps...)
		complete = complete && ok
	}))
	return out, complete
}

// callProbes returns the questions one call of a permission function asks, resolving its constant arguments
// with str; ok is false when one is not constant.
func callProbes(kind askKind, args []celast.Expr, str func(celast.Expr) (string, bool)) (out []probe, ok bool) {
	var verbs []string
	switch a := args[0]; a.Kind() {
	case celast.ListKind:
		for _, el := range a.AsList().Elements() {
			s, ok := str(el)
			if !ok {
				return nil, false
			}
			verbs = append(verbs, s)
		}
	default:
		s, ok := str(a)
		if !ok {
			return nil, false
		}
		verbs = []string{s}
	}
	target, ok := str(args[1])
	if !ok {
		return nil, false
	}
	var name string
	if kind == askNamed {
		if name, ok = str(args[2]); !ok {
			return nil, false
		}
	}
	for _, verb := range verbs {
		var a graph.Action
		if kind == askURL {
			a = graph.Action{Verb: verb, NonResourceURL: target}
		} else {
			group, resource, sub := parseResource(target)
			a = graph.Action{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Name: name}
		}
		out = append(out, probe{a, kind == askSome})
	}
	return out, true
}

func literalString(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// readsOnly reports whether the expression reads no variable but those named (iteration variables aside).
func readsOnly(ast *cel.Ast, vars ...string) bool {
	allowed := map[string]bool{}
	for _, v := range vars {
		allowed[v] = true
	}
	ok := true
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			allowed[c.IterVar()], allowed[c.AccuVar()] = true, true
			if c.HasIterVar2() {
				allowed[c.IterVar2()] = true
			}
		}
	}))
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.IdentKind && !allowed[e.AsIdent()] {
			ok = false
		}
	}))
	return ok
}

// guard is one conjunct of a rule's match that reads one string or bool field of a model variable and compares
// it with a constant (`subject.kind == 'Group'`, `pod.tokenMounted`): when it fails, the whole match fails, and
// testing it in Go spares running CEL on the many objects a rule is not about.
type guard struct {
	variable string
	field    []int // reflect field index path from the variable's struct
	str      string
	isBool   bool
	want     bool // for a string: equal (true) or unequal; for a bool: the value wanted
}

// modelTypes are the Go types of the variables that are model structs.
var modelTypes = map[string]reflect.Type{
	"subject": reflect.TypeFor[Subject](), "binding": reflect.TypeFor[Binding](), "role": reflect.TypeFor[Role](),
	"serviceAccount": reflect.TypeFor[ServiceAccount](), "pod": reflect.TypeFor[Pod](), "secret": reflect.TypeFor[Secret](),
	"node": reflect.TypeFor[Node](), "namespaceObject": reflect.TypeFor[Namespace](), "rule": reflect.TypeFor[PolicyRule](),
}

// guardsOf returns the guards among the top-level conjuncts of a match.
func guardsOf(ast *cel.Ast) []guard {
	conj := Conjuncts(ast.NativeRep().Expr())
	var out []guard
	for _, e := range conj {
		want := true
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalNot {
			e, want = e.AsCall().Args()[0], false
		}
		if g, ok := fieldOf(e, reflect.Bool); ok {
			g.isBool, g.want = true, want
			out = append(out, g)
			continue
		}
		if e.Kind() != celast.CallKind || !want {
			continue
		}
		call := e.AsCall()
		if fn := call.FunctionName(); fn != operators.Equals && fn != operators.NotEquals {
			continue
		}
		for i := range 2 {
			lit, ok := literalString(call.Args()[1-i])
			if !ok {
				continue
			}
			if g, ok := fieldOf(call.Args()[i], reflect.String); ok {
				g.str, g.want = lit, call.FunctionName() == operators.Equals
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// fieldOf resolves var.field(.field…) to a guard on a field of the wanted kind.
func fieldOf(e celast.Expr, kind reflect.Kind) (guard, bool) {
	f, ok := SelectedField(e, func(v string) (reflect.Type, bool) { t, ok := modelTypes[v]; return t, ok })
	if !ok || f.Type.Kind() != kind {
		return guard{}, false
	}
	return guard{variable: f.Variable, field: f.Index}, true
}

// Conjuncts returns the terms of e's top-level &&, in order (e itself when it is no &&).
func Conjuncts(e celast.Expr) []celast.Expr {
	if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
		var out []celast.Expr
		for _, a := range e.AsCall().Args() {
			out = append(out, Conjuncts(a)...)
		}
		return out
	}
	return []celast.Expr{e}
}

// Field is a field of a Go model that a CEL expression selects (see SelectedField).
type Field struct {
	Variable string
	// Path names the fields selected, as CEL does ("roleRef", "name").
	Path []string
	// Index is the reflect index path of the field in the variable's struct, and Type its type.
	Index []int
	Type  reflect.Type
}

// SelectedField resolves a selection variable.a.b… of CEL over Go models whose fields carry `cel` tags (as
// ext.NativeTypes reads them); model gives the struct type of a variable. ok is false for any other expression
// (a has() test included).
func SelectedField(e celast.Expr, model func(variable string) (reflect.Type, bool)) (Field, bool) {
	var f Field
	for e.Kind() == celast.SelectKind {
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return Field{}, false
		}
		f.Path = append([]string{sel.FieldName()}, f.Path...)
		e = sel.Operand()
	}
	if e.Kind() != celast.IdentKind || len(f.Path) == 0 {
		return Field{}, false
	}
	f.Variable = e.AsIdent()
	t, ok := model(f.Variable)
	if !ok {
		return Field{}, false
	}
	for _, n := range f.Path {
		if t.Kind() != reflect.Struct {
			return Field{}, false
		}
		found := false
		for i := range t.NumField() {
			if sf := t.Field(i); sf.IsExported() && sf.Tag.Get("cel") == n {
				f.Index, t, found = append(f.Index, i), sf.Type, true
				break
			}
		}
		if !found {
			return Field{}, false
		}
	}
	f.Type = t
	return f, true
}

// guardsHold reports whether every guard of the rule holds on the variables; a guard it cannot read (a variable
// that is absent or not its model) holds, leaving the answer to CEL.
func (r *Rule) guardsHold(vars map[string]any) bool {
	for i := range r.guards {
		g := &r.guards[i]
		v := reflect.ValueOf(vars[g.variable])
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Type() != modelTypes[g.variable] {
			continue
		}
		f := v.Elem().FieldByIndex(g.field)
		if g.isBool && f.Bool() != g.want || !g.isBool && (f.String() == g.str) != g.want {
			return false
		}
	}
	return true
}
