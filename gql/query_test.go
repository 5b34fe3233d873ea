package gql

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

func TestCanFollowsHistory(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	const q = `query($at: Revision) {
	  can(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"},
	      action: {verb: "create", apiGroup: "rbac.authorization.k8s.io", resource: "clusterroles"}, at: $at) {
	    allowed superuser revision identity { user groups }
	    reasons { text binding { __typename name } subject { kind name namespace node { id name } } role { __typename name } rule { index verbs resources text } }
	  }
	}`
	type decision struct {
		Can struct {
			Allowed, Superuser bool
			Revision           uint64
			Identity           struct {
				User   string
				Groups []string
			}
			Reasons []struct {
				Text    string
				Binding struct{ Typename, Name string } `json:"binding"`
				Subject struct {
					Kind, Name, Namespace string
					Node                  struct{ ID, Name string }
				}
				Role struct {
					Typename string `json:"__typename"`
					Name     string
				}
				Rule struct {
					Index            int
					Verbs, Resources []string
					Text             string
				}
			}
		}
	}
	var head decision
	a.query(q, nil, &head)
	c := head.Can
	if !c.Allowed || c.Superuser || uint64(a.live.Head()) != c.Revision {
		t.Fatalf("head: allowed=%v superuser=%v revision=%d, want allowed at %d", c.Allowed, c.Superuser, c.Revision, a.live.Head())
	}
	if c.Identity.User != "system:serviceaccount:payments:ci-deployer" || !slices.Contains(c.Identity.Groups, "system:serviceaccounts:payments") {
		t.Errorf("identity = %+v", c.Identity)
	}
	if len(c.Reasons) != 1 || c.Reasons[0].Binding.Name != "payments-ci-admin" || c.Reasons[0].Role.Name != "cluster-admin" ||
		c.Reasons[0].Role.Typename != "ClusterRole" || c.Reasons[0].Subject.Node.Name != "ci-deployer" || c.Reasons[0].Rule.Text == "" {
		t.Errorf("reasons = %+v, want the one path through payments-ci-admin → cluster-admin", c.Reasons)
	}
	contains(t, "reason text", c.Reasons[0].Text, "payments-ci-admin")

	var before decision
	a.query(q, map[string]any{"at": a.revs[1]}, &before)
	if before.Can.Allowed || len(before.Can.Reasons) != 0 || before.Can.Revision != uint64(a.revs[1]) {
		t.Errorf("before the CI grant (revision %d): %+v, want denied", a.revs[1], before.Can)
	}
}

func TestCanSubjects(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	tests := []struct {
		name    string
		subject string
		action  string
		allowed bool
		binding string
	}{
		{"user with declared groups", `{kind: USER, name: "erin@example.com"}`, `{verb: "create", apiGroup: "apps", resource: "deployments", namespace: "payments"}`, true, "payments-developers"},
		{"user with explicit groups replaces declared ones", `{kind: USER, name: "erin@example.com", groups: []}`, `{verb: "create", apiGroup: "apps", resource: "deployments", namespace: "payments"}`, false, ""},
		{"group alone", `{kind: GROUP, name: "oidc:payments-developers"}`, `{verb: "create", apiGroup: "apps", resource: "deployments", namespace: "payments"}`, true, "payments-developers"},
		{"other namespace", `{kind: GROUP, name: "oidc:payments-developers"}`, `{verb: "create", apiGroup: "apps", resource: "deployments", namespace: "default"}`, false, ""},
		{"non-resource URL", `{kind: USER, name: "nobody"}`, `{verb: "get", nonResourceURL: "/healthz"}`, true, "system:public-info-viewer"},
		{"system:masters", `{kind: USER, name: "root", groups: ["system:masters"]}`, `{verb: "delete", resource: "nodes"}`, true, "cluster-admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct {
				Can struct {
					Allowed bool
					Reasons []struct{ Binding struct{ Name string } }
				}
			}
			a.query(`{ can(subject: `+tt.subject+`, action: `+tt.action+`) { allowed reasons { binding { name } } } }`, nil, &out)
			if out.Can.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v", out.Can.Allowed, tt.allowed)
			}
			if tt.binding != "" && !slices.ContainsFunc(out.Can.Reasons, func(r struct{ Binding struct{ Name string } }) bool { return r.Binding.Name == tt.binding }) {
				t.Errorf("reasons %+v lack binding %s", out.Can.Reasons, tt.binding)
			}
		})
	}
}

func TestBadInputIsAGraphQLError(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	tests := []struct{ name, query, want string }{
		{"service account without namespace", `{ can(subject: {kind: SERVICE_ACCOUNT, name: "x"}, action: {verb: "get", resource: "pods"}) { allowed } }`, "needs its namespace"},
		{"action without resource", `{ can(subject: {kind: USER, name: "x"}, action: {verb: "get"}) { allowed } }`, "resource or a nonResourceURL"},
		{"future revision", `{ can(subject: {kind: USER, name: "x"}, action: {verb: "get", resource: "pods"}, at: 999999) { allowed } }`, "after the head revision"},
		{"negative revision", `{ can(subject: {kind: USER, name: "x"}, action: {verb: "get", resource: "pods"}, at: -1) { allowed } }`, "revision"},
		{"foreign node ID", `{ node(id: "abc") { id } }`, "not a node ID"},
		{"bad cursor", `{ nodes(kind: ROLE, after: "nope") { totalCount } }`, "not a cursor"},
		{"page too large", `{ nodes(kind: ROLE, first: 5000) { totalCount } }`, "out of range"},
		{"syntax error", `{ can(`, "Expected"},
		{"unknown field", `{ nope }`, "Cannot query field"},
		{"lookup without namespace", `{ lookup(kind: ROLE, name: "x") { id } }`, "give namespace"},
		{"depth out of range", `{ neighbourhood(id: "` + nodeID(t, a, "SERVICE_ACCOUNT", "payments", "ci-deployer") + `", depth: 9) { truncated } }`, "depth 9 is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := a.do(viewerToken, tt.query, nil)
			if status >= 500 || len(resp.Errors) == 0 {
				t.Fatalf("status %d, errors %+v: want a GraphQL error", status, resp.Errors)
			}
			contains(t, "error", resp.Errors[0].Message, tt.want)
			if strings.Contains(resp.Errors[0].Message, "internal") {
				t.Errorf("a bad input reported as internal: %q", resp.Errors[0].Message)
			}
		})
	}
}

// nodeID looks a node up by kind and name and returns its ID.
func nodeID(t *testing.T, a *testAPI, kind, ns, name string) string {
	t.Helper()
	var out struct{ Lookup *struct{ ID string } }
	a.query(`query($k: Kind!, $ns: String, $n: String!) { lookup(kind: $k, namespace: $ns, name: $n) { id } }`,
		map[string]any{"k": kind, "ns": nilIfEmpty(ns), "n": name}, &out)
	if out.Lookup == nil {
		t.Fatalf("lookup %s %s/%s: not found", kind, ns, name)
	}
	return out.Lookup.ID
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestWhoCanPagesAndHistory(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	const q = `query($at: Revision, $first: Int, $after: String) {
	  whoCan(action: {verb: "get", resource: "secrets", namespace: "payments"}, at: $at, first: $first, after: $after) {
	    totalCount revision pageInfo { hasNextPage endCursor }
	    nodes { superuser subject { __typename name namespace } paths { binding { name } role { name } aggregatedFrom { name } since { revision time atHorizon } } }
	  }
	}`
	type entry struct {
		Superuser bool
		Subject   struct {
			Typename        string `json:"__typename"`
			Name, Namespace string
		}
		Paths []struct {
			Binding, Role  struct{ Name string }
			AggregatedFrom *struct{ Name string }
			Since          *struct {
				Revision  uint64
				Time      time.Time
				AtHorizon bool
			}
		}
	}
	type page struct {
		WhoCan struct {
			TotalCount int
			Revision   uint64
			PageInfo   struct {
				HasNextPage bool
				EndCursor   string
			}
			Nodes []entry
		}
	}
	var all page
	a.query(q, map[string]any{"first": 1000}, &all)
	w := all.WhoCan
	if len(w.Nodes) != w.TotalCount || w.TotalCount < 3 || w.PageInfo.HasNextPage {
		t.Fatalf("whoCan: %d of %d, hasNext=%v", len(w.Nodes), w.TotalCount, w.PageInfo.HasNextPage)
	}
	if first := w.Nodes[0]; !first.Superuser || first.Subject.Name != "system:masters" {
		t.Errorf("first entry = %+v, want system:masters as superuser", first)
	}
	// view reads secrets since the secret-peeker step: the auditors group, bound to view in payments, can.
	i := slices.IndexFunc(w.Nodes, func(e entry) bool { return e.Subject.Name == "oidc:auditors" })
	if i < 0 {
		t.Fatalf("oidc:auditors missing from who can get secrets in payments at the head")
	}
	if p := w.Nodes[i].Paths; len(p) == 0 || p[0].Role.Name != "view" || p[0].AggregatedFrom == nil || p[0].AggregatedFrom.Name != "secret-peeker" {
		t.Errorf("oidc:auditors paths = %+v, want view aggregated from secret-peeker", p)
	}
	// Since when: the auditors group was bound at the clean-up step (secret-peeker reached view before); every
	// other path holds since a revision of the timeline at or before the answer's.
	if p := w.Nodes[i].Paths; len(p) > 0 && (p[0].Since == nil || p[0].Since.Revision != uint64(a.revs[6]) || p[0].Since.AtHorizon) {
		t.Errorf("oidc:auditors path since %+v, want revision %d (the clean-up step)", p[0].Since, a.revs[6])
	}
	for _, e := range w.Nodes {
		for _, p := range e.Paths {
			if p.Since == nil || p.Since.Revision > w.Revision || !slices.Contains(a.revs, graph.Revision(p.Since.Revision)) || p.Since.Time.IsZero() {
				t.Errorf("%s via %s: since %+v", e.Subject.Name, p.Binding.Name, p.Since)
			}
			if p.Binding.Name == "cluster-admin" && p.Since.Revision != uint64(a.revs[0]) {
				t.Errorf("cluster-admin's binding holds since the install, got %+v", p.Since)
			}
		}
	}
	// Page by page, the same entries in the same order.
	var paged []entry
	var after any
	for pages := 0; ; pages++ {
		var p page
		a.query(q, map[string]any{"first": 2, "after": after, "at": w.Revision}, &p)
		paged = append(paged, p.WhoCan.Nodes...)
		if !p.WhoCan.PageInfo.HasNextPage {
			break
		}
		after = p.WhoCan.PageInfo.EndCursor
		if pages > w.TotalCount {
			t.Fatal("pagination does not end")
		}
	}
	if len(paged) != len(w.Nodes) {
		t.Fatalf("paged %d entries, all at once %d", len(paged), len(w.Nodes))
	}
	for i := range paged {
		if paged[i].Subject != w.Nodes[i].Subject {
			t.Errorf("entry %d: paged %v, all at once %v", i, paged[i].Subject, w.Nodes[i].Subject)
		}
	}
	// Before view read secrets, nobody bound to view in payments could.
	var past page
	a.query(q, map[string]any{"first": 1000, "at": a.revs[2]}, &past)
	for _, e := range past.WhoCan.Nodes {
		if e.Subject.Name == "auditor@example.com" || e.Subject.Name == "oidc:auditors" {
			t.Errorf("at revision %d %s can get secrets: %+v", a.revs[2], e.Subject.Name, e)
		}
	}
}

func TestEffectivePermissions(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	var out struct {
		EffectivePermissions struct {
			TotalCount int
			Nodes      []struct {
				Namespace *string
				Grant     struct {
					Binding struct{ Name string }
					Role    struct{ Name string }
					Rule    struct{ Resources []string }
				}
			}
		}
	}
	a.query(`{ effectivePermissions(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}, namespace: "payments", first: 1000) {
	  totalCount nodes { namespace grant { binding { name } role { name } rule { resources } } } } }`, nil, &out)
	ep := out.EffectivePermissions
	var viaDeployer, viaAdmin bool
	for _, p := range ep.Nodes {
		switch {
		case p.Grant.Binding.Name == "ci-deployer" && p.Namespace != nil && *p.Namespace == "payments":
			viaDeployer = viaDeployer || slices.Contains(p.Grant.Rule.Resources, "deployments")
		case p.Grant.Binding.Name == "payments-ci-admin" && p.Namespace == nil:
			viaAdmin = true
		case p.Namespace != nil && *p.Namespace != "payments":
			t.Errorf("permission in namespace %s, asked for payments", *p.Namespace)
		}
	}
	if !viaDeployer || !viaAdmin || ep.TotalCount != len(ep.Nodes) {
		t.Errorf("deployer grant %v, cluster-admin grant %v, %d of %d: %+v", viaDeployer, viaAdmin, len(ep.Nodes), ep.TotalCount, ep.Nodes)
	}
}

func TestAuthentication(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	tests := []struct {
		name, token, query string
		status             int
		errCode            string
	}{
		{"no token", "", `{ server { revision } }`, http.StatusUnauthorized, ""},
		{"bad token", "nope", `{ server { revision } }`, http.StatusUnauthorized, ""},
		{"viewer query", viewerToken, `{ server { revision viewer { user role } } }`, http.StatusOK, ""},
		{"viewer mutation", viewerToken, `mutation { reload { revision } }`, http.StatusOK, "FORBIDDEN"},
		{"admin mutation", adminToken, `mutation { reload { revision changes } }`, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := a.do(tt.token, tt.query, nil)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%+v)", status, tt.status, resp.Errors)
			}
			switch {
			case status != http.StatusOK:
				if len(resp.Errors) == 0 || resp.Data != nil && string(resp.Data) != "null" {
					t.Errorf("refusal body: data %s, errors %+v; want errors only", resp.Data, resp.Errors)
				}
			case tt.errCode != "":
				if len(resp.Errors) == 0 || resp.Errors[0].Extensions["code"] != tt.errCode {
					t.Errorf("errors %+v, want code %s", resp.Errors, tt.errCode)
				}
			case len(resp.Errors) > 0:
				t.Errorf("errors %+v", resp.Errors)
			}
		})
	}
	var who struct {
		Server struct{ Viewer struct{ User, Role string } }
	}
	a.query(`{ server { viewer { user role } } }`, nil, &who)
	if who.Server.Viewer.User != "vera" || who.Server.Viewer.Role != "VIEWER" {
		t.Errorf("viewer = %+v", who.Server.Viewer)
	}
	logs := a.logs.String()
	for _, want := range []string{"user=vera", "user=ada", "outcome=refused", "op=mutation"} {
		contains(t, "audit log", logs, want)
	}
	if strings.Contains(logs, viewerToken) || strings.Contains(logs, adminToken) {
		t.Error("a token reached the log")
	}
}

func TestLimits(t *testing.T) {
	a := newTestAPI(t, ServeOptions{MaxDepth: 8, MaxCost: 20_000, MaxBodyBytes: 4096})
	deep := `{ lookup(kind: ROLE_BINDING, namespace: "payments", name: "ci-deployer") { ... on RoleBinding { role { bindings { nodes { role { bindings { nodes { role { name } } } } } } } } } }`
	costly := `{ nodes(kind: ROLE, first: 1000) { nodes { ... on Role { bindings(first: 1000) { totalCount } } } } }`
	tests := []struct{ name, query, want string }{
		{"too deep", deep, "query depth"},
		{"too costly", costly, "query cost"},
		{"introspection off", `{ __schema { types { name } } }`, "introspection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp := a.do(viewerToken, tt.query, nil)
			if status >= 500 || len(resp.Errors) == 0 {
				t.Fatalf("status %d errors %+v: want a refusal", status, resp.Errors)
			}
			contains(t, "error", resp.Errors[0].Message, tt.want)
		})
	}
	status, resp := a.do(viewerToken, `{ server { revision } }`+strings.Repeat(" ", 5000), nil)
	if status != http.StatusRequestEntityTooLarge || len(resp.Errors) == 0 {
		t.Errorf("a 5 KB body with a 4 KB limit: status %d, errors %+v", status, resp.Errors)
	}
}

// TestPlainHTTPRefusals: what no transport serves is refused at once, in JSON (both found by FuzzGraphQL).
func TestPlainHTTPRefusals(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	// A subscription over POST is not run: gqlgen's POST transport would wait for its first event until the
	// request timeout, then answer null.
	status, resp := a.do(viewerToken, `subscription { changes { revision } }`, nil)
	if status >= 500 || len(resp.Errors) == 0 || resp.Errors[0].Extensions["code"] != "BAD_REQUEST" {
		t.Fatalf("subscription over POST: status %d, data %s, errors %+v; want BAD_REQUEST", status, resp.Data, resp.Errors)
	}
	contains(t, "error", resp.Errors[0].Message, "websocket")
	// A POST that is not JSON (a cross-site form's text/plain) gets gqlgen's refusal, labelled JSON.
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/graphql", strings.NewReader(`{"query": "{ server { revision } }"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"errors"`) {
		t.Fatalf("text/plain POST: %d %q %s; want 400, application/json and errors", r.StatusCode, r.Header.Get("Content-Type"), body)
	}
}
