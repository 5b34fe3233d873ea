package graph

import (
	"context"
	"errors"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGrantSince(t *testing.T) {
	ctx := context.Background()
	read := rbacv1.PolicyRule{Verbs: []string{"get"}, Resources: []string{"secrets"}, APIGroups: []string{""}}
	other := rbacv1.PolicyRule{Verbs: []string{"list"}, Resources: []string{"pods"}, APIGroups: []string{""}}
	alice := rbacv1.Subject{Kind: "User", Name: "alice", APIGroup: rbacv1.GroupName}
	bob := rbacv1.Subject{Kind: "User", Name: "bob", APIGroup: rbacv1.GroupName}
	role := func(rules ...rbacv1.PolicyRule) *Role {
		return &Role{Kind: KindClusterRole, Meta: Meta{Name: "reader"}, Rules: rules}
	}
	binding := func(subjects ...rbacv1.Subject) *Binding {
		return &Binding{Kind: KindRoleBinding, Meta: Meta{Namespace: "ns", Name: "b"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "reader"}, Subjects: subjects}
	}
	aggregated := &Role{Kind: KindClusterRole, Meta: Meta{Name: "reader"}, AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"agg": "reader"}}}}}
	part := func(labels map[string]string, rules ...rbacv1.PolicyRule) *Role {
		return &Role{Kind: KindClusterRole, Meta: Meta{Name: "part", Labels: labels}, Rules: rules}
	}
	aggLabels := map[string]string{"agg": "reader"}
	// Nested aggregation: reader aggregates mid (agg=reader), mid aggregates leaf (agg=mid), leaf holds the rule.
	mid := &Role{Kind: KindClusterRole, Meta: Meta{Name: "mid", Labels: aggLabels}, AggregationRule: &rbacv1.AggregationRule{
		ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"agg": "mid"}}}}}
	leaf := func(labels map[string]string, rules ...rbacv1.PolicyRule) *Role {
		return &Role{Kind: KindClusterRole, Meta: Meta{Name: "leaf", Labels: labels}, Rules: rules}
	}
	midLabels := map[string]string{"agg": "mid"}

	type step []Object // the objects that change in one revision (a Binding with no subjects is deleted)
	cases := []struct {
		name  string
		steps []step
		// want is the index of the step whose revision the grant has held since; -1: it does not hold at the head.
		want int
	}{
		{"binding then role", []step{{binding(alice)}, {role(read)}}, 1},
		{"role then binding", []step{{role(read)}, {binding(alice)}}, 1},
		{"unrelated changes keep the run", []step{{role(read), binding(alice)}, {role(read, other)}, {binding(alice, bob)}}, 0},
		{"subject removed and named again", []step{{role(read), binding(alice)}, {binding(bob)}, {binding(bob, alice)}}, 2},
		{"rule removed and added again", []step{{role(read), binding(alice)}, {role(other)}, {role(other, read)}}, 2},
		{"binding deleted and recreated", []step{{role(read), binding(alice)}, {binding()}, {binding(alice)}}, 2},
		{"not held", []step{{role(other), binding(alice)}}, -1},
		{"aggregated rule", []step{{aggregated, part(aggLabels, read), binding(alice)}, {part(aggLabels, read, other)}}, 0},
		{"nested aggregation", []step{{aggregated, mid, leaf(midLabels, read), binding(alice)}, {leaf(midLabels, read, other)}}, 0},
		{"nested aggregation labelled later", []step{{aggregated, mid, leaf(nil, read), binding(alice)}, {leaf(midLabels, read)}}, 1},
		{"aggregated rule added later", []step{{aggregated, part(aggLabels, other), binding(alice)}, {part(aggLabels, other, read)}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			live, err := OpenLive(ctx, mustOpenStore(t, StoreOptions{}), SnapshotOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur := map[ObjectRef]Object{}
			var revs []Revision
			for _, st := range tc.steps {
				var changes []Change
				for _, o := range st {
					before := cur[o.Ref()]
					if b, ok := o.(*Binding); ok && len(b.Subjects) == 0 {
						changes = append(changes, NewChange(before, nil))
						delete(cur, o.Ref())
						continue
					}
					changes = append(changes, NewChange(before, o))
					cur[o.Ref()] = o
				}
				rev, err := live.Commit(ctx, "test", changes)
				if err != nil {
					t.Fatal(err)
				}
				revs = append(revs, rev)
			}
			head := live.Head()
			d := live.Current().Can(Identity{User: "alice", Groups: []string{"system:authenticated"}},
				Action{Verb: "get", Resource: "secrets", Namespace: "ns"})
			if tc.want < 0 {
				if d.Allowed {
					t.Fatalf("alice may read secrets; the case expects no grant")
				}
				// A path that does not hold is refused, not dated.
				_, err := live.GrantSince(ctx, head, GrantPath{Binding: &ObjectRef{Kind: KindRoleBinding, Namespace: "ns", Name: "b"},
					Subject: &alice, Role: &ObjectRef{Kind: KindClusterRole, Name: "reader"}, Rule: &read})
				if !errors.Is(err, ErrGrantNotHeld) {
					t.Fatalf("GrantSince of a path that does not hold: %v, want ErrGrantNotHeld", err)
				}
				return
			}
			if len(d.Reasons) != 1 {
				t.Fatalf("reasons %+v, want one", d.Reasons)
			}
			got, err := live.GrantSince(ctx, head, d.Reasons[0])
			if err != nil {
				t.Fatal(err)
			}
			if got.Revision != revs[tc.want] || got.AtHorizon || got.Info.Revision != got.Revision || got.Info.Time.IsZero() {
				t.Fatalf("since %+v, want revision %d (step %d of %v)", got, revs[tc.want], tc.want, revs)
			}
			// At an older revision the answer is the same run seen from there.
			if tc.want < len(revs)-1 {
				old, err := live.GrantSince(ctx, revs[tc.want], d.Reasons[0])
				if err != nil || old.Revision != revs[tc.want] {
					t.Fatalf("since at %d: %+v, %v", revs[tc.want], old, err)
				}
			}
		})
	}
}
