package gql

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// AuditReader is what the API reads of the audit store (a *graph.AuditStore).
type AuditReader interface {
	Usage(ctx context.Context, principal string) ([]graph.Usage, error)
	UserSeen(ctx context.Context, user string) (graph.Seen, bool, error)
	GroupSeen(ctx context.Context, group string) (graph.Seen, bool, error)
	MembershipSeen(ctx context.Context, user, group string) (graph.Seen, bool, error)
	Coverage(ctx context.Context) (graph.Coverage, error)
}

var errAuditOff = errors.New("audit events are not enabled on this server")

func (r *Resolver) audit() (AuditReader, error) {
	if r.opts.Audit == nil {
		return nil, userErrorf("%v", errAuditOff)
	}
	return r.opts.Audit, nil
}

func seenOf(s graph.Seen, ok bool, err error) (*Seen, error) {
	if err != nil || !ok {
		return nil, err
	}
	return &Seen{First: s.First, Last: s.Last}, nil
}

// userSeen is when a user name was seen; nil without audit events.
func (r *Resolver) userSeen(ctx context.Context, user string) (*Seen, error) {
	if r.opts.Audit == nil {
		return nil, nil
	}
	return seenOf(r.opts.Audit.UserSeen(ctx, user))
}

func (r *Resolver) groupSeen(ctx context.Context, group string) (*Seen, error) {
	if r.opts.Audit == nil {
		return nil, nil
	}
	return seenOf(r.opts.Audit.GroupSeen(ctx, group))
}

func (r *Resolver) membershipSeen(ctx context.Context, m *GroupMembership) (*Seen, error) {
	if r.opts.Audit == nil || !m.Observed || m.user == "" {
		return nil, nil
	}
	return seenOf(r.opts.Audit.MembershipSeen(ctx, m.user, m.Group.ref.Name))
}

func (r *Resolver) auditCoverage(ctx context.Context) (*AuditCoverage, error) {
	a, err := r.audit()
	if err != nil {
		return nil, err
	}
	c, err := a.Coverage(ctx)
	if err != nil || c.Last.IsZero() {
		return nil, err
	}
	return &AuditCoverage{First: c.First, Last: c.Last, Events: int(min(c.Events, uint64(1<<53)))}, nil
}

// principal is the user name a USER or SERVICE_ACCOUNT subject authenticates as, and its identity.
func principal(v *view, in SubjectInput) (string, graph.ObjectRef, graph.Identity, error) {
	if in.Kind == SubjectKindGroup {
		return "", graph.ObjectRef{}, graph.Identity{}, userErrorf("subject: usage is recorded per user or ServiceAccount, not per group")
	}
	id, err := v.identity(in)
	if err != nil {
		return "", graph.ObjectRef{}, graph.Identity{}, err
	}
	ref := graph.ObjectRef{Kind: graph.KindUser, Name: in.Name}
	if in.Kind == SubjectKindServiceAccount {
		ref = graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: deref(in.Namespace), Name: in.Name}
	}
	return id.User, ref, id, nil
}

func usageOf(u graph.Usage) *Usage {
	k := u.UsageKey
	return &Usage{Verb: k.Verb, APIGroup: k.APIGroup, Resource: k.Resource, Subresource: k.Subresource,
		Namespace: k.Namespace, Name: k.Name, NonResourceURL: k.NonResourceURL, First: u.First, Last: u.Last}
}

func usageKeys(ks []graph.UsageKey) []*UsageKey {
	out := make([]*UsageKey, len(ks))
	for i, k := range ks {
		out[i] = &UsageKey{Verb: k.Verb, APIGroup: k.APIGroup, Resource: k.Resource, Subresource: k.Subresource,
			Namespace: k.Namespace, Name: k.Name, NonResourceURL: k.NonResourceURL}
	}
	return out
}

func (r *Resolver) usage(ctx context.Context, subject SubjectInput, first *int, after *string) (*UsageConnection, error) {
	a, err := r.audit()
	if err != nil {
		return nil, err
	}
	v, err := r.view(ctx, nil)
	if err != nil {
		return nil, err
	}
	user, _, _, err := principal(v, subject)
	if err != nil {
		return nil, err
	}
	us, err := a.Usage(ctx, user)
	if err != nil {
		return nil, err
	}
	// Most recent first: what an account does now matters more than what it did once.
	slices.SortStableFunc(us, func(x, y graph.Usage) int { return y.Last.Compare(x.Last) })
	pg, err := paginate(len(us), first, after)
	if err != nil {
		return nil, err
	}
	c := &UsageConnection{PageInfo: pg.info, TotalCount: len(us), Edges: []*UsageEdge{}, Nodes: []*Usage{}}
	for i := pg.start; i < pg.end; i++ {
		n := usageOf(us[i])
		c.Edges = append(c.Edges, &UsageEdge{Cursor: cursor(i), Node: n})
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// parseWindow reads a duration such as 90d, 720h or 30m.
func parseWindow(s *string) (time.Duration, error) {
	in := "90d"
	if s != nil {
		in = strings.TrimSpace(*s)
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(in, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, userErrorf("unusedFor: %q is not a duration (90d, 720h, 30m)", in)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(in); err != nil {
			return 0, userErrorf("unusedFor: %q is not a duration (90d, 720h, 30m)", in)
		}
	}
	if d <= 0 {
		return 0, userErrorf("unusedFor: %q must be positive", in)
	}
	return d, nil
}

// report computes the least-privilege report of one principal at the head.
func (r *Resolver) report(ctx context.Context, a AuditReader, v *view, id graph.Identity, opts queries.LeastPrivilegeOptions) (*queries.LeastPrivilegeReport, error) {
	us, err := a.Usage(ctx, id.User)
	if err != nil {
		return nil, err
	}
	return queries.LeastPrivilege(ctx, v.snap, id, us, opts)
}

// judgement is what least-privilege judgements read once for all their subjects: the audit store, the head, and
// the window with the audit coverage it is judged against.
func (r *Resolver) judgement(ctx context.Context, unusedFor *string) (AuditReader, *view, queries.LeastPrivilegeOptions, error) {
	var opts queries.LeastPrivilegeOptions
	a, err := r.audit()
	if err != nil {
		return nil, nil, opts, err
	}
	if opts.UnusedFor, err = parseWindow(unusedFor); err != nil {
		return nil, nil, opts, err
	}
	cov, err := a.Coverage(ctx)
	if err != nil {
		return nil, nil, opts, err
	}
	opts.Now, opts.ObservedSince = time.Now(), cov.First
	v, err := r.view(ctx, nil)
	return a, v, opts, err
}

func (r *Resolver) leastPrivilege(ctx context.Context, subject SubjectInput, unusedFor *string) (*LeastPrivilege, error) {
	a, v, opts, err := r.judgement(ctx, unusedFor)
	if err != nil {
		return nil, err
	}
	_, _, id, err := principal(v, subject)
	if err != nil {
		return nil, err
	}
	rep, err := r.report(ctx, a, v, id, opts)
	if err != nil {
		return nil, err
	}
	return leastPrivilegeOf(v, rep), nil
}

func leastPrivilegeOf(v *view, rep *queries.LeastPrivilegeReport) *LeastPrivilege {
	w := rep.Window
	out := &LeastPrivilege{User: rep.Identity.User, Groups: nonNil(rep.Identity.Groups), Superuser: rep.Superuser,
		Window: &UsageWindow{From: w.From, To: w.To, Complete: w.Complete, Evidence: w.Evidence},
		Summary: &LeastPrivilegeSummary{Held: rep.Summary.Held, Used: rep.Summary.Used, Unused: rep.Summary.Unused,
			UsageKeys: rep.Summary.UsageKeys, StaleKeys: rep.Summary.StaleKeys, NotGrantedByRbac: rep.Summary.NotGrantedByRBAC,
			SuggestedRules: rep.Summary.SuggestedRules},
		Held: heldOf(rep.Held), Unused: heldOf(rep.Unused), Yaml: rep.YAML, Suggested: []*SuggestedRole{},
		NotGrantedByRbac: usageKeys(rep.NotGrantedByRBAC), Kept: []*KeptPermission{}}
	if !w.ObservedSince.IsZero() {
		t := w.ObservedSince
		out.Window.ObservedSince = &t
	}
	for _, s := range rep.Suggested {
		sr := &SuggestedRole{Kind: kindOf(s.Role.Kind), Namespace: s.Role.Namespace, Name: s.Role.Name,
			BindingName: s.Binding.Name, Covers: usageKeys(s.Covers)}
		for i := range s.Role.Rules {
			sr.Rules = append(sr.Rules, &Rule{v: v, index: i, r: &s.Role.Rules[i]})
		}
		out.Suggested = append(out.Suggested, sr)
	}
	for i := range rep.Diff.Kept {
		k := &rep.Diff.Kept[i]
		out.Kept = append(out.Kept, &KeptPermission{Permission: heldOne(&k.HeldPermission), Narrowed: k.Narrowed, NarrowedBy: nonNil(k.NarrowedBy)})
	}
	return out
}

func heldOf(hs []queries.HeldPermission) []*HeldPermission {
	out := make([]*HeldPermission, len(hs))
	for i := range hs {
		out[i] = heldOne(&hs[i])
	}
	return out
}

func heldOne(h *queries.HeldPermission) *HeldPermission {
	b, ro := h.Binding, h.Role
	return &HeldPermission{Namespace: h.Namespace, Binding: objectRefOf(&b), Role: objectRefOf(&ro), RuleIndex: h.RuleIndex,
		Shared: h.Shared, Verb: h.Verb, APIGroup: h.APIGroup, Resource: h.Resource, ResourceNames: nonNil(h.ResourceNames),
		NonResourceURL: h.NonResourceURL, Used: h.Used, LastUsed: h.LastUsed, Uses: h.Uses}
}

// unusedPermissions judges KIEM-HYG-009 over the ServiceAccounts and users the head knows (or the one subject).
func (r *Resolver) unusedPermissions(ctx context.Context, unusedFor *string, subject *SubjectInput, namespace *string, requireFull *bool, first *int, after *string) (*FindingConnection, error) {
	a, v, opts, err := r.judgement(ctx, unusedFor)
	if err != nil {
		return nil, err
	}
	type candidate struct {
		ref graph.ObjectRef
		id  graph.Identity
	}
	var cands []candidate
	if subject != nil {
		_, ref, id, err := principal(v, *subject)
		if err != nil {
			return nil, err
		}
		cands = append(cands, candidate{ref, id})
	} else {
		seen := map[graph.ObjectRef]bool{}
		add := func(ref graph.ObjectRef) {
			if seen[ref] || (namespace != nil && ref.Namespace != *namespace) {
				return
			}
			seen[ref] = true
			if ref.Kind == graph.KindServiceAccount {
				cands = append(cands, candidate{ref, graph.ServiceAccountIdentity(ref.Namespace, ref.Name)})
			} else {
				cands = append(cands, candidate{ref, v.user(ref.Name).identity()})
			}
		}
		for _, ns := range v.snap.NamespaceNames() {
			for _, sa := range v.snap.BoundServiceAccounts(ns) {
				add(sa)
			}
		}
		if namespace == nil || *namespace == "" {
			for _, u := range v.snap.Subjects(graph.KindUser) {
				if _, _, sa := graph.SplitServiceAccountUsername(u); !sa {
					add(graph.ObjectRef{Kind: graph.KindUser, Name: u})
				}
			}
		}
	}
	var found []queries.Finding
	for i, c := range cands {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rep, err := r.report(ctx, a, v, c.id, opts)
		if err != nil {
			return nil, err
		}
		if (requireFull == nil || *requireFull) && !rep.Window.Complete {
			continue
		}
		if f, ok := queries.UnusedFinding(c.ref, rep); ok {
			found = append(found, f)
		}
	}
	slices.SortStableFunc(found, func(x, y queries.Finding) int { return int(y.Severity) - int(x.Severity) })
	return findingConnection(r.findingSet(nil, v), found, findingFilter{statuses: []queries.Status{queries.StatusRisky}}, first, after)
}

// changeActors lists the actors of the changes to o's object in (from, to], oldest first.
func (r *Resolver) changeActors(ctx context.Context, o *ObjectChange) ([]*Actor, error) {
	st := r.opts.Graph.Store()
	var revs []graph.Revision
	err := st.ObjectVersions(ctx, o.to.rev, o.o.Ref, func(rev graph.Revision, _ graph.Object) (bool, error) {
		if rev <= o.from {
			return false, nil
		}
		revs = append(revs, rev)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	out := []*Actor{}
	for i := len(revs) - 1; i >= 0; i-- {
		rev := revs[i]
		err := st.Changes(ctx, rev-1, rev, func(rec graph.ChangeRecord) bool {
			if rec.Ref != o.o.Ref {
				return true
			}
			if rec.Actor != nil {
				out = append(out, actorOf(rec.Actor))
			}
			return false
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func actorOf(a *graph.Actor) *Actor {
	return &Actor{User: a.User, Groups: nonNil(a.Groups), ImpersonatedBy: optional(a.ImpersonatedBy),
		UserAgent: a.UserAgent, SourceIP: a.SourceIP, AuditID: a.AuditID}
}
