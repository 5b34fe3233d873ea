package graph

import (
	"context"
	"errors"
	"testing"
)

func TestLiveCommitAtDiffAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStoreAt(t, StoreOptions{Dir: dir})
	l, err := OpenLive(ctx, st, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reader := role("", "reader", rule("get", "", "pods"))
	rb := binding("ns1", "rb", "ClusterRole/reader", "User:alice")
	rb2 := binding("ns1", "rb", "ClusterRole/reader", "User:bob")
	get := Action{Verb: "get", Resource: "pods", Namespace: "ns1"}

	r1, err := l.Commit(ctx, "test", []Change{NewChange(nil, &reader), NewChange(nil, &rb)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Commit(ctx, "test", []Change{NewChange(&rb, &rb2)})
	if err != nil {
		t.Fatal(err)
	}
	if r2 <= r1 || l.Head() != r2 {
		t.Fatalf("revisions %d, %d, head %d: want growing, head = last", r1, r2, l.Head())
	}
	if l.Current().Can(Identity{User: "alice"}, get).Allowed || !l.Current().Can(Identity{User: "bob"}, get).Allowed {
		t.Fatal("head snapshot does not reflect the rebinding")
	}
	past, err := l.At(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if !past.Can(Identity{User: "alice"}, get).Allowed || past.Can(Identity{User: "bob"}, get).Allowed {
		t.Fatal("revision 1 does not answer as it was")
	}
	d, err := l.Diff(ctx, r1, r2)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Objects) != 1 || len(d.Subjects) != 2 || d.Subjects[0].Subject.Name != "alice" || len(d.Subjects[0].Lost) != 1 ||
		d.Subjects[1].Subject.Name != "bob" || len(d.Subjects[1].Gained) != 1 {
		t.Fatalf("Diff(%d, %d) = %+v, want alice losing and bob gaining get pods", r1, r2, d)
	}
	if _, err := l.At(ctx, r2+10); !errors.Is(err, ErrFutureRevision) {
		t.Fatalf("At(future) error = %v, want ErrFutureRevision", err)
	}

	// Restart: the store reopens with its head; a reload that lost the binding records a deletion.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStoreAt(t, StoreOptions{Dir: dir})
	l2, err := OpenLive(ctx, st2, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l2.Head() != r2 || !l2.Current().Can(Identity{User: "bob"}, get).Allowed {
		t.Fatalf("after restart head %d (want %d) or state lost", l2.Head(), r2)
	}
	changes := l2.Reconcile(&Objects{ClusterRoles: []Role{reader}})
	if len(changes) != 1 || changes[0].Op != OpDelete || changes[0].Ref != rb2.Ref() {
		t.Fatalf("Reconcile = %+v, want the deletion of %s", changes, rb2.Ref())
	}
	if again := l2.Reconcile(l2.Current().Objects()); len(again) != 0 {
		t.Fatalf("Reconcile of the head's own objects = %+v, want nothing", again)
	}
}

func TestDeclaredUsers(t *testing.T) {
	ctx := context.Background()
	st := mustOpenStore(t, StoreOptions{})
	l, err := OpenLive(ctx, st, SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice := User{Meta: Meta{Name: "alice"}, Groups: []string{"devs"}}
	bob := User{Meta: Meta{Name: "bob"}, Groups: []string{"ops"}}
	r1, err := l.Commit(ctx, "groups", ReconcileUsers(l.Current(), []User{alice, bob}))
	if err != nil {
		t.Fatal(err)
	}
	alice2 := User{Meta: Meta{Name: "alice"}, Groups: []string{"devs", "admins"}}
	changes := ReconcileUsers(l.Current(), []User{alice2})
	if len(changes) != 2 || changes[0].Op != OpUpdate || changes[1].Op != OpDelete || changes[1].Ref.Name != "bob" {
		t.Fatalf("ReconcileUsers = %+v, want alice updated and bob deleted", changes)
	}
	if _, err := l.Commit(ctx, "groups", changes); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().GroupsOf("alice"); len(got) != 2 || got[1] != "admins" {
		t.Fatalf("GroupsOf(alice) = %v at the head", got)
	}
	if l.Current().GroupsOf("bob") != nil {
		t.Fatal("bob is still declared after the file dropped him")
	}
	past, err := l.At(ctx, r1)
	if err != nil {
		t.Fatal(err)
	}
	if got := past.GroupsOf("bob"); len(got) != 1 || got[0] != "ops" {
		t.Fatalf("GroupsOf(bob) at revision %d = %v, want [ops]", r1, got)
	}
	if again := ReconcileUsers(l.Current(), []User{alice2}); len(again) != 0 {
		t.Fatalf("ReconcileUsers of the same file = %+v, want nothing", again)
	}
}

func TestLiveUpdatedWakesWaitersOnCommit(t *testing.T) {
	ctx := context.Background()
	l, err := OpenLive(ctx, openStoreAt(t, StoreOptions{Dir: t.TempDir()}), SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := l.Updated()
	select {
	case <-before:
		t.Fatal("Updated is closed before any commit")
	default:
	}
	reader := role("", "reader", rule("get", "", "pods"))
	if _, err := l.Commit(ctx, "test", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-before:
		t.Fatal("an empty commit moved nothing but closed Updated")
	default:
	}
	rev, err := l.Commit(ctx, "test", []Change{NewChange(nil, &reader)})
	if err != nil {
		t.Fatal(err)
	}
	<-before // closed by the commit; a missed wake-up would hang the test
	if l.Head() != rev {
		t.Fatalf("head %d after wake-up, want %d", l.Head(), rev)
	}
	select {
	case <-l.Updated():
		t.Fatal("the new Updated channel is already closed")
	default:
	}
}
