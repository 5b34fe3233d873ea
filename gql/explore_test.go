package gql

import (
	"slices"
	"testing"
)

func TestSearch(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	type hit struct {
		Field, Value, Rank string
		Node               struct {
			Typename  string `json:"__typename"`
			Name      string
			Namespace string
		}
	}
	search := func(t *testing.T, vars map[string]any) []hit {
		var out struct{ Search struct{ Edges []hit } }
		a.query(`query($q: String!, $k: [Kind!], $ns: String, $first: Int) { search(query: $q, kinds: $k, namespace: $ns, first: $first) { edges { field value rank node { __typename name namespace } } } }`, vars, &out)
		return out.Search.Edges
	}
	t.Run("exact first", func(t *testing.T) {
		hits := search(t, map[string]any{"q": "payments"})
		if len(hits) == 0 || hits[0].Rank != "EXACT" || hits[0].Node.Name != "payments" {
			t.Fatalf("hits = %+v, want the payments namespace first, exact", hits)
		}
		for i := 1; i < len(hits); i++ {
			if rank(hits[i].Rank) < rank(hits[i-1].Rank) {
				t.Errorf("hit %d (%s) ranks before hit %d (%s)", i, hits[i].Rank, i-1, hits[i-1].Rank)
			}
		}
	})
	t.Run("rule contents", func(t *testing.T) {
		hits := search(t, map[string]any{"q": "pods/exec", "k": []string{"CLUSTER_ROLE", "ROLE"}, "first": 100})
		if len(hits) == 0 {
			t.Fatal("no role grants pods/exec")
		}
		for _, h := range hits {
			if h.Field != "rule" || (h.Node.Typename != "ClusterRole" && h.Node.Typename != "Role") {
				t.Errorf("hit %+v: want roles matched on a rule", h)
			}
		}
		if !slices.ContainsFunc(hits, func(h hit) bool { return h.Node.Name == "admin" }) {
			t.Errorf("admin (which grants pods/exec) not found: %+v", hits)
		}
	})
	t.Run("binding subjects", func(t *testing.T) {
		hits := search(t, map[string]any{"q": "ci-deployer", "k": []string{"CLUSTER_ROLE_BINDING"}})
		if len(hits) != 1 || hits[0].Node.Name != "payments-ci-admin" || hits[0].Field != "subject" {
			t.Errorf("hits = %+v, want payments-ci-admin by its subject", hits)
		}
	})
	t.Run("namespace filter", func(t *testing.T) {
		for _, h := range search(t, map[string]any{"q": "default", "ns": "payments", "first": 100}) {
			if h.Node.Namespace != "payments" && !(h.Node.Typename == "Namespace" && h.Node.Name == "payments") {
				t.Errorf("hit %+v outside payments", h)
			}
		}
	})
	t.Run("typo", func(t *testing.T) {
		hits := search(t, map[string]any{"q": "ci-deplyer"})
		if !slices.ContainsFunc(hits, func(h hit) bool { return h.Node.Name == "ci-deployer" && h.Rank == "FUZZY" }) {
			t.Errorf("hits = %+v, want ci-deployer by a fuzzy match", hits)
		}
	})
	t.Run("pages do not repeat", func(t *testing.T) {
		var p1, p2 struct {
			Search struct {
				Edges    []hit
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		const q = `query($a: String) { search(query: "system", first: 5, after: $a) { pageInfo { hasNextPage endCursor } edges { node { __typename name namespace } } } }`
		a.query(q, nil, &p1)
		if !p1.Search.PageInfo.HasNextPage {
			t.Fatal("search for system fits one page of 5")
		}
		a.query(q, map[string]any{"a": p1.Search.PageInfo.EndCursor}, &p2)
		for _, h := range p2.Search.Edges {
			if slices.ContainsFunc(p1.Search.Edges, func(o hit) bool { return o.Node == h.Node }) {
				t.Errorf("%+v on both pages", h.Node)
			}
		}
	})
}

func rank(r string) int { return slices.Index([]string{"EXACT", "PREFIX", "SUBSTRING", "FUZZY"}, r) }

func TestNeighbourhood(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	id := nodeID(t, a, "SERVICE_ACCOUNT", "payments", "ci-deployer")
	type result struct {
		Neighbourhood struct {
			Truncated bool
			Nodes     []struct {
				ID, Name string
				Typename string `json:"__typename"`
			}
			Edges []struct{ From, To, Type string }
		}
	}
	var out result
	a.query(`query($id: ID!) { neighbourhood(id: $id, depth: 1) { truncated nodes { __typename id name } edges { from to type } } }`, map[string]any{"id": id}, &out)
	n := out.Neighbourhood
	byID := map[string]string{}
	for _, x := range n.Nodes {
		byID[x.ID] = x.Typename + "/" + x.Name
	}
	for _, want := range []string{"ServiceAccount/ci-deployer", "ClusterRoleBinding/payments-ci-admin", "RoleBinding/ci-deployer", "Pod/ci-runner-0", "Namespace/payments", "Group/system:serviceaccounts:payments"} {
		if !slices.Contains(mapValues(byID), want) {
			t.Errorf("neighbourhood lacks %s: %v", want, byID)
		}
	}
	types := map[string]bool{}
	for _, e := range n.Edges {
		if byID[e.From] == "" || byID[e.To] == "" {
			t.Errorf("edge %v names a node not in the answer", e)
		}
		types[e.Type] = true
	}
	for _, want := range []string{"SUBJECT_OF", "RUNS_AS", "SCOPED_TO", "MEMBER_OF"} {
		if !types[want] {
			t.Errorf("no %s edge among %v", want, types)
		}
	}
	if n.Truncated {
		t.Error("depth 1 around ci-deployer truncated at 200 nodes")
	}
	var bounded result
	a.query(`query($id: ID!) { neighbourhood(id: $id, depth: 3, first: 5) { truncated nodes { id } edges { from to type } } }`, map[string]any{"id": id}, &bounded)
	if !bounded.Neighbourhood.Truncated || len(bounded.Neighbourhood.Nodes) != 5 {
		t.Errorf("first 5: %d nodes, truncated %v", len(bounded.Neighbourhood.Nodes), bounded.Neighbourhood.Truncated)
	}
	var kinds result
	a.query(`query($id: ID!) { neighbourhood(id: $id, depth: 2, kinds: [SERVICE_ACCOUNT, CLUSTER_ROLE_BINDING, CLUSTER_ROLE]) { nodes { __typename name } edges { type } } }`, map[string]any{"id": id}, &kinds)
	var sawRole bool
	for _, x := range kinds.Neighbourhood.Nodes {
		switch x.Typename {
		case "ServiceAccount", "ClusterRoleBinding":
		case "ClusterRole":
			sawRole = sawRole || x.Name == "cluster-admin"
		default:
			t.Errorf("kinds filter let %s/%s through", x.Typename, x.Name)
		}
	}
	if !sawRole {
		t.Error("depth 2 through payments-ci-admin does not reach cluster-admin")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
