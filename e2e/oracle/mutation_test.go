package oracle

import (
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// mutation changes a policy in a way the answers (or only the grant paths) can show; it reports false when the
// policy offers nothing to change.
type mutation struct {
	name  string
	apply func(p *Policy) bool
}

func mutations() []mutation {
	bound := func(p *Policy, kind, ns, name string) bool {
		for _, b := range p.RoleBindings {
			if b.RoleRef.Kind == kind && b.RoleRef.Name == name && (kind == "ClusterRole" || b.Namespace == ns) {
				return true
			}
		}
		for _, b := range p.ClusterRoleBindings {
			if kind == "ClusterRole" && b.RoleRef.Kind == kind && b.RoleRef.Name == name {
				return true
			}
		}
		return false
	}
	return []mutation{{
		name: "drop a Role's rule",
		apply: func(p *Policy) bool {
			for _, r := range p.Roles {
				if len(r.Rules) > 0 && bound(p, "Role", r.Namespace, r.Name) {
					r.Rules = r.Rules[1:]
					return true
				}
			}
			return false
		},
	}, {
		name: "swap two rules of a ClusterRole (grant paths only)",
		apply: func(p *Policy) bool {
			for _, cr := range p.ClusterRoles {
				if cr.AggregationRule == nil && len(cr.Rules) >= 2 && bound(p, "ClusterRole", "", cr.Name) &&
					!equality.Semantic.DeepEqual(cr.Rules[0], cr.Rules[1]) {
					cr.Rules[0], cr.Rules[1] = cr.Rules[1], cr.Rules[0]
					return true
				}
			}
			return false
		},
	}, {
		name: "make a bound aggregated ClusterRole select nothing",
		apply: func(p *Policy) bool {
			eff, err := Aggregate(p.ClusterRoles)
			if err != nil {
				return false
			}
			for i, agg := range p.ClusterRoles {
				if agg.AggregationRule != nil && len(eff.ClusterRoles[i].Rules) > 0 && bound(p, "ClusterRole", "", agg.Name) {
					agg.AggregationRule.ClusterRoleSelectors = []metav1.LabelSelector{
						{MatchLabels: map[string]string{"selects": "nothing"}},
					}
					return true
				}
			}
			return false
		},
	}, {
		name: "move a ServiceAccount subject to another namespace",
		apply: func(p *Policy) bool {
			for _, b := range p.ClusterRoleBindings {
				for i, s := range b.Subjects {
					if s.Kind == rbacv1.ServiceAccountKind && s.Namespace != "" {
						b.Subjects[i].Namespace = "elsewhere"
						return true
					}
				}
			}
			return false
		},
	}}
}

// TestHarnessDetectsDifferences shows that the comparisons have teeth: kiem built from a slightly changed policy
// must disagree with the oracle built from the original, for every kind of change, in most worlds where the
// change applies. A harness that compared nothing would pass every other test here.
func TestHarnessDetectsDifferences(t *testing.T) {
	cfg := loadConfig(t, 30, 600)
	for _, m := range mutations() {
		t.Run(m.name, func(t *testing.T) {
			applied, detected := 0, 0
			for _, seed := range cfg.seeds {
				w := newWorld(t, seed)
				mutated := w.policy.DeepCopy()
				if !m.apply(mutated) {
					continue
				}
				applied++
				snap := graph.NewSnapshot(mutated.GraphObjects())
				gen := w.queryGen(4)
				for range cfg.queries {
					q := gen.Next()
					if len(compareCan(t.Context(), t, w.oracle, q, snap.Can(q.ID, q.Action)).problems) > 0 {
						detected++
						break
					}
				}
			}
			t.Logf("%s: applied in %d worlds, detected in %d", m.name, applied, detected)
			if !cfg.custom && (applied < 10 || detected*3 < applied*2) {
				t.Errorf("%s: detected in %d of %d worlds; want at least two thirds of at least 10",
					m.name, detected, applied)
			}
		})
	}
}

// Example output of a repro, kept compiling so that its format stays readable; see README.md.
func ExampleRepro() {
	p := &Policy{ClusterRoleBindings: []*rbacv1.ClusterRoleBinding{{
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "missing"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "alice"}},
	}}}
	p.ClusterRoleBindings[0].Name = "crb"
	q := Query{ID: graph.Identity{User: "alice"}, Action: graph.Action{Verb: "get", Resource: "pods"}}
	fmt.Print(Repro(p, p, q, graph.Decision{Allowed: true}, oracleAnswer{}, nil))
	// Output:
	// identity: {"user":"alice"}
	// action:   {"verb":"get","resource":"pods"}
	// kiem:     {"allowed":true}
	// oracle:   {"allowed":false}
	// objects (kind: List, aggregated ClusterRoles as written):
	// apiVersion: v1
	// items:
	// - apiVersion: rbac.authorization.k8s.io/v1
	//   kind: ClusterRoleBinding
	//   metadata:
	//     creationTimestamp: null
	//     name: crb
	//   roleRef:
	//     apiGroup: ""
	//     kind: ClusterRole
	//     name: missing
	//   subjects:
	//   - kind: User
	//     name: alice
	// kind: List
}
