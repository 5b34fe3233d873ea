package filters

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/kiem-io/kiem/queries"
)

// costLimit bounds one evaluation of a filter; a filter whose estimated cost exceeds it is refused when saved.
// A filter runs on every change of every revision, so the bound is a tenth of what Kubernetes allows an
// admission expression.
const costLimit = 100_000

// variable is the name of a target's variable.
func variable(t Target) string {
	switch t {
	case TargetFindings:
		return "finding"
	case TargetGrants:
		return "grant"
	case TargetChanges:
		return "change"
	}
	return "object"
}

func celType[T any]() *cel.Type { return cel.ObjectType("filters." + reflect.TypeFor[T]().Name()) }

// newEnv builds the CEL environment of a target.
func newEnv(t Target) (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Finding](), reflect.TypeFor[Grant](), reflect.TypeFor[Change](),
			reflect.TypeFor[Entity](), reflect.TypeFor[Ref](), reflect.TypeFor[Rule](), ext.ParseStructTags(true)),
		ext.Strings(), ext.Lists(), ext.Sets(), cel.OptionalTypes(),
	}
	switch t {
	case TargetFindings:
		opts = append(opts, cel.Variable("finding", celType[Finding]()))
	case TargetGrants:
		g, str, list := celType[Grant](), cel.StringType, cel.ListType(cel.StringType)
		opts = append(opts, cel.Variable("grant", g),
			cel.Function("allows",
				cel.MemberOverload("grant_allows_string_string", []*cel.Type{g, str, str}, cel.BoolType,
					cel.FunctionBinding(func(args ...ref.Val) ref.Val { return allows(args[0], args[1], args[2]) })),
				cel.MemberOverload("grant_allows_list_string", []*cel.Type{g, list, str}, cel.BoolType,
					cel.FunctionBinding(func(args ...ref.Val) ref.Val { return allows(args[0], args[1], args[2]) }))),
			cel.Function("appliesIn",
				cel.MemberOverload("grant_appliesin_string", []*cel.Type{g, str}, cel.BoolType,
					cel.BinaryBinding(func(gv, ns ref.Val) ref.Val {
						gr, ok := gv.Value().(*Grant)
						n, ok2 := ns.Value().(string)
						if !ok || !ok2 {
							return types.NewErr("appliesIn takes a namespace")
						}
						return types.Bool(gr.Namespace == "" || gr.Namespace == n)
					}))))
	case TargetChanges:
		opts = append(opts, cel.Variable("change", celType[Change]()))
	case TargetEntities:
		opts = append(opts, cel.Variable("object", celType[Entity]()))
	default:
		return nil, fmt.Errorf("unknown target %q", t)
	}
	return cel.NewEnv(opts...)
}

func allows(gv, verbs, res ref.Val) ref.Val {
	g, ok := gv.Value().(*Grant)
	if !ok {
		return types.NewErr("allows needs a grant")
	}
	r, ok := res.Value().(string)
	if !ok {
		return types.NewErr("resource must be a string")
	}
	var vs []string
	switch v := verbs.(type) {
	case types.String:
		vs = []string{string(v)}
	case traits.Lister:
		for it := v.Iterator(); it.HasNext() == types.True; {
			s, ok := it.Next().(types.String)
			if !ok {
				return types.NewErr("verbs must be strings")
			}
			vs = append(vs, string(s))
		}
	}
	return types.Bool(g.allows(vs, r))
}

// Compiled is a filter ready to evaluate; it is safe for concurrent use.
type Compiled struct {
	Filter
	prg      cel.Program
	variable string
	// Guard, when HasGuard, is a field equality the expression requires (see Guard).
	Guard    Guard
	HasGuard bool
}

// Compile validates f and prepares its expression. Errors wrap ErrInvalid and, for the expression, carry CEL's
// message with the line and column and a caret under the fault.
func Compile(f Filter) (*Compiled, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	env, err := newEnv(f.Target)
	if err != nil {
		return nil, invalid("filter %s: %v", f.ID, err)
	}
	ast, iss := env.Compile(f.Expression)
	if iss.Err() != nil {
		return nil, invalid("filter %s: expression: %v", f.ID, iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, invalid("filter %s: expression gives %s, want bool", f.ID, ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizes{})
	if err != nil {
		return nil, invalid("filter %s: expression: %v", f.ID, err)
	}
	if est.Max > costLimit {
		return nil, invalid("filter %s: expression may cost up to %d per evaluation, more than the %d allowed: avoid nested comprehensions", f.ID, est.Max, costLimit)
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit))
	if err != nil {
		return nil, invalid("filter %s: %v", f.ID, err)
	}
	c := &Compiled{Filter: f, prg: prg, variable: variable(f.Target)}
	c.Guard, c.HasGuard = guardOf(ast, c.variable, modelOf(f.Target))
	return c, nil
}

// Match evaluates the filter on one model value (a *Finding, *Grant, *Change or *Entity, as its target says).
func (c *Compiled) Match(ctx context.Context, v any) (bool, error) {
	out, _, err := c.prg.ContextEval(ctx, map[string]any{c.variable: v})
	if err != nil {
		return false, fmt.Errorf("filter %s: %w", c.ID, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("filter %s: gave %v, not a bool", c.ID, out)
	}
	return b, nil
}

// sizes are the size hints of the static cost estimate: lists and maps of the model are small (a binding's
// subjects, a role's rules, an object's labels), strings short.
type sizes struct{}

func (sizes) EstimateSize(element cost.AstNode) *cost.SizeEstimate {
	if element.Path() == nil {
		return nil
	}
	return &cost.SizeEstimate{Min: 0, Max: 64}
}

func (sizes) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// Guard is a conjunct of a filter's top-level && that compares a string field of the variable with a constant
// (`finding.namespace == 'prod'`): a filter only needs evaluating on values whose field holds that constant, so a
// thousand filters about a thousand namespaces can be indexed by it.
type Guard struct {
	// Field is the field's path in the model ("namespace", "object.kind").
	Field string
	Value string
	// OrEmpty says an empty field passes too: grant.appliesIn('prod') holds for a grant in prod and for a
	// cluster-wide one.
	OrEmpty bool
	index   []int
}

// Of reads the guard's field from a model value (a *Finding, *Grant, *Change or *Entity).
func (g *Guard) Of(model any) string {
	v := reflect.ValueOf(model)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return ""
	}
	return v.Elem().FieldByIndex(g.index).String()
}

// guardOf finds the first guard among the top-level conjuncts of an expression.
func guardOf(ast *cel.Ast, variable string, model reflect.Type) (Guard, bool) {
	conj := queries.Conjuncts(ast.NativeRep().Expr())
	for _, e := range conj {
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == "appliesIn" && e.AsCall().IsMemberFunction() {
			call := e.AsCall()
			if t := call.Target(); t.Kind() == celast.IdentKind && t.AsIdent() == variable && model == reflect.TypeFor[Grant]() {
				if lit := call.Args()[0]; lit.Kind() == celast.LiteralKind {
					if s, ok := lit.AsLiteral().(types.String); ok {
						f, _ := model.FieldByName("Namespace")
						return Guard{Field: "namespace", Value: string(s), OrEmpty: true, index: f.Index}, true
					}
				}
			}
		}
		if e.Kind() != celast.CallKind || e.AsCall().FunctionName() != operators.Equals {
			continue
		}
		args := e.AsCall().Args()
		for i := range 2 {
			lit := args[1-i]
			if lit.Kind() != celast.LiteralKind {
				continue
			}
			s, ok := lit.AsLiteral().(types.String)
			if !ok {
				continue
			}
			if g, ok := fieldGuard(args[i], variable, model); ok {
				g.Value = string(s)
				return g, true
			}
		}
	}
	return Guard{}, false
}

// fieldGuard resolves variable.a.b to a string field of model.
func fieldGuard(e celast.Expr, variable string, model reflect.Type) (Guard, bool) {
	f, ok := queries.SelectedField(e, func(v string) (reflect.Type, bool) { return model, v == variable })
	if !ok || f.Type.Kind() != reflect.String {
		return Guard{}, false
	}
	return Guard{Field: strings.Join(f.Path, "."), index: f.Index}, true
}

// modelOf is the Go type of a target's variable.
func modelOf(t Target) reflect.Type {
	switch t {
	case TargetFindings:
		return reflect.TypeFor[Finding]()
	case TargetGrants:
		return reflect.TypeFor[Grant]()
	case TargetChanges:
		return reflect.TypeFor[Change]()
	}
	return reflect.TypeFor[Entity]()
}
