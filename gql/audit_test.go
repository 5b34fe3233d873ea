package gql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// TestAuditFields asks every audit field, all sub-fields included (a null in a non-null field fails the whole
// query), over the demo with usage recorded for payments/ci-deployer and a user seen in a group.
func TestAuditFields(t *testing.T) {
	ctx := context.Background()
	store, err := graph.OpenAuditStore(ctx, graph.AuditStoreOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	sa := graph.ServiceAccountUsername("payments", "ci-deployer")
	var b graph.AuditBatch
	for _, k := range []graph.UsageKey{
		{Verb: "get", APIGroup: "apps", Resource: "deployments", Namespace: "payments"},
		{Verb: "list", Resource: "pods", Namespace: "payments"},
		{Verb: "get", NonResourceURL: "/version"},
		{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: "n1"}, // granted by cluster-admin only at some revisions
	} {
		b.Use(sa, k, now.Add(-time.Hour))
	}
	b.SeeUser(sa, now.Add(-time.Hour))
	b.SeeUser("dana@example.com", now.Add(-2*time.Hour))
	b.SeeGroup("oidc:payments-developers", now.Add(-2*time.Hour))
	b.Event(now.Add(-48 * time.Hour))
	b.Event(now.Add(-time.Hour))
	if err := store.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, ServeOptions{}, func(o *Options) { o.Audit = store })
	subject := `{kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}`
	var out struct {
		AuditCoverage struct{ Events int }
		Usage         struct {
			TotalCount int
			Nodes      []struct{ Verb, Resource, NonResourceURL string }
		}
		LeastPrivilege struct {
			User    string
			Summary struct{ Held, Used, Unused int }
			Window  struct{ Complete bool }
			Unused  []struct{ Verb string }
			Yaml    string
		}
		UnusedPermissions struct {
			Nodes []struct {
				Rule     struct{ ID string }
				Evidence []struct{ Text string }
			}
		}
		Group *struct{ Seen *struct{ Last time.Time } }
	}
	a.query(`{
  auditCoverage { first last events }
  usage(subject: `+subject+`) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { verb } }
    nodes { verb apiGroup resource subresource namespace name nonResourceURL first last } }
  leastPrivilege(subject: `+subject+`, unusedFor: "1d") {
    user groups superuser
    window { from to observedSince complete evidence }
    summary { held used unused usageKeys staleKeys notGrantedByRBAC suggestedRules }
    held { namespace binding { kind namespace name } role { kind namespace name } ruleIndex shared verb apiGroup resource resourceNames nonResourceURL used lastUsed uses }
    unused { verb resource }
    yaml
    suggested { kind namespace name bindingName rules { index verbs apiGroups resources resourceNames nonResourceURLs text }
      covers { verb apiGroup resource subresource namespace name nonResourceURL } }
    notGrantedByRBAC { verb apiGroup resource subresource namespace name nonResourceURL }
    kept { permission { verb resource } narrowed narrowedBy }
  }
  unusedPermissions(unusedFor: "1d", subject: `+subject+`) { totalCount nodes { rule { id } severity message evidence { text } } }
  group: lookup(kind: GROUP, name: "oidc:payments-developers") { ... on Group { seen { first last } } }
}`, nil, &out)
	if out.AuditCoverage.Events != 2 || out.Usage.TotalCount != 4 {
		t.Fatalf("coverage %+v, usage %+v", out.AuditCoverage, out.Usage)
	}
	lp := out.LeastPrivilege
	if lp.User != sa || !lp.Window.Complete || lp.Summary.Used == 0 || lp.Summary.Unused == 0 || !strings.Contains(lp.Yaml, "kind: ClusterRole") {
		t.Fatalf("leastPrivilege = %+v", lp)
	}
	if n := out.UnusedPermissions.Nodes; len(n) != 1 || n[0].Rule.ID != "KIEM-HYG-009" || len(n[0].Evidence) < 2 {
		t.Fatalf("unusedPermissions = %+v", n)
	}
	if out.Group == nil || out.Group.Seen == nil {
		t.Fatalf("the group seen in audit events has no seen time: %+v", out.Group)
	}
	// A group has no usage of its own; a malformed window is a GraphQL error, never a crash.
	contains(t, "usage of a group", a.queryError(`{usage(subject: {kind: GROUP, name: "x"}) {totalCount}}`, nil), "per user or ServiceAccount")
	contains(t, "bad window", a.queryError(`{leastPrivilege(subject: `+subject+`, unusedFor: "soon") {yaml}}`, nil), "is not a duration")

	// Without an audit store the fields say so, and the seen times are null.
	off := newTestAPI(t, ServeOptions{})
	contains(t, "audit off", off.queryError(`{auditCoverage {events}}`, nil), "audit events are not enabled")
	var u struct {
		Node *struct{ Seen *struct{ Last time.Time } }
	}
	off.query(`{node: lookup(kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer") { ... on ServiceAccount { seen { last } } }}`, nil, &u)
	if u.Node == nil || u.Node.Seen != nil {
		t.Fatalf("seen without audit events = %+v", u.Node)
	}
}
