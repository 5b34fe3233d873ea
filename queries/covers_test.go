package queries

import (
	"math/rand/v2"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

func TestCovers(t *testing.T) {
	r := func(verbs, groups, resources, names []string) *rbacv1.PolicyRule {
		return &rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	s := func(v ...string) []string { return v }
	tests := []struct {
		name  string
		owner []*rbacv1.PolicyRule
		rule  *rbacv1.PolicyRule
		want  bool
	}{
		{"exact", []*rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, r(s("get"), s(""), s("pods"), nil), true},
		{"verb wildcard covers", []*rbacv1.PolicyRule{r(s("*"), s(""), s("pods"), nil)}, r(s("get", "delete"), s(""), s("pods"), nil), true},
		{"wildcard needs wildcard", []*rbacv1.PolicyRule{r(s("get", "list"), s(""), s("pods"), nil)}, r(s("*"), s(""), s("pods"), nil), false},
		{"split across rules", []*rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil), r(s("list"), s(""), s("pods"), nil)}, r(s("get", "list"), s(""), s("pods"), nil), true},
		{"subresource by */sub", []*rbacv1.PolicyRule{r(s("create"), s(""), s("*/exec"), nil)}, r(s("create"), s(""), s("pods/exec"), nil), true},
		{"pods/* is no glob", []*rbacv1.PolicyRule{r(s("create"), s(""), s("pods/*"), nil)}, r(s("create"), s(""), s("pods/exec"), nil), false},
		{"names narrow the owner", []*rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), s("a"))}, r(s("get"), s(""), s("secrets"), nil), false},
		{"named piece covered by named owner", []*rbacv1.PolicyRule{r(s("get"), s(""), s("secrets"), s("a", "b"))}, r(s("get"), s(""), s("secrets"), s("b")), true},
		{"other group", []*rbacv1.PolicyRule{r(s("get"), s("apps"), s("pods"), nil)}, r(s("get"), s(""), s("pods"), nil), false},
		{"urls", []*rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/api*")}}, &rbacv1.PolicyRule{Verbs: s("get"), NonResourceURLs: s("/apis/x")}, true},
	}
	for _, tt := range tests {
		if got := covers(tt.owner, tt.rule); got != tt.want {
			t.Errorf("%s: covers = %v, want %v", tt.name, got, tt.want)
		}
		idx := indexRules(tt.owner)
		if got := idx.coversAll(&graph.Role{Rules: []rbacv1.PolicyRule{*tt.rule}}); got != tt.want {
			t.Errorf("%s: indexed coversAll = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestIndexedCoversAgrees: the indexed check answers like covers on random rules.
func TestIndexedCoversAgrees(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(vocab []string) []string {
		n := 1 + rnd.IntN(2)
		out := make([]string, n)
		for i := range out {
			out[i] = vocab[rnd.IntN(len(vocab))]
		}
		return out
	}
	rule := func() rbacv1.PolicyRule {
		r := rbacv1.PolicyRule{Verbs: pick([]string{"get", "list", "create", "*"}), APIGroups: pick([]string{"", "apps", "*"}),
			Resources: pick([]string{"pods", "pods/exec", "*/exec", "secrets", "*", "deployments"})}
		if rnd.IntN(4) == 0 {
			r.ResourceNames = pick([]string{"a", "b"})
		}
		if rnd.IntN(6) == 0 {
			r.NonResourceURLs = pick([]string{"/api", "/api*", "*", "/healthz"})
		}
		return r
	}
	differ, covered := 0, 0
	for range 5000 {
		var owner []*rbacv1.PolicyRule
		for range 1 + rnd.IntN(4) {
			r := rule()
			owner = append(owner, &r)
		}
		role := &graph.Role{Rules: []rbacv1.PolicyRule{rule(), rule()}}
		want := covers(owner, &role.Rules[0]) && covers(owner, &role.Rules[1])
		if got := indexRules(owner).coversAll(role); got != want {
			differ++
			t.Errorf("owner %v, role %v: indexed %v, covers %v", owner, role.Rules, got, want)
			if differ > 3 {
				t.FailNow()
			}
		}
		if want {
			covered++
		}
	}
	if covered == 0 || covered == 5000 {
		t.Fatalf("%d of 5000 covered: the sample does not tell yes from no", covered)
	}
}
