package workload

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpecScale(t *testing.T) {
	l := L()
	twice := Spec{
		Namespaces: 2 * l.Namespaces, ServiceAccounts: 2 * l.ServiceAccounts, Roles: 2 * l.Roles,
		RoleBindings: 2 * l.RoleBindings, ClusterRoles: 2 * l.ClusterRoles, ClusterRoleBindings: 2 * l.ClusterRoleBindings,
		Users: 2 * l.Users, Groups: 2 * l.Groups, Pods: 2 * l.Pods,
	}
	tests := []struct {
		name string
		got  Spec
		want Spec
	}{
		{"L twice", L().Scale(2), twice},
		{"once is the same", S().Scale(1), S()},
		{"zero", L().Scale(0), Spec{}},
		{"negative k", L().Scale(-3), Spec{}},
		{"negative counts stay zero", Spec{Namespaces: -4, Pods: 3}.Scale(2), Spec{Pods: 6}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.got); diff != "" {
			t.Errorf("%s: Scale mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	if L() != l {
		t.Errorf("Scale changed the spec it was called on")
	}
}

// TestGenerateScaled checks that a scaled spec generates exactly the scaled counts, the distinct users and groups
// included: Generate draws subjects from pools that grow with the spec.
func TestGenerateScaled(t *testing.T) {
	base := kubeadm(t)
	spec := mid().Scale(2)
	want := counts(spec)
	for k, n := range Count(base) {
		want[k] += n
	}
	if diff := cmp.Diff(want, Count(Generate(base, spec, 1))); diff != "" {
		t.Errorf("Count(Generate(mid().Scale(2))) mismatch (-want +got):\n%s", diff)
	}
}
