package queries

import (
	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
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
