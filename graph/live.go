package graph

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Live is the versioned graph: the Store's history plus the head revision held in memory as an immutable,
// indexed Snapshot that every commit updates incrementally (Snapshot.Apply). Readers take Current() without
// locks; a single writer commits. Past revisions are materialised from the Store on demand and cached.
type Live struct {
	store *Store
	opts  SnapshotOptions
	now   func() time.Time

	mu  sync.Mutex // serialises Commit
	cur atomic.Pointer[liveHead]
	// updated is closed and replaced by every commit that moves the head, waking every waiter at once without
	// a queue per subscriber that a slow one could fill.
	updated atomic.Pointer[chan struct{}]

	cacheMu  sync.Mutex
	cache    []cachedSnapshot        // most recently used last
	building map[Revision]*pastBuild // past snapshots being made, so that concurrent requests make each once
}

// pastBuild is a past snapshot being made; done closes when snap or err is set.
type pastBuild struct {
	done chan struct{}
	snap *Snapshot
	err  error
}

type liveHead struct {
	rev  Revision
	snap *Snapshot
}

type cachedSnapshot struct {
	rev  Revision
	snap *Snapshot
}

// pastSnapshots is how many past revisions Live keeps materialised.
const pastSnapshots = 4

// deriveLimit is the number of objects changed since a past revision up to which At makes its snapshot by undoing
// those changes on the head's, rather than reading the whole state from the store: undoing costs what the
// changes cost, reading what the cluster costs (about 1 s on workload L).
const deriveLimit = 20_000

// OpenLive loads the store's head revision into memory. opts says how snapshots read aggregated ClusterRoles (a
// live cluster's are taken as the API holds them; files are recomputed); it must be the same for the life of a
// store.
func OpenLive(ctx context.Context, store *Store, opts SnapshotOptions) (*Live, error) {
	l := &Live{store: store, opts: opts, now: time.Now}
	head := store.Head()
	objs := &Objects{}
	if head > 0 {
		var err error
		if objs, err = store.Objects(ctx, head); err != nil {
			return nil, fmt.Errorf("open live graph at revision %d: %w", head, err)
		}
	}
	l.cur.Store(&liveHead{rev: head, snap: NewSnapshotWith(objs, opts)})
	ch := make(chan struct{})
	l.updated.Store(&ch)
	return l, nil
}

// Updated returns a channel that is closed when the head moves past what it is now. Take the channel before
// reading Head, so that a commit in between is not missed.
func (l *Live) Updated() <-chan struct{} { return *l.updated.Load() }

// Current returns the head snapshot. It never changes; a later commit publishes a new one.
func (l *Live) Current() *Snapshot { return l.cur.Load().snap }

// HeadSnapshot returns the head revision and its snapshot, read together.
func (l *Live) HeadSnapshot() (Revision, *Snapshot) {
	h := l.cur.Load()
	return h.rev, h.snap
}

// Head returns the head revision (0 before the first commit).
func (l *Live) Head() Revision { return l.cur.Load().rev }

// Store returns the history behind the graph.
func (l *Live) Store() *Store { return l.store }

// Commit records changes as one revision and publishes the updated snapshot once the revision is durable. An
// empty change set commits nothing and returns the head.
func (l *Live) Commit(ctx context.Context, source string, changes []Change) (Revision, error) {
	return l.CommitAt(ctx, source, l.now(), changes)
}

// CommitAt is Commit with the wall time the revision records, for replaying a history (the demo's timeline).
func (l *Live) CommitAt(ctx context.Context, source string, wall time.Time, changes []Change) (Revision, error) {
	if len(changes) == 0 {
		return l.Head(), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	info, err := l.store.Commit(ctx, source, wall, changes)
	if err != nil {
		return 0, err
	}
	next := l.Current().Apply(changes)
	l.cur.Store(&liveHead{rev: info.Revision, snap: next})
	ch := make(chan struct{})
	close(*l.updated.Swap(&ch))
	return info.Revision, nil
}

// At returns the snapshot of revision rev: the head's without I/O, a past one from the store (cached).
// Returns ErrRevisionGone below the retention horizon and ErrFutureRevision above the head.
//
// A past revision is made once however many requests ask for it at a time (the others wait for it), and a
// recent one is made from the head by undoing what changed since, so that time travel and diffs near the head
// stay cheap under load, where each would otherwise read and index the whole state.
func (l *Live) At(ctx context.Context, rev Revision) (*Snapshot, error) {
	head := l.cur.Load()
	if rev == head.rev {
		return head.snap, nil
	}
	l.cacheMu.Lock()
	for i, c := range l.cache {
		if c.rev == rev {
			l.cache = append(append(l.cache[:i:i], l.cache[i+1:]...), c)
			l.cacheMu.Unlock()
			return c.snap, nil
		}
	}
	b, making := l.building[rev]
	if !making {
		b = &pastBuild{done: make(chan struct{})}
		if l.building == nil {
			l.building = map[Revision]*pastBuild{}
		}
		l.building[rev] = b
	}
	l.cacheMu.Unlock()
	if making {
		select {
		case <-b.done:
			return b.snap, b.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Made for every request waiting on it: one requester giving up must not fail the others.
	b.snap, b.err = l.makePast(context.WithoutCancel(ctx), rev, head)
	l.cacheMu.Lock()
	delete(l.building, rev)
	if b.err == nil {
		l.cache = append(l.cache, cachedSnapshot{rev, b.snap})
		if len(l.cache) > pastSnapshots {
			l.cache = l.cache[1:]
		}
	}
	l.cacheMu.Unlock()
	close(b.done)
	return b.snap, b.err
}

// makePast makes the snapshot of a revision other than head's.
func (l *Live) makePast(ctx context.Context, rev Revision, head *liveHead) (*Snapshot, error) {
	if rev == 0 {
		return NewSnapshotWith(&Objects{}, l.opts), nil
	}
	if rev < head.rev && rev >= l.store.Horizon() {
		objects, err := l.ObjectChanges(ctx, rev, head.rev)
		if err != nil {
			return nil, fmt.Errorf("open revision %d: %w", rev, err)
		}
		if len(objects) <= deriveLimit {
			return head.snap.Apply(invert(objects)), nil
		}
	}
	objs, err := l.store.Objects(ctx, rev)
	if err != nil {
		return nil, fmt.Errorf("open revision %d: %w", rev, err)
	}
	return NewSnapshotWith(objs, l.opts), nil
}

// Diff compares revisions from and to (from < to): the objects that changed in (from, to], condensed per object,
// and the grants gained and lost by every subject they touch.
func (l *Live) Diff(ctx context.Context, from, to Revision) (Diff, error) {
	d, _, _, err := l.DiffSnapshots(ctx, from, to)
	return d, err
}

// DiffSnapshots is Diff that also returns the snapshots of from and to, which the grant paths of the answer
// point into (lost grants into from's, gained ones into to's).
func (l *Live) DiffSnapshots(ctx context.Context, from, to Revision) (Diff, *Snapshot, *Snapshot, error) {
	if from > to {
		return Diff{}, nil, nil, fmt.Errorf("diff %d..%d: the first revision must not be after the second", from, to)
	}
	objects, err := l.ObjectChanges(ctx, from, to)
	if err != nil {
		return Diff{}, nil, nil, fmt.Errorf("diff %d..%d: %w", from, to, err)
	}
	b, err := l.At(ctx, to)
	if err != nil {
		return Diff{}, nil, nil, err
	}
	// The state at from is the state at to with the range's changes undone: applying the inverse to the (usually
	// resident) later snapshot costs what the change costs, where materialising a past revision costs what the
	// cluster costs.
	a := b.Apply(invert(objects))
	d, err := DiffSnapshots(ctx, a, b, objects)
	return d, a, b, err
}

// ObjectChanges returns the changes of the revisions in (from, to], condensed to one per object (see
// CondenseChanges).
func (l *Live) ObjectChanges(ctx context.Context, from, to Revision) ([]ObjectDiff, error) {
	var changes []Change
	err := l.store.Changes(ctx, from, to, func(c ChangeRecord) bool {
		changes = append(changes, Change{Op: c.Op, Ref: c.Ref, Before: c.Before, After: c.After})
		return true
	})
	if err != nil {
		return nil, err
	}
	return CondenseChanges(changes), nil
}

// invert returns the changes that undo objects.
func invert(objects []ObjectDiff) []Change {
	out := make([]Change, 0, len(objects))
	for _, o := range objects {
		op := OpUpdate
		switch o.Op {
		case OpAdd:
			op = OpDelete
		case OpDelete:
			op = OpAdd
		}
		out = append(out, Change{Op: op, Ref: o.Ref, Before: o.After, After: o.Before})
	}
	return out
}

// Reconcile computes the changes that turn the head into objs (adds, updates, deletes of every object that
// differs), for a source that reloads its whole state: a restarted server or a snapshot file that changed.
func (l *Live) Reconcile(objs *Objects) []Change {
	return ReconcileChanges(l.Current(), objs)
}

// ReconcileChanges lists the changes that turn snapshot cur's objects into objs.
func ReconcileChanges(cur *Snapshot, objs *Objects) []Change {
	var want []Object
	normalised := NewSnapshotWith(objs, SnapshotOptions{APIAggregation: true}) // dedups and sets kinds; rules untouched
	normalised.Objects().Each(func(o Object) bool {
		if o2, ok := normalised.Object(o.Ref()); ok {
			o = o2
		}
		want = append(want, o)
		return true
	})
	return reconcile(cur, want, func(Kind) bool { return true })
}

// ReconcileUsers lists the changes that make the declared Users of cur those of users: a groups file reloaded.
// What audit events showed is kept: a user keeps its observed groups, and a user no longer declared but observed
// stays, as an audit-only user.
func ReconcileUsers(cur *Snapshot, users []User) []Change {
	want := make([]Object, 0, len(users))
	declared := make(map[string]bool, len(users))
	for i := range users {
		u := users[i]
		declared[u.Name] = true
		if have, ok := cur.Object(u.Ref()); ok {
			u.Observed = have.(*User).Observed
		}
		want = append(want, &u)
	}
	cur.Each(KindUser, "", func(o Object) bool {
		if u := o.(*User); !declared[u.Name] && (len(u.Observed) > 0 || u.Origin == OriginAudit) {
			want = append(want, &User{Meta: Meta{Name: u.Name, Origin: OriginAudit}, Observed: u.Observed})
		}
		return true
	})
	return reconcile(cur, want, func(k Kind) bool { return k == KindUser })
}

// ObserveUsers lists the changes that record what audit events showed: seen maps a user name to the groups it
// authenticated with. A user unknown to cur becomes an audit-only User; a known user gains the groups it was not
// yet known to hold. system:authenticated, which every user holds, is left out; membership is never removed.
// ServiceAccount user names are no Users (their groups are implicit) and are ignored.
func ObserveUsers(cur *Snapshot, seen map[string][]string) []Change {
	names := make([]string, 0, len(seen))
	for name := range seen {
		if _, _, sa := SplitServiceAccountUsername(name); !sa && name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var changes []Change
	for _, name := range names {
		ref := ObjectRef{Kind: KindUser, Name: name}
		var before *User
		if o, ok := cur.Object(ref); ok {
			before = o.(*User)
		}
		observed := []string{}
		if before != nil {
			observed = slices.Clone(before.Observed)
		}
		for _, g := range seen[name] {
			if g != GroupAuthenticated && g != "" && !slices.Contains(observed, g) {
				observed = append(observed, g)
			}
		}
		slices.Sort(observed)
		switch {
		case before == nil:
			after := &User{Meta: Meta{Name: name, Origin: OriginAudit}, Observed: observed}
			changes = append(changes, NewChange(nil, after))
		case !slices.Equal(before.Observed, observed):
			after := *before
			after.Observed = observed
			changes = append(changes, NewChange(before, &after))
		}
	}
	return changes
}

// reconcile lists the changes that turn the objects of cur whose kinds owns accepts into want: adds and updates
// in want's order, then deletions of what cur holds and want lacks, each with cur's object as given as Before.
func reconcile(cur *Snapshot, want []Object, owns func(Kind) bool) []Change {
	wanted := make(map[ObjectRef]bool, len(want))
	var changes []Change
	for _, o := range want {
		ref := o.Ref()
		wanted[ref] = true
		have, ok := cur.Object(ref)
		switch {
		case !ok:
			changes = append(changes, NewChange(nil, o))
		case !sameObject(have, o):
			changes = append(changes, NewChange(have, o))
		}
	}
	cur.Objects().Each(func(o Object) bool {
		if ref := o.Ref(); owns(ref.Kind) && !wanted[ref] {
			if have, found := cur.Object(ref); found {
				o = have
			}
			changes = append(changes, NewChange(o, nil))
		}
		return true
	})
	return changes
}
