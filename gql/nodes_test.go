package gql

import (
	"slices"
	"testing"
)

// TestNodeOfEveryKind reads a node of every kind by lookup and by its ID, and follows its relationship fields.
func TestNodeOfEveryKind(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	tests := []struct {
		kind, ns, name, typename string
		fields                   string
		check                    func(t *testing.T, n map[string]any)
	}{
		{"SERVICE_ACCOUNT", "payments", "ci-deployer", "ServiceAccount",
			`... on ServiceAccount { exists username bindings { totalCount nodes { name } } pods { nodes { name } } groups { implicit group { name } } namespaceNode { name } }`,
			func(t *testing.T, n map[string]any) {
				wantNames(t, "bindings", n["bindings"], "payments-ci-admin", "ci-deployer")
				wantNames(t, "pods", n["pods"], "ci-runner-0")
				if n["exists"] != true || n["username"] != "system:serviceaccount:payments:ci-deployer" {
					t.Errorf("exists/username = %v/%v", n["exists"], n["username"])
				}
				if !slices.Contains(groupNames(n["groups"]), "system:serviceaccounts:payments") {
					t.Errorf("groups = %v", n["groups"])
				}
			}},
		{"ROLE_BINDING", "payments", "ci-deployer", "RoleBinding",
			`... on RoleBinding { roleRef { kind name } role { __typename name } subjects { kind name node { __typename name namespace } } namespaceNode { name } }`,
			func(t *testing.T, n map[string]any) {
				if role := n["role"].(map[string]any); role["name"] != "deployer" || role["__typename"] != "Role" {
					t.Errorf("role = %v", role)
				}
				s := n["subjects"].([]any)[0].(map[string]any)["node"].(map[string]any)
				if s["__typename"] != "ServiceAccount" || s["name"] != "ci-deployer" {
					t.Errorf("subject node = %v", s)
				}
			}},
		{"ROLE", "payments", "deployer", "Role",
			`... on Role { rules { verbs resources text } bindings { nodes { name } } }`,
			func(t *testing.T, n map[string]any) {
				if len(n["rules"].([]any)) != 2 {
					t.Errorf("rules = %v", n["rules"])
				}
				wantNames(t, "bindings", n["bindings"], "ci-deployer")
			}},
		{"CLUSTER_ROLE", "", "view", "ClusterRole",
			`... on ClusterRole { aggregationSelectors aggregatedFrom { name } rules { resources } }`,
			func(t *testing.T, n map[string]any) {
				if !slices.Contains(names(n["aggregatedFrom"]), "secret-peeker") {
					t.Errorf("view aggregatedFrom = %v, want secret-peeker among them", n["aggregatedFrom"])
				}
				if len(n["aggregationSelectors"].([]any)) == 0 {
					t.Error("view has no aggregation selectors")
				}
			}},
		{"CLUSTER_ROLE", "", "secret-peeker", "ClusterRole",
			`... on ClusterRole { aggregatedInto { name } meta { labels { key value } } }`,
			func(t *testing.T, n map[string]any) {
				if !slices.Contains(names(n["aggregatedInto"]), "view") {
					t.Errorf("secret-peeker aggregatedInto = %v", n["aggregatedInto"])
				}
			}},
		{"CLUSTER_ROLE_BINDING", "", "payments-ci-admin", "ClusterRoleBinding",
			`... on ClusterRoleBinding { role { name } subjects { node { name } } }`,
			func(t *testing.T, n map[string]any) {
				if n["role"].(map[string]any)["name"] != "cluster-admin" {
					t.Errorf("role = %v", n["role"])
				}
			}},
		{"NAMESPACE", "", "payments", "Namespace",
			`... on Namespace { exists labels { key value } objects(kinds: [POD]) { totalCount nodes { name } } }`,
			func(t *testing.T, n map[string]any) {
				wantNames(t, "pods", n["objects"], "api-7d9f8-abcde", "ci-runner-0")
			}},
		{"POD", "payments", "ci-runner-0", "Pod",
			`... on Pod { serviceAccountName serviceAccount { name } nodeName owner { kind name } }`,
			func(t *testing.T, n map[string]any) {
				if n["serviceAccount"].(map[string]any)["name"] != "ci-deployer" || n["owner"].(map[string]any)["kind"] != "StatefulSet" {
					t.Errorf("pod = %v", n)
				}
			}},
		{"USER", "", "erin@example.com", "User",
			`... on User { declared groups { implicit group { name } } }`,
			func(t *testing.T, n map[string]any) {
				if n["declared"] != true || !slices.Contains(groupNames(n["groups"]), "oidc:payments-developers") {
					t.Errorf("user = %v", n)
				}
			}},
		{"GROUP", "", "oidc:payments-developers", "Group",
			`... on Group { members { nodes { name } } bindings { nodes { name } } }`,
			func(t *testing.T, n map[string]any) {
				wantNames(t, "members", n["members"], "erin@example.com")
				wantNames(t, "bindings", n["bindings"], "payments-developers")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.typename+"/"+tt.name, func(t *testing.T) {
			id := nodeID(t, a, tt.kind, tt.ns, tt.name)
			var out struct{ Node map[string]any }
			a.query(`query($id: ID!) { node(id: $id) { __typename id kind name namespace revision `+tt.fields+` } }`, map[string]any{"id": id}, &out)
			n := out.Node
			if n == nil || n["__typename"] != tt.typename || n["id"] != id || n["name"] != tt.name || n["namespace"] != tt.ns || n["kind"] != tt.kind {
				t.Fatalf("node(%s) = %v", id, n)
			}
			tt.check(t, n)
		})
	}
}

func TestNodesAtPastRevisions(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	id := nodeID(t, a, "CLUSTER_ROLE_BINDING", "", "payments-ci-admin")
	var out struct{ Now, Before, Deleted, Gone map[string]any }
	a.query(`query($id: ID!, $before: Revision, $added: Revision) {
	  now: node(id: $id) { name revision }
	  before: node(id: $id, at: $before) { name }
	  deleted: lookup(kind: CLUSTER_ROLE_BINDING, name: "anonymous-pod-lister") { name }
	  gone: lookup(kind: CLUSTER_ROLE_BINDING, name: "anonymous-pod-lister", at: $added) { name revision }
	}`, map[string]any{"id": id, "before": a.revs[1], "added": a.revs[5]}, &out)
	if out.Now == nil || out.Before != nil || out.Deleted != nil || out.Gone == nil {
		t.Errorf("now %v, before the grant %v, after deletion %v, while it existed %v", out.Now, out.Before, out.Deleted, out.Gone)
	}
	var list struct {
		Nodes struct {
			TotalCount int
			Nodes      []struct{ Name string }
		}
	}
	a.query(`{ nodes(kind: POD, namespace: "payments") { totalCount nodes { name } } }`, nil, &list)
	if list.Nodes.TotalCount != 2 || len(list.Nodes.Nodes) != 2 || list.Nodes.Nodes[0].Name != "api-7d9f8-abcde" {
		t.Errorf("pods of payments = %+v", list.Nodes)
	}
	var users struct {
		Nodes struct{ Nodes []struct{ Name string } }
	}
	a.query(`{ nodes(kind: USER, first: 1000) { nodes { name } } }`, nil, &users)
	var un []string
	for _, u := range users.Nodes.Nodes {
		un = append(un, u.Name)
	}
	if !slices.Contains(un, "auditor@example.com") || !slices.IsSorted(un) {
		t.Errorf("users = %v, want sorted with auditor@example.com", un)
	}
}

func TestWarningsNameDanglingRoleRefs(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	var out struct {
		Warnings []struct {
			Kind, Name, Message string
			Node                *struct{ ID string }
		}
	}
	a.query(`{ warnings { kind name message node { id } } }`, nil, &out)
	i := slices.IndexFunc(out.Warnings, func(w struct {
		Kind, Name, Message string
		Node                *struct{ ID string }
	}) bool {
		return w.Name == "payments-oncall" && w.Kind == "ROLE_BINDING"
	})
	if i < 0 || out.Warnings[i].Node == nil {
		t.Errorf("warnings %+v lack the dangling roleRef of payments-oncall", out.Warnings)
	}
}

func names(v any) []string {
	var out []string
	list, _ := v.([]any)
	if conn, ok := v.(map[string]any); ok {
		list, _ = conn["nodes"].([]any)
	}
	for _, x := range list {
		out = append(out, x.(map[string]any)["name"].(string))
	}
	return out
}

func groupNames(v any) []string {
	var out []string
	for _, m := range v.([]any) {
		out = append(out, m.(map[string]any)["group"].(map[string]any)["name"].(string))
	}
	return out
}

func wantNames(t *testing.T, what string, v any, want ...string) {
	t.Helper()
	got := names(v)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s = %v, want %s among them", what, got, w)
		}
	}
}
