package oracle

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/authorization/union"
	"k8s.io/kubernetes/pkg/registry/rbac/validation"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"

	"github.com/kiem-io/kiem/graph"
)

// Oracle answers authorization requests with the kube-apiserver's own code, assembled as
// `kube-apiserver --authorization-mode=RBAC` assembles it: the privileged-group authorizer for system:masters,
// then the RBAC authorizer, in a union that stops at the first opinion. The RBAC authorizer reads the policy from
// in-memory getters and listers instead of informers.
type Oracle struct {
	policy   *Policy
	authz    authorizer.Authorizer
	resolver validation.AuthorizationRuleResolver
	// ruleIndex maps the address of every rule of every role to its index in that role's rules: the rule
	// resolver hands out pointers into the roles' Rules slices.
	ruleIndex map[*rbacv1.PolicyRule]ruleAt
	// unordered names the aggregated ClusterRoles whose rule order the controller never settles.
	unordered map[string]bool
}

// ruleAt places a rule in its role.
type ruleAt struct {
	index int
	// unordered is true when the rule's role is in Aggregation.Unordered: its index is a matter of timing.
	unordered bool
}

// Options chooses how New treats aggregated ClusterRoles.
type Options struct {
	// Aggregate recomputes aggregated ClusterRoles with Aggregate, for policies created from manifests. Leave it
	// false for policies read from a live cluster, whose aggregated roles already hold the controller's rules.
	Aggregate bool
}

// New builds an oracle over a deep copy of p.
func New(p *Policy, opts Options) (*Oracle, error) {
	eff := p.DeepCopy()
	var unordered map[string]bool
	if opts.Aggregate {
		agg, err := Aggregate(eff.ClusterRoles)
		if err != nil {
			return nil, err
		}
		eff.ClusterRoles, unordered = agg.ClusterRoles, agg.Unordered
	}
	resolver, static := validation.NewTestRuleResolver(eff.Roles, eff.RoleBindings, eff.ClusterRoles,
		eff.ClusterRoleBindings)
	o := &Oracle{
		policy: eff,
		authz: union.New(
			authorizerfactory.NewPrivilegedGroups(user.SystemPrivilegedGroup),
			rbac.New(static, static, static, static),
		),
		resolver:  resolver,
		ruleIndex: make(map[*rbacv1.PolicyRule]ruleAt),
		unordered: unordered,
	}
	for _, r := range eff.Roles {
		for i := range r.Rules {
			o.ruleIndex[&r.Rules[i]] = ruleAt{index: i}
		}
	}
	for _, cr := range eff.ClusterRoles {
		for i := range cr.Rules {
			o.ruleIndex[&cr.Rules[i]] = ruleAt{index: i, unordered: unordered[cr.Name]}
		}
	}
	return o, nil
}

// Unordered names the aggregated ClusterRoles whose rule order never settles (see Aggregation.Unordered).
func (o *Oracle) Unordered() map[string]bool { return o.unordered }

// Policy returns the policy the authorizer sees, with aggregated rules computed when Options.Aggregate was set.
// Callers must not modify it.
func (o *Oracle) Policy() *Policy { return o.policy }

// Attributes converts a kiem request into the attributes the apiserver's authorization filter builds: a
// non-resource request (NonResourceURL set) carries only the verb and the path, never a namespace.
func Attributes(id graph.Identity, a graph.Action) authorizer.AttributesRecord {
	u := &user.DefaultInfo{Name: id.User, Groups: slices.Clone(id.Groups)}
	if a.NonResourceURL != "" {
		return authorizer.AttributesRecord{User: u, Verb: a.Verb, Path: a.NonResourceURL}
	}
	return authorizer.AttributesRecord{
		User: u, Verb: a.Verb, Namespace: a.Namespace, APIGroup: a.APIGroup, Resource: a.Resource,
		Subresource: a.Subresource, Name: a.Name, ResourceRequest: true,
	}
}

// Decision is the oracle's answer.
type Decision struct {
	Allowed bool
	// Reason is the authorizer's reason, e.g. `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to
	// User "z"`.
	Reason string
}

// Authorize asks the authorizer chain.
func (o *Oracle) Authorize(ctx context.Context, id graph.Identity, a graph.Action) (Decision, error) {
	d, reason, err := o.authz.Authorize(ctx, Attributes(id, a))
	if err != nil {
		return Decision{}, fmt.Errorf("authorize: %w", err)
	}
	return Decision{Allowed: d == authorizer.DecisionAllow, Reason: reason}, nil
}

// Grant is one (binding, subject, rule) the RBAC rule resolver visits for an identity and that allows a request.
type Grant struct {
	// Source is what the resolver's source describer prints, which graph.GrantPath.String must reproduce.
	Source string
	// RuleIndex is the rule's index in its role's rules.
	RuleIndex int
	// Rule is the rule itself.
	Rule rbacv1.PolicyRule
	// Unordered is true when the rule belongs to a ClusterRole whose rule order never settles: RuleIndex is then
	// one phase of a cycle, and the grant is identified by its rule instead.
	Unordered bool
}

// Key identifies the grant for comparisons: the source and the rule index, or the rule itself when the index is
// a matter of timing.
func (g Grant) Key() string {
	if g.Unordered {
		return fmt.Sprintf("%s rule %s", g.Source, ruleString(&g.Rule))
	}
	return fmt.Sprintf("%s #%d", g.Source, g.RuleIndex)
}

// ruleString renders a rule so that rules render alike exactly when they are semantically equal (a nil list and
// an empty one alike, [""] apart from []).
func ruleString(r *rbacv1.PolicyRule) string {
	return fmt.Sprintf("verbs=%q apiGroups=%q resources=%q resourceNames=%q nonResourceURLs=%q",
		r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs)
}

// Grants returns every grant that allows the request through RBAC (system:masters is not a grant), in the
// order the authorizer visits them (ClusterRoleBindings, then RoleBindings of the request's namespace).
func (o *Oracle) Grants(ctx context.Context, id graph.Identity, a graph.Action) ([]Grant, error) {
	attrs := Attributes(id, a)
	var grants []Grant
	var visitErr error
	o.resolver.VisitRulesFor(ctx, attrs.User, attrs.Namespace,
		func(source fmt.Stringer, rule *rbacv1.PolicyRule, _ error) bool {
			// Resolution errors (dangling roleRefs) grant nothing; the authorizer only reports them.
			if rule == nil || !rbac.RuleAllows(attrs, rule) {
				return true
			}
			at, ok := o.ruleIndex[rule]
			if !ok {
				visitErr = fmt.Errorf("rule %v of %s is not in any role's rules", rule, source)
				return false
			}
			// The describer is reused across bindings: render it now.
			grants = append(grants, Grant{Source: source.String(), RuleIndex: at.index, Rule: *rule.DeepCopy(),
				Unordered: at.unordered})
			return true
		})
	return grants, visitErr
}

// GrantKeys returns the sorted keys of grants.
func GrantKeys(grants []Grant) []string {
	keys := make([]string, len(grants))
	for i, g := range grants {
		keys[i] = g.Key()
	}
	slices.Sort(keys)
	return keys
}

// PathKeys returns the sorted keys of kiem's grant paths, comparable with GrantKeys.
func (o *Oracle) PathKeys(paths []graph.GrantPath) []string {
	keys := make([]string, len(paths))
	for i, p := range paths {
		keys[i] = o.pathGrant(p).Key()
	}
	slices.SortFunc(keys, cmp.Compare)
	return keys
}

// pathGrant converts one of kiem's grant paths into the oracle's terms.
func (o *Oracle) pathGrant(p graph.GrantPath) Grant {
	g := Grant{Source: p.String(), RuleIndex: p.RuleIndex}
	if p.Rule != nil {
		g.Rule = *p.Rule
	}
	g.Unordered = p.Role != nil && p.Role.Kind == graph.KindClusterRole && o.unordered[p.Role.Name]
	return g
}
