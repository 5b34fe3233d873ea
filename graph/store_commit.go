package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RevisionInfo describes one revision.
type RevisionInfo struct {
	// Revision is the revision's number, its Badger commit timestamp.
	Revision Revision `json:"revision"`
	// Time is the wall time of the commit (see Commit for how it is kept monotonic).
	Time time.Time `json:"time"`
	// Source names who committed it: an informer, a snapshot file, a reconciliation.
	Source string `json:"source"`
	// Changes is the number of changes, Summary the number of adds, updates and deletes per kind.
	Changes int             `json:"changes"`
	Summary map[Kind][3]int `json:"summary"`
}

// changeValue is the JSON value of a c| key. Before and After are MarshalObject's encoding of the kind in Ref.
type changeValue struct {
	Op     Op              `json:"op"`
	Ref    ObjectRef       `json:"ref"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	Source string          `json:"source"`
	Wall   time.Time       `json:"wall"`
	Actor  *Actor          `json:"actor,omitempty"`
}

// revisionValue is the JSON value of an r| key.
type revisionValue struct {
	Time    time.Time       `json:"time"`
	Source  string          `json:"source"`
	Changes int             `json:"changes"`
	Summary map[Kind][3]int `json:"summary"`
}

// encodedChange is a change validated and encoded outside the writer's lock.
type encodedChange struct {
	op            Op
	ref           ObjectRef
	key           []byte // o| key
	before, after []byte // MarshalObject encodings; nil when absent
	last          bool   // the last change of this object in the revision: it writes the o| key
}

// Commit records changes as one new revision, in one atomic group commit, and returns its info once it is
// durable (fsynced) and published: Head returns it and reads at it see it. Changes apply in order, so when
// one object changes twice the later change wins; each is kept in the change log with its position (Seq).
//
// wall is the time the revision records; the zero time means now. Walls are kept monotonic: a wall earlier
// than the previous revision's (a clock stepping back) is recorded as the previous one, so that the time index
// agrees with revision order (see RevisionAt).
//
// Validation: every change needs a known Op; adds and updates need After with After.Ref() == Ref (an empty Ref
// is taken from After, or from Before for deletes); deletes need After == nil. Before is stored as given
// (nil when unknown). An invalid change fails the whole commit and writes nothing.
//
// ctx is looked at before the write begins; a write under way is never abandoned halfway.
//
// An empty changes slice commits nothing and returns the head's info (the zero RevisionInfo before the first
// commit), so a caller can tell by comparing revisions. Returns ErrClosed after Close.
func (s *Store) Commit(ctx context.Context, source string, wall time.Time, changes []Change) (RevisionInfo, error) {
	if err := ctx.Err(); err != nil {
		return RevisionInfo{}, err
	}
	if len(changes) == 0 {
		head := s.Head()
		if head == 0 {
			return RevisionInfo{}, nil
		}
		return s.revisionInfo(ctx, head)
	}
	enc, err := encodeChanges(changes)
	if err != nil {
		return RevisionInfo{}, fmt.Errorf("commit: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return RevisionInfo{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return RevisionInfo{}, fmt.Errorf("commit: store needs reopening after an earlier failure: %w", s.broken)
	}
	if wall.IsZero() {
		wall = s.now()
	}
	if wall.Before(s.lastWall) {
		wall = s.lastWall
	}
	rev := Revision(s.lastTS + 1)
	info := RevisionInfo{Revision: rev, Time: wall, Source: source, Changes: len(enc), Summary: map[Kind][3]int{}}
	body, err := revisionEntries(info, enc, !s.schemaSaved)
	if err != nil {
		return RevisionInfo{}, fmt.Errorf("commit: %w", err)
	}
	s.lastTS = uint64(rev)
	if err := s.update(uint64(rev), body, []kv{{key: keyHead, val: encodeUint64(uint64(rev))}}); err != nil {
		if errors.Is(err, ErrClosed) {
			return RevisionInfo{}, fmt.Errorf("commit: %w", err)
		}
		// Part of the revision may be on disk above the head, where the next revision would see it: undo it
		// now, as OpenStore would, whatever became of the caller's context.
		if rerr := s.repairLocked(context.WithoutCancel(ctx)); rerr != nil {
			s.broken = rerr
			return RevisionInfo{}, fmt.Errorf("commit revision %d: %w (repair: %w)", rev, err, rerr)
		}
		return RevisionInfo{}, fmt.Errorf("commit revision %d: %w", rev, err)
	}
	s.schemaSaved = true
	s.lastWall = wall
	s.readTS.Store(uint64(rev))
	s.head.Store(uint64(rev))
	if n := s.opts.Retention.Revisions; n > 0 {
		s.revs = append(s.revs, rev)
		if uint64(len(s.revs)) >= n+n/100+1 {
			s.poke()
		}
	}
	return info, nil
}

// encodeChanges validates changes and encodes their objects, in parallel for big revisions.
func encodeChanges(changes []Change) ([]encodedChange, error) {
	enc := make([]encodedChange, len(changes))
	errs := make([]error, len(changes))
	parallel(len(changes), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			enc[i], errs[i] = encodeChange(i, changes[i])
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err // the first, in order
		}
	}
	lastOf := make(map[string]int, len(changes))
	for i := range enc {
		lastOf[string(enc[i].key)] = i
	}
	for _, i := range lastOf {
		enc[i].last = true
	}
	return enc, nil
}

// parallel calls fn over [0, n) split into one range per CPU, or once when n is small.
func parallel(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 4096 || workers == 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { fn(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}

func encodeChange(i int, c Change) (encodedChange, error) {
	e := encodedChange{op: c.Op, ref: c.Ref}
	if e.ref == (ObjectRef{}) {
		switch {
		case c.After != nil:
			e.ref = c.After.Ref()
		case c.Before != nil:
			e.ref = c.Before.Ref()
		}
	}
	switch c.Op {
	case OpAdd, OpUpdate:
		if c.After == nil {
			return e, fmt.Errorf("change %d (%s %s): no After", i, c.Op, e.ref)
		}
		if got := c.After.Ref(); got != e.ref {
			return e, fmt.Errorf("change %d (%s %s): After is %s", i, c.Op, e.ref, got)
		}
	case OpDelete:
		if c.After != nil {
			return e, fmt.Errorf("change %d (delete %s): After is set", i, e.ref)
		}
	default:
		return e, fmt.Errorf("change %d (%s): unknown op %q", i, e.ref, c.Op)
	}
	if !storedKind(e.ref.Kind) {
		return e, fmt.Errorf("change %d (%s %s): kind %q is not stored", i, c.Op, e.ref, e.ref.Kind)
	}
	var err error
	if e.key, err = objectKey(e.ref); err != nil {
		return e, fmt.Errorf("change %d: %w", i, err)
	}
	if c.Before != nil {
		if e.before, err = MarshalObject(c.Before); err != nil {
			return e, fmt.Errorf("change %d (%s %s): %w", i, c.Op, e.ref, err)
		}
	}
	if c.After != nil {
		if e.after, err = MarshalObject(c.After); err != nil {
			return e, fmt.Errorf("change %d (%s %s): %w", i, c.Op, e.ref, err)
		}
	}
	return e, nil
}

// storedKind tells the kinds UnmarshalObject decodes: the API objects. Users and groups are never stored.
func storedKind(k Kind) bool {
	switch k {
	case KindNamespace, KindServiceAccount, KindRole, KindClusterRole, KindRoleBinding, KindClusterRoleBinding, KindPod, KindNode, KindUser, KindSecret:
		return true
	}
	return false
}

// revisionEntries builds every entry of a revision but m|head: objects, change log, revision info, time index.
// It fills info.Summary.
func revisionEntries(info RevisionInfo, enc []encodedChange, withSchema bool) ([]kv, error) {
	body := make([]kv, 0, 2*len(enc)+3)
	if withSchema {
		// First entry of the first write ever: any key of a kiem store implies m|schema (see checkSchema).
		body = append(body, kv{key: keySchema, val: schemaValue()})
	}
	tail, err := json.Marshal(struct {
		Source string    `json:"source"`
		Wall   time.Time `json:"wall"`
	}{info.Source, info.Time})
	if err != nil {
		return nil, fmt.Errorf("encode revision: %w", err)
	}
	tail[0] = ',' // `,"source":…,"wall":…}` ends every change value
	for seq, e := range enc {
		if e.last {
			body = append(body, kv{key: e.key, val: e.after, del: e.op == OpDelete})
		}
		v := appendChangeValue(make([]byte, 0, 64+len(e.before)+len(e.after)+len(tail)), e, tail)
		body = append(body, kv{key: changeKey(info.Revision, seq), val: v})
		sum := info.Summary[e.ref.Kind]
		switch e.op {
		case OpAdd:
			sum[0]++
		case OpUpdate:
			sum[1]++
		case OpDelete:
			sum[2]++
		}
		info.Summary[e.ref.Kind] = sum
	}
	v, err := json.Marshal(revisionValue{Time: info.Time, Source: info.Source, Changes: info.Changes, Summary: info.Summary})
	if err != nil {
		return nil, fmt.Errorf("encode revision: %w", err)
	}
	body = append(body, kv{key: revisionKey(info.Revision), val: v}, kv{key: timeKey(info.Time, info.Revision), val: []byte{}})
	return body, nil
}

// appendChangeValue appends the JSON of e's changeValue (without actor) followed by tail, which carries source
// and wall. It is json.Marshal's output but for one thing: it embeds the object encodings as they are, where
// json.Marshal would scan and compact every RawMessage again (a third of the encoding of a big revision).
func appendChangeValue(b []byte, e encodedChange, tail []byte) []byte {
	b = append(b, `{"op":`...)
	b = appendJSONString(b, string(e.op))
	b = append(b, `,"ref":{"kind":`...)
	b = appendJSONString(b, string(e.ref.Kind))
	if e.ref.Namespace != "" {
		b = append(b, `,"namespace":`...)
		b = appendJSONString(b, e.ref.Namespace)
	}
	b = append(b, `,"name":`...)
	b = appendJSONString(b, e.ref.Name)
	b = append(b, '}')
	if e.before != nil {
		b = append(append(b, `,"before":`...), e.before...)
	}
	if e.after != nil {
		b = append(append(b, `,"after":`...), e.after...)
	}
	return append(b, tail...)
}

// appendJSONString appends s as a JSON string: as is when it needs no escaping (Kubernetes names never do),
// else as json.Marshal writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			v, _ := json.Marshal(s) // a string always marshals
			return append(b, v...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// SetActor records who made the seq-th change of revision rev (audit events arrive after the commit),
// replacing any actor recorded before. It is durable when it returns and commits at a timestamp of its own,
// which is not a revision.
//
// Returns ErrFutureRevision above the head, ErrRevisionGone below the horizon, ErrNotFound when rev has no
// change seq (rev is not a revision, or seq is out of range).
func (s *Store) SetActor(ctx context.Context, rev Revision, seq int, a Actor) error {
	if err := s.checkRevision(rev); err != nil {
		return fmt.Errorf("set actor of %d/%d: %w", rev, seq, err)
	}
	if seq < 0 {
		return fmt.Errorf("set actor of %d/%d: %w", rev, seq, ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := changeKey(rev, seq)
	var raw []byte
	err := s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
		var err error
		raw, err = getValue(txn, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("set actor of %d/%d: %w", rev, seq, err)
	}
	var cv changeValue
	if err := json.Unmarshal(raw, &cv); err != nil {
		return fmt.Errorf("set actor of %d/%d: decode change: %w", rev, seq, err)
	}
	cv.Actor = &a
	v, err := json.Marshal(cv)
	if err != nil {
		return fmt.Errorf("set actor of %d/%d: %w", rev, seq, err)
	}
	if err := s.writeAsideLocked([]kv{{key: key, val: v}}); err != nil {
		return fmt.Errorf("set actor of %d/%d: %w", rev, seq, err)
	}
	return nil
}

// writeAsideLocked commits body in one transaction at a fresh timestamp that is no revision, recording that
// timestamp in m|ts (see keys.go). The caller holds s.mu.
func (s *Store) writeAsideLocked(body []kv) error {
	if s.broken != nil {
		return fmt.Errorf("store needs reopening after an earlier failure: %w", s.broken)
	}
	ts := s.lastTS + 1
	s.lastTS = ts
	// Callers keep body small enough for one transaction, which is all or nothing: a failure spends the
	// timestamp and writes nothing.
	if err := s.update(ts, body, []kv{{key: keyTS, val: encodeUint64(ts)}}); err != nil {
		return err
	}
	s.readTS.Store(ts)
	return nil
}

// checkRevision refuses revisions outside [horizon, head].
func (s *Store) checkRevision(rev Revision) error {
	if rev > s.Head() {
		return fmt.Errorf("revision %d, head %d: %w", rev, s.Head(), ErrFutureRevision)
	}
	if h := s.Horizon(); rev < h {
		return fmt.Errorf("revision %d, horizon %d: %w", rev, h, ErrRevisionGone)
	}
	return nil
}
