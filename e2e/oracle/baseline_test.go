package oracle

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries/baseline"
)

const (
	bootstrapSource  = "Kubernetes v1.33 bootstrap policy"
	controllerSource = "Kubernetes v1.33 kube-controller-manager"
)

// bootstrapPolicy is the policy a kube-apiserver v1.33.13 creates at start-up, as its storage_rbac.go assembles
// it: ClusterRoles and ControllerRoles, ClusterRoleBindings and ControllerRoleBindings, and the namespaced roles
// and bindings, with the default feature gates.
func bootstrapPolicy() *Policy {
	p := &Policy{}
	for _, cr := range append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...) {
		p.ClusterRoles = append(p.ClusterRoles, &cr)
	}
	for _, crb := range append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...) {
		p.ClusterRoleBindings = append(p.ClusterRoleBindings, &crb)
	}
	for ns, roles := range bootstrappolicy.NamespaceRoles() {
		for _, r := range roles {
			r.Namespace = ns
			p.Roles = append(p.Roles, &r)
		}
	}
	for ns, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for _, rb := range bindings {
			rb.Namespace = ns
			p.RoleBindings = append(p.RoleBindings, &rb)
		}
	}
	return p
}

// TestBaselineIsBootstrapPolicy proves that the bootstrap policy kiem embeds (queries/baseline/data) is the
// apiserver's own: every object the apiserver's code builds is Default with the bootstrap source, the embedded
// source holds no object besides them, and every controller ServiceAccount the policy binds is a default of
// kube-controller-manager.
func TestBaselineIsBootstrapPolicy(t *testing.T) {
	b := baseline.Builtin()
	objs := bootstrapPolicy().GraphObjects()
	var refs []graph.ObjectRef
	check := func(o graph.Object) {
		t.Helper()
		refs = append(refs, o.Ref())
		if v := b.Object(o); v.Status != baseline.Default || v.Source != bootstrapSource {
			t.Errorf("%s: %s from %q %v, want default from %q", o.Ref(), v.Status, v.Source, v.Differences, bootstrapSource)
		}
	}
	for i := range objs.ClusterRoles {
		check(&objs.ClusterRoles[i])
	}
	for i := range objs.ClusterRoleBindings {
		check(&objs.ClusterRoleBindings[i])
	}
	for i := range objs.Roles {
		check(&objs.Roles[i])
	}
	for i := range objs.RoleBindings {
		check(&objs.RoleBindings[i])
	}
	if len(refs) < 120 {
		t.Fatalf("the bootstrap policy has only %d objects", len(refs))
	}

	slices.SortFunc(refs, compareRefs)
	if got := b.Refs(bootstrapSource); !slices.Equal(got, refs) {
		t.Errorf("embedded %q holds %d objects, the apiserver's policy %d:\nextra %v\nmissing %v", bootstrapSource,
			len(got), len(refs), minus(got, refs), minus(refs, got))
	}

	// The controllers' ServiceAccounts: every ServiceAccount subject of a system:controller: binding.
	n := 0
	for _, bs := range [][]graph.Binding{objs.ClusterRoleBindings, objs.RoleBindings} {
		for _, bd := range bs {
			if !strings.HasPrefix(bd.Name, "system:controller:") {
				continue
			}
			for _, s := range bd.Subjects {
				if s.Kind != rbacv1.ServiceAccountKind {
					continue
				}
				n++
				sa := &graph.ServiceAccount{Meta: graph.Meta{Namespace: s.Namespace, Name: s.Name}}
				if v := b.Object(sa); v.Status != baseline.Default || v.Source != controllerSource {
					t.Errorf("%s (subject of %s): %s from %q, want default from %q", sa.Ref(), bd.Ref(), v.Status,
						v.Source, controllerSource)
				}
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d controller ServiceAccounts checked", n)
	}
}

func compareRefs(a, b graph.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// minus returns the refs of a that b lacks.
func minus(a, b []graph.ObjectRef) []graph.ObjectRef {
	var out []graph.ObjectRef
	for _, r := range a {
		if !slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	return out
}
