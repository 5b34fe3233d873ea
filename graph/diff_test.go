package graph

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

func TestDiffSnapshots(t *testing.T) {
	base := func() *Snapshot {
		return world([]Role{
			role("", "view", rule("get", "", "pods")), // not aggregated here: plain rules
			labelled(role("", "widgets", rule("list", "example.com", "widgets")), "agg", "yes"),
			aggregating("agg-view", sel("agg", "yes")),
			role("ns1", "secrets", rule("get", "", "secrets")),
		},
			binding("ns1", "rb-view", "ClusterRole/view", "User:alice"),
			binding("ns1", "rb-secrets", "Role/secrets", "Group:devs"),
			binding("", "crb-agg", "ClusterRole/agg-view", "ServiceAccount:ns2/robot"),
		)
	}
	pod := Pod{Meta: Meta{Namespace: "ns1", Name: "p"}, ServiceAccount: "default"}
	rbView := binding("ns1", "rb-view", "ClusterRole/view", "User:alice")
	rbView2 := binding("ns1", "rb-view", "ClusterRole/view", "User:bob")
	secrets := role("ns1", "secrets", rule("get", "", "secrets"))
	secrets2 := role("ns1", "secrets", rule("get", "", "secrets"), rule("delete", "", "secrets"))
	widgets := labelled(role("", "widgets", rule("list", "example.com", "widgets")), "agg", "yes")
	gadgets := labelled(role("", "gadgets", rule("watch", "example.com", "gadgets")), "agg", "yes")
	tests := []struct {
		name    string
		changes []Change
		want    []string // subject: +gained / -lost rules
	}{
		{"pod changes grant nothing", []Change{NewChange(nil, &pod)}, nil},
		{"rebinding moves grants", []Change{NewChange(&rbView, &rbView2)},
			[]string{"User/alice -RoleBinding/ns1/rb-view get pods", "User/bob +RoleBinding/ns1/rb-view get pods"}},
		{"role rule added", []Change{NewChange(&secrets, &secrets2)},
			[]string{"Group/devs +RoleBinding/ns1/rb-secrets delete secrets"}},
		{"aggregated source added", []Change{NewChange(nil, &gadgets)},
			[]string{"ServiceAccount/ns2/robot +ClusterRoleBinding/crb-agg watch gadgets"}},
		{"aggregated source deleted", []Change{NewChange(&widgets, nil)},
			[]string{"ServiceAccount/ns2/robot -ClusterRoleBinding/crb-agg list widgets"}},
		{"role deleted", []Change{NewChange(&secrets, nil)},
			[]string{"Group/devs -RoleBinding/ns1/rb-secrets get secrets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := base()
			to := from.Apply(tt.changes)
			d, err := DiffSnapshots(context.Background(), from, to, CondenseChanges(tt.changes))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range d.Subjects {
				for _, p := range s.Gained {
					got = append(got, s.Subject.String()+" +"+p.Binding.String()+" "+strings.Join(p.Rule.Verbs, ",")+" "+strings.Join(p.Rule.Resources, ","))
				}
				for _, p := range s.Lost {
					got = append(got, s.Subject.String()+" -"+p.Binding.String()+" "+strings.Join(p.Rule.Verbs, ",")+" "+strings.Join(p.Rule.Resources, ","))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("deltas (-want +got):\n%s", diff)
			}
			if len(d.Objects) != len(tt.changes) {
				t.Fatalf("objects = %d, want %d", len(d.Objects), len(tt.changes))
			}
		})
	}
}

func TestCondenseChanges(t *testing.T) {
	a := Pod{Meta: Meta{Namespace: "n", Name: "a"}}
	a2 := Pod{Meta: Meta{Namespace: "n", Name: "a", Labels: map[string]string{"x": "y"}}}
	b := Pod{Meta: Meta{Namespace: "n", Name: "b"}}
	c := Pod{Meta: Meta{Namespace: "n", Name: "c"}}
	c2 := Pod{Meta: Meta{Namespace: "n", Name: "c"}, NodeName: "x"}
	r := Binding{Kind: KindClusterRoleBinding, Meta: Meta{Name: "r"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "x"}}
	got := CondenseChanges([]Change{
		NewChange(nil, &a), NewChange(&a, &a2), NewChange(&a2, nil), // added then gone: nothing
		NewChange(&b, &b),                     // no-op update: nothing
		NewChange(nil, &r), NewChange(&r, &r), // added (the update folds in)
		NewChange(&c, &c2), NewChange(&c2, &c), // updated back: nothing
	})
	var ops []string
	for _, d := range got {
		ops = append(ops, string(d.Op)+" "+d.Ref.String())
	}
	if diff := cmp.Diff([]string{"add ClusterRoleBinding/r"}, ops); diff != "" {
		t.Fatalf("condensed (-want +got):\n%s", diff)
	}
}
