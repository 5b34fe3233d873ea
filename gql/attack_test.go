package gql

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kiem-io/kiem/graph"
)

type gqlHop struct {
	From           *struct{ Kind, Namespace, Name string }
	To             *struct{ Kind, Namespace, Name string }
	FromRef, ToRef gqlRef
	Edge           string
	Namespace      *string
	Technique      *string
	Potential      bool
	Evidence       []gqlGrant
	PartialEvid    []struct{ Text string } `json:"partialEvidence"`
}

const hopFields = `from { kind namespace name } to { kind namespace name } fromRef { kind namespace name } toRef { kind namespace name }
	edge namespace technique potential partialEvidence { text }
	evidence { text binding { kind name namespace } role { kind name } rule { verbs resources } }`

func TestAttackPaths(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	type answer struct {
		AttackPaths []struct {
			Text string
			Hops []gqlHop
		}
	}
	query := `query($s: SubjectInput!, $t: AttackTargetInput, $k: Int, $at: Revision) {
		attackPaths(subject: $s, target: $t, k: $k, at: $at) { text hops { ` + hopFields + ` } } }`
	mallory := map[string]any{"kind": "USER", "name": "mallory"}

	var got answer
	a.query(query, map[string]any{"s": mallory}, &got)
	if len(got.AttackPaths) == 0 {
		t.Fatal("mallory has no path to cluster-admin")
	}
	p := got.AttackPaths[0]
	// User/mallory -[E-CREATE_POD_AS_SA@ops]-> ServiceAccounts/ops/* -[INCLUDES]-> ServiceAccount/ops/admin-sa -[…]-> ClusterAdmin
	first, last := p.Hops[0], p.Hops[len(p.Hops)-1]
	if first.FromRef.String() != "User//mallory" || first.From == nil || first.From.Kind != "USER" || first.From.Name != "mallory" {
		t.Errorf("first hop from %s (%+v), want User mallory", &first.FromRef, first.From)
	}
	if first.Edge != "E-CREATE_POD_AS_SA" || first.Namespace == nil || *first.Namespace != "ops" || first.Technique == nil || *first.Technique != "T1610" {
		t.Errorf("first hop = %s %v %v, want E-CREATE_POD_AS_SA in ops (T1610)", first.Edge, first.Namespace, first.Technique)
	}
	if first.ToRef.Kind != string(graph.KindServiceAccounts) || first.ToRef.Namespace != "ops" || first.To != nil {
		t.Errorf("first hop to %s (node %+v), want the ServiceAccounts of ops, which has no node", &first.ToRef, first.To)
	}
	if len(first.Evidence) != 1 || first.Evidence[0].Binding.Name != "mallory-pods" || first.Evidence[0].Role.Name != "pod-creator" ||
		!slices.Contains(first.Evidence[0].Rule.Resources, "pods") {
		t.Errorf("first hop evidence = %+v, want RoleBinding ops/mallory-pods", first.Evidence)
	}
	if last.ToRef.Kind != string(graph.KindClusterAdmin) || last.To != nil {
		t.Errorf("last hop to %s, want cluster-admin", &last.ToRef)
	}
	if !slices.ContainsFunc(p.Hops, func(h gqlHop) bool {
		return h.To != nil && h.To.Kind == "SERVICE_ACCOUNT" && h.To.Namespace == "ops" && h.To.Name == "admin-sa"
	}) {
		t.Errorf("path %s does not pass ServiceAccount ops/admin-sa", p.Text)
	}
	for i := 1; i < len(p.Hops); i++ {
		if p.Hops[i].FromRef != p.Hops[i-1].ToRef {
			t.Errorf("hop %d starts at %s, hop %d ended at %s", i, &p.Hops[i].FromRef, i-1, &p.Hops[i-1].ToRef)
		}
	}
	if !strings.Contains(p.Text, "User/mallory") || !strings.Contains(p.Text, "E-CREATE_POD_AS_SA@ops") {
		t.Errorf("text %q", p.Text)
	}

	// The finding about mallory carries the same shortest path.
	var f findingPageWithPath
	a.query(`{ findings(rule: "KIEM-CIS-5.1.4", subject: {kind: USER, name: "mallory"}) { nodes { path { fromRef { kind namespace name } toRef { kind namespace name } edge } } } }`, nil, &f)
	if len(f.Findings.Nodes) != 1 || len(f.Findings.Nodes[0].Path) != len(p.Hops) {
		t.Fatalf("mallory's finding: %+v, want a path of %d hops", f.Findings.Nodes, len(p.Hops))
	}
	if hp := f.Findings.Nodes[0].Path; hp[0].Edge != first.Edge || hp[len(hp)-1].ToRef != last.ToRef {
		t.Errorf("finding path %+v, attackPaths %s", hp, p.Text)
	}
	var none findingPageWithPath
	a.query(`{ findings(rule: "KIEM-CIS-5.1.4", subject: {kind: SERVICE_ACCOUNT, namespace: "team-a", name: "deployer"}) { nodes { path { edge } } } }`, nil, &none)
	if len(none.Findings.Nodes) != 1 || none.Findings.Nodes[0].Path != nil {
		t.Errorf("deployer's finding: %+v, want one with no path (team-a holds no ServiceAccount that leads anywhere)", none.Findings.Nodes)
	}

	tests := []struct {
		name  string
		vars  map[string]any
		check func(t *testing.T, got answer)
	}{
		{"to a subject", map[string]any{"s": mallory, "t": map[string]any{"kind": "SUBJECT", "subjectKind": "SERVICE_ACCOUNT", "namespace": "ops", "name": "admin-sa"}},
			func(t *testing.T, got answer) {
				if len(got.AttackPaths) == 0 {
					t.Fatal("no path to admin-sa")
				}
				for _, p := range got.AttackPaths {
					if end := p.Hops[len(p.Hops)-1].ToRef; end.String() != "ServiceAccount/ops/admin-sa" {
						t.Errorf("path %s ends at %s", p.Text, &end)
					}
				}
			}},
		{"k bounds the count", map[string]any{"s": mallory, "k": 1}, func(t *testing.T, got answer) {
			if len(got.AttackPaths) != 1 {
				t.Errorf("k: 1 gave %d paths", len(got.AttackPaths))
			}
		}},
		{"before the plant", map[string]any{"s": mallory, "at": a.base}, func(t *testing.T, got answer) {
			if len(got.AttackPaths) != 0 {
				t.Errorf("at %d mallory had no grants, yet: %+v", a.base, got.AttackPaths)
			}
		}},
		{"a subject with no grants", map[string]any{"s": map[string]any{"kind": "USER", "name": "nobody"}}, func(t *testing.T, got answer) {
			if len(got.AttackPaths) != 0 {
				t.Errorf("nobody has paths: %+v", got.AttackPaths)
			}
		}},
		{"the ServiceAccount as a user name", map[string]any{"s": map[string]any{"kind": "USER", "name": "system:serviceaccount:ops:admin-sa"}},
			func(t *testing.T, got answer) {
				if len(got.AttackPaths) == 0 || got.AttackPaths[0].Hops[0].FromRef.String() != "ServiceAccount/ops/admin-sa" {
					t.Errorf("paths %+v, want admin-sa's", got.AttackPaths)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got answer
			a.query(query, tt.vars, &got)
			tt.check(t, got)
		})
	}

	bad := []struct{ name, query, code, msg string }{
		{"k too big", `{ attackPaths(subject: {kind: USER, name: "mallory"}, k: 11) { text } }`, "BAD_USER_INPUT", "k: 11"},
		{"k zero", `{ attackPaths(subject: {kind: USER, name: "mallory"}, k: 0) { text } }`, "BAD_USER_INPUT", "k: 0"},
		{"subject target without kind", `{ attackPaths(subject: {kind: USER, name: "mallory"}, target: {kind: SUBJECT, name: "x"}) { text } }`, "BAD_USER_INPUT", "subjectKind"},
		{"ServiceAccount target without namespace", `{ attackPaths(subject: {kind: USER, name: "mallory"}, target: {kind: SUBJECT, subjectKind: SERVICE_ACCOUNT, name: "x"}) { text } }`,
			"BAD_USER_INPUT", "target: a ServiceAccount needs its namespace"},
		{"secrets without namespace", `{ attackPaths(subject: {kind: USER, name: "mallory"}, target: {kind: SECRETS}) { text } }`, "BAD_USER_INPUT", "namespace"},
		{"unknown target kind", `{ attackPaths(subject: {kind: USER, name: "mallory"}, target: {kind: PODS}) { text } }`, "GRAPHQL_VALIDATION_FAILED", "PODS"},
		{"ServiceAccount without namespace", `{ attackPaths(subject: {kind: SERVICE_ACCOUNT, name: "x"}) { text } }`, "BAD_USER_INPUT", "namespace"},
		{"too costly", `{ attackPaths(subject: {kind: USER, name: "mallory"}, k: 10) { hops { evidence { binding { subjects { node { permissions(first: 1000) { totalCount } } } } } } } }`,
			"QUERY_TOO_COMPLEX", "query cost"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			msg, code := a.errorCode(viewerToken, tt.query, nil)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q (%s), want %q (%s)", msg, code, tt.msg, tt.code)
			}
		})
	}
}

type findingPageWithPath struct {
	Findings struct {
		Nodes []struct {
			Path []gqlHop
		}
	}
}

// TestAttackCache checks that concurrent requests for one revision derive its graph once, and that the cache
// keeps the most recently used revisions only.
func TestAttackCache(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	ctx := context.Background()
	head, snap := a.live.HeadSnapshot()
	var c attackCache
	var wg sync.WaitGroup
	graphs := make([]*graph.AttackGraph, 8)
	for i := range graphs {
		wg.Go(func() {
			g, err := c.AttackGraph(ctx, head, snap)
			if err != nil {
				t.Error(err)
			}
			graphs[i] = g
		})
	}
	wg.Wait()
	for i, g := range graphs {
		if g == nil || g != graphs[0] {
			t.Fatalf("request %d got graph %p, request 0 %p: want one derivation", i, g, graphs[0])
		}
	}
	base, err := a.live.At(ctx, a.base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttackGraph(ctx, a.base, base); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.AttackGraph(ctx, head, snap); g != graphs[0] {
		t.Error("the head's graph was derived again while two revisions fit")
	}
	empty, err := a.live.At(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttackGraph(ctx, 0, empty); err != nil {
		t.Fatal(err)
	}
	if len(c.entries) != attackGraphsKept || slices.ContainsFunc(c.entries, func(e *attackEntry) bool { return e.rev == a.base }) {
		t.Errorf("cache holds %d entries, the least recently used (%d) among them", len(c.entries), a.base)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.AttackGraph(canceled, 12345, base); err == nil {
		t.Error("a canceled derivation succeeded")
	}
	if slices.ContainsFunc(c.entries, func(e *attackEntry) bool { return e.rev == 12345 }) {
		t.Error("a failed derivation stays cached")
	}
}
