package filters

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// fuzzTargets are the targets (and entity kinds) FuzzCompile picks from by its first argument.
var fuzzTargets = func() []Filter {
	out := []Filter{{Target: TargetFindings}, {Target: TargetGrants}, {Target: TargetChanges}}
	for _, k := range entityKinds {
		out = append(out, Filter{Target: TargetEntities, Kind: k})
	}
	return out
}()

// fuzzModel is a small model of every target: the values a compiled filter is evaluated on.
var fuzzModel = func() map[Target][]any {
	ns := "prod"
	alice := graph.ObjectRef{Kind: graph.KindUser, Name: "alice"}
	sa := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: "deployer"}
	rb := graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: ns, Name: "rb"}
	crbRef := graph.ObjectRef{Kind: graph.KindClusterRoleBinding, Name: "admins"}
	reader := graph.ObjectRef{Kind: graph.KindClusterRole, Name: "reader"}
	grant := func(subject graph.ObjectRef, binding *graph.ObjectRef, ns string, rule rbacv1.PolicyRule) any {
		return GrantOf(subject, &graph.Permission{Namespace: ns, GrantPath: graph.GrantPath{Binding: binding, Role: &reader, Rule: &rule}})
	}
	no := false
	crb := &graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: "admins", Labels: map[string]string{"team": "ops"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "ops"}, {Kind: "ServiceAccount", Namespace: ns, Name: "deployer"}}}
	roleBinding := &graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: ns, Name: "rb"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}}
	role := &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: ns, Name: "pods", Annotations: map[string]string{"owner": "team-a"}},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}}}}
	aggregated := &graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "view"},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: nil},
		Rules:           []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}, {Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}}}}
	objects := []graph.Object{crb, roleBinding, role, aggregated,
		&graph.ServiceAccount{Meta: graph.Meta{Namespace: ns, Name: "deployer"}, AutomountToken: &no},
		&graph.Pod{Meta: graph.Meta{Namespace: ns, Name: "web"}, ServiceAccount: "deployer", NodeName: "node-1"},
		&graph.Namespace{Meta: graph.Meta{Name: ns, Labels: map[string]string{"env": "prod"}}},
		&graph.Node{Meta: graph.Meta{Name: "node-1"}},
		&graph.Secret{Meta: graph.Meta{Namespace: ns, Name: "token"}, Type: "kubernetes.io/service-account-token", ServiceAccount: "deployer"},
		&graph.User{Meta: graph.Meta{Name: "alice"}, Groups: []string{"ops", "system:authenticated"}},
	}
	m := map[Target][]any{
		TargetFindings: {
			FindingOf(&queries.Finding{Rule: "KIEM-CIS-5.1.1", Pack: "cis", Title: "cluster-admin", Severity: queries.SeverityCritical,
				Status: queries.StatusRisky, Subject: &sa, Object: &crbRef, Namespace: ns, Message: "m", Fingerprint: "f"}),
			FindingOf(&queries.Finding{Severity: queries.SeverityInfo, Status: queries.StatusExpected}),
		},
		TargetGrants: {
			grant(alice, &rb, ns, rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"secrets"}}),
			grant(sa, &crbRef, "", rbacv1.PolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}),
			grant(sa, &crbRef, "", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, ResourceNames: []string{"web"}}),
			grant(alice, &crbRef, "", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics", "/logs/*"}}),
			grant(alice, &crbRef, "", rbacv1.PolicyRule{}),
		},
		TargetChanges: {
			ChangeOf(&graph.ChangeRecord{Revision: 7, Op: graph.OpAdd, Ref: crb.Ref(), After: crb, Source: "cluster:prod", Actor: &graph.Actor{User: "mallory", Groups: []string{"dev"}}}),
			ChangeOf(&graph.ChangeRecord{Revision: 8, Op: graph.OpUpdate, Ref: role.Ref(), Before: role, After: aggregated}),
			ChangeOf(&graph.ChangeRecord{Revision: 9, Op: graph.OpDelete, Ref: roleBinding.Ref(), Before: roleBinding}),
			ChangeOf(&graph.ChangeRecord{Revision: 10, Op: graph.OpDelete, Ref: graph.ObjectRef{Kind: graph.KindPod, Namespace: ns, Name: "gone"}}),
		},
	}
	for _, o := range objects {
		m[TargetEntities] = append(m[TargetEntities], EntityOf(o))
	}
	return m
}()

// FuzzCompile compiles arbitrary expressions for every target (the seed corpus in testdata/fuzz/FuzzCompile holds
// the examples of docs/alerts.md, the tests' expressions and the console's). Whatever the expression:
//   - Compile never panics, and a refusal wraps ErrInvalid;
//   - an accepted filter evaluates on every value of a small model of its target without panicking, and gives a
//     bool or an error;
//   - a filter with a guard (the field equality kiem indexes filters by) never matches a value whose field does
//     not hold the guard's constant: indexing filters by their guard loses no alert.
func FuzzCompile(f *testing.F) {
	f.Add(uint8(0), "finding.severity == 'critical' && finding.status == 'risky'")
	f.Fuzz(func(t *testing.T, which uint8, expr string) {
		flt := fuzzTargets[int(which)%len(fuzzTargets)]
		flt.ID, flt.Name, flt.Expression = "f", "fuzz", expr
		c, err := Compile(flt)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile(%q) = %v, not an ErrInvalid", expr, err)
			}
			return
		}
		for _, v := range fuzzModel[flt.Target] {
			ok, err := c.Match(context.Background(), v)
			if err != nil || !ok || !c.HasGuard {
				continue
			}
			if got := c.Guard.Of(v); got != c.Guard.Value && !(c.Guard.OrEmpty && got == "") {
				t.Fatalf("%q matches %+v, whose %s is %q, but its guard requires %q", expr, v, c.Guard.Field, got, c.Guard.Value)
			}
		}
	})
}

// FuzzReadFile reads arbitrary filters files (the seed corpus in testdata/fuzz/FuzzReadFile holds the file of
// docs/alerts.md and the tests' files, good and bad). Reading never panics; a refusal names the file and wraps
// ErrInvalid; what is accepted compiles, has unique ids, and remembers the file as its source.
func FuzzReadFile(f *testing.F) {
	f.Add([]byte("- id: crit\n  name: critical findings\n  target: findings\n  expression: finding.severity == 'critical'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "filters.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		fs, err := ReadFile(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+":") || !errors.Is(err, ErrInvalid) {
				t.Fatalf("ReadFile = %q: want it to name %s and wrap ErrInvalid", err, path)
			}
			return
		}
		seen := map[string]bool{}
		for _, flt := range fs {
			if seen[flt.ID] || flt.Source != path {
				t.Fatalf("filter %q: a duplicate id, or source %q", flt.ID, flt.Source)
			}
			seen[flt.ID] = true
			if _, err := Compile(flt); err != nil {
				t.Fatalf("filter %q was accepted but does not compile: %v", flt.ID, err)
			}
		}
	})
}
