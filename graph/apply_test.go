package graph_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// TestApplyEqualsRebuild applies random changes one batch at a time and checks that the incrementally updated
// snapshot answers every sampled question exactly as a snapshot built from scratch over the same objects.
func TestApplyEqualsRebuild(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
				ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 30}
			objs := workload.Generate(nil, spec, int64(seed))
			live := graph.NewSnapshot(objs)
			for batch := range 25 {
				changes := randomChanges(r, live.Objects(), 1+r.IntN(6))
				live = live.Apply(changes)
				fresh := graph.NewSnapshot(live.Objects())
				if diff := compareSnapshots(r, live, fresh); diff != "" {
					t.Fatalf("batch %d (%d changes): incremental and rebuilt snapshots differ:\n%s", batch, len(changes), diff)
				}
			}
		})
	}
}

func TestApplyLeavesSourceUnchanged(t *testing.T) {
	objs := workload.Generate(nil, workload.S(), 3)
	before := graph.NewSnapshot(objs)
	count := before.Objects().Count()
	rb := before.Objects().RoleBindings[0]
	after := before.Apply([]graph.Change{graph.NewChange(&rb, nil)})
	if _, ok := before.Object(rb.Ref()); !ok || before.Objects().Count() != count {
		t.Fatal("Apply modified the snapshot it started from")
	}
	if _, ok := after.Object(rb.Ref()); ok || after.Objects().Count() != count-1 {
		t.Fatalf("Apply did not delete %s", rb.Ref())
	}
}

// randomChanges deletes, modifies and adds objects of every kind, aggregation labels included.
func randomChanges(r *rand.Rand, objs *graph.Objects, n int) []graph.Change {
	var out []graph.Change
	for range n {
		switch r.IntN(8) {
		case 0: // delete a RoleBinding
			if len(objs.RoleBindings) > 0 {
				b := objs.RoleBindings[r.IntN(len(objs.RoleBindings))]
				out = append(out, graph.NewChange(&b, nil))
			}
		case 1: // rebind a RoleBinding to other subjects and another role
			if len(objs.RoleBindings) > 1 {
				b := objs.RoleBindings[r.IntN(len(objs.RoleBindings))]
				nb := b
				nb.Subjects = slices.Clone(objs.RoleBindings[r.IntN(len(objs.RoleBindings))].Subjects)
				if r.IntN(2) == 0 && len(objs.ClusterRoles) > 0 {
					nb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Name}
				}
				out = append(out, graph.NewChange(&b, &nb))
			}
		case 2: // a new ClusterRoleBinding to a random ClusterRole
			if len(objs.ClusterRoles) > 0 && len(objs.RoleBindings) > 0 {
				nb := graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: fmt.Sprintf("new-crb-%d", r.IntN(1000))},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Name},
					Subjects: slices.Clone(objs.RoleBindings[r.IntN(len(objs.RoleBindings))].Subjects)}
				out = append(out, graph.NewChange(nil, &nb))
			}
		case 3: // a ClusterRole loses or gains rules
			if len(objs.ClusterRoles) > 1 {
				c := objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))]
				nc := c
				nc.Rules = slices.Clone(objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Rules)
				out = append(out, graph.NewChange(&c, &nc))
			}
		case 4: // a ClusterRole is labelled into, or out of, the built-in aggregations
			if len(objs.ClusterRoles) > 0 {
				c := objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))]
				nc := c
				nc.Labels = map[string]string{}
				for k, v := range c.Labels {
					nc.Labels[k] = v
				}
				key := "rbac.authorization.k8s.io/aggregate-to-" + []string{"view", "edit", "admin"}[r.IntN(3)]
				if _, ok := nc.Labels[key]; ok {
					delete(nc.Labels, key)
				} else {
					nc.Labels[key] = "true"
				}
				out = append(out, graph.NewChange(&c, &nc))
			}
		case 5: // a Role is deleted or replaced
			if len(objs.Roles) > 0 {
				ro := objs.Roles[r.IntN(len(objs.Roles))]
				if r.IntN(2) == 0 {
					out = append(out, graph.NewChange(&ro, nil))
				} else {
					nr := ro
					nr.Rules = append(slices.Clone(ro.Rules), rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}})
					out = append(out, graph.NewChange(&ro, &nr))
				}
			}
		case 6: // a ClusterRoleBinding is deleted
			if len(objs.ClusterRoleBindings) > 0 {
				b := objs.ClusterRoleBindings[r.IntN(len(objs.ClusterRoleBindings))]
				out = append(out, graph.NewChange(&b, nil))
			}
		case 7: // ServiceAccounts and pods come and go
			if len(objs.ServiceAccounts) > 0 {
				sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
				out = append(out, graph.NewChange(&sa, nil))
				p := graph.Pod{Meta: graph.Meta{Namespace: sa.Namespace, Name: fmt.Sprintf("p-%d", r.IntN(1000))}, ServiceAccount: sa.Name}
				out = append(out, graph.NewChange(nil, &p))
			}
		}
	}
	return out
}

// compareSnapshots asks both snapshots the same questions and describes the first difference.
func compareSnapshots(r *rand.Rand, a, b *graph.Snapshot) string {
	if diff := cmp.Diff(b.Objects(), a.Objects()); diff != "" {
		return "objects (-rebuilt +incremental):\n" + diff
	}
	objs := a.Objects()
	var ids []graph.Identity
	for _, sa := range objs.ServiceAccounts {
		ids = append(ids, graph.ServiceAccountIdentity(sa.Namespace, sa.Name))
	}
	for _, bs := range [][]graph.Binding{objs.RoleBindings, objs.ClusterRoleBindings} {
		for _, bd := range bs {
			for _, s := range bd.Subjects {
				ids = append(ids, graph.ImpersonatedIdentity(s.Name, nil), graph.Identity{User: "x", Groups: []string{s.Name}})
			}
		}
	}
	var acts []graph.Action
	namespaces := []string{""}
	for _, ns := range objs.Namespaces {
		namespaces = append(namespaces, ns.Name)
	}
	for _, rs := range [][]graph.Role{objs.Roles, objs.ClusterRoles} {
		for _, ro := range rs {
			for _, rule := range ro.Rules {
				for _, v := range rule.Verbs {
					for _, g := range rule.APIGroups {
						for _, res := range rule.Resources {
							base, sub, _ := strings.Cut(res, "/")
							acts = append(acts, graph.Action{Verb: v, APIGroup: g, Resource: base, Subresource: sub, Namespace: namespaces[r.IntN(len(namespaces))]})
						}
					}
				}
			}
		}
	}
	if len(ids) == 0 || len(acts) == 0 {
		return ""
	}
	ctx := context.Background()
	for range 300 {
		id, act := ids[r.IntN(len(ids))], acts[r.IntN(len(acts))]
		da, db := a.Can(id, act), b.Can(id, act)
		if da.Allowed != db.Allowed || fmt.Sprint(explain(da)) != fmt.Sprint(explain(db)) {
			return fmt.Sprintf("Can(%+v, %+v): incremental %v %v, rebuilt %v %v", id, act, da.Allowed, explain(da), db.Allowed, explain(db))
		}
	}
	for range 40 {
		act := acts[r.IntN(len(acts))]
		wa, _ := a.WhoCan(ctx, act)
		wb, _ := b.WhoCan(ctx, act)
		if diff := cmp.Diff(whoCanText(wb), whoCanText(wa)); diff != "" {
			return fmt.Sprintf("WhoCan(%+v) (-rebuilt +incremental):\n%s", act, diff)
		}
		id := ids[r.IntN(len(ids))]
		pa, _ := a.EffectivePermissions(ctx, id)
		pb, _ := b.EffectivePermissions(ctx, id)
		if diff := cmp.Diff(permText(pb), permText(pa)); diff != "" {
			return fmt.Sprintf("EffectivePermissions(%+v) (-rebuilt +incremental):\n%s", id, diff)
		}
	}
	if diff := cmp.Diff(warnText(b.Warnings()), warnText(a.Warnings())); diff != "" {
		return "warnings (-rebuilt +incremental):\n" + diff
	}
	return ""
}

func explain(d graph.Decision) []string {
	var out []string
	for _, p := range d.Reasons {
		out = append(out, p.Explain())
	}
	return out
}

func whoCanText(es []graph.WhoCanEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Subject.String())
		for _, p := range e.Paths {
			out = append(out, "  "+p.Explain())
		}
	}
	return out
}

func permText(ps []graph.Permission) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Namespace+" "+p.Explain())
	}
	return out
}

func warnText(ws []graph.Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	slices.Sort(out)
	return out
}

// TestLiveDiffEqualsMaterialised checks Live.Diff, which reaches the earlier state by undoing the range on the
// later snapshot, against a diff of both revisions materialised from the store.
func TestLiveDiffEqualsMaterialised(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(4, 4))
	st, l, revs := liveWithHistory(t, r, 4, 12, 5)
	revs = append([]graph.Revision{0}, revs...)
	for range 20 {
		i := r.IntN(len(revs) - 1)
		j := i + 1 + r.IntN(len(revs)-1-i)
		got, err := l.Diff(ctx, revs[i], revs[j])
		if err != nil {
			t.Fatal(err)
		}
		var changes []graph.Change
		if err := st.Changes(ctx, revs[i], revs[j], func(c graph.ChangeRecord) bool {
			changes = append(changes, graph.Change{Op: c.Op, Ref: c.Ref, Before: c.Before, After: c.After})
			return true
		}); err != nil {
			t.Fatal(err)
		}
		from := graph.NewSnapshot(&graph.Objects{})
		if revs[i] > 0 {
			o, err := st.Objects(ctx, revs[i])
			if err != nil {
				t.Fatal(err)
			}
			from = graph.NewSnapshot(o)
		}
		o, err := st.Objects(ctx, revs[j])
		if err != nil {
			t.Fatal(err)
		}
		want, err := graph.DiffSnapshots(ctx, from, graph.NewSnapshot(o), graph.CondenseChanges(changes))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(deltaText(want), deltaText(got)); diff != "" {
			t.Fatalf("Diff(%d, %d) (-materialised +live):\n%s", revs[i], revs[j], diff)
		}
	}
}

func deltaText(d graph.Diff) []string {
	var out []string
	for _, o := range d.Objects {
		out = append(out, string(o.Op)+" "+o.Ref.String())
	}
	for _, s := range d.Subjects {
		for _, p := range s.Gained {
			out = append(out, s.Subject.String()+" + "+p.Namespace+" "+p.Explain())
		}
		for _, p := range s.Lost {
			out = append(out, s.Subject.String()+" - "+p.Namespace+" "+p.Explain())
		}
	}
	return out
}

// TestLiveAtPastEqualsStore checks that a past revision At makes from the head (by undoing the changes since)
// answers exactly as one built from the store's state at that revision, and that concurrent requests for one
// revision share one snapshot.
func TestLiveAtPastEqualsStore(t *testing.T) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	st, l, revs := liveWithHistory(t, r, 9, 15, 6)
	for _, rev := range revs[:len(revs)-1] {
		got, err := l.At(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		o, err := st.Objects(ctx, rev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := compareSnapshots(r, got, graph.NewSnapshot(o)); diff != "" {
			t.Fatalf("At(%d) differs from the store's state at that revision:\n%s", rev, diff)
		}
	}

	// Eight requests at once for a revision not cached: one snapshot for all.
	past := revs[1]
	for range 5 { // push it out of the cache of past snapshots
		if _, err := l.At(ctx, revs[2+r.IntN(len(revs)-3)]); err != nil {
			t.Fatal(err)
		}
	}
	snaps := make([]*graph.Snapshot, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range snaps {
		wg.Go(func() { snaps[i], errs[i] = l.At(ctx, past) })
	}
	wg.Wait()
	for i := range snaps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if snaps[i] != snaps[0] {
			t.Errorf("request %d got a snapshot of its own: concurrent requests must share one", i)
		}
	}
}

// liveWithHistory returns a live graph on an in-memory store holding a small generated cluster (seed) and then
// batches revisions of up to maxBatch random changes, with the revisions committed, oldest first.
func liveWithHistory(t *testing.T, r *rand.Rand, seed int64, batches, maxBatch int) (*graph.Store, *graph.Live, []graph.Revision) {
	t.Helper()
	ctx := context.Background()
	st, err := graph.OpenStore(ctx, graph.StoreOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objs := workload.Generate(nil, workload.Spec{Namespaces: 5, ServiceAccounts: 30, Roles: 15, RoleBindings: 50, ClusterRoles: 25,
		ClusterRoleBindings: 15, Users: 12, Groups: 5, Pods: 20}, seed)
	var revs []graph.Revision
	rev, err := l.Commit(ctx, "test", graph.ReconcileChanges(l.Current(), objs))
	if err != nil {
		t.Fatal(err)
	}
	revs = append(revs, rev)
	for range batches {
		rev, err := l.Commit(ctx, "test", randomChanges(r, l.Current().Objects(), 1+r.IntN(maxBatch)))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	return st, l, revs
}
