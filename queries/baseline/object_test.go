package baseline

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

var (
	crbRef = func(name string) graph.ObjectRef {
		return graph.ObjectRef{Kind: graph.KindClusterRoleBinding, Name: name}
	}
	crRef = func(name string) graph.ObjectRef { return graph.ObjectRef{Kind: graph.KindClusterRole, Name: name} }
)

// TestObject covers the traps: names and labels that look like defaults, defaults changed in every way that
// matters, and changes that do not matter (order, API defaults, labels).
func TestObject(t *testing.T) {
	bootstrapLabels := map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"}
	autoupdate := map[string]string{autoUpdateAnnotation: "true"}
	tests := []struct {
		name  string
		obj   func(t *testing.T) graph.Object
		want  Status
		src   string
		diffs []string
	}{
		{
			name: "system:controller name and bootstrapping label, not in the baseline",
			obj: func(t *testing.T) graph.Object {
				b := binding("", "system:controller:evil", "ClusterRole/cluster-admin", "ServiceAccount:kube-system:evil")
				b.Labels, b.Annotations = bootstrapLabels, autoupdate
				return b
			},
			want: NotDefault,
		},
		{
			name: "ClusterRole with a system: name and the bootstrapping label, not in the baseline",
			obj: func(t *testing.T) graph.Object {
				return &graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "system:aggregate-to-everything",
					Labels: bootstrapLabels, Annotations: autoupdate}, Rules: []rbacv1.PolicyRule{rule("*", "*", "*")}}
			},
			want: NotDefault,
		},
		{
			name: "cluster-admin binding with a subject added",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, crbRef("cluster-admin")).(*graph.Binding)
				b.Subjects = append(b.Subjects, subject("Group:system:authenticated"))
				return b
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"subject Group/system:authenticated added"},
		},
		{
			name: "cluster-admin binding with its subject replaced",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, crbRef("cluster-admin")).(*graph.Binding)
				b.Subjects = []rbacv1.Subject{subject("ServiceAccount:default:ci")}
				return b
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"subject ServiceAccount/default/ci added", "subject Group/system:masters removed"},
		},
		{
			name: "binding recreated with another roleRef",
			obj: func(t *testing.T) graph.Object {
				return binding("", "system:basic-user", "ClusterRole/cluster-admin", "Group:system:authenticated")
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"roleRef changed from ClusterRole/system:basic-user to ClusterRole/cluster-admin"},
		},
		{
			name: "kubeadm binding, subjects in another order and without apiGroups",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: "kube-system", Name: "kubeadm:kubelet-config"}).(*graph.Binding)
				slices.Reverse(b.Subjects)
				for i := range b.Subjects {
					b.Subjects[i].APIGroup = ""
				}
				return b
			},
			want: Default, src: srcKubeadm,
		},
		{
			name: "RoleBinding whose ServiceAccount subject leaves the namespace out",
			obj: func(t *testing.T) graph.Object {
				return binding("kube-system", "system:controller:token-cleaner", "Role/system:controller:token-cleaner",
					"ServiceAccount::token-cleaner")
			},
			want: Default, src: srcKubernetes,
		},
		{
			name: "ServiceAccount subject of another namespace",
			obj: func(t *testing.T) graph.Object {
				return binding("kube-system", "system:controller:token-cleaner", "Role/system:controller:token-cleaner",
					"ServiceAccount:default:token-cleaner")
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"subject ServiceAccount/default/token-cleaner added", "subject ServiceAccount/kube-system/token-cleaner removed"},
		},
		{
			name: "a User named like a ServiceAccount is another subject",
			obj: func(t *testing.T) graph.Object {
				return binding("", "system:coredns", "ClusterRole/system:coredns", "User:system:serviceaccount:kube-system:coredns")
			},
			want: Modified, src: srcCoreDNS,
			diffs: []string{"subject User/system:serviceaccount:kube-system:coredns added", "subject ServiceAccount/kube-system/coredns removed"},
		},
		{
			name: "default binding without labels and annotations",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, crbRef("system:public-info-viewer")).(*graph.Binding)
				b.Labels, b.Annotations = nil, nil
				return b
			},
			want: Default, src: srcKubernetes,
		},
		{
			name: "default binding with auto-reconciliation disabled",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, crbRef("system:discovery")).(*graph.Binding)
				b.Annotations[autoUpdateAnnotation] = "false"
				return b
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"annotation rbac.authorization.kubernetes.io/autoupdate=false (auto-reconciliation disabled)"},
		},
		{
			name: "kubeadm binding with the annotation kubeadm does not set",
			obj: func(t *testing.T) graph.Object {
				b := builtinObject(t, crbRef("kubeadm:cluster-admins")).(*graph.Binding)
				b.Annotations = map[string]string{autoUpdateAnnotation: "false"}
				return b
			},
			want: Modified, src: srcKubeadm,
			diffs: []string{"annotation rbac.authorization.kubernetes.io/autoupdate=false (not on the default, whose source does not reconcile it)"},
		},
		{
			name: "default role with a rule added",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("system:node-proxier")).(*graph.Role)
				r.Rules = append(r.Rules, rule("get,list", "", "secrets"))
				return r
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"rule 5 added: get,list secrets"},
		},
		{
			name: "default role with a verb added to a rule",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, graph.ObjectRef{Kind: graph.KindRole, Namespace: "kube-public", Name: "kubeadm:bootstrap-signer-clusterinfo"}).(*graph.Role)
				r.Rules[0].Verbs = append(r.Rules[0].Verbs, "update")
				return r
			},
			want: Modified, src: srcKubeadm,
			diffs: []string{"rule 0 added: get,update configmaps named cluster-info", "default rule 0 removed: get configmaps named cluster-info"},
		},
		{
			name: "default role with rules and values reordered and repeated",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("system:coredns")).(*graph.Role)
				slices.Reverse(r.Rules)
				for i := range r.Rules {
					slices.Reverse(r.Rules[i].Resources)
					r.Rules[i].Verbs = append(r.Rules[i].Verbs, r.Rules[i].Verbs[0])
				}
				r.Rules = append(r.Rules, r.Rules[0])
				r.Labels = map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"} // as the fixture has it
				return r
			},
			want: Default, src: srcCoreDNS,
		},
		{
			name: "default role emptied",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("kubeadm:get-nodes")).(*graph.Role)
				r.Rules = nil
				return r
			},
			want: Modified, src: srcKubeadm,
			diffs: []string{"default rule 0 removed: get nodes"},
		},
		{
			name: "default role with auto-reconciliation disabled",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("view")).(*graph.Role)
				r.Annotations[autoUpdateAnnotation] = "false"
				return r
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"annotation rbac.authorization.kubernetes.io/autoupdate=false (auto-reconciliation disabled)"},
		},
		{
			name: "Role with a default's name in another namespace",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, graph.ObjectRef{Kind: graph.KindRole, Namespace: "kube-system", Name: "system:controller:bootstrap-signer"}).(*graph.Role)
				r.Namespace = "default"
				return r
			},
			want: NotDefault,
		},
		{
			name: "RoleBinding with a default's name in another namespace",
			obj: func(t *testing.T) graph.Object {
				return binding("payments", "system::leader-locking-kube-scheduler", "Role/system::leader-locking-kube-scheduler",
					"User:system:kube-scheduler", "ServiceAccount:kube-system:kube-scheduler")
			},
			want: NotDefault,
		},
		{
			name: "ClusterRole with the name of a default Role",
			obj: func(t *testing.T) graph.Object {
				return &graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "extension-apiserver-authentication-reader"}}
			},
			want: NotDefault,
		},
		{
			name: "aggregated role as the live controller filled it, with a vendor's rule",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("admin")).(*graph.Role)
				r.Rules = append(Builtin().agg["admin"].rules, rule("get,list,watch", "metrics.k8s.io", "pods,nodes"))
				return r
			},
			want: Default, src: srcKubernetes,
		},
		{
			name: "aggregated role selecting more",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("view")).(*graph.Role)
				r.AggregationRule.ClusterRoleSelectors = append(r.AggregationRule.ClusterRoleSelectors,
					metav1.LabelSelector{MatchLabels: map[string]string{"acme.io/aggregate-to-view": "true"}})
				return r
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"aggregationRule changed from [rbac.authorization.k8s.io/aggregate-to-view=true] to " +
				"[acme.io/aggregate-to-view=true; rbac.authorization.k8s.io/aggregate-to-view=true]"},
		},
		{
			name: "aggregated role whose aggregationRule was replaced by rules",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("view")).(*graph.Role)
				r.AggregationRule = nil
				r.Rules = append(slices.Clone(Builtin().agg["view"].rules[1:]), rule("get", "", "secrets"))
				return r
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{
				"aggregationRule changed from [rbac.authorization.k8s.io/aggregate-to-view=true] to none",
				"rule 9 added: get secrets",
				"default rule 0 removed: " + formatRule(&Builtin().agg["view"].rules[0]),
			},
		},
		{
			name: "role given an aggregationRule",
			obj: func(t *testing.T) graph.Object {
				r := builtinObject(t, crRef("system:basic-user")).(*graph.Role)
				r.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"b", "a"}}}}}}
				return r
			},
			want: Modified, src: srcKubernetes,
			diffs: []string{"aggregationRule changed from none to [team In (a,b)]"},
		},
		{
			name: "default ServiceAccount in any namespace",
			obj: func(t *testing.T) graph.Object {
				return &graph.ServiceAccount{Meta: graph.Meta{Namespace: "payments", Name: "default"}}
			},
			want: Default, src: srcKCM,
		},
		{
			name: "controller ServiceAccount",
			obj: func(t *testing.T) graph.Object {
				return &graph.ServiceAccount{Meta: graph.Meta{Namespace: "kube-system", Name: "clusterrole-aggregation-controller"}}
			},
			want: Default, src: srcKCM,
		},
		{
			name: "controller ServiceAccount name outside kube-system",
			obj: func(t *testing.T) graph.Object {
				return &graph.ServiceAccount{Meta: graph.Meta{Namespace: "default", Name: "clusterrole-aggregation-controller"}}
			},
			want: NotDefault,
		},
		{
			name: "ServiceAccount the bootstrap policy binds but nobody creates",
			obj: func(t *testing.T) graph.Object {
				return &graph.ServiceAccount{Meta: graph.Meta{Namespace: "kube-system", Name: "kube-dns"}}
			},
			want: NotDefault,
		},
		{
			name: "add-on ServiceAccount",
			obj: func(t *testing.T) graph.Object {
				return &graph.ServiceAccount{Meta: graph.Meta{Namespace: "kube-system", Name: "kube-proxy"}}
			},
			want: Default, src: srcProxy,
		},
		{
			name: "other kinds",
			obj: func(t *testing.T) graph.Object {
				return &graph.Namespace{Meta: graph.Meta{Name: "kube-system"}}
			},
			want: NotDefault,
		},
		{
			name: "nil",
			obj:  func(t *testing.T) graph.Object { return (*graph.Binding)(nil) },
			want: NotDefault,
		},
	}
	b := Builtin()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.Object(tt.obj(t))
			want := Verdict{Status: tt.want, Source: tt.src, Differences: tt.diffs}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("Object() differs (-want +got):\n%s", d)
			}
		})
	}
}
