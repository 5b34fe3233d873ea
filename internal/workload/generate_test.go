package workload

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// mid is a workload between S and L: big enough that every share the generator draws shows up.
func mid() Spec {
	return Spec{
		Namespaces: 100, ServiceAccounts: 2000, Roles: 500, RoleBindings: 3000, ClusterRoles: 100,
		ClusterRoleBindings: 200, Users: 250, Groups: 50, Pods: 5000,
	}
}

// counts returns the figures Count gives for the synthetic part of spec.
func counts(s Spec) map[graph.Kind]int {
	s = s.normalized()
	return map[graph.Kind]int{
		graph.KindNamespace:          s.Namespaces,
		graph.KindServiceAccount:     s.ServiceAccounts,
		graph.KindRole:               s.Roles,
		graph.KindClusterRole:        s.ClusterRoles,
		graph.KindRoleBinding:        s.RoleBindings,
		graph.KindClusterRoleBinding: s.ClusterRoleBindings,
		graph.KindPod:                s.Pods,
		graph.KindUser:               s.Users,
		graph.KindGroup:              s.Groups,
	}
}

func TestGenerateCounts(t *testing.T) {
	base := kubeadm(t)
	tests := []struct {
		name string
		base *graph.Objects
		spec Spec
	}{
		{"S", nil, S()},
		{"S on kubeadm", base, S()},
		{"mid", nil, mid()},
		{"mid on kubeadm", base, mid()},
		{"empty", nil, Spec{}},
		{"empty on kubeadm", base, Spec{}},
		{"no namespaces", nil, Spec{ServiceAccounts: 3, Roles: 4, RoleBindings: 6, ClusterRoles: 5, Users: 5, Groups: 2, Pods: 7}},
		{"no namespaces on kubeadm", base, Spec{ServiceAccounts: 3, Roles: 4, RoleBindings: 6, Users: 5, Groups: 2, Pods: 7}},
		{"fewer SAs than namespaces", nil, Spec{Namespaces: 10, ServiceAccounts: 4, RoleBindings: 10, Pods: 20}},
		{"more users than subject slots", nil, Spec{Namespaces: 2, ServiceAccounts: 2, ClusterRoleBindings: 3, Users: 40, Groups: 20}},
		{"negative", nil, Spec{Namespaces: -1, Pods: -5, Users: -3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := counts(tt.spec)
			for k, n := range Count(tt.base) {
				want[k] += n
			}
			if diff := cmp.Diff(want, Count(Generate(tt.base, tt.spec, 7))); diff != "" {
				t.Errorf("Count(Generate()) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	base := kubeadm(t)
	write := func(seed int64) []byte {
		t.Helper()
		var buf bytes.Buffer
		if err := Write(&buf, Generate(base, S(), seed), "yaml"); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a, b, c := write(1), write(1), write(2)
	if !bytes.Equal(a, b) {
		t.Errorf("Write(Generate(seed 1)) differs between two runs")
	}
	if bytes.Equal(a, c) {
		t.Errorf("Write(Generate(seed 1)) = Write(Generate(seed 2)), want different")
	}
}

func TestGenerateLeavesBaseAlone(t *testing.T) {
	base, pristine := kubeadm(t), kubeadm(t)
	out := Generate(base, S(), 3)
	// Scribble over every reference-typed field of the copied base objects.
	for i := range len(base.ClusterRoles) {
		r := &out.ClusterRoles[i]
		if r.Labels != nil {
			r.Labels["scribbled"] = "yes"
		}
		if len(r.Rules) > 0 {
			r.Rules[0].Verbs[0] = "scribbled"
		}
		if r.AggregationRule != nil {
			r.AggregationRule.ClusterRoleSelectors[0].MatchLabels["scribbled"] = "yes"
		}
	}
	for i := range len(base.RoleBindings) {
		out.RoleBindings[i].Subjects[0].Name = "scribbled"
	}
	for i := range len(base.Pods) {
		out.Pods[i].Owner = nil
	}
	if diff := cmp.Diff(pristine, base, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Generate changed its base (-before +after):\n%s", diff)
	}
}

func TestApportion(t *testing.T) {
	tests := []struct {
		total   int
		weights []float64
		want    []int
	}{
		{10, []float64{1, 1}, []int{5, 5}},
		{10, []float64{1, 1, 1}, []int{4, 3, 3}},
		{7, []float64{5, 1, 1}, []int{5, 1, 1}},
		{0, []float64{1, 2}, []int{0, 0}},
		{3, nil, []int{}},
		{1, []float64{1, 1, 1}, []int{1, 0, 0}},
		{100, []float64{0.1, 0.2, 0.7}, []int{10, 20, 70}},
		{4, []float64{0, 0}, []int{2, 2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.total, tt.weights), func(t *testing.T) {
			if got := apportion(tt.total, tt.weights); !slices.Equal(got, tt.want) {
				t.Errorf("apportion(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	taken := names{"a": true, "a-2": true}
	for _, want := range []string{"a-3", "a-4"} {
		if got := claim(taken, "a"); got != want {
			t.Errorf("claim(a) = %q, want %q", got, want)
		}
	}
	if got, want := claim(taken, "b"), "b"; got != want {
		t.Errorf("claim(b) = %q, want %q", got, want)
	}
	if got, want := len(taken), 5; got != want {
		t.Errorf("len(taken) = %d, want %d", got, want)
	}
}

func TestPlural(t *testing.T) {
	for word, want := range map[string]string{
		"api": "apis", "proxy": "proxies", "gateway": "gateways", "batch": "batches", "cache": "caches",
		"db": "dbs", "ingress": "ingresses", "index": "indexes",
	} {
		if got := plural(word); got != want {
			t.Errorf("plural(%q) = %q, want %q", word, got, want)
		}
	}
}

// synthetic returns the part of out that Generate added to base.
func synthetic(base, out *graph.Objects) *graph.Objects {
	if base == nil {
		base = &graph.Objects{}
	}
	return &graph.Objects{
		Namespaces:          out.Namespaces[len(base.Namespaces):],
		ServiceAccounts:     out.ServiceAccounts[len(base.ServiceAccounts):],
		Roles:               out.Roles[len(base.Roles):],
		ClusterRoles:        out.ClusterRoles[len(base.ClusterRoles):],
		RoleBindings:        out.RoleBindings[len(base.RoleBindings):],
		ClusterRoleBindings: out.ClusterRoleBindings[len(base.ClusterRoleBindings):],
		Pods:                out.Pods[len(base.Pods):],
	}
}

func TestGenerateAggregatedRoles(t *testing.T) {
	for _, spec := range []Spec{S(), mid(), {ClusterRoles: 3}, {ClusterRoles: 60}} {
		t.Run(fmt.Sprint(spec.ClusterRoles), func(t *testing.T) {
			base := kubeadm(t)
			syn := synthetic(base, Generate(base, spec, 11))
			var agg []graph.Role
			for _, r := range syn.ClusterRoles {
				if r.AggregationRule != nil {
					agg = append(agg, r)
				}
			}
			want := 0
			if spec.ClusterRoles >= 4 {
				want = max(1, (spec.ClusterRoles+10)/20)
			}
			if got := len(agg); got != want {
				t.Fatalf("%d aggregated ClusterRoles, want %d", got, want)
			}
			for _, r := range agg {
				if len(r.Rules) != 0 {
					t.Errorf("aggregated %s has %d rules, want none", r.Name, len(r.Rules))
				}
				if len(r.AggregationRule.ClusterRoleSelectors) == 0 {
					t.Errorf("aggregated %s has no selectors", r.Name)
				}
				for _, s := range r.AggregationRule.ClusterRoleSelectors {
					if len(s.MatchLabels) == 0 {
						t.Errorf("aggregated %s has a selector without matchLabels", r.Name)
					}
					for k, v := range s.MatchLabels {
						if r.Labels[k] == v {
							t.Errorf("aggregated %s selects itself by %s=%s", r.Name, k, v)
						}
					}
				}
			}
		})
	}
}

// selects reports whether an aggregation rule selects a ClusterRole with labels.
func selects(ar *rbacv1.AggregationRule, labels map[string]string) bool {
	for _, s := range ar.ClusterRoleSelectors {
		ok := len(s.MatchLabels) > 0
		for k, v := range s.MatchLabels {
			ok = ok && labels[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}

// BenchmarkGenerateL measures generating the L workload on top of the kubeadm policy.
func BenchmarkGenerateL(b *testing.B) {
	base := kubeadm(b)
	var objs int
	for b.Loop() {
		objs = Generate(base, L(), 1).Count()
	}
	b.ReportMetric(float64(objs)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
}
