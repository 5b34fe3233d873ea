package queries

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/manifests"
	"github.com/kiem-io/kiem/internal/workload"
)

func kubeadmObjects(t testing.TB) *graph.Objects {
	t.Helper()
	objs, err := manifests.Load(context.Background(), fixtures.FS,
		[]string{fixtures.KubeadmV133, fixtures.KubeadmAddons}, "")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func embeddedEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	packs, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(packs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAskAgreesWithCan checks the permission functions of pack expressions against the engine's Can, the
// function checked differentially against the apiserver's authorizer: for every principal, scope and sampled
// action, the answer and the grants behind it must be the same.
func TestAskAgreesWithCan(t *testing.T) {
	spec := workload.Spec{Namespaces: 8, ServiceAccounts: 60, Roles: 30, RoleBindings: 90, ClusterRoles: 40,
		ClusterRoleBindings: 25, Users: 20, Groups: 6, Pods: 20}
	snap := graph.NewSnapshot(workload.Generate(kubeadmObjects(t), spec, 3))
	e := embeddedEngine(t, Options{})
	ec := e.newContext(snap)
	w := ec.newWorker()
	w.ctx = context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	// Actions drawn from the rules themselves, so that most of them are granted to someone.
	var actions []graph.Action
	snap.Each(graph.KindClusterRole, "", func(o graph.Object) bool {
		for _, rule := range o.(*graph.Role).Rules {
			for _, res := range rule.Resources {
				group := ""
				if len(rule.APIGroups) > 0 && rule.APIGroups[0] != "*" {
					group = rule.APIGroups[0]
				}
				verb := rule.Verbs[r.IntN(len(rule.Verbs))]
				if verb == "*" {
					verb = "delete"
				}
				name, sub, _ := strings.Cut(res, "/")
				if name == "*" {
					name = "secrets"
				}
				a := graph.Action{Verb: verb, APIGroup: group, Resource: name, Subresource: sub}
				if len(rule.ResourceNames) > 0 && r.IntN(2) == 0 {
					a.Name = rule.ResourceNames[0]
				}
				actions = append(actions, a)
			}
			for _, url := range rule.NonResourceURLs {
				actions = append(actions, graph.Action{Verb: rule.Verbs[0], NonResourceURL: strings.TrimSuffix(url, "*")})
			}
		}
		return true
	})
	// The engine's probes too: they are answered from bitsets, not by matching rules.
	for _, p := range e.table.probes {
		if !p.some {
			for range 4 {
				actions = append(actions, p.action)
			}
		}
	}
	scopes := append([]string{""}, snap.NamespaceNames()...)
	allowed, asked := 0, 0
	for _, p := range ec.allPrincipals() {
		id := ec.identity(p)
		for range 30 {
			scope := scopes[r.IntN(len(scopes))]
			a := actions[r.IntN(len(actions))]
			subj := w.subjectFor(p, scope)
			got := subj.evaluation().ask(a, false)
			want := a
			want.Namespace = requestNamespace(a, scope)
			if want.Namespace != "" && want.APIGroup == "" && want.Resource == "namespaces" && want.Name == "" {
				want.Name = want.Namespace
			}
			d := snap.Can(id, want)
			asked++
			if got != d.Allowed {
				t.Fatalf("%s in scope %q: ask(%+v) = %v, Can(%+v) = %v", p, scope, a, got, want, d.Allowed)
			}
			if !got {
				continue
			}
			allowed++
			var gotPaths, wantPaths []string
			for _, perm := range subj.evaluation().evidence() {
				gotPaths = append(gotPaths, perm.Explain())
			}
			for _, gp := range d.Reasons {
				wantPaths = append(wantPaths, gp.Explain())
			}
			slices.Sort(gotPaths)
			slices.Sort(wantPaths)
			if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
				t.Fatalf("%s in scope %q, %+v: evidence differs from Can's reasons (-can +ask):\n%s", p, scope, a, diff)
			}
		}
	}
	if allowed == 0 || allowed == asked {
		t.Fatalf("%d of %d sampled questions allowed: the sample does not tell yes from no", allowed, asked)
	}
}

// TestNativeAgreesWithCEL runs the packs twice, once with the subject rules compiled to native form and once all
// in CEL: the findings, their severities and their evidence must be the same.
func TestNativeAgreesWithCEL(t *testing.T) {
	ctx := context.Background()
	spec := workload.Spec{Namespaces: 10, ServiceAccounts: 80, Roles: 40, RoleBindings: 120, ClusterRoles: 50,
		ClusterRoleBindings: 30, Users: 25, Groups: 8, Pods: 40}
	objs := workload.Generate(kubeadmObjects(t), spec, 11)
	// Planted: a Namespace object named in a rule restricted to resourceNames, in a RoleBinding and cluster-wide.
	objs.Roles = append(objs.Roles, graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: "kube-system", Name: "ns-patch"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"patch"}, APIGroups: []string{""}, Resources: []string{"namespaces"}, ResourceNames: []string{"kube-system"}},
			{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}}})
	objs.RoleBindings = append(objs.RoleBindings, graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: "kube-system", Name: "ns-patch"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: "ns-patch"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "planted"}}})
	snap := graph.NewSnapshot(objs)
	native := embeddedEngine(t, Options{})
	if len(native.native) == 0 {
		t.Fatal("no subject rule compiled to native form")
	}
	cel := embeddedEngine(t, Options{})
	clear(cel.native)
	for _, p := range cel.packs {
		for _, r := range p.Rules {
			if ps, complete := probesOf(r.matchAST); r.matchAST != nil && complete {
				b := newBitset(len(cel.table.probes))
				for _, pr := range ps {
					if id, ok := cel.table.lookup(pr.action, pr.some); ok {
						b.set(id)
					} else {
						b = nil // a question only an unrolled native expression numbered: no prefilter
						break
					}
				}
				if b != nil && r.probesComplete {
					cel.ruleProbes[r] = b
				}
			}
		}
	}
	a, err := native.Evaluate(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cel.Evaluate(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Findings()) < 50 {
		t.Fatalf("only %d findings: the workload does not exercise the rules", len(a.Findings()))
	}
	if diff := cmp.Diff(summarize(b.Findings()), summarize(a.Findings())); diff != "" {
		t.Fatalf("native findings differ from CEL's (-cel +native):\n%s", diff)
	}
	planted := 0
	for _, f := range a.Findings() {
		if f.Subject != nil && f.Subject.Name == "planted" && f.Rule == "KIEM-ESC-011" {
			planted++
		}
	}
	if planted != 1 {
		t.Fatalf("the planted namespace patch gave %d KIEM-ESC-011 findings, want 1", planted)
	}
}

// TestRequestNamespace pins how a request's namespace follows from the resource's scope.
func TestRequestNamespace(t *testing.T) {
	tests := []struct {
		a     graph.Action
		scope string
		want  string
	}{
		{graph.Action{Verb: "create", Resource: "pods"}, "team", "team"},
		{graph.Action{Verb: "create", Resource: "pods"}, "", ""},
		{graph.Action{Verb: "create", Resource: "persistentvolumes"}, "team", ""},
		{graph.Action{Verb: "get", Resource: "nodes", Subresource: "proxy"}, "team", ""},
		{graph.Action{Verb: "impersonate", Resource: "users"}, "team", ""},
		{graph.Action{Verb: "impersonate", Resource: "groups"}, "team", ""},
		{graph.Action{Verb: "impersonate", Resource: "serviceaccounts"}, "team", "team"},
		{graph.Action{Verb: "impersonate", APIGroup: "authentication.k8s.io", Resource: "uids"}, "team", ""},
		{graph.Action{Verb: "patch", Resource: "namespaces"}, "team", "team"},
		{graph.Action{Verb: "patch", Resource: "namespaces", Name: "other"}, "team", ""},
		{graph.Action{Verb: "list", Resource: "namespaces"}, "team", ""},
		{graph.Action{Verb: "create", APIGroup: "example.com", Resource: "widgets"}, "team", "team"},
		{graph.Action{Verb: "get", NonResourceURL: "/healthz"}, "team", ""},
	}
	for _, tt := range tests {
		if got := requestNamespace(tt.a, tt.scope); got != tt.want {
			t.Errorf("requestNamespace(%+v, %q) = %q, want %q", tt.a, tt.scope, got, tt.want)
		}
	}
}

func TestParsePackErrors(t *testing.T) {
	const head = "pack: p\ntitle: T\ndescription: d\nrules:\n"
	const rule = "- id: R-1\n  title: t\n  severity: low\n  description: d\n  remediation: r\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", head + rule + "  target: subject\n  match: 'true'\n  colour: red\n", "x.yaml: line 12: field colour not found"},
		{"cel type error", head + rule + "  target: subject\n  match: subject.nmae == 'x'\n", "x.yaml:11: rule R-1: match: ERROR: <input>:1:8: undefined field 'nmae'"},
		{"not bool", head + rule + "  target: subject\n  match: subject.name\n", "x.yaml:11: rule R-1: match: expression gives string, want bool"},
		{"unknown check", head + rule + "  check: no-such-check\n", "x.yaml:10: rule R-1: unknown check \"no-such-check\""},
		{"both", head + rule + "  target: subject\n  match: 'true'\n  check: dangling-role-ref\n", "set either match or check"},
		{"neither", head + rule + "  target: subject\n", "match (a CEL expression) or check (a Go check) is required"},
		{"unknown target", head + rule + "  target: cluster\n  match: 'true'\n", "unknown target \"cluster\""},
		{"bad severity", head + strings.Replace(rule, "low", "urgent", 1) + "  target: subject\n  match: 'true'\n", "unknown severity \"urgent\""},
		{"duplicate id", head + rule + "  target: subject\n  match: 'true'\n" + rule + "  target: subject\n  match: 'true'\n", "x.yaml:12: rule R-1: id already used at line 5"},
		{"missing remediation", head + strings.Replace(rule, "  remediation: r\n", "", 1) + "  target: subject\n  match: 'true'\n", "x.yaml:5: rule R-1: remediation: missing"},
		{"check on wrong target", head + rule + "  target: subject\n  check: dangling-role-ref\n", "check dangling-role-ref runs on target binding, not subject"},
		{"unknown data", head + rule + "  target: subject\n  match: 'true'\n  requires: [configmaps]\n", "requires: unknown data \"configmaps\""},
		{"bad pack name", "pack: Bad Name\ntitle: T\nrules:\n" + rule + "  target: subject\n  match: 'true'\n", "x.yaml:1: pack: want a lower-case name"},
		{"no rules", "pack: p\ntitle: T\n", "rules: a pack needs at least one rule"},
		{"graded severity type", head + rule + "  target: subject\n  match: 'true'\n  severities:\n  - {when: scope, severity: high}\n", "severities[0].when: expression gives string, want bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePack("x.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParsePack error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := ParsePack("x.yaml", []byte(head+rule+"  target: subject\n  match: subject.can('get', 'pods')\n")); err != nil {
		t.Fatalf("valid pack refused: %v", err)
	}
}

func TestEmbeddedPacksLoad(t *testing.T) {
	packs, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, p := range packs {
		for _, r := range p.Rules {
			ids[r.ID] = true
			if !strings.HasPrefix(r.Source, "embedded:packs/") {
				t.Errorf("rule %s: source %q", r.ID, r.Source)
			}
		}
	}
	if _, err := NewEngine(packs, Options{}); err != nil {
		t.Fatal(err)
	}
	// Every rule of RISKS.md §3 kiem implements (KIEM-HYG-009 needs audit events: issue 9).
	for _, id := range []string{"KIEM-CIS-5.1.1", "KIEM-CIS-5.1.2", "KIEM-CIS-5.1.3", "KIEM-CIS-5.1.4", "KIEM-CIS-5.1.5a",
		"KIEM-CIS-5.1.5b", "KIEM-CIS-5.1.5c", "KIEM-CIS-5.1.6", "KIEM-CIS-5.1.7", "KIEM-CIS-5.1.8", "KIEM-CIS-5.1.9",
		"KIEM-CIS-5.1.10", "KIEM-CIS-5.1.11", "KIEM-CIS-5.1.12", "KIEM-CIS-5.1.13",
		"KIEM-ESC-001", "KIEM-ESC-002", "KIEM-ESC-003", "KIEM-ESC-004", "KIEM-ESC-005", "KIEM-ESC-006", "KIEM-ESC-007",
		"KIEM-ESC-008", "KIEM-ESC-009", "KIEM-ESC-010", "KIEM-ESC-011", "KIEM-ESC-012", "KIEM-ESC-013", "KIEM-ESC-014",
		"KIEM-ESC-015", "KIEM-ESC-016", "KIEM-ESC-017", "KIEM-ESC-018", "KIEM-ESC-019", "KIEM-ESC-020", "KIEM-ESC-021",
		"KIEM-DEF-001", "KIEM-DEF-002", "KIEM-DEF-003", "KIEM-WL-001", "KIEM-WL-002", "KIEM-WL-003",
		"KIEM-HYG-001", "KIEM-HYG-002", "KIEM-HYG-003", "KIEM-HYG-004", "KIEM-HYG-005", "KIEM-HYG-006", "KIEM-HYG-007",
		"KIEM-HYG-008", "KIEM-HYG-010a", "KIEM-HYG-010c", "KIEM-HYG-010d", "KIEM-HYG-011", "KIEM-HYG-012",
		"KIEM-HYG-013", "KIEM-HYG-014", "KIEM-HYG-014r", "KIEM-HYG-014w", "KIEM-HYG-015", "KIEM-HYG-016", "KIEM-HYG-017"} {
		if !ids[id] {
			t.Errorf("no rule %s in the embedded packs", id)
		}
	}
}

// TestUpdateEqualsEvaluate applies random changes and checks that re-evaluating only what they touch gives the
// findings a full evaluation of the new snapshot gives, and that the delta is their difference.
func TestUpdateEqualsEvaluate(t *testing.T) {
	ctx := context.Background()
	e := embeddedEngine(t, Options{})
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
				ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 40}
			snap := graph.NewSnapshot(workload.Generate(kubeadmObjects(t), spec, int64(seed)))
			res, err := e.Evaluate(ctx, snap)
			if err != nil {
				t.Fatal(err)
			}
			for batch := range 10 {
				changes := randomChanges(r, snap.Objects(), 1+r.IntN(4))
				next := snap.Apply(changes)
				upd, delta, err := e.Update(ctx, res, next, graph.CondenseChanges(changes))
				if err != nil {
					t.Fatal(err)
				}
				if upd.PathsPending() {
					var pd Delta
					if upd, pd, err = e.RefreshPaths(ctx, upd); err != nil {
						t.Fatal(err)
					}
					if upd.PathsPending() {
						t.Fatal("RefreshPaths left the paths pending")
					}
					delta.New = append(delta.New, pd.New...)
					delta.Resolved = append(delta.Resolved, pd.Resolved...)
				}
				full, err := e.Evaluate(ctx, next)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(summarize(full.Findings()), summarize(upd.Findings())); diff != "" {
					for _, c := range changes {
						t.Logf("change: %s %s", c.Op, c.Ref)
					}
					t.Fatalf("batch %d (%d changes): incremental findings differ from a full evaluation (-full +incremental):\n%s", batch, len(changes), diff)
				}
				want := Compare(res.Findings(), full.Findings())
				if diff := cmp.Diff(summarize(want.New), summarize(delta.New)); diff != "" {
					t.Fatalf("batch %d: new findings differ (-want +got):\n%s", batch, diff)
				}
				if diff := cmp.Diff(summarize(want.Resolved), summarize(delta.Resolved)); diff != "" {
					t.Fatalf("batch %d: resolved findings differ (-want +got):\n%s", batch, diff)
				}
				snap, res = next, upd
			}
		})
	}
}

// summarize renders findings for comparison: everything a user sees.
func summarize(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		s := fmt.Sprintf("%s %s %s %s %v %v | %s", f.Fingerprint, f.Rule, f.Severity, f.Status, f.Subject, f.Object, f.Message)
		for _, e := range f.Evidence {
			s += " | " + e.Describe()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func randomChanges(r *rand.Rand, objs *graph.Objects, n int) []graph.Change {
	var out []graph.Change
	touched := map[graph.ObjectRef]bool{}
	add := func(c graph.Change) {
		if !touched[c.Ref] {
			touched[c.Ref] = true
			out = append(out, c)
		}
	}
	for range n {
		switch r.IntN(9) {
		case 0:
			if len(objs.RoleBindings) > 0 {
				b := objs.RoleBindings[r.IntN(len(objs.RoleBindings))]
				add(graph.NewChange(&b, nil))
			}
		case 1:
			if len(objs.RoleBindings) > 1 && len(objs.ClusterRoles) > 0 {
				b := objs.RoleBindings[r.IntN(len(objs.RoleBindings))]
				nb := b
				nb.Subjects = slices.Clone(objs.RoleBindings[r.IntN(len(objs.RoleBindings))].Subjects)
				nb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Name}
				add(graph.NewChange(&b, &nb))
			}
		case 2:
			if len(objs.ClusterRoles) > 0 && len(objs.RoleBindings) > 0 {
				nb := graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: fmt.Sprintf("new-crb-%d", r.IntN(1000))},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Name},
					Subjects: slices.Clone(objs.RoleBindings[r.IntN(len(objs.RoleBindings))].Subjects)}
				add(graph.NewChange(nil, &nb))
			}
		case 3:
			if len(objs.ClusterRoles) > 1 {
				c := objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))]
				nc := c
				nc.Rules = slices.Clone(objs.ClusterRoles[r.IntN(len(objs.ClusterRoles))].Rules)
				add(graph.NewChange(&c, &nc))
			}
		case 4:
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
				add(graph.NewChange(&c, &nc))
			}
		case 5:
			if len(objs.Roles) > 0 {
				ro := objs.Roles[r.IntN(len(objs.Roles))]
				nr := ro
				nr.Rules = append(slices.Clone(ro.Rules), rbacv1.PolicyRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"secrets"}})
				add(graph.NewChange(&ro, &nr))
			}
		case 6:
			if len(objs.ClusterRoleBindings) > 0 {
				b := objs.ClusterRoleBindings[r.IntN(len(objs.ClusterRoleBindings))]
				add(graph.NewChange(&b, nil))
			}
		case 7:
			if len(objs.ServiceAccounts) > 0 {
				sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
				add(graph.NewChange(&sa, nil))
				p := graph.Pod{Meta: graph.Meta{Namespace: sa.Namespace, Name: fmt.Sprintf("p-%d", r.IntN(1000))}, ServiceAccount: sa.Name, NodeName: "node-1"}
				add(graph.NewChange(nil, &p))
			}
		case 8:
			if len(objs.Namespaces) > 0 {
				ns := objs.Namespaces[r.IntN(len(objs.Namespaces))]
				nn := ns
				nn.Labels = map[string]string{"pod-security.kubernetes.io/enforce": []string{"privileged", "baseline", "restricted"}[r.IntN(3)]}
				add(graph.NewChange(&ns, &nn))
			}
		}
	}
	return out
}
