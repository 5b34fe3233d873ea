package graph

import (
	"context"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestAuditStoreMergesIdempotently(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := OpenAuditStore(ctx, AuditStoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	get := UsageKey{Verb: "get", Resource: "pods", Namespace: "web", Name: "p\x00odd"}
	list := UsageKey{Verb: "list", Resource: "pods"}
	batch := func(offsets ...int) *AuditBatch {
		var b AuditBatch
		for _, o := range offsets {
			at := t0.Add(time.Duration(o) * time.Minute)
			b.Use("system:serviceaccount:web:api", get, at)
			b.Use("alice", list, at)
			b.SeeUser("alice", at)
			b.SeeGroup("devs", at)
			b.SeeMembership("alice", "devs", at)
			b.Event(at)
		}
		return &b
	}
	// Out of order, and the second batch repeats the first: the records are the span 0..10 minutes either way.
	for _, b := range []*AuditBatch{batch(5, 10), batch(5, 10, 0)} {
		if err := a.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var pb AuditBatch
	pb.SetCursor("log", []byte("cursor-1"))
	pb.AddPending("id-1", PendingActor{Actor: Actor{User: "alice"}, Object: ObjectRef{Kind: KindRole, Namespace: "web", Name: "r"}, UID: "u1", ResourceVersion: "7", Time: t0})
	pb.AddPending("id-2", PendingActor{Actor: Actor{User: "bob"}, UID: "u2", Delete: true, Time: t0})
	if err := a.Apply(ctx, &pb); err != nil {
		t.Fatal(err)
	}
	var rb AuditBatch
	rb.ResolvePending("id-2")
	if err := a.Apply(ctx, &rb); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened from disk: everything durable.
	a, err = OpenAuditStore(ctx, AuditStoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := Seen{First: t0, Last: t0.Add(10 * time.Minute)}
	us, err := a.Usage(ctx, "system:serviceaccount:web:api")
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || us[0].UsageKey != get || !us[0].First.Equal(want.First) || !us[0].Last.Equal(want.Last) {
		t.Fatalf("Usage = %+v, want one %+v over %v", us, get, want)
	}
	var all []string
	if err := a.EachUsage(ctx, func(u Usage) bool { all = append(all, u.Principal+" "+u.Verb); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, []string{"alice list", "system:serviceaccount:web:api get"}) {
		t.Fatalf("EachUsage = %v", all)
	}
	for name, f := range map[string]func(context.Context, string) (Seen, bool, error){"UserSeen": a.UserSeen, "GroupSeen": a.GroupSeen} {
		arg := map[string]string{"UserSeen": "alice", "GroupSeen": "devs"}[name]
		s, ok, err := f(ctx, arg)
		if err != nil || !ok || !s.First.Equal(want.First) || !s.Last.Equal(want.Last) {
			t.Fatalf("%s(%s) = %+v %v %v, want %+v", name, arg, s, ok, err, want)
		}
		if _, ok, _ := f(ctx, "nobody"); ok {
			t.Fatalf("%s(nobody) found", name)
		}
	}
	var ms []Membership
	err = a.EachMembership(ctx, func(m Membership) bool { ms = append(ms, m); return true })
	if err != nil || len(ms) != 1 || ms[0].User != "alice" || ms[0].Group != "devs" || !ms[0].Last.Equal(want.Last) {
		t.Fatalf("memberships = %+v %v", ms, err)
	}
	if s, ok, err := a.MembershipSeen(ctx, "alice", "devs"); err != nil || !ok || !s.Last.Equal(want.Last) {
		t.Fatalf("MembershipSeen(alice, devs) = %+v %v %v", s, ok, err)
	}
	cov, err := a.Coverage(ctx)
	if err != nil || cov.Events != 5 || !cov.First.Equal(want.First) || !cov.Last.Equal(want.Last) {
		t.Fatalf("Coverage = %+v %v, want 5 events over %v", cov, err, want)
	}
	if c, ok, err := a.Cursor(ctx, "log"); err != nil || !ok || string(c) != "cursor-1" {
		t.Fatalf("Cursor = %q %v %v", c, ok, err)
	}
	p, err := a.Pending(ctx)
	if err != nil || len(p) != 1 || p["id-1"].UID != "u1" || p["id-1"].Actor.User != "alice" {
		t.Fatalf("Pending = %+v %v, want only id-1", p, err)
	}
}

func TestAuditKeysKeepPrincipalsApart(t *testing.T) {
	// A principal that is a prefix of another must not see the other's records.
	ctx := context.Background()
	a, err := OpenAuditStore(ctx, AuditStoreOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var b AuditBatch
	at := time.Unix(100, 0)
	b.Use("al", UsageKey{Verb: "get"}, at)
	b.Use("alice", UsageKey{Verb: "list"}, at)
	b.SeeMembership("al", "x", at)
	b.SeeMembership("alice", "y", at)
	if err := a.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	us, _ := a.Usage(ctx, "al")
	_, inX, _ := a.MembershipSeen(ctx, "al", "x")
	_, inY, _ := a.MembershipSeen(ctx, "al", "y")
	if len(us) != 1 || us[0].Verb != "get" || !inX || inY {
		t.Fatalf("records of al = %+v, in x %v, in y %v", us, inX, inY)
	}
}

func TestObserveUsers(t *testing.T) {
	ctx := context.Background()
	l, err := OpenLive(ctx, mustOpenStore(t, StoreOptions{}), SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	devs := Binding{Kind: KindClusterRoleBinding, Meta: Meta{Name: "devs"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: "Group", Name: "devs"}}}
	reader := Role{Kind: KindClusterRole, Meta: Meta{Name: "reader"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	carol := User{Meta: Meta{Name: "carol", Origin: "groups.yaml"}, Groups: []string{"ops"}}
	if _, err := l.Commit(ctx, "setup", []Change{NewChange(nil, &devs), NewChange(nil, &reader), NewChange(nil, &carol)}); err != nil {
		t.Fatal(err)
	}
	get := Action{Verb: "get", Resource: "pods", Namespace: "x"}
	if l.Current().Can(ImpersonatedIdentity("alice", l.Current().GroupsOf("alice")), get).Allowed {
		t.Fatal("alice allowed before any audit event showed her in devs")
	}
	seen := map[string][]string{
		"alice":                         {"devs", GroupAuthenticated},
		"carol":                         {"ops", "devs"},
		"system:serviceaccount:web:api": {"system:serviceaccounts"},
		"anon-no-groups":                {GroupAuthenticated},
	}
	changes := ObserveUsers(l.Current(), seen)
	if len(changes) != 3 {
		t.Fatalf("ObserveUsers = %+v, want alice and anon-no-groups added and carol updated", changes)
	}
	if _, err := l.Commit(ctx, "audit", changes); err != nil {
		t.Fatal(err)
	}
	snap := l.Current()
	if !snap.Can(ImpersonatedIdentity("alice", snap.GroupsOf("alice")), get).Allowed {
		t.Fatal("alice's observed membership of devs does not grant her devs' permissions")
	}
	if got := snap.GroupsOf("carol"); !slices.Equal(got, []string{"ops", "devs"}) {
		t.Fatalf("GroupsOf(carol) = %v, want declared then observed", got)
	}
	if o, _ := snap.Object(ObjectRef{Kind: KindUser, Name: "alice"}); o.(*User).Declared() {
		t.Fatal("audit-only alice reported as declared")
	}
	if again := ObserveUsers(snap, seen); len(again) != 0 {
		t.Fatalf("ObserveUsers of the same events = %+v, want nothing", again)
	}
	// A groups-file reload that drops carol keeps what audit events showed of every user.
	changes = ReconcileUsers(snap, nil)
	if _, err := l.Commit(ctx, "groups", changes); err != nil {
		t.Fatal(err)
	}
	snap = l.Current()
	if got := snap.GroupsOf("carol"); !slices.Equal(got, []string{"devs", "ops"}) {
		t.Fatalf("after the file dropped carol GroupsOf(carol) = %v, want her observed groups", got)
	}
	if _, ok := snap.Object(ObjectRef{Kind: KindUser, Name: "anon-no-groups"}); !ok {
		t.Fatal("a groups-file reload deleted a user audit events showed")
	}
}
