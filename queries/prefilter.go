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
		args := call.Args()
		var verbs []string
		switch a := args[0]; a.Kind() {
		case celast.LiteralKind:
			s, ok := a.AsLiteral().(types.String)
			if !ok {
				complete = false
				return
			}
			verbs = []string{string(s)}
		case celast.ListKind:
			for _, el := range a.AsList().Elements() {
				s, ok := literalString(el)
				if !ok {
					complete = false
					return
				}
				verbs = append(verbs, s)
			}
		default:
			complete = false
			return
		}
		target, ok := literalString(args[1])
		if !ok {
			complete = false
			return
		}
		var name string
		if kind == askNamed {
			if name, ok = literalString(args[2]); !ok {
				complete = false
				return
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
	}))
	return out, complete
}

func literalString(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}
