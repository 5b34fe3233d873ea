package graph

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	gocmp "github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// searchObjects is a small cluster with something to find in every searchable field.
func searchObjects() *Objects {
	return &Objects{
		Namespaces: []Namespace{
			*ns("argocd", "app.kubernetes.io/name", "argocd", "kubernetes.io/metadata.name", "argocd"),
			*ns("payments"),
		},
		ServiceAccounts: []ServiceAccount{
			*sa("argocd", "argocd-server", ""), *sa("argocd", "argocd-application-controller", ""),
			*sa("payments", "api", ""), *sa("payments", "default", ""),
		},
		ClusterRoles: []Role{
			role("", "cluster-admin", rule("*", "*", "*"), urlRule("*", "*")),
			role("", "secret-reader", rule("get,list", "", "secrets")),
			role("", "exec", rule("create", "", "pods/exec")),
			role("", "metrics", urlRule("get", "/metrics")),
			role("", "named", rule("get", "", "configmaps", "my-config")),
			role("", "crd-reader", rule("get", "apiextensions.k8s.io", "customresourcedefinitions")),
		},
		Roles: []Role{
			role("payments", "reader", rule("get", "", "secrets,configmaps")),
			role("argocd", "argocd-server", rule("create", "", "pods/exec")),
		},
		ClusterRoleBindings: []Binding{
			binding("", "ops-admins", "ClusterRole/cluster-admin", "Group:ops"),
			binding("", "argocd-application-controller", "ClusterRole/cluster-admin", "ServiceAccount:argocd/argocd-application-controller"),
		},
		RoleBindings: []Binding{
			binding("payments", "api-reads", "Role/reader", "ServiceAccount:api"),
			binding("argocd", "argocd-server", "Role/argocd-server", "ServiceAccount:argocd/argocd-server"),
			binding("payments", "alice-admin", "ClusterRole/cluster-admin", "User:alice@example.com"),
			binding("argocd", "alice-view", "ClusterRole/view", "User:alice@example.com"),
		},
		Pods: []Pod{
			{Meta: Meta{Namespace: "payments", Name: "api-7d9f-abcde"}, ServiceAccount: "api", NodeName: "node-a"},
			{Meta: Meta{Namespace: "argocd", Name: "argocd-server-xyz"}, ServiceAccount: "argocd-server", NodeName: "node-b"},
		},
		Nodes: []Node{
			{Meta: ns("node-a", "topology.kubernetes.io/zone", "eu-1a").Meta},
			{Meta: ns("node-b", "topology.kubernetes.io/zone", "eu-1b").Meta},
		},
		Users: []User{
			{Meta: Meta{Name: "Bob.Smith@Example.com"}, Groups: []string{"ops", "finance"}},
			{Meta: Meta{Name: "José"}, Groups: []string{"ops"}},
		},
		Secrets: []Secret{{Meta: Meta{Namespace: "payments", Name: "api-token"}, ServiceAccount: "api"}},
	}
}

// search returns the hits of q as "rank field Kind/ns/name=value".
func search(t *testing.T, s *Snapshot, q SearchQuery) []string {
	t.Helper()
	hs, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s %s %s=%s", h.Rank, h.Field, h.Ref, h.Value))
	}
	return out
}

func TestSearch(t *testing.T) {
	s := NewSnapshot(searchObjects())
	tests := []struct {
		name string
		q    SearchQuery
		want []string
	}{
		{"ranks, name before namespace, kind order", SearchQuery{Text: "argocd"}, []string{
			"exact name Namespace/argocd=argocd",
			// Every object of the namespace, but not the user its binding names, who is in no namespace.
			"exact namespace ServiceAccount/argocd/argocd-application-controller=argocd",
			"exact namespace ServiceAccount/argocd/argocd-server=argocd",
			"exact namespace Role/argocd/argocd-server=argocd",
			"exact namespace RoleBinding/argocd/alice-view=argocd",
			"exact namespace RoleBinding/argocd/argocd-server=argocd",
			"exact namespace Pod/argocd/argocd-server-xyz=argocd",
			"prefix name ClusterRoleBinding/argocd-application-controller=argocd-application-controller",
		}},
		{"exact then substring", SearchQuery{Text: "reader"}, []string{
			"exact name Role/payments/reader=reader",
			"exact roleRef RoleBinding/payments/api-reads=reader",
			"substring name ClusterRole/crd-reader=crd-reader",
			"substring name ClusterRole/secret-reader=secret-reader",
		}},
		{"prefix, name before rule", SearchQuery{Text: "secret"}, []string{
			"prefix name ClusterRole/secret-reader=secret-reader",
			"prefix rule Role/payments/reader=secrets",
		}},
		{"rule resource", SearchQuery{Text: "secrets"}, []string{
			"exact rule Role/payments/reader=secrets",
			"exact rule ClusterRole/secret-reader=secrets",
		}},
		{"rule subresource", SearchQuery{Text: "pods/exec"}, []string{
			"exact rule Role/argocd/argocd-server=pods/exec",
			"exact rule ClusterRole/exec=pods/exec",
		}},
		{"rule wildcard", SearchQuery{Text: "*"}, []string{"exact rule ClusterRole/cluster-admin=*"}},
		{"rule nonResourceURL", SearchQuery{Text: "/metrics"}, []string{"exact rule ClusterRole/metrics=/metrics"}},
		{"rule resourceName", SearchQuery{Text: "my-config"}, []string{"exact rule ClusterRole/named=my-config"}},
		{"rule apiGroup", SearchQuery{Text: "apiextensions.k8s.io"}, []string{"exact rule ClusterRole/crd-reader=apiextensions.k8s.io"}},
		{"label key=value", SearchQuery{Text: "topology.kubernetes.io/zone=eu-1a"}, []string{
			"exact label Node/node-a=topology.kubernetes.io/zone=eu-1a",
			"fuzzy label Node/node-b=topology.kubernetes.io/zone=eu-1b",
		}},
		{"label key", SearchQuery{Text: "app.kubernetes.io/name"}, []string{"exact label Namespace/argocd=app.kubernetes.io/name"}},
		{"label value", SearchQuery{Text: "eu-1b", Limit: 1}, []string{"exact label Node/node-b=eu-1b"}},
		{"user named in two namespaces is one hit", SearchQuery{Text: "alice@example.com"}, []string{
			"exact name User/alice@example.com=alice@example.com",
			"exact subject RoleBinding/argocd/alice-view=alice@example.com",
			"exact subject RoleBinding/payments/alice-admin=alice@example.com",
		}},
		{"ServiceAccount subject as user name", SearchQuery{Text: "system:serviceaccount:payments:api"}, []string{
			"exact subject RoleBinding/payments/api-reads=system:serviceaccount:payments:api",
		}},
		{"ServiceAccount subject as ns/name", SearchQuery{Text: "payments/api"}, []string{
			"exact subject RoleBinding/payments/api-reads=payments/api",
		}},
		{"roleRef", SearchQuery{Text: "cluster-admin"}, []string{
			"exact name ClusterRole/cluster-admin=cluster-admin",
			"exact roleRef RoleBinding/payments/alice-admin=cluster-admin",
			"exact roleRef ClusterRoleBinding/argocd-application-controller=cluster-admin",
			"exact roleRef ClusterRoleBinding/ops-admins=cluster-admin",
		}},
		{"serviceAccount", SearchQuery{Text: "api"}, []string{
			"exact name ServiceAccount/payments/api=api",
			"exact subject RoleBinding/payments/api-reads=api",
			"exact serviceAccount Pod/payments/api-7d9f-abcde=api",
			"exact serviceAccount Secret/payments/api-token=api",
			"prefix rule ClusterRole/crd-reader=apiextensions.k8s.io",
		}},
		{"node", SearchQuery{Text: "node-a", Limit: 2}, []string{
			"exact name Node/node-a=node-a",
			"exact node Pod/payments/api-7d9f-abcde=node-a",
		}},
		{"declared group", SearchQuery{Text: "finance"}, []string{
			"exact name Group/finance=finance",
			"exact group User/Bob.Smith@Example.com=finance",
		}},
		{"group named and declared", SearchQuery{Text: "ops"}, []string{
			"exact name Group/ops=ops",
			"exact subject ClusterRoleBinding/ops-admins=ops",
			"exact group User/Bob.Smith@Example.com=ops",
			"exact group User/José=ops",
		}},
		{"case-insensitive, value as stored", SearchQuery{Text: "  BOB.SMITH@example.COM "}, []string{
			"exact name User/Bob.Smith@Example.com=Bob.Smith@Example.com",
		}},

		{"kinds", SearchQuery{Text: "api", Kinds: []Kind{KindPod, KindSecret}}, []string{
			"exact serviceAccount Pod/payments/api-7d9f-abcde=api",
			"exact serviceAccount Secret/payments/api-token=api",
		}},
		{"kinds users", SearchQuery{Text: "alice", Kinds: []Kind{KindUser}}, []string{
			"prefix name User/alice@example.com=alice@example.com",
		}},
		{"unknown kind", SearchQuery{Text: "api", Kinds: []Kind{"Deployment"}}, nil},
		{"namespace: its objects and its Namespace", SearchQuery{Text: "argocd", Namespace: "argocd", Limit: 3}, []string{
			"exact name Namespace/argocd=argocd",
			"exact namespace ServiceAccount/argocd/argocd-application-controller=argocd",
			"exact namespace ServiceAccount/argocd/argocd-server=argocd",
		}},
		{"namespace: no users, no other namespace", SearchQuery{Text: "alice", Namespace: "payments"}, []string{
			"prefix name RoleBinding/payments/alice-admin=alice-admin",
		}},
		{"namespace without objects", SearchQuery{Text: "argocd", Namespace: "nowhere"}, nil},
		{"limit", SearchQuery{Text: "argocd", Limit: 1}, []string{"exact name Namespace/argocd=argocd"}},

		{"fuzzy, 2 edits from 8 runes", SearchQuery{Text: "clusteradmn", Limit: 2}, []string{
			"fuzzy name ClusterRole/cluster-admin=cluster-admin",
			"fuzzy roleRef RoleBinding/payments/alice-admin=cluster-admin",
		}},
		{"fuzzy transposition", SearchQuery{Text: "argocd-sevrer", Kinds: []Kind{KindServiceAccount}}, []string{
			"fuzzy name ServiceAccount/argocd/argocd-server=argocd-server",
		}},
		{"fuzzy, 1 edit from 4 runes, in runes", SearchQuery{Text: "jose"}, []string{"fuzzy name User/José=José"}},
		{"fuzzy ranks last", SearchQuery{Text: "node-c"}, []string{
			"fuzzy name Node/node-a=node-a",
			"fuzzy name Node/node-b=node-b",
			"fuzzy node Pod/argocd/argocd-server-xyz=node-b",
			"fuzzy node Pod/payments/api-7d9f-abcde=node-a",
		}},
		{"no fuzzy under 4 runes", SearchQuery{Text: "nox"}, nil},
		{"empty", SearchQuery{Text: "  "}, nil},
		{"NUL", SearchQuery{Text: "a\x00b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := gocmp.Diff(tt.want, search(t, s, tt.q)); diff != "" {
				t.Errorf("Search(%+v) (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestSearchOneHitPerObject(t *testing.T) {
	s := NewSnapshot(searchObjects())
	hs, err := s.Search(context.Background(), SearchQuery{Text: "argocd-server", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ObjectRef]bool{}
	for _, h := range hs {
		if seen[h.Ref] {
			t.Errorf("%s is hit twice", h.Ref)
		}
		seen[h.Ref] = true
		// The binding also matches by roleRef and subject: its name is its best match.
		if h.Ref == (ObjectRef{Kind: KindRoleBinding, Namespace: "argocd", Name: "argocd-server"}) && (h.Field != "name" || h.Rank != RankExact) {
			t.Errorf("binding argocd-server hit as %s %s, want exact name", h.Rank, h.Field)
		}
	}
}

// TestSearchFindsEveryRule checks that the limit is the only bound: every role naming a resource is found.
func TestSearchFindsEveryRule(t *testing.T) {
	var objs Objects
	want := map[string][]ObjectRef{}
	for i := range 300 {
		resources := []string{"secrets", "pods,pods/exec", "configmaps,secrets/status", "*"}[i%4]
		r := role(fmt.Sprintf("ns-%d", i%13), fmt.Sprintf("role-%03d", i), rule("get", "", resources))
		if i%5 == 0 {
			r = role("", r.Name, r.Rules...)
			objs.ClusterRoles = append(objs.ClusterRoles, r)
		} else {
			objs.Roles = append(objs.Roles, r)
		}
		for _, res := range strings.Split(resources, ",") {
			want[res] = append(want[res], r.Ref())
		}
	}
	s := NewSnapshot(&objs)
	for _, text := range []string{"secrets", "pods/exec", "*"} {
		hs, err := s.Search(context.Background(), SearchQuery{Text: text, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var got []ObjectRef
		for _, h := range hs {
			if h.Rank == RankExact {
				got = append(got, h.Ref)
			}
		}
		slices.SortFunc(got, compareRefs)
		slices.SortFunc(want[text], compareRefs)
		if diff := gocmp.Diff(want[text], got); diff != "" {
			t.Errorf("Search(%q) exact hits (-want +got):\n%s", text, diff)
		}
	}
}

func TestSearchDefaultLimit(t *testing.T) {
	var objs Objects
	for i := range 120 {
		objs.ServiceAccounts = append(objs.ServiceAccounts, *sa(fmt.Sprintf("fleet-%d", i%3), fmt.Sprintf("worker-%03d", i), ""))
	}
	s := NewSnapshot(&objs)
	got := search(t, s, SearchQuery{Text: "worker"})
	if len(got) != DefaultSearchLimit {
		t.Fatalf("Search(worker) returned %d hits, want %d", len(got), DefaultSearchLimit)
	}
	// By namespace, then name: fleet-0 holds worker-000, worker-003, …
	if want := "prefix name ServiceAccount/fleet-0/worker-000=worker-000"; got[0] != want {
		t.Errorf("first hit %q, want %q", got[0], want)
	}
	if want := "prefix name ServiceAccount/fleet-1/worker-028=worker-028"; got[DefaultSearchLimit-1] != want {
		t.Errorf("last hit %q, want %q", got[DefaultSearchLimit-1], want)
	}
}

func TestSearchFollowsApply(t *testing.T) {
	ctx := context.Background()
	s := NewSnapshot(searchObjects())
	if _, err := s.Search(ctx, SearchQuery{Text: "warm"}); err != nil {
		t.Fatal(err)
	}
	added := binding("payments", "newcomer-binding", "ClusterRole/view", "User:newcomer@example.com")
	fresh := binding("fresh", "fresh-binding", "ClusterRole/view", "Group:newcomers")
	api, _ := s.Object(ObjectRef{Kind: KindServiceAccount, Namespace: "payments", Name: "api"})
	next := s.Apply([]Change{NewChange(nil, &added), NewChange(nil, &fresh), NewChange(api, nil)})

	if diff := gocmp.Diff([]string{
		"prefix name User/newcomer@example.com=newcomer@example.com",
		"prefix name Group/newcomers=newcomers",
		"prefix name RoleBinding/payments/newcomer-binding=newcomer-binding",
		"prefix subject RoleBinding/fresh/fresh-binding=newcomers",
	}, search(t, next, SearchQuery{Text: "newcomer"})); diff != "" {
		t.Errorf("after Apply, Search(newcomer) (-want +got):\n%s", diff)
	}
	if got := search(t, next, SearchQuery{Text: "api", Kinds: []Kind{KindServiceAccount}}); got != nil {
		t.Errorf("after deleting it, Search(api) finds %v", got)
	}
	if got := search(t, s, SearchQuery{Text: "newcomer"}); got != nil {
		t.Errorf("Apply changed what the snapshot it came from finds: %v", got)
	}
	if got := search(t, s, SearchQuery{Text: "api", Kinds: []Kind{KindServiceAccount}}); len(got) != 1 {
		t.Errorf("Apply changed what the snapshot it came from finds: %v", got)
	}
	// The namespace the changes left alone keeps its index; the one they touched has a new one.
	if s.nss["argocd"].search.ix.Load() != next.nss["argocd"].search.ix.Load() {
		t.Error("Apply re-indexed a namespace it did not change")
	}
	if s.nss["payments"].search.ix.Load() == next.nss["payments"].search.ix.Load() {
		t.Error("Apply kept the index of a namespace it changed")
	}
}

func TestSearchCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	warm := NewSnapshot(searchObjects())
	if _, err := warm.Search(context.Background(), SearchQuery{Text: "warm"}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Snapshot{"cold": NewSnapshot(searchObjects()), "warm": warm} {
		if _, err := s.Search(ctx, SearchQuery{Text: "argocd"}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Search with a cancelled context: %v, want %v", name, err, context.Canceled)
		}
	}
}

// TestSearchConcurrent searches a cold snapshot and one applied from it (sharing its cold shards) from many
// goroutines at once: every search must see the lazily built indexes whole.
func TestSearchConcurrent(t *testing.T) {
	ctx := context.Background()
	objs := randomSearchObjects(rand.New(rand.NewPCG(7, 7)))
	b := binding("ns-1", "added", "ClusterRole/view", "User:someone-new")
	change := []Change{NewChange(nil, &b)}
	texts := []string{"api", "secrets", "web-a", "argocd", "zoë", "node-1", "payments-admins", "someone"}
	expected := func(s *Snapshot) [][]SearchHit {
		var out [][]SearchHit
		for _, text := range texts {
			hs, err := s.Search(ctx, SearchQuery{Text: text})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, hs)
		}
		return out
	}
	want := [2][][]SearchHit{expected(NewSnapshot(objs)), expected(NewSnapshot(objs).Apply(change))}
	base := NewSnapshot(objs)
	snaps := [2]*Snapshot{base, base.Apply(change)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i, text := range texts {
				got, err := snaps[g%2].Search(ctx, SearchQuery{Text: text})
				if err != nil {
					t.Error(err)
					return
				}
				if diff := gocmp.Diff(want[g%2][i], got); diff != "" {
					t.Errorf("snapshot %d: Search(%q) (-alone +concurrently):\n%s", g%2, text, diff)
				}
			}
		})
	}
	wg.Wait()
}

// TestLowerBound checks the binary search over 8-byte keys where many terms share them.
func TestLowerBound(t *testing.T) {
	b := newIndexBuilder("", 1)
	obj := b.object(ObjectRef{Kind: KindNode, Name: "n"})
	var terms []string
	for i := range 40 {
		terms = append(terms, fmt.Sprintf("app.kubernetes.io/part-%02d", i), fmt.Sprintf("app-%02d", i))
	}
	terms = append(terms, "a", "app", "app.kubernetes.io", "b")
	for _, term := range terms {
		b.add(obj, fieldLabel, term)
	}
	ix := b.build()
	terms = append(terms, "n")
	slices.Sort(terms)
	for _, q := range []string{"", "a", "ap", "app", "app.", "app.kubernetes.io/", "app.kubernetes.io/part-17", "app.kubernetes.io/part-17x",
		"app.kubernetes.io/q", "app-3", "az", "b", "c"} {
		want, _ := slices.BinarySearch(terms, q)
		if got := ix.lowerBound(q, prefixKey(q)); got != want {
			t.Errorf("lowerBound(%q) = %d, want %d", q, got, want)
		}
	}
}

func TestMatchRankString(t *testing.T) {
	for r, want := range map[MatchRank]string{RankExact: "exact", RankPrefix: "prefix", RankSubstring: "substring", RankFuzzy: "fuzzy", 9: "unknown"} {
		if got := r.String(); got != want {
			t.Errorf("MatchRank(%d).String() = %q, want %q", r, got, want)
		}
	}
}

func TestLevenshteinWithin(t *testing.T) {
	tests := []struct {
		a, b string
		k    int
		want bool
	}{
		{"kitten", "sitting", 3, true},
		{"kitten", "sitting", 2, false},
		{"", "ab", 2, true},
		{"ab", "", 1, false},
		{"clusteradmn", "cluster-admin", 2, true},
		{"abcdef", "badcfe", 2, false}, // three transpositions
		{strings.Repeat("a", 70), strings.Repeat("a", 69) + "b", 1, true},
	}
	for _, tt := range tests {
		if got := levenshteinWithin([]byte(tt.a), []byte(tt.b), tt.k); got != tt.want {
			t.Errorf("levenshteinWithin(%q, %q, %d) = %v, want %v", tt.a, tt.b, tt.k, got, tt.want)
		}
		if got := levenshteinWithin([]rune(tt.a), []rune(tt.b), tt.k); got != tt.want {
			t.Errorf("levenshteinWithin(runes %q, %q, %d) = %v, want %v", tt.a, tt.b, tt.k, got, tt.want)
		}
	}
	if !levenshteinWithin([]rune("josé"), []rune("jose"), 1) {
		t.Error("levenshteinWithin(josé, jose, 1) = false: runes are one edit each")
	}
}

// TestSearchAgreesWithNaive compares Search on a random cluster with a direct reading of the definition: every
// field of every object ranked against the text, each object's best match, sorted, cut at the limit.
func TestSearchAgreesWithNaive(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { searchAgreesWithNaive(t, seed) })
	}
}

func searchAgreesWithNaive(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 2))
	s := NewSnapshot(randomSearchObjects(r))
	objects := naiveObjects(s)
	var values []string
	for _, o := range objects {
		for _, f := range o.fields {
			values = append(values, f.value)
		}
	}
	namespaces := s.NamespaceNames()
	for i := range 300 {
		q := SearchQuery{Text: randomQueryText(r, values[r.IntN(len(values))]), Limit: []int{1, 3, 10, 50, 1000}[r.IntN(5)]}
		switch r.IntN(5) {
		case 0:
			q.Namespace = namespaces[r.IntN(len(namespaces))]
		case 1:
			for range 1 + r.IntN(3) {
				q.Kinds = append(q.Kinds, searchKinds[r.IntN(len(searchKinds))])
			}
		}
		got, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveSearch(objects, q)
		if diff := gocmp.Diff(want, hitKeys(got)); diff != "" {
			t.Fatalf("query %d %+v (-naive +Search):\n%s", i, q, diff)
		}
		checkValues(t, objects, q, got)
	}
}

// randomQueryText returns what a user might type for v: all of it, a piece, a piece with a typo, in any case.
func randomQueryText(r *rand.Rand, v string) string {
	rs := []rune(v)
	switch r.IntN(5) {
	case 0:
		return v
	case 1:
		return strings.ToUpper(v)
	case 2, 3:
		i := r.IntN(len(rs))
		return string(rs[i : i+1+r.IntN(len(rs)-i)])
	}
	if len(rs) > 1 {
		i := r.IntN(len(rs) - 1)
		rs[i], rs[i+1] = rs[i+1], rs[i]
	}
	return string(rs)
}

func randomSearchObjects(r *rand.Rand) *Objects {
	words := []string{"api", "web", "argo", "argocd", "pay", "payments", "db", "cache", "ops", "dev", "admin", "reader",
		"secret", "exec", "node", "zoë", "josé", "müller", "worker", "deploy"}
	name := func() string {
		n := words[r.IntN(len(words))] + "-" + words[r.IntN(len(words))]
		if r.IntN(2) == 0 {
			n += fmt.Sprint(r.IntN(10))
		}
		return n
	}
	labels := func() map[string]string {
		m := map[string]string{}
		for range r.IntN(3) {
			m[[]string{"app", "team", "app.kubernetes.io/name", "tier"}[r.IntN(4)]] = words[r.IntN(len(words))]
		}
		return m
	}
	resources := []string{"pods", "pods/exec", "secrets", "*", "configmaps", "nodes/proxy", "serviceaccounts/token"}
	rules := func() []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for range 1 + r.IntN(3) {
			p := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{[]string{"", "*", "apps", "argoproj.io"}[r.IntN(4)]},
				Resources: []string{resources[r.IntN(len(resources))]}}
			if r.IntN(4) == 0 {
				p.ResourceNames = []string{name()}
			}
			if r.IntN(6) == 0 {
				p = rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/metrics", "/api/*"}[r.IntN(3):]}
			}
			out = append(out, p)
		}
		return out
	}
	users := []string{"alice@example.com", "Bob.Smith@Example.com", "zoë.müller@example.com", "system:serviceaccount:ns-1:api-web",
		"https://idp.example.com#carol", "arn:aws:iam::123456789012:user/dave"}
	groups := []string{"ops", "devs", "system:authenticated", "github:kiem-io/payments-admins"}
	subject := func(bns string) rbacv1.Subject {
		switch r.IntN(4) {
		case 0:
			return rbacv1.Subject{Kind: rbacv1.UserKind, Name: users[r.IntN(len(users))]}
		case 1:
			return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: groups[r.IntN(len(groups))]}
		case 2:
			return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name()} // the binding's own namespace
		}
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: fmt.Sprintf("ns-%d", r.IntN(6)), Name: name()}
	}
	var o Objects
	for i := range 6 {
		nsName := fmt.Sprintf("ns-%d", i)
		if i != 5 {
			o.Namespaces = append(o.Namespaces, Namespace{Meta: Meta{Name: nsName, Labels: labels()}})
		}
		for range 2 + r.IntN(5) {
			o.ServiceAccounts = append(o.ServiceAccounts, ServiceAccount{Meta: Meta{Namespace: nsName, Name: name(), Labels: labels()}})
			o.Roles = append(o.Roles, Role{Kind: KindRole, Meta: Meta{Namespace: nsName, Name: name(), Labels: labels()}, Rules: rules()})
			b := Binding{Kind: KindRoleBinding, Meta: Meta{Namespace: nsName, Name: name()},
				RoleRef: rbacv1.RoleRef{Kind: []string{"Role", "ClusterRole"}[r.IntN(2)], Name: name()}}
			for range 1 + r.IntN(3) {
				b.Subjects = append(b.Subjects, subject(nsName))
			}
			o.RoleBindings = append(o.RoleBindings, b)
			o.Pods = append(o.Pods, Pod{Meta: Meta{Namespace: nsName, Name: name() + "-" + fmt.Sprint(r.IntN(100)), Labels: labels()},
				ServiceAccount: name(), NodeName: fmt.Sprintf("node-%d", r.IntN(3))})
			if r.IntN(3) == 0 {
				o.Secrets = append(o.Secrets, Secret{Meta: Meta{Namespace: nsName, Name: name() + "-token"}, ServiceAccount: name()})
			}
		}
	}
	for range 12 {
		cr := Role{Kind: KindClusterRole, Meta: Meta{Name: name(), Labels: labels()}, Rules: rules()}
		if r.IntN(4) == 0 {
			cr.Rules = nil
			cr.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{sel("app", words[r.IntN(len(words))])}}
		}
		o.ClusterRoles = append(o.ClusterRoles, cr)
		b := Binding{Kind: KindClusterRoleBinding, Meta: Meta{Name: name()}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: cr.Name}}
		for range 1 + r.IntN(3) {
			b.Subjects = append(b.Subjects, subject(""))
		}
		o.ClusterRoleBindings = append(o.ClusterRoleBindings, b)
	}
	for i := range 3 {
		o.Nodes = append(o.Nodes, Node{Meta: Meta{Name: fmt.Sprintf("node-%d", i), Labels: labels()}})
	}
	o.Users = []User{
		{Meta: Meta{Name: "alice@example.com"}, Groups: []string{"ops", "finance"}},
		{Meta: Meta{Name: "Erin"}, Groups: []string{"Auditors"}},
	}
	return &o
}

// naiveObject is an object with every field Search reads, as SearchHit names them.
type naiveObject struct {
	ref    ObjectRef
	fields []naiveField
}

type naiveField struct {
	field, value string
}

// naiveObjects lists the objects and fields of s as Search's documentation defines them, from Objects.
func naiveObjects(s *Snapshot) []naiveObject {
	var out []naiveObject
	add := func(ref ObjectRef, m *Meta, fs ...naiveField) {
		o := naiveObject{ref: ref, fields: append([]naiveField{{"name", ref.Name}}, fs...)}
		if ref.Namespace != "" {
			o.fields = append(o.fields, naiveField{"namespace", ref.Namespace})
		}
		if m != nil {
			for k, v := range m.Labels {
				o.fields = append(o.fields, naiveField{"label", k}, naiveField{"label", v}, naiveField{"label", k + "=" + v})
			}
		}
		out = append(out, o)
	}
	ruleFields := func(rules []rbacv1.PolicyRule) []naiveField {
		var fs []naiveField
		for _, p := range rules {
			for _, v := range slices.Concat(p.Resources, p.ResourceNames, p.NonResourceURLs) {
				fs = append(fs, naiveField{"rule", v})
			}
			for _, g := range p.APIGroups {
				if g != "" && g != "*" {
					fs = append(fs, naiveField{"rule", g})
				}
			}
		}
		return fs
	}
	bindingFields := func(b *Binding) []naiveField {
		fs := []naiveField{{"roleRef", b.RoleRef.Name}}
		for _, subj := range b.Subjects {
			fs = append(fs, naiveField{"subject", subj.Name})
			if ns := cmp.Or(subj.Namespace, b.Namespace); subj.Kind == rbacv1.ServiceAccountKind && ns != "" {
				fs = append(fs, naiveField{"subject", ns + "/" + subj.Name}, naiveField{"subject", ServiceAccountUsername(ns, subj.Name)})
			}
		}
		return fs
	}
	objs := s.Objects()
	declared := map[string]*User{}
	for i := range objs.Users {
		declared[objs.Users[i].Name] = &objs.Users[i]
	}
	for _, name := range s.Subjects(KindUser) {
		var fs []naiveField
		var m *Meta
		if u := declared[name]; u != nil {
			m = &u.Meta
			for _, g := range u.Groups {
				fs = append(fs, naiveField{"group", g})
			}
		}
		add(ObjectRef{Kind: KindUser, Name: name}, m, fs...)
	}
	for _, name := range s.Subjects(KindGroup) {
		add(ObjectRef{Kind: KindGroup, Name: name}, nil)
	}
	for i := range objs.Namespaces {
		add(objs.Namespaces[i].Ref(), &objs.Namespaces[i].Meta)
	}
	for i := range objs.Nodes {
		add(objs.Nodes[i].Ref(), &objs.Nodes[i].Meta)
	}
	for i := range objs.ServiceAccounts {
		add(objs.ServiceAccounts[i].Ref(), &objs.ServiceAccounts[i].Meta)
	}
	for _, rs := range [][]Role{objs.Roles, objs.ClusterRoles} {
		for i := range rs {
			add(rs[i].Ref(), &rs[i].Meta, ruleFields(rs[i].Rules)...)
		}
	}
	for _, bs := range [][]Binding{objs.RoleBindings, objs.ClusterRoleBindings} {
		for i := range bs {
			add(bs[i].Ref(), &bs[i].Meta, bindingFields(&bs[i])...)
		}
	}
	for i := range objs.Pods {
		p := &objs.Pods[i]
		add(p.Ref(), &p.Meta, naiveField{"serviceAccount", p.ServiceAccount}, naiveField{"node", p.NodeName})
	}
	for i := range objs.Secrets {
		sec := &objs.Secrets[i]
		add(sec.Ref(), &sec.Meta, naiveField{"serviceAccount", sec.ServiceAccount})
	}
	return out
}

// naiveRank ranks value against the lower-cased text; ok is false when it does not match.
func naiveRank(value, text string) (MatchRank, bool) {
	v := strings.ToLower(value)
	n := utf8.RuneCountInString(text)
	switch {
	case value == "":
		return 0, false
	case v == text:
		return RankExact, true
	case strings.HasPrefix(v, text):
		return RankPrefix, true
	case strings.Contains(v, text):
		return RankSubstring, true
	case n >= 4 && max(utf8.RuneCountInString(v)-n, n-utf8.RuneCountInString(v)) <= 2 && naiveDistance([]rune(v), []rune(text)) <= min(2, n/4):
		return RankFuzzy, true
	}
	return 0, false
}

// naiveDistance is the textbook Levenshtein distance.
func naiveDistance(a, b []rune) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
		}
	}
	return d[len(a)][len(b)]
}

// hitKey is what must agree between Search and naiveSearch; values may differ between equally good matches.
type hitKey struct {
	Ref   ObjectRef
	Rank  MatchRank
	Field string
}

func hitKeys(hs []SearchHit) []hitKey {
	var out []hitKey
	for _, h := range hs {
		out = append(out, hitKey{h.Ref, h.Rank, h.Field})
	}
	return out
}

func naiveSearch(objects []naiveObject, q SearchQuery) []hitKey {
	text := strings.ToLower(strings.TrimSpace(q.Text))
	fieldOrder := func(f string) int { return slices.Index(fieldNames[:], f) }
	var hits []hitKey
	for _, o := range objects {
		if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, o.ref.Kind) {
			continue
		}
		if q.Namespace != "" && o.ref.Namespace != q.Namespace && o.ref != (ObjectRef{Kind: KindNamespace, Name: q.Namespace}) {
			continue
		}
		best, found := hitKey{Ref: o.ref}, false
		for _, f := range o.fields {
			rank, ok := naiveRank(f.value, text)
			if ok && (!found || rank < best.Rank || rank == best.Rank && fieldOrder(f.field) < fieldOrder(best.Field)) {
				best.Rank, best.Field, found = rank, f.field, true
			}
		}
		if found {
			hits = append(hits, best)
		}
	}
	slices.SortFunc(hits, func(a, b hitKey) int {
		ka, _ := kindOrder(a.Ref.Kind)
		kb, _ := kindOrder(b.Ref.Kind)
		return cmp.Or(cmp.Compare(a.Rank, b.Rank), cmp.Compare(fieldOrder(a.Field), fieldOrder(b.Field)), cmp.Compare(ka, kb),
			strings.Compare(a.Ref.Namespace, b.Ref.Namespace), strings.Compare(a.Ref.Name, b.Ref.Name))
	})
	limit := cmp.Or(max(q.Limit, 0), DefaultSearchLimit)
	return hits[:min(limit, len(hits))]
}

// checkValues checks that each hit's value is a field of its object that matches as the hit says.
func checkValues(t *testing.T, objects []naiveObject, q SearchQuery, hs []SearchHit) {
	t.Helper()
	text := strings.ToLower(strings.TrimSpace(q.Text))
	for _, h := range hs {
		i := slices.IndexFunc(objects, func(o naiveObject) bool { return o.ref == h.Ref })
		ok := i >= 0 && slices.ContainsFunc(objects[i].fields, func(f naiveField) bool {
			rank, matched := naiveRank(f.value, text)
			return f.field == h.Field && f.value == h.Value && matched && rank == h.Rank
		})
		if !ok {
			t.Errorf("Search(%+v): hit %+v: %s has no field %s %q that matches so", q, h, h.Ref, h.Field, h.Value)
		}
	}
}
