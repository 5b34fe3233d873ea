package queries

import (
	"fmt"
	"slices"
	"sync"

	"cel.dev/cel-go/cel"
	"github.com/kiem-io/kiem/graph"
)

// check is a named Go check: a rule whose shape CEL over one target cannot express (a path, an absence, a
// comparison across objects). It runs on one item of its target's group (for subject checks, in one scope) and
// returns its hits.
type check struct {
	name   string
	target Target
	doc    string
	run    func(w *worker, r *Rule, k itemKey, scope string) ([]hit, error)
	// probes are the constant questions the check asks, answered from bitsets like the rules' (see probeTable).
	probes []probe
}

// probesFor lists every combination of verbs and resources (kubectl notation), asked with some.
func probesFor(some bool, verbs []string, resources ...string) []probe {
	var out []probe
	for _, res := range resources {
		group, resource, sub := parseResource(res)
		for _, v := range verbs {
			out = append(out, probe{graph.Action{Verb: v, APIGroup: group, Resource: resource, Subresource: sub}, some})
		}
	}
	return out
}

// checks is the registry of Go checks, by name. It is filled by the init functions of the check files and only
// read afterwards.
var checks = map[string]*check{}

func register(c *check) {
	if _, dup := checks[c.name]; dup {
		panic("queries: check registered twice: " + c.name)
	}
	checks[c.name] = c
}

func checkNames() []string {
	var out []string
	for n := range checks {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// CheckInfo describes a Go check, for docs and --help.
type CheckInfo struct {
	Name   string `json:"name"`
	Target Target `json:"target"`
	Doc    string `json:"doc"`
}

// Checks lists the Go checks packs can name.
func Checks() []CheckInfo {
	var out []CheckInfo
	for _, n := range checkNames() {
		c := checks[n]
		out = append(out, CheckInfo{Name: c.name, Target: c.target, Doc: c.doc})
	}
	return out
}

// envs holds the CEL environment of every target, built once: building one costs milliseconds and they are
// immutable.
var envs = sync.OnceValues(func() (map[Target]*cel.Env, error) {
	out := map[Target]*cel.Env{}
	for _, t := range Targets() {
		env, err := newEnv(t)
		if err != nil {
			return nil, fmt.Errorf("building the CEL environment of %s: %w", t, err)
		}
		out[t] = env
	}
	return out, nil
})

func envFor(t Target) (*cel.Env, error) {
	all, err := envs()
	if err != nil {
		return nil, err
	}
	env, ok := all[t]
	if !ok {
		return nil, fmt.Errorf("unknown target %q", t)
	}
	return env, nil
}

func init() {
	register(&check{
		name:   "dangling-role-ref",
		target: TargetBinding,
		doc:    "a binding whose roleRef names a Role or ClusterRole that does not exist",
		run: func(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
			o, ok := w.ec.snap.Object(k.ref)
			if !ok {
				return nil, nil
			}
			b := o.(*graph.Binding)
			roleRef, ok := b.RoleRefObject()
			if !ok {
				return []hit{{object: &k.ref, namespace: b.Namespace, classify: b,
					message: fmt.Sprintf("%s: roleRef kind %q is neither Role nor ClusterRole; it grants nothing", refName(k.ref), b.RoleRef.Kind)}}, nil
			}
			if _, role := w.ec.roleModel(roleRef); role != nil {
				return nil, nil
			}
			if b.Kind == graph.KindClusterRoleBinding && b.RoleRef.Kind == "Role" {
				return []hit{{object: &k.ref, classify: b,
					message: fmt.Sprintf("%s references a Role, which a ClusterRoleBinding can never resolve", refName(k.ref))}}, nil
			}
			return []hit{{object: &k.ref, namespace: b.Namespace, classify: b,
				message: fmt.Sprintf("%s references %s, which does not exist: whoever creates it grants its rules to the binding's subjects", refName(k.ref), refName(roleRef))}}, nil
		},
	})
}
