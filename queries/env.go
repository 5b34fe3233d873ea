package queries

import (
	"fmt"
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/kiem-io/kiem/graph"
)

// Target is what a rule is evaluated over.
type Target string

// Targets. Subject and grant rules are evaluated per subject and scope (cluster-wide, or one namespace); the
// others once per object (binding rules once per subject of the binding).
const (
	TargetSubject        Target = "subject"
	TargetGrant          Target = "grant"
	TargetBinding        Target = "binding"
	TargetRole           Target = "role"
	TargetServiceAccount Target = "serviceAccount"
	TargetPod            Target = "pod"
	TargetNamespace      Target = "namespace"
	TargetNode           Target = "node"
	TargetSecret         Target = "secret"
	// TargetPath rules are Go checks over the escalation graph, one item per subject.
	TargetPath Target = "path"
)

// Targets lists every target, in evaluation order: pod rules may depend on subject findings.
func Targets() []Target {
	return []Target{TargetSubject, TargetGrant, TargetBinding, TargetRole, TargetServiceAccount, TargetNamespace,
		TargetNode, TargetSecret, TargetPod, TargetPath}
}

// celType names the Go model types as CEL sees them: <Go package name>.<type name>.
func celType[T any]() *cel.Type { return cel.ObjectType("queries." + reflect.TypeFor[T]().Name()) }

// targetVariables are the variables each target's expressions see (docs/packs.md lists them).
var targetVariables = map[Target][]cel.EnvOption{
	TargetSubject: {
		cel.Variable("subject", celType[Subject]()),
		cel.Variable("scope", cel.StringType),
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
	TargetGrant: {
		cel.Variable("subject", celType[Subject]()),
		cel.Variable("scope", cel.StringType),
		cel.Variable("namespaceObject", celType[Namespace]()),
		cel.Variable("binding", celType[Binding]()),
		cel.Variable("role", celType[Role]()),
		cel.Variable("rule", celType[PolicyRule]()),
		cel.Variable("aggregatedFrom", cel.StringType),
	},
	TargetBinding: {
		cel.Variable("binding", celType[Binding]()),
		cel.Variable("subject", celType[Subject]()),
		cel.Variable("role", celType[Role]()),
		cel.Variable("scope", cel.StringType),
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
	TargetRole: {
		cel.Variable("role", celType[Role]()),
		cel.Variable("bound", cel.BoolType),
		cel.Variable("boundClusterWide", cel.BoolType),
		cel.Variable("aggregatedInto", cel.BoolType),
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
	TargetServiceAccount: {
		cel.Variable("serviceAccount", celType[ServiceAccount]()),
		cel.Variable("subject", celType[Subject]()),
		cel.Variable("scope", cel.StringType),
		cel.Variable("namespaceObject", celType[Namespace]()),
		cel.Variable("pods", cel.IntType),
		cel.Variable("bound", cel.BoolType),
	},
	TargetPod: {
		cel.Variable("pod", celType[Pod]()),
		cel.Variable("serviceAccount", celType[ServiceAccount]()),
		cel.Variable("serviceAccountBound", cel.BoolType),
		cel.Variable("subject", celType[Subject]()),
		cel.Variable("scope", cel.StringType),
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
	TargetNamespace: {
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
	TargetNode: {
		cel.Variable("node", celType[Node]()),
		cel.Variable("pods", cel.IntType),
	},
	TargetPath: {
		cel.Variable("subject", celType[Subject]()),
	},
	TargetSecret: {
		cel.Variable("secret", celType[Secret]()),
		cel.Variable("namespaceObject", celType[Namespace]()),
	},
}

// newEnv builds the CEL environment of one target.
func newEnv(t Target) (*cel.Env, error) {
	vars, ok := targetVariables[t]
	if !ok {
		return nil, fmt.Errorf("unknown target %q", t)
	}
	subject := celType[Subject]()
	str, list := cel.StringType, cel.ListType(cel.StringType)
	opts := []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Subject](), reflect.TypeFor[PolicyRule](), reflect.TypeFor[RoleRef](),
			reflect.TypeFor[SubjectRef](), reflect.TypeFor[Binding](), reflect.TypeFor[Role](),
			reflect.TypeFor[ServiceAccount](), reflect.TypeFor[Pod](), reflect.TypeFor[Namespace](),
			reflect.TypeFor[Node](), reflect.TypeFor[Secret](), ext.ParseStructTags(true)),
		ext.Strings(), ext.Lists(), ext.Sets(), cel.OptionalTypes(),
		cel.Function("can",
			cel.MemberOverload("subject_can_string_string", []*cel.Type{subject, str, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askCan) })),
			cel.MemberOverload("subject_can_list_string", []*cel.Type{subject, list, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askCan) }))),
		cel.Function("canSome",
			cel.MemberOverload("subject_cansome_string_string", []*cel.Type{subject, str, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askSome) })),
			cel.MemberOverload("subject_cansome_list_string", []*cel.Type{subject, list, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askSome) }))),
		cel.Function("canNamed",
			cel.MemberOverload("subject_cannamed_string_string_string", []*cel.Type{subject, str, str, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askNamed) })),
			cel.MemberOverload("subject_cannamed_list_string_string", []*cel.Type{subject, list, str, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askNamed) }))),
		cel.Function("clusterScoped",
			cel.Overload("clusterscoped_string", []*cel.Type{str}, cel.BoolType,
				cel.UnaryBinding(func(v ref.Val) ref.Val {
					s, ok := v.Value().(string)
					if !ok {
						return types.NewErr("clusterScoped takes a resource name")
					}
					group, resource, _ := parseResource(s)
					return types.Bool(clusterScoped(group, resource))
				}))),
		cel.Function("canURL",
			cel.MemberOverload("subject_canurl_string_string", []*cel.Type{subject, str, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askURL) })),
			cel.MemberOverload("subject_canurl_list_string", []*cel.Type{subject, list, str}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return permissionCall(args, askURL) }))),
	}
	return cel.NewEnv(append(opts, vars...)...)
}

type askKind int

const (
	askCan   askKind = iota // a request for any object: resourceNames-limited rules do not count
	askSome                 // a request for some object: resourceNames-limited rules count
	askNamed                // a request for one named object
	askURL                  // a non-resource request
)

// permissionCall runs one of Subject's permission functions: args are the subject, the verb or verbs, the
// resource (or URL) and, for canNamed, the name. With several verbs it answers whether any is allowed, and every
// verb that is allowed adds its grants to the evidence.
func permissionCall(args []ref.Val, kind askKind) ref.Val {
	s, ok := args[0].Value().(*Subject)
	if !ok || s.evaluation() == nil {
		return types.NewErr("permission functions need a subject whose permissions are known (not a binding's subject list)")
	}
	target, ok := args[2].Value().(string)
	if !ok {
		return types.NewErr("resource must be a string")
	}
	var name string
	if kind == askNamed {
		if name, ok = args[3].Value().(string); !ok {
			return types.NewErr("name must be a string")
		}
	}
	var verbs []string
	switch v := args[1].(type) {
	case types.String:
		verbs = []string{string(v)}
	case traits.Lister:
		for it := v.Iterator(); it.HasNext() == types.True; {
			sv, ok := it.Next().(types.String)
			if !ok {
				return types.NewErr("verbs must be strings")
			}
			verbs = append(verbs, string(sv))
		}
	default:
		return types.NewErr("verb must be a string or a list of strings")
	}
	allowed := false
	for _, verb := range verbs {
		var a graph.Action
		if kind == askURL {
			a = graph.Action{Verb: verb, NonResourceURL: target}
		} else {
			group, resource, sub := parseResource(target)
			a = graph.Action{Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Name: name}
		}
		if s.ev.ask(a, kind == askSome) {
			allowed = true
		}
	}
	return types.Bool(allowed)
}
