package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// AuditSource is the source of the revisions that record users and group memberships audit events showed.
const AuditSource = "audit"

// AuditIngesterOptions configures NewAuditIngester.
type AuditIngesterOptions struct {
	Graph *graph.Live
	Store *graph.AuditStore
	// Patience is how long the actor of a write waits for the change it made to appear in the history before it is
	// given up on (the write changed nothing, or its watch event was coalesced with a later one). Default 10m.
	Patience time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// AuditIngester turns audit events into what kiem keeps of them: the actor of each RBAC and ServiceAccount
// change (attached to the change in the history, after its revision committed), users and the groups they
// authenticate with (graph Users with observed membership, and first/last seen times), and each principal's usage
// (AuditStore). Ingesting the same events twice changes nothing.
//
// Ingest may be called from several goroutines (webhook requests, a log follower); Run matches waiting actors to
// the revisions the graph commits and must run while Ingest is used.
type AuditIngester struct {
	g        *graph.Live
	store    *graph.AuditStore
	log      *slog.Logger
	now      func() time.Time
	patience time.Duration

	mu sync.Mutex // serialises Ingest and the matching of pending actors
	// pending are the actors waiting for their change, by audit ID; byUID indexes them by the written object's UID.
	pending map[string]graph.PendingActor
	byUID   map[string][]string
	scanned graph.Revision // Run has matched pending actors against the changes up to here
	// scope caches, for the head snapshot scoped is of, whether a request without a name is allowed: then the
	// name of a usage is irrelevant and dropped (see usage).
	scopeRev graph.Revision
	scoped   map[scopeKey]bool
	recent   [2]map[uint64]struct{} // hashes of recent event keys, for the duplicate count only

	stats auditCounters
}

type scopeKey struct {
	identity string // user and groups joined
	key      graph.UsageKey
}

type auditCounters struct {
	events, malformed, duplicates, usage, attributed, unattributable, expired, batches atomic.Uint64
}

// AuditStats are the ingester's counters since it started, for /metrics.
type AuditStats struct {
	Events     uint64 // well-formed events ingested
	Malformed  uint64 // events rejected as malformed
	Duplicates uint64 // events seen before (a webhook retry, a re-read log); ingested again without effect
	Usage      uint64 // usage observations recorded (allowed requests)
	Attributed uint64 // changes given their actor
	// Unattributable are RBAC or ServiceAccount writes whose event lacks the response object (the audit policy
	// logs them below RequestResponse), so the change they made cannot be identified.
	Unattributable uint64
	Expired        uint64 // actors given up on after Patience
	Pending        int    // actors waiting for their change
	Batches        uint64
}

// NewAuditIngester loads the actors still waiting from the store and brings the graph's observed memberships up
// to what the store recorded (an interrupted Ingest may have stored memberships it did not commit).
func NewAuditIngester(ctx context.Context, opts AuditIngesterOptions) (*AuditIngester, error) {
	if opts.Graph == nil || opts.Store == nil {
		return nil, errors.New("audit ingester: Graph and Store are required")
	}
	in := &AuditIngester{g: opts.Graph, store: opts.Store, log: opts.Logger, now: opts.Now, patience: opts.Patience,
		byUID: map[string][]string{}, recent: [2]map[uint64]struct{}{{}, {}}}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.patience <= 0 {
		in.patience = 10 * time.Minute
	}
	pending, err := in.store.Pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit ingester: %w", err)
	}
	in.pending = pending
	for id, p := range pending {
		in.byUID[p.UID] = append(in.byUID[p.UID], id)
	}
	seen := map[string][]string{}
	err = in.store.EachMembership(ctx, func(m graph.Membership) bool {
		seen[m.User] = append(seen[m.User], m.Group)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("audit ingester: %w", err)
	}
	// Users seen without a group beyond system:authenticated have no membership record; they are entities too.
	if err := in.commitUsers(ctx, seen); err != nil {
		return nil, err
	}
	// What was pending at the last stop may have been committed since: look each up once, then follow new
	// revisions only.
	in.scanned = in.g.Store().Head()
	var b graph.AuditBatch
	for id, t := range pending {
		done, err := in.matchNow(ctx, t)
		if err != nil {
			return nil, err
		}
		if done {
			b.ResolvePending(id)
			in.dropPending(id)
		}
	}
	if err := in.store.Apply(ctx, &b); err != nil {
		return nil, err
	}
	return in, nil
}

// Stats returns the counters.
func (in *AuditIngester) Stats() AuditStats {
	in.mu.Lock()
	pending := len(in.pending)
	in.mu.Unlock()
	c := &in.stats
	return AuditStats{Events: c.events.Load(), Malformed: c.malformed.Load(), Duplicates: c.duplicates.Load(),
		Usage: c.usage.Load(), Attributed: c.attributed.Load(), Unattributable: c.unattributable.Load(),
		Expired: c.expired.Load(), Pending: pending, Batches: c.batches.Load()}
}

// Ingest records a batch of events durably: when it returns nil, what the events taught is in the store (and,
// for memberships, committed to the graph), so that the webhook may acknowledge the batch. Malformed events are
// counted and logged, never fatal. cursor, when not nil, adds the caller's own records to the same transaction (a
// log follower's position).
func (in *AuditIngester) Ingest(ctx context.Context, events []AuditEvent, malformed []*AuditError, cursor func(*graph.AuditBatch)) error {
	for _, m := range malformed {
		in.log.Warn("malformed audit event skipped", "where", m.Where, "err", m.Err)
	}
	in.stats.malformed.Add(uint64(len(malformed)))
	in.mu.Lock()
	defer in.mu.Unlock()
	rev, snap := in.g.HeadSnapshot()
	if rev != in.scopeRev || in.scoped == nil {
		in.scopeRev, in.scoped = rev, map[scopeKey]bool{}
	}
	var b graph.AuditBatch
	seen := map[string][]string{}
	for i := range events {
		e := &events[i]
		in.countDuplicate(e)
		at := e.RequestReceivedTimestamp
		if at.IsZero() {
			at = e.StageTimestamp
		}
		b.Event(at)
		principal := e.Principal()
		b.SeeUser(e.User.Username, at)
		b.SeeUser(principal.Username, at)
		// Membership is what the user authenticated with; impersonated groups are asserted by the impersonator.
		if _, _, sa := graph.SplitServiceAccountUsername(e.User.Username); !sa {
			seen[e.User.Username] = append(seen[e.User.Username], e.User.Groups...)
			for _, g := range e.User.Groups {
				b.SeeGroup(g, at)
				b.SeeMembership(e.User.Username, g, at)
			}
		}
		if k, ok := usageOf(e); ok {
			id := graph.Identity{User: principal.Username, Groups: principal.Groups}
			if in.nameIrrelevant(snap, id, k) {
				k.Name = ""
			}
			b.Use(principal.Username, k, at)
			in.stats.usage.Add(1)
		}
		if err := in.attribute(ctx, e, &b); err != nil {
			return err
		}
	}
	in.stats.events.Add(uint64(len(events)))
	if cursor != nil {
		cursor(&b)
	}
	if err := in.store.Apply(ctx, &b); err != nil {
		return err
	}
	in.stats.batches.Add(1)
	return in.commitUsers(ctx, seen)
}

// commitUsers commits, as one revision, the users and memberships seen that the graph does not hold yet.
func (in *AuditIngester) commitUsers(ctx context.Context, seen map[string][]string) error {
	if len(seen) == 0 {
		return nil
	}
	changes := graph.ObserveUsers(in.g.Current(), seen)
	if len(changes) == 0 {
		return nil
	}
	rev, err := in.g.Commit(ctx, AuditSource, changes)
	if err != nil {
		return fmt.Errorf("audit: commit observed users: %w", err)
	}
	in.log.Info("users seen in audit events committed", "revision", rev, "changes", len(changes))
	return nil
}

// countDuplicate counts an event whose (auditID, stage) was seen recently. The count is informative only:
// ingestion is idempotent whatever it says, so two bounded generations of hashes are enough.
func (in *AuditIngester) countDuplicate(e *AuditEvent) {
	h := fnv.New64a()
	h.Write([]byte(e.AuditID))
	h.Write([]byte{0})
	h.Write([]byte(e.Stage))
	k := h.Sum64()
	_, dup0 := in.recent[0][k]
	_, dup1 := in.recent[1][k]
	if dup0 || dup1 {
		in.stats.duplicates.Add(1)
		return
	}
	const generation = 1 << 17
	if len(in.recent[0]) >= generation {
		in.recent[1], in.recent[0] = in.recent[0], make(map[uint64]struct{}, generation)
	}
	in.recent[0][k] = struct{}{}
}

// usageOf returns the request an event shows a principal was allowed to make. Events of the RequestReceived
// stage are not usage: they come before authorization. The decision annotation says whether RBAC (or another
// authorizer) allowed the request; without it, a 401 or 403 response says it was refused.
func usageOf(e *AuditEvent) (graph.UsageKey, bool) {
	if e.Stage == "RequestReceived" {
		return graph.UsageKey{}, false
	}
	switch d := e.Annotations["authorization.k8s.io/decision"]; {
	case d == "allow":
	case d != "":
		return graph.UsageKey{}, false
	case e.ResponseStatus != nil && (e.ResponseStatus.Code == 401 || e.ResponseStatus.Code == 403):
		return graph.UsageKey{}, false
	}
	if e.ObjectRef == nil {
		u, err := url.Parse(e.RequestURI)
		if err != nil || u.Path == "" {
			return graph.UsageKey{}, false
		}
		return graph.UsageKey{Verb: e.Verb, NonResourceURL: u.Path}, true
	}
	o := e.ObjectRef
	if o.Resource == "" {
		return graph.UsageKey{}, false
	}
	return graph.UsageKey{Verb: e.Verb, APIGroup: o.APIGroup, Resource: o.Resource, Subresource: o.Subresource,
		Namespace: o.Namespace, Name: o.Name}, true
}

// nameIrrelevant reports whether a request like k but without a name is allowed to id: then a rule without
// resourceNames (or system:masters) allows k whatever its name, and recording names would only multiply records.
// A request that RBAC allows only through name-scoped rules keeps its name: a least-privilege rule needs it.
func (in *AuditIngester) nameIrrelevant(snap *graph.Snapshot, id graph.Identity, k graph.UsageKey) bool {
	if k.Name == "" {
		return true
	}
	k.Name = ""
	sk := scopeKey{identity: id.User + "\x00" + strings.Join(id.Groups, "\x00"), key: k}
	if v, ok := in.scoped[sk]; ok {
		return v
	}
	v := snap != nil && snap.Can(id, k.Action()).Allowed
	if len(in.scoped) >= 1<<16 {
		clear(in.scoped)
	}
	in.scoped[sk] = v
	return v
}

// rbacWrites maps the resources whose writes kiem attributes to the graph kind they are.
var rbacWrites = map[[2]string]graph.Kind{
	{"rbac.authorization.k8s.io", "roles"}:               graph.KindRole,
	{"rbac.authorization.k8s.io", "rolebindings"}:        graph.KindRoleBinding,
	{"rbac.authorization.k8s.io", "clusterroles"}:        graph.KindClusterRole,
	{"rbac.authorization.k8s.io", "clusterrolebindings"}: graph.KindClusterRoleBinding,
	{"", "serviceaccounts"}:                              graph.KindServiceAccount,
}

// AuditedResource returns the API group and resource whose writes kiem attributes to changes of kind k; ok is
// false for a kind whose writes it does not attribute.
func AuditedResource(k graph.Kind) (group, resource string, ok bool) {
	for gr, kind := range rbacWrites {
		if kind == k {
			return gr[0], gr[1], true
		}
	}
	return "", "", false
}

var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// responseMeta is what attribution reads of a response object: an object's metadata, a Status's details (what a
// deletion answers), or a list's items (deletecollection).
type responseMeta struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		UID             string `json:"uid"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Details *struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"details"`
	Items []json.RawMessage `json:"items"`
}

// attribute finds the change an RBAC or ServiceAccount write made and records its actor, or keeps the actor
// pending (in b, so that it is as durable as the batch) until the change is committed.
func (in *AuditIngester) attribute(ctx context.Context, e *AuditEvent, b *graph.AuditBatch) error {
	o := e.ObjectRef
	if e.Stage != "ResponseComplete" || o == nil || o.Subresource != "" || !writeVerbs[e.Verb] {
		return nil
	}
	kind, ok := rbacWrites[[2]string{o.APIGroup, o.Resource}]
	if !ok || e.ResponseStatus == nil || e.ResponseStatus.Code < 200 || e.ResponseStatus.Code > 299 {
		return nil
	}
	if len(e.ResponseObject) == 0 {
		in.stats.unattributable.Add(1)
		return nil
	}
	targets, err := writeTargets(e, kind)
	if err != nil {
		in.log.Warn("audit event of a write has an unreadable response object", "auditID", e.AuditID, "err", err)
		in.stats.unattributable.Add(1)
		return nil
	}
	principal := e.Principal()
	actor := graph.Actor{User: principal.Username, Groups: principal.Groups, UserAgent: e.UserAgent, AuditID: e.AuditID}
	if e.ImpersonatedUser != nil {
		actor.ImpersonatedBy = e.User.Username
	}
	if len(e.SourceIPs) > 0 {
		actor.SourceIP = e.SourceIPs[0]
	}
	for i, t := range targets {
		t.Actor = actor
		t.Time = e.RequestReceivedTimestamp
		id := e.AuditID
		if len(targets) > 1 {
			id = fmt.Sprintf("%s/%d", e.AuditID, i)
		}
		done, err := in.matchNow(ctx, t)
		if err != nil {
			return err
		}
		if !done {
			b.AddPending(id, t)
			in.addPending(id, t)
		}
	}
	return nil
}

// writeTargets lists the objects a write's response names: one object, or for deletecollection each item.
func writeTargets(e *AuditEvent, kind graph.Kind) ([]graph.PendingActor, error) {
	var r responseMeta
	if err := json.Unmarshal(e.ResponseObject, &r); err != nil {
		return nil, err
	}
	del := e.Verb == "delete" || e.Verb == "deletecollection"
	one := func(r *responseMeta) (graph.PendingActor, bool) {
		p := graph.PendingActor{Object: graph.ObjectRef{Kind: kind, Name: r.Metadata.Name}, UID: r.Metadata.UID,
			ResourceVersion: r.Metadata.ResourceVersion, Delete: del}
		if r.Kind == "Status" && r.Details != nil {
			// A deletion answers a Status naming the object deleted; its resourceVersion is the deletion's own,
			// which the event does not carry: the deletion is matched by UID.
			p.Object.Name, p.UID, p.ResourceVersion = r.Details.Name, r.Details.UID, ""
		}
		if p.Object.Name == "" {
			p.Object.Name = e.ObjectRef.Name
		}
		if kind != graph.KindClusterRole && kind != graph.KindClusterRoleBinding {
			p.Object.Namespace = e.ObjectRef.Namespace
			if r.Metadata.Namespace != "" {
				p.Object.Namespace = r.Metadata.Namespace
			}
		}
		return p, p.UID != "" && p.Object.Name != "" && (del || p.ResourceVersion != "")
	}
	if e.Verb == "deletecollection" {
		var out []graph.PendingActor
		for _, raw := range r.Items {
			var item responseMeta
			if err := json.Unmarshal(raw, &item); err != nil {
				return nil, err
			}
			if p, ok := one(&item); ok {
				out = append(out, p)
			}
		}
		return out, nil
	}
	p, ok := one(&r)
	if !ok {
		return nil, errors.New("response object without name, uid or resourceVersion")
	}
	if !del && r.Metadata.Name == "" {
		return nil, errors.New("response object without metadata.name")
	}
	// A delete answered with the object itself (finalizers pending) is an update that sets deletionTimestamp.
	if e.Verb == "delete" && r.Kind != "Status" && r.Metadata.ResourceVersion != "" {
		p.Delete = false
	}
	return []graph.PendingActor{p}, nil
}

// matchNow looks for the change t made in the history up to the head and records its actor there.
func (in *AuditIngester) matchNow(ctx context.Context, t graph.PendingActor) (bool, error) {
	st := in.g.Store()
	head := st.Head()
	if head == 0 {
		return false, nil
	}
	var found graph.Revision
	var newer graph.Revision // the version seen before (newer than) the current one, for deletions
	err := st.ObjectVersions(ctx, head, t.Object, func(rev graph.Revision, o graph.Object) (bool, error) {
		if o == nil {
			newer = rev
			return true, nil
		}
		m := graph.MetaOf(o)
		if m == nil || m.UID != t.UID {
			newer = 0
			return true, nil
		}
		switch {
		case t.Delete && newer != 0:
			found = newer // the revision that deleted this incarnation
			return false, nil
		case !t.Delete && m.ResourceVersion == t.ResourceVersion:
			found = rev
			return false, nil
		}
		newer = 0
		return true, nil
	})
	if errors.Is(err, graph.ErrRevisionGone) || errors.Is(err, graph.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("audit: find the change of %s: %w", t.Object, err)
	}
	if found == 0 {
		return false, nil
	}
	return true, in.setActor(ctx, found, t)
}

// setActor records t's actor on its change in revision rev.
func (in *AuditIngester) setActor(ctx context.Context, rev graph.Revision, t graph.PendingActor) error {
	seq := -1
	err := in.g.Store().Changes(ctx, rev-1, rev, func(rec graph.ChangeRecord) bool {
		if rec.Ref == t.Object {
			seq = rec.Seq
			return false
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: changes of revision %d: %w", rev, err)
	}
	if seq < 0 {
		return nil // the object's version was written by a revision without a change of it: nothing to mark
	}
	return in.recordActor(ctx, rev, seq, t)
}

// recordActor attaches t's actor to change seq of revision rev.
func (in *AuditIngester) recordActor(ctx context.Context, rev graph.Revision, seq int, t graph.PendingActor) error {
	if err := in.g.Store().SetActor(ctx, rev, seq, t.Actor); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	in.stats.attributed.Add(1)
	in.log.Debug("change attributed", "revision", rev, "seq", seq, "object", t.Object.String(), "user", t.Actor.User)
	return nil
}

func (in *AuditIngester) addPending(id string, t graph.PendingActor) {
	if _, ok := in.pending[id]; !ok {
		in.byUID[t.UID] = append(in.byUID[t.UID], id)
	}
	in.pending[id] = t
}

func (in *AuditIngester) dropPending(id string) {
	t, ok := in.pending[id]
	if !ok {
		return
	}
	delete(in.pending, id)
	ids := in.byUID[t.UID]
	for i, x := range ids {
		if x == id {
			ids = append(ids[:i], ids[i+1:]...)
			break
		}
	}
	if len(ids) == 0 {
		delete(in.byUID, t.UID)
	} else {
		in.byUID[t.UID] = ids
	}
}

// Run matches pending actors to the changes of each revision the graph commits, and gives up on those older
// than Patience, until ctx ends.
func (in *AuditIngester) Run(ctx context.Context) error {
	expire := time.NewTicker(max(in.patience/10, time.Second))
	defer expire.Stop()
	for {
		updated := in.g.Updated()
		if err := in.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			in.log.Error("matching audit actors to changes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-updated:
		case <-expire.C:
			if err := in.expire(ctx); err != nil && ctx.Err() == nil {
				in.log.Error("expiring audit actors", "err", err)
			}
		}
	}
}

// step matches the pending actors against the changes committed since the last step.
func (in *AuditIngester) step(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := in.g.Store()
	head := st.Head()
	from := max(in.scanned, st.Horizon())
	if head <= from {
		return nil
	}
	if len(in.pending) == 0 {
		in.scanned = head
		return nil
	}
	type hit struct {
		id  string
		rev graph.Revision
		seq int
	}
	var hits []hit
	err := st.Changes(ctx, from, head, func(rec graph.ChangeRecord) bool {
		o := rec.After
		if rec.Op == graph.OpDelete {
			o = rec.Before
		}
		m := graph.MetaOf(o)
		if m == nil {
			return true
		}
		for _, id := range in.byUID[m.UID] {
			t := in.pending[id]
			if t.Object == rec.Ref && t.Delete == (rec.Op == graph.OpDelete) && (t.Delete || m.ResourceVersion == t.ResourceVersion) {
				hits = append(hits, hit{id, rec.Revision, rec.Seq})
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("audit: scan changes (%d, %d]: %w", from, head, err)
	}
	var b graph.AuditBatch
	for _, h := range hits {
		t, ok := in.pending[h.id]
		if !ok {
			continue // matched twice in this scan
		}
		if err := in.recordActor(ctx, h.rev, h.seq, t); err != nil {
			return err
		}
		b.ResolvePending(h.id)
		in.dropPending(h.id)
	}
	if err := in.store.Apply(ctx, &b); err != nil {
		return err
	}
	in.scanned = head
	return nil
}

// expire gives up on actors that waited longer than Patience.
func (in *AuditIngester) expire(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	cutoff := in.now().Add(-in.patience)
	var b graph.AuditBatch
	for id, t := range in.pending {
		if t.Time.Before(cutoff) {
			in.log.Info("no change found for an audited write; its actor is dropped", "auditID", id,
				"object", t.Object.String(), "user", t.Actor.User)
			b.ResolvePending(id)
			in.dropPending(id)
			in.stats.expired.Add(1)
		}
	}
	return in.store.Apply(ctx, &b)
}
