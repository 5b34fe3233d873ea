package baseline

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/manifests"
)

// Source names of the embedded data, as verdicts and reasons must spell them.
const (
	srcKubernetes = "Kubernetes v1.33 bootstrap policy"
	srcKCM        = "Kubernetes v1.33 kube-controller-manager"
	srcKubeadm    = "kubeadm v1.33"
	srcProxy      = "kube-proxy add-on of kubeadm v1.33"
	srcCoreDNS    = "CoreDNS add-on of kubeadm v1.33"
)

// builtinObject returns a deep copy of the embedded object ref, for tests that change it.
func builtinObject(t *testing.T, ref graph.ObjectRef) graph.Object {
	t.Helper()
	es := Builtin().byRef[ref]
	if len(es) == 0 {
		t.Fatalf("%s is not in the embedded baseline", ref)
	}
	return clone(es[0].obj)
}

func clone(o graph.Object) graph.Object {
	meta := func(m graph.Meta) graph.Meta {
		m.Labels, m.Annotations = maps.Clone(m.Labels), maps.Clone(m.Annotations)
		return m
	}
	switch v := o.(type) {
	case *graph.Role:
		c := *v
		c.Meta = meta(v.Meta)
		c.Rules = nil
		for i := range v.Rules {
			c.Rules = append(c.Rules, *v.Rules[i].DeepCopy())
		}
		c.AggregationRule = v.AggregationRule.DeepCopy()
		return &c
	case *graph.Binding:
		c := *v
		c.Meta = meta(v.Meta)
		c.Subjects = slices.Clone(v.Subjects)
		return &c
	case *graph.ServiceAccount:
		c := *v
		c.Meta = meta(v.Meta)
		return &c
	}
	panic("clone: unexpected object")
}

// builtinObjects returns every embedded RBAC object as snapshot input (ServiceAccounts in every namespace are
// left out: they are no object of a cluster).
func builtinObjects() *graph.Objects {
	objs := &graph.Objects{}
	for _, e := range Builtin().entries {
		switch v := clone(e.obj).(type) {
		case *graph.Role:
			if v.Kind == graph.KindClusterRole {
				objs.ClusterRoles = append(objs.ClusterRoles, *v)
			} else {
				objs.Roles = append(objs.Roles, *v)
			}
		case *graph.Binding:
			if v.Kind == graph.KindClusterRoleBinding {
				objs.ClusterRoleBindings = append(objs.ClusterRoleBindings, *v)
			} else {
				objs.RoleBindings = append(objs.RoleBindings, *v)
			}
		case *graph.ServiceAccount:
			if v.Namespace != AnyNamespace {
				objs.ServiceAccounts = append(objs.ServiceAccounts, *v)
			}
		}
	}
	return objs
}

// loadFixture reads a file of internal/fixtures as kiem reads snapshots.
func loadFixture(t *testing.T, path, namespace string) *graph.Objects {
	t.Helper()
	objs, err := manifests.Load(t.Context(), fixtures.FS, []string{path}, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// mustLoad loads baseline files given as name → content.
func mustLoad(t *testing.T, files map[string]string) *Baseline {
	t.Helper()
	fsys := fstest.MapFS{}
	var names []string
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
		names = append(names, name)
	}
	slices.Sort(names)
	b, err := Load(fsys, names...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subject parses "Kind:name" or "ServiceAccount:ns:name" ("ServiceAccount::name" leaves the namespace out).
func subject(s string) rbacv1.Subject {
	kind, rest, _ := strings.Cut(s, ":")
	if kind == rbacv1.ServiceAccountKind {
		ns, name, _ := strings.Cut(rest, ":")
		return rbacv1.Subject{Kind: kind, Namespace: ns, Name: name}
	}
	return rbacv1.Subject{Kind: kind, APIGroup: rbacv1.GroupName, Name: rest}
}

// binding builds a ClusterRoleBinding (ns "") or RoleBinding ns/name with roleRef "ClusterRole/x" or "Role/x".
func binding(ns, name, roleRef string, subjects ...string) *graph.Binding {
	kind, role, _ := strings.Cut(roleRef, "/")
	b := &graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}}
	if ns == "" {
		b.Kind = graph.KindClusterRoleBinding
	}
	for _, s := range subjects {
		b.Subjects = append(b.Subjects, subject(s))
	}
	return b
}

// rule builds a rule: rule("get,list", "", "secrets") or, with names, rule("get", "", "configmaps", "a").
func rule(verbs, group, resources string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: strings.Split(verbs, ","), APIGroups: []string{group},
		Resources: strings.Split(resources, ","), ResourceNames: names}
}

// bindingPaths returns the grants of every subject of every binding of snap: for each subject, the permissions of
// an identity that only that subject names.
func bindingPaths(t *testing.T, snap *graph.Snapshot) []graph.Permission {
	t.Helper()
	var out []graph.Permission
	seen := map[string]bool{}
	for _, k := range []graph.Kind{graph.KindClusterRoleBinding, graph.KindRoleBinding} {
		snap.Each(k, "", func(o graph.Object) bool {
			b := o.(*graph.Binding)
			for _, s := range b.Subjects {
				var id graph.Identity
				switch s.Kind {
				case rbacv1.UserKind:
					id = graph.Identity{User: s.Name}
				case rbacv1.GroupKind:
					id = graph.Identity{User: "kiem:probe", Groups: []string{s.Name}}
				case rbacv1.ServiceAccountKind:
					id = graph.Identity{User: graph.ServiceAccountUsername(cmp.Or(s.Namespace, b.Namespace), s.Name)}
				}
				key := id.User + "\x00" + strings.Join(id.Groups, ",")
				if seen[key] {
					continue
				}
				seen[key] = true
				perms, err := snap.EffectivePermissions(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, perms...)
			}
			return true
		})
	}
	return out
}
