package oracle

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// probe is a subject some binding names, as WhoCan reports it, and the identity that asks the oracle for it.
type probe struct {
	ref graph.ObjectRef
	id  graph.Identity
}

// knownSubjects lists the subjects the bindings of p name: a User by its name alone (a ServiceAccount user name
// is reported as that ServiceAccount), a ServiceAccount by its user name in its effective namespace (its own,
// else the RoleBinding's; in a ClusterRoleBinding none, so it names nobody), a Group by one member that carries
// only that group. Subjects of other kinds name nobody.
func knownSubjects(p *Policy) []probe {
	seen := map[graph.ObjectRef]bool{}
	var out []probe
	add := func(ref graph.ObjectRef, id graph.Identity) {
		if !seen[ref] {
			seen[ref] = true
			out = append(out, probe{ref: ref, id: id})
		}
	}
	visit := func(subjects []rbacv1.Subject, bindingNS string) {
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.UserKind:
				ref := graph.ObjectRef{Kind: graph.KindUser, Name: s.Name}
				if ns, name, ok := graph.SplitServiceAccountUsername(s.Name); ok {
					ref = graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}
				}
				add(ref, graph.Identity{User: s.Name})
			case rbacv1.ServiceAccountKind:
				ns := cmp.Or(s.Namespace, bindingNS)
				if ns == "" {
					continue
				}
				add(graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: s.Name},
					graph.Identity{User: graph.ServiceAccountUsername(ns, s.Name)})
			case rbacv1.GroupKind:
				add(graph.ObjectRef{Kind: graph.KindGroup, Name: s.Name},
					graph.Identity{User: "kiem-oracle-probe", Groups: []string{s.Name}})
			}
		}
	}
	for _, b := range p.RoleBindings {
		visit(b.Subjects, b.Namespace)
	}
	for _, b := range p.ClusterRoleBindings {
		visit(b.Subjects, "")
	}
	return out
}

// TestWhoCanRandomWorlds checks that WhoCan lists exactly the known subjects the oracle allows, plus
// system:masters, and that each entry's paths are the grants the rule resolver visits for that subject.
func TestWhoCanRandomWorlds(t *testing.T) {
	cfg := loadConfig(t, 200, 600)
	actions := max(1, cfg.queries/20)
	mastersRef := graph.ObjectRef{Kind: graph.KindGroup, Name: graph.GroupMasters}
	var total, mismatches int
	for _, seed := range cfg.seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			gen := w.queryGen(1)
			probes := knownSubjects(w.policy)
			bad := 0
			for range actions {
				a := gen.Action()
				entries, err := w.snap.WhoCan(t.Context(), a)
				if err != nil {
					t.Fatalf("WhoCan(%s): %v", mustJSON(a), err)
				}
				total++
				wantPaths := map[graph.ObjectRef][]string{mastersRef: nil}
				for _, pr := range probes {
					d, err := w.oracle.Authorize(t.Context(), pr.id, a)
					if err != nil {
						t.Fatal(err)
					}
					if !d.Allowed || pr.ref == mastersRef {
						continue
					}
					grants, err := w.oracle.Grants(t.Context(), pr.id, a)
					if err != nil {
						t.Fatal(err)
					}
					wantPaths[pr.ref] = GrantKeys(grants)
				}
				gotPaths := map[graph.ObjectRef][]string{}
				var problems []string
				for _, e := range entries {
					if _, dup := gotPaths[e.Subject]; dup {
						problems = append(problems, fmt.Sprintf("duplicate entry %s", e.Subject))
					}
					if e.Superuser != (e.Subject == mastersRef) {
						problems = append(problems, fmt.Sprintf("%s superuser=%v", e.Subject, e.Superuser))
					}
					gotPaths[e.Subject] = nil
					if e.Subject != mastersRef {
						gotPaths[e.Subject] = w.oracle.PathKeys(e.Paths)
					}
				}
				if diff := gocmp.Diff(sortedRefs(wantPaths), sortedRefs(gotPaths)); diff != "" {
					problems = append(problems, "subjects (-oracle +kiem):\n"+diff)
				} else if diff := gocmp.Diff(wantPaths, gotPaths); diff != "" {
					problems = append(problems, "paths (-oracle +kiem):\n"+diff)
				}
				if len(problems) > 0 {
					bad++
					if bad <= maxReported {
						t.Errorf("%s\nWhoCan(%s):\n%s", w.rerun(t.Name()), mustJSON(a), problems)
					}
				}
			}
			mismatches += bad
		})
	}
	t.Logf("%d worlds, %d WhoCan queries, %d mismatches", len(cfg.seeds), total, mismatches)
}

func sortedRefs(m map[graph.ObjectRef][]string) []graph.ObjectRef {
	refs := make([]graph.ObjectRef, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b graph.ObjectRef) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return refs
}
