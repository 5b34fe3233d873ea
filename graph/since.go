package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	rbacv1 "k8s.io/api/rbac/v1"
)

// GrantSince says since when a grant path has held.
type GrantSince struct {
	// Revision is the first revision of the uninterrupted run of revisions, ending at the revision asked about,
	// in which the path held.
	Revision Revision
	// Info is Revision's record (its time and source).
	Info RevisionInfo
	// AtHorizon is true when the path already held at the oldest retained revision: it may be older than that.
	AtHorizon bool
}

// ErrGrantNotHeld is returned by GrantSince when the path does not hold at the revision asked about.
var ErrGrantNotHeld = errors.New("the grant path does not hold at that revision")

// ObjectVersions calls fn for each stored version of ref at or below rev, newest first, with the revision that
// wrote it and the object then (nil when that revision deleted it), until fn returns false or an error.
// Versions below the horizon may have been compacted away.
func (s *Store) ObjectVersions(ctx context.Context, rev Revision, ref ObjectRef, fn func(Revision, Object) (bool, error)) error {
	if err := s.checkRevision(rev); err != nil {
		return fmt.Errorf("versions of %s: %w", ref, err)
	}
	key, err := objectKey(ref)
	if err != nil || !storedKind(ref.Kind) {
		return fmt.Errorf("versions of %s: %w", ref, ErrNotFound)
	}
	return s.view(ctx, uint64(rev), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key, AllVersions: true})
		defer it.Close()
		for it.Seek(key); it.ValidForPrefix(key); it.Next() {
			item := it.Item()
			// The prefix also matches longer keys (a name that extends this one ends with its own 0x00 later).
			if string(item.Key()) != string(key) {
				continue
			}
			var o Object
			if !item.IsDeletedOrExpired() {
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if o, err = UnmarshalObject(ref.Kind, v); err != nil {
					return fmt.Errorf("%s at %d: %w", ref, item.Version(), err)
				}
			}
			more, err := fn(Revision(item.Version()), o)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// runStart returns the revision that starts the newest run of versions of ref (at or below rev) for which held
// is true; ok is false when the newest version does not satisfy it.
func (s *Store) runStart(ctx context.Context, rev Revision, ref ObjectRef, held func(Object) bool) (start Revision, ok bool, err error) {
	err = s.ObjectVersions(ctx, rev, ref, func(r Revision, o Object) (bool, error) {
		if o == nil || !held(o) {
			return false, nil
		}
		start, ok = r, true
		return true, nil
	})
	return start, ok, err
}

// GrantSince returns since when path, a grant path of the snapshot at rev, has held without interruption: the
// binding naming the subject with the same roleRef, and the role holding the rule. For a rule kiem aggregated
// into a ClusterRole, every aggregating ClusterRole on the way (nested aggregation included) must keep its
// aggregation rule and labels, and the ClusterRole that holds the rule in its own rules must keep the rule and
// its labels. The answer errs on the late side: a change that left the grant in place but touched what these
// conditions compare (a label no selector reads, say) starts a new run.
func (l *Live) GrantSince(ctx context.Context, rev Revision, path GrantPath) (GrantSince, error) {
	if path.Binding == nil || path.Subject == nil || path.Role == nil || path.Rule == nil {
		return GrantSince{}, errors.New("grant since: incomplete grant path")
	}
	var via []ObjectRef
	if path.AggregatedFrom != nil {
		// The snapshot is needed only for nested aggregation; read it once, when it is.
		var snap *Snapshot
		at := func() (*Snapshot, error) {
			var err error
			if snap == nil {
				snap, err = l.At(ctx, rev)
			}
			return snap, err
		}
		var err error
		if via, err = l.aggregationChain(ctx, at, rev, *path.AggregatedFrom, path.Rule, map[string]bool{}); err != nil {
			return GrantSince{}, fmt.Errorf("grant since: %w", err)
		}
	}
	return l.store.grantSince(ctx, rev, path, via)
}

// aggregationChain returns the ClusterRoles from `from` down to one whose own (stored) rules hold rule, each
// aggregating the next, as of rev (at returns the snapshot of rev).
func (l *Live) aggregationChain(ctx context.Context, at func() (*Snapshot, error), rev Revision, from ObjectRef, rule *rbacv1.PolicyRule, seen map[string]bool) ([]ObjectRef, error) {
	if seen[from.Name] {
		return nil, nil
	}
	seen[from.Name] = true
	o, err := l.store.Object(ctx, rev, from)
	if err != nil {
		return nil, err
	}
	if roleHasRule(o, rule) {
		return []ObjectRef{from}, nil
	}
	if r, ok := o.(*Role); !ok || r.AggregationRule == nil {
		return nil, nil
	}
	snap, err := at()
	if err != nil {
		return nil, err
	}
	for _, next := range snap.AggregatedFrom(from.Name) {
		chain, err := l.aggregationChain(ctx, at, rev, next, rule, seen)
		if err != nil {
			return nil, err
		}
		if chain != nil {
			return append([]ObjectRef{from}, chain...), nil
		}
	}
	return nil, nil
}

type sinceCond struct {
	ref  ObjectRef
	held func(Object) bool
}

// sameAsFirst returns a condition that holds while key(o) equals what it was for the first (newest) version.
func sameAsFirst(key func(*Role) any) func(Object) bool {
	var first []byte
	return func(o Object) bool {
		r, ok := o.(*Role)
		if !ok {
			return false
		}
		b, _ := json.Marshal(key(r))
		if first == nil {
			first = b
		}
		return string(b) == string(first)
	}
}

func (s *Store) grantSince(ctx context.Context, rev Revision, path GrantPath, via []ObjectRef) (GrantSince, error) {
	var cur *Binding
	conds := []sinceCond{{*path.Binding, func(o Object) bool {
		b, ok := o.(*Binding)
		if !ok {
			return false
		}
		if cur == nil {
			cur = b
		}
		return b.RoleRef.Kind == cur.RoleRef.Kind && b.RoleRef.Name == cur.RoleRef.Name &&
			slices.ContainsFunc(b.Subjects, func(x rbacv1.Subject) bool { return sameSubject(x, *path.Subject) })
	}}}
	if path.AggregatedFrom == nil {
		conds = append(conds, sinceCond{*path.Role, func(o Object) bool { return roleHasRule(o, path.Rule) }})
	} else {
		if len(via) == 0 {
			return GrantSince{}, fmt.Errorf("grant since: no ClusterRole aggregated into %s holds the rule: %w", path.Role, ErrGrantNotHeld)
		}
		aggregates := sameAsFirst(func(r *Role) any { return r.AggregationRule })
		conds = append(conds, sinceCond{*path.Role, func(o Object) bool {
			r, ok := o.(*Role)
			return ok && r.AggregationRule != nil && aggregates(o)
		}})
		for i, ref := range via {
			labelled := sameAsFirst(func(r *Role) any { return r.Labels })
			if i < len(via)-1 {
				aggregates := sameAsFirst(func(r *Role) any { return r.AggregationRule })
				conds = append(conds, sinceCond{ref, func(o Object) bool { return labelled(o) && aggregates(o) }})
				continue
			}
			conds = append(conds, sinceCond{ref, func(o Object) bool { return roleHasRule(o, path.Rule) && labelled(o) }})
		}
	}
	var since Revision
	for _, c := range conds {
		start, ok, err := s.runStart(ctx, rev, c.ref, c.held)
		if err != nil {
			return GrantSince{}, fmt.Errorf("grant since: %w", err)
		}
		if !ok {
			return GrantSince{}, fmt.Errorf("grant since: %s at %d: %w", c.ref, rev, ErrGrantNotHeld)
		}
		since = max(since, start)
	}
	out := GrantSince{Revision: since}
	if h := s.Horizon(); since <= h {
		out.Revision, out.AtHorizon = h, true
	}
	info, err := s.revisionInfo(ctx, out.Revision)
	if err != nil {
		return GrantSince{}, fmt.Errorf("grant since: revision %d: %w", out.Revision, err)
	}
	out.Info = info
	return out, nil
}

func sameSubject(a, b rbacv1.Subject) bool {
	return a.Kind == b.Kind && a.Name == b.Name && a.Namespace == b.Namespace
}

// roleHasRule reports whether o is a Role or ClusterRole one of whose rules equals rule (nil and empty lists
// are equal).
func roleHasRule(o Object, rule *rbacv1.PolicyRule) bool {
	r, ok := o.(*Role)
	if !ok {
		return false
	}
	return slices.ContainsFunc(r.Rules, func(x rbacv1.PolicyRule) bool {
		return slices.Equal(x.Verbs, rule.Verbs) && slices.Equal(x.APIGroups, rule.APIGroups) &&
			slices.Equal(x.Resources, rule.Resources) && slices.Equal(x.ResourceNames, rule.ResourceNames) &&
			slices.Equal(x.NonResourceURLs, rule.NonResourceURLs)
	})
}
