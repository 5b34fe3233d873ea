package filters

import (
	"context"
	"fmt"
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
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
	return &Compiled{Filter: f, prg: prg, variable: variable(f.Target)}, nil
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

func (sizes) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	if element.Path() == nil {
		return nil
	}
	return &checker.SizeEstimate{Min: 0, Max: 64}
}

func (sizes) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}
