package gql

import (
	"context"
	"errors"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// GrantPath is one grant, read at a view: binding → subject → role → rule.
type GrantPath struct {
	v *view
	p graph.GrantPath
}

// Binding returns the binding of the path. A path always points into its own snapshot, so the binding exists.
func (g *GrantPath) Binding() (BindingNode, error) {
	n, ok := g.v.nodeOf(*g.p.Binding).(BindingNode)
	if !ok {
		return nil, fmt.Errorf("grant path names %s, which revision %d lacks", g.p.Binding, g.v.rev)
	}
	return n, nil
}
func (g *GrantPath) Subject() (*BindingSubject, error) {
	b, err := g.Binding()
	if err != nil {
		return nil, err
	}
	return &BindingSubject{v: g.v, s: *g.p.Subject, binding: b.binding()}, nil
}
func (g *GrantPath) Role() (RoleNode, error) {
	n, ok := g.v.nodeOf(*g.p.Role).(RoleNode)
	if !ok {
		return nil, fmt.Errorf("grant path names %s, which revision %d lacks", g.p.Role, g.v.rev)
	}
	return n, nil
}
func (g *GrantPath) Rule() *Rule {
	return &Rule{v: g.v, index: g.p.RuleIndex, r: g.p.Rule, from: g.p.AggregatedFrom}
}
func (g *GrantPath) AggregatedFrom() *ClusterRole {
	if g.p.AggregatedFrom == nil {
		return nil
	}
	return g.v.clusterRole(g.p.AggregatedFrom.Name)
}
func (g *GrantPath) Text() string { return g.p.String() }

// grantSince dates a grant path from the store's object versions. A path of a revision no longer retained, or
// of evidence that does not hold as a grant (an expected default recomputed elsewhere), has no date: null.
func (r *Resolver) grantSince(ctx context.Context, g *GrantPath) (*GrantSince, error) {
	s, err := r.opts.Graph.GrantSince(ctx, g.v.rev, g.p)
	switch {
	case errors.Is(err, graph.ErrGrantNotHeld), errors.Is(err, graph.ErrRevisionGone), errors.Is(err, graph.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &GrantSince{Revision: s.Revision, Time: s.Info.Time, AtHorizon: s.AtHorizon}, nil
}

// Rule is one policy rule of a role.
type Rule struct {
	v     *view
	index int
	r     *rbacv1.PolicyRule
	from  *graph.ObjectRef
}

func rulesOf(v *view, r *graph.Role) []*Rule {
	out := make([]*Rule, len(r.Rules))
	for i := range r.Rules {
		out[i] = &Rule{v: v, index: i, r: &r.Rules[i]}
	}
	return out
}

func (r *Rule) Index() int                { return r.index }
func (r *Rule) Verbs() []string           { return nonNil(r.r.Verbs) }
func (r *Rule) APIGroups() []string       { return nonNil(r.r.APIGroups) }
func (r *Rule) Resources() []string       { return nonNil(r.r.Resources) }
func (r *Rule) ResourceNames() []string   { return nonNil(r.r.ResourceNames) }
func (r *Rule) NonResourceURLs() []string { return nonNil(r.r.NonResourceURLs) }
func (r *Rule) Text() string              { return graph.FormatRule(r.r) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Permission is one rule granted to an identity.
type Permission struct {
	v *view
	p graph.Permission
}

func (p *Permission) Namespace() *string {
	if p.p.Namespace == "" {
		return nil
	}
	return &p.p.Namespace
}
func (p *Permission) Grant() *GrantPath { return &GrantPath{v: p.v, p: p.p.GrantPath} }

// WhoCanEntry is one subject allowed an action.
type WhoCanEntry struct {
	v *view
	e graph.WhoCanEntry
}

func (w *WhoCanEntry) Subject() (SubjectNode, error) {
	n, ok := w.v.subjectNode(w.e.Subject)
	if !ok {
		return nil, fmt.Errorf("who-can names %s, not a subject", w.e.Subject)
	}
	return n, nil
}
func (w *WhoCanEntry) Superuser() bool     { return w.e.Superuser }
func (w *WhoCanEntry) Paths() []*GrantPath { return grantPaths(w.v, w.e.Paths) }
func grantPaths(v *view, ps []graph.GrantPath) []*GrantPath {
	out := make([]*GrantPath, len(ps))
	for i := range ps {
		out[i] = &GrantPath{v: v, p: ps[i]}
	}
	return out
}

// subjectNode returns the node of a subject ref, which exists whether or not an object backs it.
func (v *view) subjectNode(ref graph.ObjectRef) (SubjectNode, bool) {
	switch ref.Kind {
	case graph.KindUser:
		return v.user(ref.Name), true
	case graph.KindGroup:
		return &Group{subjectBase{base{v, ref}}}, true
	case graph.KindServiceAccount:
		return v.saNode(ref.Namespace, ref.Name), true
	}
	return nil, false
}

// Decision is the answer to can.
type Decision struct {
	v  *view
	d  graph.Decision
	id graph.Identity
}

func (d *Decision) Allowed() bool            { return d.d.Allowed }
func (d *Decision) Superuser() bool          { return d.d.Superuser }
func (d *Decision) Reasons() []*GrantPath    { return grantPaths(d.v, d.d.Reasons) }
func (d *Decision) Revision() graph.Revision { return d.v.rev }
func (d *Decision) Identity() *Identity {
	return &Identity{User: d.id.User, Groups: nonNil(d.id.Groups)}
}

// Warning is something the objects hold that grants nothing, or not what it seems.
type Warning struct {
	v *view
	w graph.Warning
}

func (w *Warning) Message() string { return w.w.Message }
func (w *Warning) Node() Node {
	if w.w.Object.Kind == "" {
		return nil
	}
	return w.v.nodeOf(w.w.Object)
}
func (w *Warning) Kind() *Kind {
	if w.w.Object.Kind == "" {
		return nil
	}
	k := kindOf(w.w.Object.Kind)
	return &k
}
func (w *Warning) Namespace() *string { return optional(w.w.Object.Namespace) }
func (w *Warning) Name() *string      { return optional(w.w.Object.Name) }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

var kinds = map[graph.Kind]Kind{
	graph.KindUser: KindUser, graph.KindGroup: KindGroup, graph.KindServiceAccount: KindServiceAccount,
	graph.KindRole: KindRole, graph.KindClusterRole: KindClusterRole, graph.KindRoleBinding: KindRoleBinding,
	graph.KindClusterRoleBinding: KindClusterRoleBinding, graph.KindNamespace: KindNamespace, graph.KindPod: KindPod,
	graph.KindNode: KindNode, graph.KindSecret: KindSecret,
}

func kindOf(k graph.Kind) Kind { return kinds[k] }

func graphKind(k Kind) graph.Kind {
	for gk, v := range kinds {
		if v == k {
			return gk
		}
	}
	return ""
}

// action turns an ActionInput into the engine's Action.
func actionOf(in ActionInput) (graph.Action, error) {
	a := graph.Action{Verb: in.Verb, APIGroup: deref(in.APIGroup), Resource: deref(in.Resource),
		Subresource: deref(in.Subresource), Namespace: deref(in.Namespace), Name: deref(in.Name),
		NonResourceURL: deref(in.NonResourceURL)}
	switch {
	case a.Verb == "":
		return a, userErrorf("action: verb is required")
	case a.NonResourceURL == "" && a.Resource == "":
		return a, userErrorf("action: give a resource or a nonResourceURL")
	case a.NonResourceURL != "" && a.Resource != "":
		return a, userErrorf("action: a request is either for a resource or for a nonResourceURL, not both")
	}
	return a, nil
}

// identity turns a SubjectInput into the identity the authorizer would see.
func (v *view) identity(in SubjectInput) (graph.Identity, error) {
	if in.Name == "" {
		return graph.Identity{}, userErrorf("subject: name is required")
	}
	if in.Cluster != nil && *in.Cluster != v.cluster {
		return graph.Identity{}, userErrorf("subject: cluster %q is not indexed here (this server holds %q)", *in.Cluster, v.cluster)
	}
	ns := ""
	if in.Namespace != nil {
		ns = *in.Namespace
	}
	switch in.Kind {
	case SubjectKindUser:
		if ns != "" {
			return graph.Identity{}, userErrorf("subject: a user has no namespace")
		}
		if in.Groups != nil {
			return graph.ImpersonatedIdentity(in.Name, in.Groups), nil
		}
		return v.user(in.Name).identity(), nil
	case SubjectKindGroup:
		if ns != "" || in.Groups != nil {
			return graph.Identity{}, userErrorf("subject: a group has neither namespace nor groups")
		}
		return graph.Identity{Groups: []string{in.Name}}, nil
	case SubjectKindServiceAccount:
		if ns == "" {
			return graph.Identity{}, userErrorf("subject: a ServiceAccount needs its namespace")
		}
		if in.Groups != nil {
			return graph.Identity{}, userErrorf("subject: a ServiceAccount's groups are implicit; do not give groups")
		}
		return graph.ServiceAccountIdentity(ns, in.Name), nil
	}
	return graph.Identity{}, userErrorf("subject: unknown kind %q", in.Kind)
}
