package queries

import (
	"context"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/parser"
)

// A subject rule is evaluated once per principal and scope where a binding names it: on a large cluster, a
// hundred thousand times or more. The usual rule is a boolean formula over permission questions with constant
// arguments and tests of the scope; the engine compiles such expressions to a nativeRule, which answers the
// questions from the evaluation's bitsets and runs each part that reads only the scope once per scope, with the
// same left-to-right short-circuit and the same evidence as CEL. Expressions of any other shape run in CEL.
type nativeRule struct {
	match      nexpr
	severities []nexpr
	// probes are every question the expressions ask: when the subject's own grants in a scope answer none, the
	// rule cannot make a finding there.
	probes bitset
	ids    []int
}

// nexpr is a compiled boolean expression.
type nexpr interface {
	eval(st *nstate) (bool, error)
}

// nstate is what a compiled expression reads: the subject's evaluation, and its scope's variables for the parts
// that read only those.
type nstate struct {
	ctx   context.Context
	ev    *evaluation
	scope string
	// scopeVars returns the variables of the scope (scope, namespaceObject).
	scopeVars func() map[string]any
	// memo keeps the value of each scope-only part per scope; it belongs to one worker.
	memo map[scopeMemoKey]bool
}

type scopeMemoKey struct {
	node  *nScope
	scope string
}

type nConst bool

func (c nConst) eval(*nstate) (bool, error) { return bool(c), nil }

type nAnd []nexpr

func (n nAnd) eval(st *nstate) (bool, error) {
	for _, t := range n {
		v, err := t.eval(st)
		if err != nil || !v {
			return false, err
		}
	}
	return true, nil
}

type nOr []nexpr

func (n nOr) eval(st *nstate) (bool, error) {
	for _, t := range n {
		v, err := t.eval(st)
		if err != nil || v {
			return v, err
		}
	}
	return false, nil
}

type nNot struct{ x nexpr }

func (n nNot) eval(st *nstate) (bool, error) {
	v, err := n.x.eval(st)
	return !v, err
}

// nProbes is one permission function call: any of its questions (one per verb) answered yes; like the CEL
// function, every question is asked, so every grant that answers is evidence.
type nProbes []int

func (n nProbes) eval(st *nstate) (bool, error) {
	any := false
	for _, id := range n {
		if st.ev.askProbe(id) {
			any = true
		}
	}
	return any, nil
}

// nScopeIs is scope == value (or !=, with not).
type nScopeIs struct {
	value string
	not   bool
}

func (n nScopeIs) eval(st *nstate) (bool, error) { return (st.scope == n.value) != n.not, nil }

// nScope is a part of the expression that reads only the scope and its Namespace object, run in CEL once per
// scope.
type nScope struct{ prg cel.Program }

func (n *nScope) eval(st *nstate) (bool, error) {
	k := scopeMemoKey{n, st.scope}
	if v, ok := st.memo[k]; ok {
		return v, nil
	}
	v, err := evalBool(st.ctx, n.prg, st.scopeVars())
	if err != nil {
		return false, err
	}
	st.memo[k] = v
	return v, nil
}

// compileNative compiles a subject rule's match and severities, or reports that one of them has another shape.
func compileNative(r *Rule, t *probeTable) (*nativeRule, bool) {
	if r.matchAST == nil || r.env == nil {
		return nil, false
	}
	c := &nativeCompiler{table: t, env: r.env, vars: map[string]string{}}
	c.ast = r.matchAST
	m, ok := c.compile(r.matchAST.NativeRep().Expr())
	if !ok {
		return nil, false
	}
	nr := &nativeRule{match: m}
	for _, a := range r.severityASTs {
		c.ast = a
		s, ok := c.compile(a.NativeRep().Expr())
		if !ok {
			return nil, false
		}
		nr.severities = append(nr.severities, s)
	}
	if r.message != nil {
		// A message may ask questions too; its evidence would be missed by the prefilter below.
		if ps, complete := probesOf(r.messageAST); len(ps) > 0 || !complete {
			return nil, false
		}
	}
	nr.ids = c.ids
	return nr, true
}

type nativeCompiler struct {
	table *probeTable
	env   *cel.Env
	ast   *cel.Ast
	// vars binds the iteration variables of unrolled comprehensions to their constant values.
	vars map[string]string
	ids  []int
}

func (c *nativeCompiler) compile(e celast.Expr) (nexpr, bool) {
	switch e.Kind() {
	case celast.LiteralKind:
		if b, ok := e.AsLiteral().(types.Bool); ok {
			return nConst(bool(b)), true
		}
	case celast.CallKind:
		if n, ok := c.compileCall(e.AsCall()); ok {
			return n, true
		}
	case celast.ComprehensionKind:
		if n, ok := c.compileExists(e.AsComprehension()); ok {
			return n, true
		}
	}
	return c.compileScope(e)
}

func (c *nativeCompiler) compileCall(call celast.CallExpr) (nexpr, bool) {
	args := call.Args()
	switch fn := call.FunctionName(); {
	case fn == operators.LogicalAnd || fn == operators.LogicalOr:
		var terms []nexpr
		for _, a := range args {
			t, ok := c.compile(a)
			if !ok {
				return nil, false
			}
			// a && (b && c) is one list: the same order, one level less.
			switch sub := t.(type) {
			case nAnd:
				if fn == operators.LogicalAnd {
					terms = append(terms, sub...)
					continue
				}
			case nOr:
				if fn == operators.LogicalOr {
					terms = append(terms, sub...)
					continue
				}
			}
			terms = append(terms, t)
		}
		if fn == operators.LogicalAnd {
			return nAnd(terms), true
		}
		return nOr(terms), true
	case fn == operators.LogicalNot:
		x, ok := c.compile(args[0])
		return nNot{x}, ok
	case fn == operators.Equals || fn == operators.NotEquals:
		for i := range 2 {
			if id := args[i]; id.Kind() == celast.IdentKind && id.AsIdent() == "scope" && !c.shadowed("scope") {
				if v, ok := literalString(args[1-i]); ok {
					return nScopeIs{value: v, not: fn == operators.NotEquals}, true
				}
			}
		}
	case call.IsMemberFunction():
		kind, ok := permissionFunctions[fn]
		if !ok || call.Target().Kind() != celast.IdentKind || call.Target().AsIdent() != "subject" || c.shadowed("subject") {
			return nil, false
		}
		ps, complete := callProbes(kind, args, c.str)
		if !complete {
			return nil, false
		}
		n := make(nProbes, len(ps))
		for i, p := range ps {
			n[i] = c.table.id(p)
			c.ids = append(c.ids, n[i])
		}
		return n, true
	}
	return nil, false
}

// compileExists unrolls list.exists(x, body) over a list of constant strings.
func (c *nativeCompiler) compileExists(comp celast.ComprehensionExpr) (nexpr, bool) {
	if comp.HasIterVar2() || comp.IterRange().Kind() != celast.ListKind {
		return nil, false
	}
	init, step, result := comp.AccuInit(), comp.LoopStep(), comp.Result()
	if init.Kind() != celast.LiteralKind || init.AsLiteral() != types.False ||
		result.Kind() != celast.IdentKind || result.AsIdent() != comp.AccuVar() ||
		step.Kind() != celast.CallKind || step.AsCall().FunctionName() != operators.LogicalOr {
		return nil, false
	}
	stepArgs := step.AsCall().Args()
	if stepArgs[0].Kind() != celast.IdentKind || stepArgs[0].AsIdent() != comp.AccuVar() {
		return nil, false
	}
	iv := comp.IterVar()
	if _, shadowed := c.vars[iv]; shadowed {
		return nil, false
	}
	defer delete(c.vars, iv)
	var terms nOr
	for _, el := range comp.IterRange().AsList().Elements() {
		v, ok := literalString(el)
		if !ok {
			return nil, false
		}
		c.vars[iv] = v
		t, ok := c.compile(stepArgs[1])
		if !ok {
			return nil, false
		}
		terms = append(terms, t)
	}
	return terms, true
}

// compileScope compiles a boolean part that reads neither the subject nor an iteration variable as a CEL
// program of its own, run once per scope.
func (c *nativeCompiler) compileScope(e celast.Expr) (nexpr, bool) {
	if t := c.ast.NativeRep().GetType(e.ID()); t == nil || !t.IsExactType(types.BoolType) {
		return nil, false
	}
	free := true
	celast.PostOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if x.Kind() != celast.IdentKind {
			return
		}
		if name := x.AsIdent(); name == "subject" {
			free = false
		} else if _, bound := c.vars[name]; bound {
			free = false
		}
	}))
	if !free {
		return nil, false
	}
	src, err := parser.Unparse(e, c.ast.NativeRep().SourceInfo())
	if err != nil {
		return nil, false
	}
	prg, _, err := compileExpr(c.env, src, cel.BoolType)
	if err != nil {
		return nil, false
	}
	return &nScope{prg: prg}, true
}

func (c *nativeCompiler) shadowed(name string) bool {
	_, ok := c.vars[name]
	return ok
}

// str resolves a constant string argument: a literal, or an unrolled iteration variable.
func (c *nativeCompiler) str(e celast.Expr) (string, bool) {
	if e.Kind() == celast.IdentKind {
		v, ok := c.vars[e.AsIdent()]
		return v, ok
	}
	return literalString(e)
}
