package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// TestAttackKubeadm checks the attack graph of the real kubeadm v1.33 cluster: exactly these principals reach
// cluster-admin, each by the path and grants stated. It lives here rather than in graph because loading the
// fixture takes the indexer, which graph's tests must not import.
//
// Why these and no others:
//   - system:masters and kubeadm:cluster-admins are bound to cluster-admin (`*` on `*`), so ADMIN_EQUIVALENT
//     (system:masters also bypasses RBAC: E-MASTERS; ADMIN_EQUIVALENT sorts first);
//   - clusterrole-aggregation-controller holds escalate and update on clusterroles, and its own ClusterRole is
//     bound to it by a ClusterRoleBinding: it can write any rule into it (E-ESCALATE);
//   - generic-garbage-collector may update and patch every resource, mutatingwebhookconfigurations included:
//     E-WEBHOOK, potential because it cannot create one and kiem does not see whether one exists.
//
// The controllers that create pods (deployment, replicaset, job, …) and system:kube-controller-manager (token
// requests and token Secrets for every ServiceAccount) reach only the ServiceAccounts that exist as objects in
// this cluster (default, coredns, kube-proxy, metrics-server), none of which reaches further: the controller
// ServiceAccounts are named by bindings but were never created here.
func TestAttackKubeadm(t *testing.T) {
	ctx := context.Background()
	objs, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{fixtures.KubeadmV133, fixtures.KubeadmAddons}, indexer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := graph.NewAttackGraph(ctx, graph.NewSnapshot(objs))
	if err != nil {
		t.Fatal(err)
	}
	reach, err := g.ToClusterAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type hop struct {
		edge      graph.AttackEdgeKind
		evidence  []string // binding#rule, binding#- for a binding without a rule
		potential bool
	}
	want := map[string][]hop{
		"Group/kubeadm:cluster-admins": {{graph.EdgeAdminEquivalent, []string{"ClusterRoleBinding/kubeadm:cluster-admins#0"}, false}},
		"Group/system:masters":         {{graph.EdgeAdminEquivalent, []string{"ClusterRoleBinding/cluster-admin#0"}, false}},
		"ServiceAccount/kube-system/clusterrole-aggregation-controller": {{graph.EdgeEscalate, []string{
			"ClusterRoleBinding/system:controller:clusterrole-aggregation-controller#0",
			"ClusterRoleBinding/system:controller:clusterrole-aggregation-controller#-",
		}, false}},
		"ServiceAccount/kube-system/generic-garbage-collector": {{graph.EdgeWebhook, []string{
			"ClusterRoleBinding/system:controller:generic-garbage-collector#0",
		}, true}},
	}
	got := map[string][]hop{}
	for ref, p := range reach {
		var hs []hop
		for _, h := range p.Hops {
			var ev []string
			for _, gp := range h.Evidence {
				rule := fmt.Sprint(gp.RuleIndex)
				if gp.Rule == nil {
					rule = "-"
				}
				ev = append(ev, gp.Binding.String()+"#"+rule)
			}
			hs = append(hs, hop{h.Edge, ev, h.Potential})
			if h.Technique == "" && h.Edge != graph.EdgeMemberOf && h.Edge != graph.EdgeIncludes {
				t.Errorf("%s: hop %s has no technique", ref, h)
			}
		}
		got[ref.String()] = hs
		if last := p.Hops[len(p.Hops)-1]; last.To != graph.ClusterAdminRef() {
			t.Errorf("%s: path ends at %s", ref, last.To)
		}
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(hop{})); diff != "" {
		t.Fatalf("principals reaching cluster-admin (-want +got):\n%s", diff)
	}

	// The rules behind the controller's escalation are the ones the bootstrap policy gives it.
	p := reach[graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "clusterrole-aggregation-controller"}]
	rule := p.Hops[0].Evidence[0].Rule
	if !slices.Contains(rule.Verbs, "escalate") || !slices.Contains(rule.Verbs, "update") || !slices.Contains(rule.Resources, "clusterroles") {
		t.Errorf("escalation evidence rule %+v lacks escalate and update on clusterroles", *rule)
	}

	// A pod-creating controller reaches ServiceAccounts, but none of them leads further.
	paths, err := g.Paths(ctx, graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "deployment-controller"},
		graph.SubjectTarget(graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "coredns"}), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0].Hops[0].Edge != graph.EdgeCreatePodAsSA {
		t.Fatalf("deployment-controller to coredns: %v, want one path by E-CREATE_POD_AS_SA", paths)
	}
}

// BenchmarkAttackL measures the attack graph on L: building it (time and heap), the paths of every principal and
// pod to cluster-admin, Update after a one-binding change, and Paths(k=3) from subjects that reach cluster-admin.
func BenchmarkAttackL(b *testing.B) {
	ctx := context.Background()
	snap := graph.NewSnapshot(workloadL(b))
	var g *graph.AttackGraph

	b.Run("Build", func(b *testing.B) {
		var build time.Duration
		var heap float64
		for b.Loop() {
			g = nil
			before := heapInUse()
			t := time.Now()
			var err error
			if g, err = graph.NewAttackGraph(ctx, snap); err != nil {
				b.Fatal(err)
			}
			build = time.Since(t)
			heap = float64(heapInUse()-before) / (1 << 20)
		}
		edges, err := g.Edges(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(build.Seconds(), "build-s")
		b.ReportMetric(heap, "heap-MiB")
		fmt.Printf("L NewAttackGraph: %v, %.0f MiB of heap, %d edges\n", build, heap, len(edges))
	})

	var reach map[graph.ObjectRef]graph.AttackPath
	b.Run("ToClusterAdmin", func(b *testing.B) {
		var d time.Duration
		for b.Loop() {
			t := time.Now()
			var err error
			if reach, err = g.ToClusterAdmin(ctx); err != nil {
				b.Fatal(err)
			}
			d = time.Since(t)
		}
		counts := map[graph.Kind]int{}
		longest := 0
		for ref, p := range reach {
			counts[ref.Kind]++
			longest = max(longest, len(p.Hops))
		}
		b.ReportMetric(d.Seconds()*1000, "ms")
		fmt.Printf("L ToClusterAdmin: %v; reach cluster-admin: %d users, %d groups, %d ServiceAccounts, %d pods; longest path %d hops\n",
			d, counts[graph.KindUser], counts[graph.KindGroup], counts[graph.KindServiceAccount], counts[graph.KindPod], longest)
	})

	b.Run("UpdateOneBinding", func(b *testing.B) {
		var rbs, crbs []graph.Binding
		snap.Each(graph.KindRoleBinding, "", func(o graph.Object) bool {
			rbs = append(rbs, *o.(*graph.Binding))
			return true
		})
		snap.Each(graph.KindClusterRoleBinding, "", func(o graph.Object) bool {
			crbs = append(crbs, *o.(*graph.Binding))
			return true
		})
		r := rand.New(rand.NewPCG(9, 0))
		var l, crbL latencies
		cur := snap
		for b.Loop() {
			l, crbL = l[:0], crbL[:0]
			// Each step adds a copy of a binding under a new name, or deletes a copy added before: 1 in 10 a
			// ClusterRoleBinding.
			var added []graph.Binding
			for i := range 400 {
				var c graph.Change
				switch {
				case len(added) > 0 && r.IntN(3) == 0:
					k := r.IntN(len(added))
					c = graph.NewChange(&added[k], nil)
					added = slices.Delete(added, k, k+1)
				case r.IntN(10) == 0:
					nb := crbs[r.IntN(len(crbs))]
					nb.Name = fmt.Sprintf("attack-bench-%d", i)
					added = append(added, nb)
					c = graph.NewChange(nil, &nb)
				default:
					nb := rbs[r.IntN(len(rbs))]
					nb.Name = fmt.Sprintf("attack-bench-%d", i)
					added = append(added, nb)
					c = graph.NewChange(nil, &nb)
				}
				cur = cur.Apply([]graph.Change{c})
				t := time.Now()
				if err := g.Update(ctx, cur, []graph.ObjectRef{c.Ref}); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t)
				l = append(l, d)
				if c.Ref.Kind == graph.KindClusterRoleBinding {
					crbL = append(crbL, d)
				}
			}
		}
		report(b, "AttackGraph.Update one binding", l)
		fmt.Printf("L   of which ClusterRoleBindings: n=%d p50=%v p99=%v\n", len(crbL), crbL.pct(0.5), crbL.pct(0.99))
	})

	b.Run("Paths", func(b *testing.B) {
		var from []graph.ObjectRef
		for ref := range reach {
			if ref.Kind != graph.KindPod {
				from = append(from, ref)
			}
		}
		slices.SortFunc(from, func(a, b graph.ObjectRef) int { return strings.Compare(a.String(), b.String()) })
		r := rand.New(rand.NewPCG(4, 0))
		var l latencies
		found := 0
		for b.Loop() {
			l = l[:0]
			for range 50 {
				if len(from) == 0 {
					break
				}
				ref := from[r.IntN(len(from))]
				t := time.Now()
				ps, err := g.Paths(ctx, ref, graph.ClusterAdminTarget(), 3)
				l = append(l, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				found += len(ps)
			}
		}
		if len(l) == 0 {
			b.Skip("nothing reaches cluster-admin")
		}
		report(b, "AttackGraph.Paths(k=3) to cluster-admin", l)
		if found == 0 {
			b.Fatal("Paths found nothing for subjects that reach cluster-admin")
		}
	})
	runtime.KeepAlive(g)
}
