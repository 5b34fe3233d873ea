package graph_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// riskyRules are rules that make attack edges, alone or together; attack changes draw roles from them.
func riskyRules() []rbacv1.PolicyRule {
	r := func(verbs, group, resource string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: []string{verbs}, APIGroups: []string{group}, Resources: []string{resource}, ResourceNames: names}
	}
	const rbac = rbacv1.GroupName
	return []rbacv1.PolicyRule{
		r("create", "", "pods"), r("patch", "apps", "deployments"), r("create", "", "pods/exec"), r("get", "", "pods/exec"),
		r("create", "", "pods/exec", "p-1"), r("create", "", "pods/attach"), r("patch", "", "pods/ephemeralcontainers"),
		r("update", "", "pods"), r("list", "", "secrets"), r("get", "", "secrets"), r("get", "", "secrets", "tok-1"),
		r("create", "", "secrets"), r("create", "", "serviceaccounts/token"), r("create", "", "serviceaccounts/token", "default"),
		r("impersonate", "", "serviceaccounts"), r("impersonate", "", "users"), r("impersonate", "", "groups"),
		r("impersonate", "", "groups", "grp-1"), r("create", rbac, "rolebindings"), r("patch", rbac, "rolebindings"),
		r("create", rbac, "clusterrolebindings"), r("update", rbac, "clusterrolebindings"), r("bind", rbac, "clusterroles"),
		r("bind", rbac, "clusterroles", "risky-1", "risky-2"), r("bind", rbac, "roles"), r("escalate", rbac, "clusterroles"),
		r("escalate", rbac, "roles"), r("update", rbac, "clusterroles"), r("patch", rbac, "roles"),
		r("create", "certificates.k8s.io", "certificatesigningrequests"),
		r("update", "certificates.k8s.io", "certificatesigningrequests/approval"),
		r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client"),
		r("get", "", "nodes/proxy"), r("create", "", "nodes/proxy", "node-1"),
		r("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"), r("*", "*", "*"),
	}
}

const aggLabel = "example.com/aggregate-to-risky"

// attackBase is a generated cluster with risky roles, nodes, token secrets and declared users on top.
func attackBase(seed uint64) *graph.Objects {
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 40}
	objs := workload.Generate(nil, spec, int64(seed))
	r := rand.New(rand.NewPCG(seed, 7))
	rules := riskyRules()
	pickRules := func() []rbacv1.PolicyRule {
		out := make([]rbacv1.PolicyRule, 1+r.IntN(3))
		for i := range out {
			out[i] = rules[r.IntN(len(rules))]
		}
		return out
	}
	objs.ClusterRoles = append(objs.ClusterRoles, graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "cluster-admin"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}})
	for i := range 8 {
		objs.ClusterRoles = append(objs.ClusterRoles, graph.Role{Kind: graph.KindClusterRole,
			Meta: graph.Meta{Name: fmt.Sprintf("risky-%d", i)}, Rules: pickRules()})
	}
	// An aggregated role that takes the rules of the risky roles labelled into it, bound in every namespace.
	objs.ClusterRoles = append(objs.ClusterRoles, graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "risky-agg"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{aggLabel: "true"}}}}})
	for i := range objs.Namespaces {
		n := &objs.Namespaces[i]
		objs.RoleBindings = append(objs.RoleBindings, graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: n.Name, Name: "agg"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "risky-agg"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "agg-user"}}})
		objs.Roles = append(objs.Roles, graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: n.Name, Name: "risky"}, Rules: pickRules()})
	}
	for i := range 3 {
		objs.Nodes = append(objs.Nodes, graph.Node{Meta: graph.Meta{Name: fmt.Sprintf("node-%d", i)}})
	}
	objs.Users = append(objs.Users, graph.User{Meta: graph.Meta{Name: "declared"}, Groups: []string{"grp-1", "grp-2"}})
	return objs
}

// attackChanges makes changes that matter to the attack graph: risky bindings to varied subjects, Pod Security
// labels, token Secrets, control-plane nodes, declared users, pods on nodes, risky role edits.
func attackChanges(r *rand.Rand, objs *graph.Objects, n int) []graph.Change {
	rules := riskyRules()
	subject := func() rbacv1.Subject {
		switch r.IntN(6) {
		case 0:
			sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
			return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}
		case 1:
			ns := objs.Namespaces[r.IntN(len(objs.Namespaces))]
			return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + ns.Name}
		case 2:
			return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: []string{"grp-1", "grp-2", "system:authenticated"}[r.IntN(3)]}
		case 3:
			return rbacv1.Subject{Kind: rbacv1.UserKind, Name: "declared"}
		}
		b := objs.RoleBindings[r.IntN(len(objs.RoleBindings))]
		if len(b.Subjects) == 0 {
			return rbacv1.Subject{Kind: rbacv1.UserKind, Name: "lonely"}
		}
		return b.Subjects[0]
	}
	var out []graph.Change
	for range n {
		switch r.IntN(9) {
		case 0, 1: // a binding of a risky role
			var b graph.Binding
			roleName := fmt.Sprintf("risky-%d", r.IntN(8))
			if r.IntN(10) == 0 {
				roleName = "cluster-admin"
			}
			if r.IntN(3) == 0 {
				b = graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: fmt.Sprintf("risky-crb-%d", r.IntN(20))},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}}
			} else {
				ns := objs.Namespaces[r.IntN(len(objs.Namespaces))].Name
				b = graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: ns, Name: fmt.Sprintf("risky-rb-%d", r.IntN(20))},
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}}
				if r.IntN(2) == 0 {
					b.RoleRef.Kind, b.RoleRef.Name = "Role", "risky"
				}
			}
			for range 1 + r.IntN(2) {
				b.Subjects = append(b.Subjects, subject())
			}
			if r.IntN(4) == 0 {
				out = append(out, graph.NewChange(&b, nil))
			} else {
				out = append(out, graph.NewChange(nil, &b))
			}
		case 2: // a risky role changes its rules, or is labelled into or out of risky-agg
			name := fmt.Sprintf("risky-%d", r.IntN(8))
			nr := graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: name}, Rules: []rbacv1.PolicyRule{rules[r.IntN(len(rules))], rules[r.IntN(len(rules))]}}
			if r.IntN(2) == 0 {
				nr.Labels = map[string]string{aggLabel: "true"}
			}
			if r.IntN(3) == 0 {
				nr.Kind, nr.Namespace, nr.Name = graph.KindRole, objs.Namespaces[r.IntN(len(objs.Namespaces))].Name, "risky"
			}
			out = append(out, graph.NewChange(nil, &nr))
		case 3: // Pod Security enforcement is switched
			n := objs.Namespaces[r.IntN(len(objs.Namespaces))]
			nn := n
			nn.Labels = map[string]string{}
			if r.IntN(2) == 0 {
				nn.Labels["pod-security.kubernetes.io/enforce"] = []string{"privileged", "baseline", "restricted"}[r.IntN(3)]
			}
			out = append(out, graph.NewChange(&n, &nn))
		case 4: // a token Secret comes or goes (the first and last switch secret metadata on and off)
			sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
			sec := graph.Secret{Meta: graph.Meta{Namespace: sa.Namespace, Name: fmt.Sprintf("tok-%d", r.IntN(3))},
				Type: "kubernetes.io/service-account-token", ServiceAccount: sa.Name}
			if r.IntN(3) == 0 {
				out = append(out, graph.NewChange(&sec, nil))
			} else {
				out = append(out, graph.NewChange(nil, &sec))
			}
		case 5: // a node joins, leaves, or becomes control plane
			nd := graph.Node{Meta: graph.Meta{Name: fmt.Sprintf("node-%d", r.IntN(5))}}
			switch r.IntN(3) {
			case 0:
				out = append(out, graph.NewChange(&nd, nil))
			case 1:
				nd.Labels = map[string]string{"node-role.kubernetes.io/control-plane": ""}
				fallthrough
			default:
				out = append(out, graph.NewChange(nil, &nd))
			}
		case 6: // a declared user changes groups
			u := graph.User{Meta: graph.Meta{Name: "declared"}}
			for _, g := range []string{"grp-1", "grp-2", "system:masters"} {
				if r.IntN(2) == 0 {
					u.Groups = append(u.Groups, g)
				}
			}
			if r.IntN(5) == 0 {
				out = append(out, graph.NewChange(&u, nil))
			} else {
				out = append(out, graph.NewChange(nil, &u))
			}
		case 7: // pods on nodes, with or without their token
			sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
			p := graph.Pod{Meta: graph.Meta{Namespace: sa.Namespace, Name: fmt.Sprintf("p-%d", r.IntN(4))}, ServiceAccount: sa.Name,
				NodeName: fmt.Sprintf("node-%d", r.IntN(5))}
			if r.IntN(3) == 0 {
				off := false
				p.AutomountToken = &off
			}
			out = append(out, graph.NewChange(nil, &p))
		case 8: // a ServiceAccount (maybe one a token Secret names) is deleted or re-created
			sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
			if r.IntN(2) == 0 {
				out = append(out, graph.NewChange(&sa, nil))
			} else {
				out = append(out, graph.NewChange(nil, &sa))
			}
		}
	}
	return out
}

// TestAttackUpdateEqualsRebuild applies random changes batch by batch and checks that the updated attack graph
// has exactly the edges, evidence included, and the paths to cluster-admin of one built from scratch.
func TestAttackUpdateEqualsRebuild(t *testing.T) {
	ctx := context.Background()
	seenKinds := map[graph.AttackEdgeKind]bool{}
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 3))
			live := graph.NewSnapshot(attackBase(seed))
			g, err := graph.NewAttackGraph(ctx, live)
			if err != nil {
				t.Fatal(err)
			}
			for batch := range 30 {
				var changes []graph.Change
				if r.IntN(3) == 0 {
					changes = randomChanges(r, live.Objects(), 1+r.IntN(4))
				} else {
					changes = attackChanges(r, live.Objects(), 1+r.IntN(5))
				}
				live = live.Apply(changes)
				refs := make([]graph.ObjectRef, len(changes))
				for i, c := range changes {
					refs[i] = c.Ref
				}
				if err := g.Update(ctx, live, refs); err != nil {
					t.Fatal(err)
				}
				fresh, err := graph.NewAttackGraph(ctx, live)
				if err != nil {
					t.Fatal(err)
				}
				got, err := g.Edges(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want, err := fresh.Edges(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("batch %d (%v): edges differ (-rebuilt +updated):\n%s", batch, refs, diff)
				}
				gotPaths, err := g.ToClusterAdmin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				wantPaths, err := fresh.ToClusterAdmin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
					t.Fatalf("batch %d (%v): paths to cluster-admin differ (-rebuilt +updated):\n%s", batch, refs, diff)
				}
				for _, h := range got {
					seenKinds[h.Edge] = true
				}
				// Paths answers alike on both graphs (ties broken the same way whatever the node IDs), and its
				// shortest path is as long as ToClusterAdmin's.
				var from []graph.ObjectRef
				for ref := range gotPaths {
					from = append(from, ref)
				}
				slices.SortFunc(from, func(a, b graph.ObjectRef) int { return strings.Compare(a.String(), b.String()) })
				for i := 0; i < len(from); i += 1 + len(from)/4 {
					p1, err := g.Paths(ctx, from[i], graph.ClusterAdminTarget(), 3)
					if err != nil {
						t.Fatal(err)
					}
					p2, err := fresh.Paths(ctx, from[i], graph.ClusterAdminTarget(), 3)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(p2, p1); diff != "" {
						t.Fatalf("batch %d: Paths(%s) differ (-rebuilt +updated):\n%s", batch, from[i], diff)
					}
					if len(p1) == 0 || len(p1[0].Hops) != len(gotPaths[from[i]].Hops) {
						t.Fatalf("batch %d: Paths(%s) gives %d paths, ToClusterAdmin a path of %d hops", batch, from[i], len(p1), len(gotPaths[from[i]].Hops))
					}
				}
			}
		})
	}
	// The changes must have exercised the edges whose upkeep is hardest.
	for _, k := range []graph.AttackEdgeKind{
		graph.EdgeBind, graph.EdgeEscalate, graph.EdgeMintTokenSecret, graph.EdgeImpersonate, graph.EdgeCSRForge,
		graph.EdgeReadTokenSecret, graph.EdgeTokenFor, graph.EdgePrivPodToNode, graph.EdgeControlPlane, graph.EdgeHosts,
		graph.EdgeNodeProxy, graph.EdgeWebhook, graph.EdgeAdminEquivalent, graph.EdgeExec,
	} {
		if !seenKinds[k] {
			t.Errorf("no %s edge appeared in any batch: the random changes do not exercise it", k)
		}
	}
	kinds := make([]string, 0, len(seenKinds))
	for k := range seenKinds {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	if len(kinds) < 20 {
		t.Errorf("only %d edge kinds appeared: %v", len(kinds), kinds)
	}
}
