package filters

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// TestCompileErrors: a filter that cannot run is refused with a message that says where and why.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		f    Filter
		want []string
	}{
		{Filter{ID: "Bad ID", Name: "x", Target: TargetFindings, Expression: "true"}, []string{"id \"Bad ID\""}},
		{Filter{ID: "a", Target: TargetFindings, Expression: "true"}, []string{"name is required"}},
		{Filter{ID: "a", Name: "x", Target: "pods", Expression: "true"}, []string{"target \"pods\""}},
		{Filter{ID: "a", Name: "x", Target: TargetEntities, Kind: "Deployment", Expression: "true"}, []string{"kind \"Deployment\""}},
		{Filter{ID: "a", Name: "x", Target: TargetFindings, Kind: "Pod", Expression: "true"}, []string{"kind is for target entities only"}},
		// A misspelt field is a type error pointing at the expression: line, column and caret.
		{Filter{ID: "a", Name: "x", Target: TargetFindings, Expression: "finding.severty == 'high'"},
			[]string{"undefined field 'severty'", "1:8", "^"}},
		{Filter{ID: "a", Name: "x", Target: TargetGrants, Expression: "grant.verbs"}, []string{"gives list(string), want bool"}},
		{Filter{ID: "a", Name: "x", Target: TargetChanges, Expression: "change.op == "}, []string{"Syntax error"}},
		{Filter{ID: "a", Name: "x", Target: TargetEntities, Kind: graph.KindRole,
			Expression: "object.rules.all(r, object.rules.all(s, object.rules.all(u, r.verbs.all(v, s.verbs.all(w, v == w)))))"},
			[]string{"more than the 100000 allowed"}},
	}
	for _, tt := range tests {
		_, err := Compile(tt.f)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Compile(%q) = %v, want an ErrInvalid", tt.f.Expression, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Compile(%q) = %q, want it to say %q", tt.f.Expression, err, w)
			}
		}
	}
}

// TestMatch evaluates filters of every target on models built from graph and queries values.
func TestMatch(t *testing.T) {
	ctx := context.Background()
	ns := "prod"
	secretsRead := &rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"secrets"}}
	podsAll := &rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"pods"}}
	binding := graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: ns, Name: "rb"}
	role := graph.ObjectRef{Kind: graph.KindClusterRole, Name: "reader"}
	alice := graph.ObjectRef{Kind: graph.KindUser, Name: "alice"}
	grant := func(rule *rbacv1.PolicyRule, ns string) *Grant {
		return GrantOf(alice, &graph.Permission{Namespace: ns, GrantPath: graph.GrantPath{Binding: &binding, Role: &role, Rule: rule}})
	}
	crb := &graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: "admins"},
		RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "ops"}}}
	finding := &queries.Finding{Rule: "KIEM-CIS-5.1.1", Severity: queries.SeverityCritical, Status: queries.StatusRisky,
		Subject: &alice, Namespace: ns}
	rec := &graph.ChangeRecord{Revision: 7, Op: graph.OpAdd, Ref: crb.Ref(), After: crb, Actor: &graph.Actor{User: "mallory"}}
	tests := []struct {
		target Target
		kind   graph.Kind
		expr   string
		value  any
		want   bool
	}{
		{TargetFindings, "", "finding.severity == 'critical' && finding.namespace == 'prod'", FindingOf(finding), true},
		{TargetFindings, "", "finding.severity in ['high', 'critical'] && finding.subject.name == 'bob'", FindingOf(finding), false},
		{TargetGrants, "", "grant.allows(['get', 'watch'], 'secrets') && grant.appliesIn('prod')", grant(secretsRead, ns), true},
		{TargetGrants, "", "grant.allows('get', 'secrets') && grant.appliesIn('prod')", grant(secretsRead, "dev"), false},
		// A ClusterRoleBinding's grant applies in every namespace.
		{TargetGrants, "", "grant.allows('list', 'secrets') && grant.appliesIn('prod')", grant(secretsRead, ""), true},
		{TargetGrants, "", "grant.allows('delete', 'pods') && grant.subject.kind == 'User'", grant(podsAll, ns), true},
		{TargetGrants, "", "grant.allows('create', 'pods/exec')", grant(podsAll, ns), false},
		{TargetChanges, "", "change.kind == 'ClusterRoleBinding' && change.op == 'add' && change.object.roleRef.name == 'cluster-admin'", ChangeOf(rec), true},
		{TargetChanges, "", "change.actor == 'mallory' && change.before.name == ''", ChangeOf(rec), true},
		{TargetEntities, graph.KindClusterRoleBinding, "object.roleRef.name == 'cluster-admin' && object.subjects.exists(s, s.kind == 'Group')", EntityOf(crb), true},
		{TargetEntities, graph.KindClusterRoleBinding, "object.labels[?'team'].orValue('') == 'ops'", EntityOf(crb), false},
	}
	for _, tt := range tests {
		c, err := Compile(Filter{ID: "f", Name: "f", Target: tt.target, Kind: tt.kind, Expression: tt.expr})
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		got, err := c.Match(ctx, tt.value)
		if err != nil {
			t.Fatalf("Match(%q): %v", tt.expr, err)
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.expr, got, tt.want)
		}
	}
}

// TestStoreAndFile: filters persist in a real store across a reopen; a declared file replaces what it declared
// before and names the line of a bad filter.
func TestStoreAndFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := Filter{ID: "admins", Name: "new cluster-admins", Owner: "sec", Target: TargetChanges,
		Expression: "change.object.roleRef.name == 'cluster-admin'"}
	if _, err := Save(ctx, st, f, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(ctx, st, Filter{ID: "bad", Name: "x", Target: TargetFindings, Expression: "finding.nope"}, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("saving an invalid filter: %v, want ErrInvalid", err)
	}
	path := filepath.Join(t.TempDir(), "filters.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`filters:
- id: crit
  name: critical findings
  target: findings
  expression: finding.severity == 'critical'
- id: old
  name: to be dropped
  target: findings
  expression: "true"
`)
	fs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Declare(ctx, st, path, fs, now); err != nil {
		t.Fatal(err)
	}
	write(`- id: crit
  name: critical findings
  target: findings
  expression: finding.severity == 'critical'
`)
	if fs, err = ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := Declare(ctx, st, path, fs, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := List(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range got {
		ids = append(ids, g.ID+":"+g.Source)
	}
	if want := "admins:api crit:" + path; strings.Join(ids, " ") != want {
		t.Fatalf("after reopen: %v, want %s", ids, want)
	}
	if !got[1].Created.Equal(now) || !got[1].Updated.Equal(now.Add(time.Hour)) {
		t.Errorf("crit created %v updated %v: a re-declared filter keeps its creation time", got[1].Created, got[1].Updated)
	}
	if err := Delete(ctx, st, "admins"); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, st, "admins"); !errors.Is(err, graph.ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct{ file, want string }{
		{"- id: x\n  name: x\n  target: findings\n  expresion: 'true'\n", ":4: unknown field \"expresion\""},
		{"- id: x\n  name: x\n  target: findings\n  expression: finding.sevrity == ''\n", ":1: invalid filter: filter x: expression"},
		{"- id: x\n  name: x\n  target: findings\n  expression: 'true'\n- id: x\n  name: y\n  target: findings\n  expression: 'true'\n", ":5: filter x already declared at line 1"},
		{"- id: x\n  name: x: y\n  target: findings\n", ":2: mapping values are not allowed in this context"},
		{"filters: {id: x}\n", ":1: want a list of filters"},
		{"- id: x\n  name: {a: b}\n", ":1: unmarshal errors:\n  line 2: cannot unmarshal !!map into string"},
	} {
		write(tc.file)
		// Whatever is wrong with the file's content, the error is an ErrInvalid, like a filter saved through the API.
		if _, err := ReadFile(path); err == nil || !strings.HasPrefix(err.Error(), path+tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ReadFile(%q) = %v, want %q and an ErrInvalid", tc.file, err, path+tc.want)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Errorf("ReadFile(missing) = %v, want a not-exist error, not an ErrInvalid", err)
	}
}
