package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// TestFixturePaths: every grant of the kubeadm fixtures' bindings is expected, with a reason naming the sources
// of its binding and role, except metrics-server's; aggregation is taken both as recomputed and as the live
// controller wrote it.
func TestFixturePaths(t *testing.T) {
	b := Builtin()
	for _, file := range []string{fixtures.KubeadmV133, fixtures.KubeadmAddons} {
		objs := loadFixture(t, file, "")
		for _, opts := range []graph.SnapshotOptions{{}, {APIAggregation: true}} {
			t.Run(path.Base(file)+map[bool]string{false: "/recomputed", true: "/live"}[opts.APIAggregation], func(t *testing.T) {
				snap := graph.NewSnapshotWith(objs, opts)
				perms := bindingPaths(t, snap)
				expected := 0
				for _, p := range perms {
					bind, _ := snap.Object(*p.Binding)
					role, _ := snap.Object(*p.Role)
					bindSrc, roleSrc := wantSource(bind), wantSource(role)
					got, reason := b.Path(p.GrantPath)
					if want := bindSrc != ""; got != want {
						t.Errorf("%s: expected=%v (%s), want %v", p.Explain(), got, reason, want)
						continue
					}
					if !got {
						if reason != "" {
							t.Errorf("%s: reason %q for a path through no default", p.Explain(), reason)
						}
						continue
					}
					expected++
					want := "platform default: " + p.Binding.String() + " (" + bindSrc + ") → " + p.Role.String() + " (" + roleSrc + ")"
					if reason != want {
						t.Errorf("%s: reason %q, want %q", p.Explain(), reason, want)
					}
				}
				if expected < 9 || expected == len(perms) {
					t.Errorf("%d of %d paths expected", expected, len(perms))
				}
			})
		}
	}
}

// TestFixtureWhoCan: the answers of WhoCan on the kubeadm cluster, classified.
func TestFixtureWhoCan(t *testing.T) {
	b := Builtin()
	snap := graph.NewSnapshot(loadFixture(t, fixtures.KubeadmV133, ""))
	tests := []struct {
		action  graph.Action
		subject graph.ObjectRef
		source  string // of the binding
	}{
		{graph.Action{Verb: "get", Resource: "configmaps", Namespace: "kube-public", Name: "cluster-info"},
			graph.ObjectRef{Kind: graph.KindUser, Name: "system:anonymous"}, srcKubeadm},
		{graph.Action{Verb: "escalate", APIGroup: "rbac.authorization.k8s.io", Resource: "clusterroles"},
			graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "clusterrole-aggregation-controller"}, srcKubernetes},
		{graph.Action{Verb: "delete", Resource: "secrets", Namespace: "ns1", Name: "x"},
			graph.ObjectRef{Kind: graph.KindGroup, Name: "kubeadm:cluster-admins"}, srcKubeadm},
		{graph.Action{Verb: "list", APIGroup: "discovery.k8s.io", Resource: "endpointslices"},
			graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "coredns"}, srcCoreDNS},
		{graph.Action{Verb: "get", Resource: "nodes/metrics"},
			graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "kube-system", Name: "metrics-server"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.subject.String(), func(t *testing.T) {
			entries, err := snap.WhoCan(t.Context(), tt.action)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(entries, func(e graph.WhoCanEntry) bool { return e.Subject == tt.subject })
			if i < 0 || len(entries[i].Paths) == 0 {
				t.Fatalf("%s is not allowed %+v: %+v", tt.subject, tt.action, entries)
			}
			for _, p := range entries[i].Paths {
				got, reason := b.Path(p)
				ok := !got && reason == ""
				if tt.source != "" {
					ok = got && strings.Contains(reason, "("+tt.source+")")
				}
				if !ok {
					t.Errorf("%s: expected=%v %q, want source %q", p.Explain(), got, reason, tt.source)
				}
			}
		})
	}
}

// TestPathModified: a path through a changed default is judged by what it grants.
func TestPathModified(t *testing.T) {
	tests := []struct {
		name   string
		change func(objs *graph.Objects)
		id     graph.Identity
		// want maps "binding rule-index" of each path to "" (expected) or a piece of the reason it is not.
		want map[string]string
	}{
		{
			name: "cluster-admin bound to an added group",
			change: func(objs *graph.Objects) {
				b := &objs.ClusterRoleBindings[slices.IndexFunc(objs.ClusterRoleBindings, func(b graph.Binding) bool { return b.Name == "cluster-admin" })]
				b.Subjects = append(b.Subjects, subject("Group:system:authenticated"))
			},
			id: graph.Identity{User: "mallory", Groups: []string{"system:authenticated"}},
			want: map[string]string{
				"ClusterRoleBinding/cluster-admin 0":     "Group/system:authenticated is not one of its default subjects",
				"ClusterRoleBinding/cluster-admin 1":     "Group/system:authenticated is not one of its default subjects",
				"ClusterRoleBinding/system:basic-user 0": "", "ClusterRoleBinding/system:basic-user 1": "",
				"ClusterRoleBinding/system:discovery 0":          "",
				"ClusterRoleBinding/system:public-info-viewer 0": "",
			},
		},
		{
			name: "cluster-admin's default subject, in the same changed binding",
			change: func(objs *graph.Objects) {
				b := &objs.ClusterRoleBindings[slices.IndexFunc(objs.ClusterRoleBindings, func(b graph.Binding) bool { return b.Name == "cluster-admin" })]
				b.Subjects = append(b.Subjects, subject("User:mallory"))
			},
			id: graph.Identity{User: "root", Groups: []string{"system:masters"}},
			want: map[string]string{
				"ClusterRoleBinding/cluster-admin 0": "", "ClusterRoleBinding/cluster-admin 1": "",
			},
		},
		{
			name: "binding recreated with a stronger role",
			change: func(objs *graph.Objects) {
				b := &objs.ClusterRoleBindings[slices.IndexFunc(objs.ClusterRoleBindings, func(b graph.Binding) bool { return b.Name == "system:discovery" })]
				b.RoleRef.Name = "cluster-admin"
			},
			id: graph.Identity{User: "mallory", Groups: []string{"system:authenticated"}},
			want: map[string]string{
				"ClusterRoleBinding/system:basic-user 0": "", "ClusterRoleBinding/system:basic-user 1": "",
				"ClusterRoleBinding/system:discovery 0":          "with roleRef ClusterRole/system:discovery, not ClusterRole/cluster-admin",
				"ClusterRoleBinding/system:discovery 1":          "with roleRef ClusterRole/system:discovery, not ClusterRole/cluster-admin",
				"ClusterRoleBinding/system:public-info-viewer 0": "",
			},
		},
		{
			name: "look-alike binding",
			change: func(objs *graph.Objects) {
				b := binding("", "system:controller:evil", "ClusterRole/system:controller:clusterrole-aggregation-controller", "Group:system:authenticated")
				b.Labels = map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
				objs.ClusterRoleBindings = append(objs.ClusterRoleBindings, *b)
			},
			id: graph.Identity{User: "mallory", Groups: []string{"system:authenticated"}},
			want: map[string]string{
				"ClusterRoleBinding/system:basic-user 0": "", "ClusterRoleBinding/system:basic-user 1": "",
				"ClusterRoleBinding/system:controller:evil 0":    "-",
				"ClusterRoleBinding/system:discovery 0":          "",
				"ClusterRoleBinding/system:public-info-viewer 0": "",
			},
		},
		{
			name: "default role with a rule added",
			change: func(objs *graph.Objects) {
				r := &objs.Roles[slices.IndexFunc(objs.Roles, func(r graph.Role) bool { return r.Name == "kubeadm:bootstrap-signer-clusterinfo" })]
				r.Rules = append(r.Rules, rule("list", "", "secrets"))
			},
			id: graph.ImpersonatedIdentity("system:anonymous", nil),
			want: map[string]string{
				"ClusterRoleBinding/system:public-info-viewer 0":                 "",
				"RoleBinding/kube-public/kubeadm:bootstrap-signer-clusterinfo 0": "",
				"RoleBinding/kube-public/kubeadm:bootstrap-signer-clusterinfo 1": "rule 1 (list secrets) is not a rule of the default Role/kube-public/kubeadm:bootstrap-signer-clusterinfo (kubeadm v1.33)",
			},
		},
	}
	b := Builtin()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := builtinObjects()
			tt.change(objs)
			perms, err := graph.NewSnapshot(objs).EffectivePermissions(t.Context(), tt.id)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range perms {
				expected, reason := b.Path(p.GrantPath)
				key := p.Binding.String() + " " + strconv.Itoa(p.RuleIndex)
				switch {
				case expected && strings.HasPrefix(reason, "platform default: "):
					got[key] = ""
				case expected:
					t.Errorf("%s: expected with reason %q", key, reason)
				case reason == "":
					got[key] = "-" // no default involved
				default:
					got[key] = reason
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("paths %q, want %q", got, tt.want)
			}
			for k, want := range tt.want {
				if g, ok := got[k]; !ok || want == "" && g != "" || want != "" && !strings.Contains(g, want) {
					t.Errorf("%s: %q, want %q", k, g, want)
				}
			}
		})
	}
}

// acmeBaseline is an operator's baseline: the platform team's binding of admin in team namespaces.
const acmeBaseline = `apiVersion: v1
kind: List
source: Acme platform
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: platform-admins, namespace: team-a}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
  subjects: [{kind: Group, name: "acme:platform-admins"}]
`

// TestPathAggregation: a vendor ClusterRole labelled for aggregation widens the built-in admin role (RISKS.md M7);
// the rules it brings are not expected, the built-in ones stay expected, whether kiem recomputed aggregation
// (AggregatedFrom names the role) or the live controller filled the rules in.
func TestPathAggregation(t *testing.T) {
	b := Builtin().Merge(mustLoad(t, map[string]string{"acme.yaml": acmeBaseline}))
	objs := builtinObjects()
	vendor := graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "acme:widgets-admin", Labels: map[string]string{
		"rbac.authorization.k8s.io/aggregate-to-admin": "true", "kubernetes.io/bootstrapping": "rbac-defaults"}},
		Rules: []rbacv1.PolicyRule{rule("create,delete", "acme.io", "widgets")}}
	// A vendor role repeating a built-in rule, sorted before every built-in role the aggregation selects.
	echo := graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "aaa-echo", Labels: map[string]string{
		"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
		Rules: []rbacv1.PolicyRule{Builtin().agg["admin"].rules[0]}}
	objs.ClusterRoles = append(objs.ClusterRoles, vendor, echo)
	objs.RoleBindings = append(objs.RoleBindings, *binding("team-a", "platform-admins", "ClusterRole/admin", "Group:acme:platform-admins"))
	id := graph.Identity{User: "bob", Groups: []string{"acme:platform-admins"}}
	recomputed := graph.NewSnapshot(objs)
	live := graph.NewSnapshotWith(recomputed.Objects(), graph.SnapshotOptions{APIAggregation: true})
	if v := b.Object(&vendor); v.Status != NotDefault {
		t.Errorf("vendor role: %s", v.Status)
	}

	for name, snap := range map[string]*graph.Snapshot{"recomputed": recomputed, "live": live} {
		t.Run(name, func(t *testing.T) {
			admin, _ := snap.ClusterRole("admin")
			if v := b.Object(admin); v.Status != Default || v.Source != srcKubernetes {
				t.Errorf("admin as the snapshot holds it: %+v", v)
			}
			perms, err := snap.EffectivePermissions(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(perms) != len(Builtin().agg["admin"].rules)+1 {
				t.Fatalf("%d paths, want the default rules of admin and the vendor's", len(perms))
			}
			vendorIndex := slices.IndexFunc(admin.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.APIGroups, "acme.io") })
			var unexpected []string
			for _, p := range perms {
				if live := name == "live"; live != (p.AggregatedFrom == nil) {
					t.Fatalf("%s: AggregatedFrom %v", p.Explain(), p.AggregatedFrom)
				}
				expected, reason := b.Path(p.GrantPath)
				if !expected {
					unexpected = append(unexpected, formatRule(p.Rule)+": "+reason)
					continue
				}
				const prefix = "platform default: RoleBinding/team-a/platform-admins (Acme platform) → " +
					"ClusterRole/admin (Kubernetes v1.33 bootstrap policy), rule from ClusterRole/system:aggregate-to-"
				if !strings.HasPrefix(reason, prefix) || !strings.HasSuffix(reason, "(Kubernetes v1.33 bootstrap policy)") {
					t.Errorf("%s: reason %q", p.Explain(), reason)
				}
			}
			vendorRule := fmt.Sprintf("create,delete widgets.acme.io: rule %d (create,delete widgets.acme.io)", vendorIndex)
			want := []string{vendorRule + " is not among the rules " +
				"the default aggregationRule of ClusterRole/admin (Kubernetes v1.33 bootstrap policy) collects"}
			if name == "recomputed" {
				// The repeated rule reaches admin through aaa-echo first: the path names a role the default does
				// not select, so it is reported even though admin would grant the same anyway.
				want = []string{
					formatRule(&echo.Rules[0]) + ": rule 0 (" + formatRule(&echo.Rules[0]) + ") is aggregated from " +
						"ClusterRole/aaa-echo, which the default aggregationRule of ClusterRole/admin (Kubernetes v1.33 bootstrap policy) does not select",
					vendorRule + " is aggregated from " +
						"ClusterRole/acme:widgets-admin and is not among the rules the default aggregationRule of ClusterRole/admin " +
						"(Kubernetes v1.33 bootstrap policy) collects",
				}
			}
			if !slices.Equal(unexpected, want) {
				t.Errorf("unexpected paths:\n%q\nwant\n%q", unexpected, want)
			}
		})
	}
	// Without the operator's baseline, the binding is no default and nothing is expected.
	for _, p := range must(recomputed.EffectivePermissions(t.Context(), id)) {
		if expected, reason := Builtin().Path(p.GrantPath); expected || reason != "" {
			t.Errorf("%s: expected=%v %q without the Acme baseline", p.Explain(), expected, reason)
		}
	}
}

// TestPathRealWorldAggregation: the real-world roles labelled aggregate-to-admin/edit/view (flux, kyverno,
// tekton, kube-prometheus, metrics-server) widen admin; through a default binding of admin, their rules are
// unexpected and the built-in ones expected.
func TestPathRealWorldAggregation(t *testing.T) {
	b := Builtin().Merge(mustLoad(t, map[string]string{"acme.yaml": acmeBaseline}))
	objs := builtinObjects()
	entries, err := fs.ReadDir(fixtures.FS, fixtures.RealWorldDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if path.Ext(e.Name()) == ".yaml" {
			objs.Append(loadFixture(t, path.Join(fixtures.RealWorldDir, e.Name()), fixtures.InstallNamespace(e.Name())))
		}
	}
	objs.RoleBindings = append(objs.RoleBindings, *binding("team-a", "platform-admins", "ClusterRole/admin", "Group:acme:platform-admins"))
	perms, err := graph.NewSnapshot(objs).EffectivePermissions(t.Context(), graph.Identity{User: "bob", Groups: []string{"acme:platform-admins"}})
	if err != nil {
		t.Fatal(err)
	}
	// What admin holds on a cluster of defaults only, as graph aggregates it, and where it takes it from.
	defaultAdmin, _ := graph.NewSnapshot(builtinObjects()).ClusterRole("admin")
	defaultRules := map[string]bool{}
	for _, r := range defaultAdmin.Rules {
		defaultRules[formatRule(&r)] = true
	}
	vendorRules := 0
	for _, p := range perms {
		want := defaultRules[formatRule(p.Rule)] && (p.AggregatedFrom.Name == "edit" || p.AggregatedFrom.Name == "system:aggregate-to-admin")
		if !defaultRules[formatRule(p.Rule)] {
			vendorRules++
		}
		if expected, reason := b.Path(p.GrantPath); expected != want {
			t.Errorf("%s: expected=%v %q, want %v", p.Explain(), expected, reason, want)
		}
	}
	if vendorRules < 5 || vendorRules == len(perms) {
		t.Errorf("%d of %d rules of admin come from real-world roles", vendorRules, len(perms))
	}
}

// TestPathIncomplete: a path with missing parts (not one a snapshot returns) is never expected.
func TestPathIncomplete(t *testing.T) {
	ref := crbRef("cluster-admin")
	role := crRef("cluster-admin")
	s := subject("Group:system:masters")
	r := rule("*", "*", "*")
	for _, p := range []graph.GrantPath{
		{Subject: &s, Role: &role, Rule: &r},
		{Binding: &ref, Role: &role, Rule: &r},
		{Binding: &ref, Subject: &s, Rule: &r},
		{Binding: &ref, Subject: &s, Role: &role},
	} {
		if expected, _ := Builtin().Path(p); expected {
			t.Errorf("%+v: expected", p)
		}
	}
	if expected, _ := Builtin().Path(graph.GrantPath{Binding: &ref, Subject: &s, Role: &role, Rule: &r}); !expected {
		t.Error("the complete path is not expected")
	}
}

// TestPathRoleOutsideBaseline: an operator's default binding of a role no baseline holds grants nothing expected.
func TestPathRoleOutsideBaseline(t *testing.T) {
	b := Builtin().Merge(mustLoad(t, map[string]string{"acme.yaml": `source: Acme platform
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: acme-readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: acme-reader}
subjects: [{kind: Group, name: readers}]
`}))
	objs := &graph.Objects{
		ClusterRoles:        []graph.Role{{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "acme-reader"}, Rules: []rbacv1.PolicyRule{rule("get", "", "pods")}}},
		ClusterRoleBindings: []graph.Binding{*binding("", "acme-readers", "ClusterRole/acme-reader", "Group:readers")},
	}
	perms := must(graph.NewSnapshot(objs).EffectivePermissions(t.Context(), graph.Identity{User: "u", Groups: []string{"readers"}}))
	if len(perms) != 1 {
		t.Fatalf("%d paths, want 1", len(perms))
	}
	expected, reason := b.Path(perms[0].GrantPath)
	if want := "ClusterRoleBinding/acme-readers is a default of Acme platform, but no baseline holds ClusterRole/acme-reader"; expected || reason != want {
		t.Errorf("Path()=%v, %q; want false, %q", expected, reason, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
