package indexer

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

type auditRig struct {
	t     *testing.T
	g     *graph.Live
	store *graph.Store
	audit *graph.AuditStore
	dir   string
	in    *AuditIngester
}

func newAuditRig(t *testing.T) *auditRig {
	t.Helper()
	ctx := t.Context()
	r := &auditRig{t: t, dir: t.TempDir()}
	var err error
	if r.store, err = graph.OpenStore(ctx, graph.StoreOptions{Dir: filepath.Join(r.dir, "store")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	if r.g, err = graph.OpenLive(ctx, r.store, graph.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	r.reopen()
	return r
}

// reopen opens the audit store and a new ingester over it, as a restarted server would.
func (r *auditRig) reopen() {
	r.t.Helper()
	if r.audit != nil {
		if err := r.audit.Close(); err != nil {
			r.t.Fatal(err)
		}
	}
	var err error
	if r.audit, err = graph.OpenAuditStore(r.t.Context(), graph.AuditStoreOptions{Dir: filepath.Join(r.dir, "audit")}); err != nil {
		r.t.Fatal(err)
	}
	a := r.audit
	r.t.Cleanup(func() { a.Close() })
	if r.in, err = NewAuditIngester(r.t.Context(), AuditIngesterOptions{Graph: r.g, Store: r.audit}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *auditRig) commit(changes ...graph.Change) graph.Revision {
	r.t.Helper()
	rev, err := r.g.Commit(r.t.Context(), "cluster:test", changes)
	if err != nil {
		r.t.Fatal(err)
	}
	return rev
}

func (r *auditRig) ingest(events ...AuditEvent) {
	r.t.Helper()
	if err := r.in.Ingest(r.t.Context(), events, nil, nil); err != nil {
		r.t.Fatal(err)
	}
}

// actors returns the actor user of every change of rev, in order ("" when none).
func (r *auditRig) actors(rev graph.Revision) []string {
	r.t.Helper()
	var out []string
	err := r.store.Changes(r.t.Context(), rev-1, rev, func(rec graph.ChangeRecord) bool {
		a := ""
		if rec.Actor != nil {
			a = rec.Actor.User
			if rec.Actor.ImpersonatedBy != "" {
				a += " by " + rec.Actor.ImpersonatedBy
			}
		}
		out = append(out, a)
		return true
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func webRole(name, uid, rv string) *graph.Role {
	return &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: "web", Name: name, UID: uid, ResourceVersion: rv},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
}

// writeEvent is the ResponseComplete event of an RBAC write at level RequestResponse.
func writeEvent(id, user, verb string, resp any) AuditEvent {
	raw, _ := json.Marshal(resp)
	return AuditEvent{AuditID: id, Stage: "ResponseComplete", Level: "RequestResponse", Verb: verb,
		User: AuditUser{Username: user, Groups: []string{"ops", graph.GroupAuthenticated}}, UserAgent: "kubectl/v1.33",
		SourceIPs:      []string{"10.0.0.7"},
		ObjectRef:      &AuditObjectRef{APIGroup: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "web", Name: "r"},
		ResponseStatus: &AuditStatus{Code: 200}, ResponseObject: raw,
		Annotations:              map[string]string{"authorization.k8s.io/decision": "allow"},
		RequestReceivedTimestamp: t0, StageTimestamp: t0.Add(time.Millisecond)}
}

func objResp(uid, rv string) map[string]any {
	return map[string]any{"kind": "Role", "metadata": map[string]any{"name": "r", "namespace": "web", "uid": uid, "resourceVersion": rv}}
}

func TestAuditAttribution(t *testing.T) {
	r := newAuditRig(t)
	ctx := t.Context()
	// The watch saw the create first (the usual order): the actor is attached at once.
	rev1 := r.commit(graph.NewChange(nil, webRole("r", "u1", "10")))
	r.ingest(writeEvent("a1", "alice", "create", objResp("u1", "10")))
	if got := r.actors(rev1); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("actors of the create = %v, want alice", got)
	}
	// The audit batch comes first: the actor waits, durably, for the revision, across a restart.
	bobUpdate := writeEvent("a2", "bob", "update", objResp("u1", "11"))
	r.ingest(bobUpdate)
	if st := r.in.Stats(); st.Pending != 1 {
		t.Fatalf("pending = %d, want 1", st.Pending)
	}
	r.reopen()
	rev2 := r.commit(graph.NewChange(webRole("r", "u1", "10"), webRole("r", "u1", "11")))
	if err := r.in.step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.actors(rev2); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("actors of the update = %v, want bob", got)
	}
	if st := r.in.Stats(); st.Pending != 0 || st.Attributed != 1 {
		t.Fatalf("stats %+v, want nothing pending and one attributed", st)
	}
	// An impersonated deletion: answered with a Status naming the UID; the actor is the impersonated user, by
	// the real one.
	rev3 := r.commit(graph.NewChange(webRole("r", "u1", "11"), nil))
	del := writeEvent("a3", "carol", "delete", map[string]any{"kind": "Status", "status": "Success",
		"details": map[string]any{"name": "r", "kind": "roles", "uid": "u1"}})
	del.ImpersonatedUser = &AuditUser{Username: "dave", Groups: []string{"devs"}}
	r.ingest(del)
	if got := r.actors(rev3); !slices.Equal(got, []string{"dave by carol"}) {
		t.Fatalf("actors of the delete = %v, want dave by carol", got)
	}
	// A replay of every event changes no actor.
	r.ingest(writeEvent("a1", "alice", "create", objResp("u1", "10")), bobUpdate, del)
	for rev, want := range map[graph.Revision]string{rev1: "alice", rev2: "bob", rev3: "dave by carol"} {
		if got := r.actors(rev); !slices.Equal(got, []string{want}) {
			t.Fatalf("after replay actors of %d = %v, want %s", rev, got, want)
		}
	}
	// Only the deletion was seen by this ingester before (the others before the restart, and the count is
	// informative, in memory).
	if st := r.in.Stats(); st.Duplicates != 1 {
		t.Fatalf("duplicates = %d, want 1", st.Duplicates)
	}
	// A write logged at Metadata level cannot be matched: counted, not guessed.
	meta := writeEvent("a4", "eve", "update", nil)
	meta.ResponseObject = nil
	r.ingest(meta)
	if st := r.in.Stats(); st.Unattributable != 1 || st.Pending != 0 {
		t.Fatalf("stats %+v, want one unattributable", st)
	}
}

func TestAuditPendingExpires(t *testing.T) {
	r := newAuditRig(t)
	now := t0.Add(time.Hour)
	r.in.now = func() time.Time { return now }
	r.ingest(writeEvent("a1", "alice", "update", objResp("u9", "99")))
	if err := r.in.expire(t.Context()); err != nil {
		t.Fatal(err)
	}
	p, err := r.audit.Pending(t.Context())
	if err != nil || len(p) != 0 || r.in.Stats().Expired != 1 {
		t.Fatalf("pending after expiry = %v %v, stats %+v", p, err, r.in.Stats())
	}
}

func TestAuditUsageAndIdentities(t *testing.T) {
	r := newAuditRig(t)
	ctx := t.Context()
	named := &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: "web", Name: "cm"}, Rules: []rbacv1.PolicyRule{
		{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"app-config"}},
		{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}},
	}}
	rb := &graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: "web", Name: "cm"},
		RoleRef:  rbacv1.RoleRef{Kind: "Role", Name: "cm"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "web", Name: "api"}}}
	r.commit(graph.NewChange(nil, named), graph.NewChange(nil, rb))
	sa := AuditUser{Username: "system:serviceaccount:web:api", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:web", graph.GroupAuthenticated}}
	ev := func(id, verb, resource, name string, at time.Time, decision string) AuditEvent {
		return AuditEvent{AuditID: id, Stage: "ResponseComplete", Verb: verb, User: sa,
			ObjectRef:   &AuditObjectRef{Resource: resource, Namespace: "web", Name: name, APIVersion: "v1"},
			Annotations: map[string]string{"authorization.k8s.io/decision": decision}, RequestReceivedTimestamp: at, StageTimestamp: at}
	}
	human := AuditEvent{AuditID: "h1", Stage: "ResponseStarted", Verb: "get", RequestURI: "/metrics?x=1",
		User:                     AuditUser{Username: "alice@example.com", Groups: []string{"oidc:sre", graph.GroupAuthenticated}},
		Annotations:              map[string]string{"authorization.k8s.io/decision": "allow"},
		RequestReceivedTimestamp: t0, StageTimestamp: t0}
	r.ingest(
		ev("e1", "get", "configmaps", "app-config", t0, "allow"),
		ev("e2", "get", "pods", "api-7d9f", t0, "allow"),
		ev("e3", "get", "pods", "api-8x2k", t0.Add(time.Minute), "allow"),
		ev("e4", "delete", "pods", "api-8x2k", t0, "forbid"),
		human,
	)
	us, err := r.audit.Usage(ctx, sa.Username)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range us {
		got = append(got, fmt.Sprintf("%s %s/%s %s", u.Verb, u.Resource, u.Name, u.Last.Sub(t0)))
	}
	slices.Sort(got)
	// The configmap name is kept (only a name-scoped rule grants it); pod names are not (any name is granted);
	// the forbidden delete is no usage.
	want := []string{"get configmaps/app-config 0s", "get pods/ 1m0s"}
	if !slices.Equal(got, want) {
		t.Fatalf("usage = %q, want %q", got, want)
	}
	hu, _ := r.audit.Usage(ctx, "alice@example.com")
	if len(hu) != 1 || hu[0].NonResourceURL != "/metrics" {
		t.Fatalf("usage of alice = %+v, want get /metrics", hu)
	}
	snap := r.g.Current()
	if gs := snap.GroupsOf("alice@example.com"); !slices.Equal(gs, []string{"oidc:sre"}) {
		t.Fatalf("observed groups of alice = %v", gs)
	}
	if snap.HasSubject(graph.KindUser, sa.Username) {
		t.Fatal("a ServiceAccount user name became a User")
	}
	if s, ok, err := r.audit.UserSeen(ctx, sa.Username); err != nil || !ok || !s.Last.Equal(t0.Add(time.Minute)) {
		t.Fatalf("ServiceAccount last seen = %+v %v %v", s, ok, err)
	}
	// A restart with memberships stored but not committed (an interrupted Ingest) commits them.
	before := r.g.Head()
	var b graph.AuditBatch
	b.SeeMembership("bob@example.com", "oidc:dba", t0)
	if err := r.audit.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	r.reopen()
	if r.g.Head() == before || !slices.Equal(r.g.Current().GroupsOf("bob@example.com"), []string{"oidc:dba"}) {
		t.Fatal("stored membership not committed at start")
	}
}
