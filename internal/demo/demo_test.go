package demo

import (
	"context"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/graph"
)

func TestTimeline(t *testing.T) {
	ctx := context.Background()
	steps, err := Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 7 {
		t.Fatalf("%d steps, want 7 (the install and six timeline files)", len(steps))
	}
	for i, st := range steps {
		if len(st.Changes) == 0 || !strings.HasPrefix(st.Name, "demo: ") {
			t.Errorf("step %d %q has %d changes", i, st.Name, len(st.Changes))
		}
		if i > 0 && st.Ago >= steps[i-1].Ago {
			t.Errorf("step %d is not later than step %d", i, i-1)
		}
	}
	// The planted grants are there, at the right moments.
	s := graph.NewSnapshot(&graph.Objects{})
	anonymous := graph.ImpersonatedIdentity(graph.UserAnonymous, nil)
	listPods := graph.Action{Verb: "list", Resource: "pods", Namespace: "payments"}
	sawAnonymous := false
	for _, st := range steps {
		s = s.Apply(st.Changes)
		sawAnonymous = sawAnonymous || s.Can(anonymous, listPods).Allowed
	}
	if !sawAnonymous || s.Can(anonymous, listPods).Allowed {
		t.Fatal("anonymous pod listing must appear in the timeline and be gone at its end")
	}
	checks := []struct {
		id   graph.Identity
		a    graph.Action
		want bool
	}{
		{graph.ServiceAccountIdentity("payments", "ci-deployer"), graph.Action{Verb: "delete", Resource: "nodes"}, true},
		{graph.ImpersonatedIdentity("someone", []string{"oidc:auditors"}), graph.Action{Verb: "get", Resource: "secrets", Namespace: "payments", Name: "db"}, true},
		{graph.ImpersonatedIdentity("auditor@example.com", nil), graph.Action{Verb: "get", Resource: "pods", Namespace: "payments"}, false},
		{graph.ImpersonatedIdentity("c", []string{"oidc:contractors"}), graph.Action{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "payments", Name: "api-7d9f8-abcde"}, true},
		{graph.ImpersonatedIdentity("jenkins@example.com", nil), graph.Action{Verb: "impersonate", Resource: "users", Name: "admin"}, true},
	}
	for _, c := range checks {
		if got := s.Can(c.id, c.a).Allowed; got != c.want {
			t.Errorf("final state: Can(%v, %+v) = %v, want %v", c.id.User, c.a, got, c.want)
		}
	}
	final, err := Final(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := final.Count(), s.Objects().Count(); got != want {
		t.Fatalf("Final has %d objects, the replayed timeline %d", got, want)
	}
}
