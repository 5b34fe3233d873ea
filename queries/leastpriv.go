package queries

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

// maxUsedBy caps HeldPermission.UsedBy: a wildcard grant covers every key a principal used, and the report holds
// one list per held entry.
const maxUsedBy = 20

// leastPrefix starts the name of every suggested object, so that an operator can find (and prune) them.
const leastPrefix = "kiem-least-"

// LeastPrivilegeOptions says when and over which window LeastPrivilege judges usage.
type LeastPrivilegeOptions struct {
	// Now is the time of the judgement. Required: the report depends on it, and a library has no clock of its own.
	Now time.Time
	// UnusedFor is the window: a permission not exercised since Now-UnusedFor counts as unused, and usage older
	// than that is not put in the suggestion. Must be positive.
	UnusedFor time.Duration
	// ObservedSince is when audit observation began (graph.Coverage's First); zero when unknown. A window that
	// starts before it was not fully observed, and the report says so.
	ObservedSince time.Time
}

// LeastPrivilegeReport compares what an identity holds with what audit events show it used, and suggests the
// least RBAC that covers the use.
type LeastPrivilegeReport struct {
	Identity graph.Identity `json:"identity"`
	// Superuser is true when the identity is in system:masters: the apiserver allows it everything before RBAC
	// is consulted, so no RBAC change bounds it.
	Superuser bool        `json:"superuser,omitempty"`
	Window    UsageWindow `json:"window"`
	// Held is every permission the identity holds now: one entry per grant (scope, binding, role, rule) and per
	// verb × API group × resource of the rule (verb × URL for non-resource rules), in EffectivePermissions order.
	Held []HeldPermission `json:"held"`
	// Unused is the subset of Held no usage in the window exercised.
	Unused  []HeldPermission      `json:"unused"`
	Summary LeastPrivilegeSummary `json:"summary"`
	// Suggested is the least RBAC that allows every usage key of the window that current RBAC grants: at most
	// one ClusterRole (cluster-scoped and all-namespaces requests, non-resource URLs) first, then one Role per
	// namespace, each with its binding to the identity.
	Suggested []SuggestedRole `json:"suggested"`
	// NotGrantedByRBAC lists usage keys of the window that current RBAC does not allow: another authorizer (the
	// Node authorizer, a webhook, system:masters) allowed them, or the grant has since been removed. They are
	// left out of the suggestion.
	NotGrantedByRBAC []graph.UsageKey `json:"notGrantedByRBAC,omitempty"`
	// Unrepresentable lists usage keys that no rule can name without granting more, because RBAC reads their
	// '*' as a wildcard. Audit events never produce them; they are left out of the suggestion.
	Unrepresentable []graph.UsageKey   `json:"unrepresentable,omitempty"`
	Diff            LeastPrivilegeDiff `json:"diff"`
	// YAML is Suggested as a multi-document manifest (rbac.authorization.k8s.io/v1), ready for kubectl apply.
	YAML string `json:"yaml"`
}

// UsageWindow is the span of usage the report judges on.
type UsageWindow struct {
	// From is Now-UnusedFor, To is Now.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// ObservedSince is when audit observation began, zero when unknown.
	ObservedSince time.Time `json:"observedSince,omitzero"`
	// Complete is true when observation began at or before From: a permission reported unused was really not
	// exercised over the whole window.
	Complete bool `json:"complete"`
	// Evidence says the above in a sentence, for the CLI and the YAML header.
	Evidence string `json:"evidence"`
}

// LeastPrivilegeSummary counts the report.
type LeastPrivilegeSummary struct {
	Held   int `json:"held"`
	Used   int `json:"used"`
	Unused int `json:"unused"`
	// UsageKeys counts the distinct usage keys of the identity in the window; StaleKeys those last seen before.
	UsageKeys        int `json:"usageKeys"`
	StaleKeys        int `json:"staleKeys"`
	NotGrantedByRBAC int `json:"notGrantedByRBAC"`
	SuggestedRules   int `json:"suggestedRules"`
}

// HeldPermission is one verb on one API group and resource (or one verb on one non-resource URL) that one grant
// gives the identity, and whether usage exercised it.
type HeldPermission struct {
	// Namespace is where the grant applies; empty means cluster-wide (a ClusterRoleBinding).
	Namespace string          `json:"namespace,omitempty"`
	Binding   graph.ObjectRef `json:"binding"`
	// Subject is the binding's subject that names the identity.
	Subject rbacv1.Subject `json:"subject"`
	// Shared is true when Subject is a group: removing the grant takes it from every member, not only from this
	// identity.
	Shared    bool            `json:"shared,omitempty"`
	Role      graph.ObjectRef `json:"role"`
	RuleIndex int             `json:"ruleIndex"`
	// AggregatedFrom names the ClusterRole an aggregated ClusterRole took the rule from.
	AggregatedFrom *graph.ObjectRef `json:"aggregatedFrom,omitempty"`
	// Verb, APIGroup and Resource are as the rule names them: "*" stays "*", a subresource is "pods/log".
	Verb     string `json:"verb"`
	APIGroup string `json:"apiGroup,omitempty"`
	Resource string `json:"resource,omitempty"`
	// ResourceNames are the rule's resourceNames: the entry allows only those names.
	ResourceNames  []string `json:"resourceNames,omitempty"`
	NonResourceURL string   `json:"nonResourceURL,omitempty"`
	// Ineffective is true for a non-resource URL granted through a RoleBinding: the apiserver authorizes
	// non-resource requests outside any namespace, so the grant allows nothing.
	Ineffective bool `json:"ineffective,omitempty"`
	// Used is true when a usage key of the window falls under the entry.
	Used bool `json:"used"`
	// LastUsed is the last use of anything under the entry, before the window included; nil when never seen.
	LastUsed *time.Time `json:"lastUsed,omitempty"`
	// UsedBy lists the usage keys of the window under the entry, the first 20 in key order; Uses counts them
	// all.
	UsedBy []graph.UsageKey `json:"usedBy,omitempty"`
	Uses   int              `json:"uses"`
}

// Rule returns the one-verb, one-group, one-resource (or one-URL) rule the entry stands for.
func (h *HeldPermission) Rule() rbacv1.PolicyRule {
	if h.NonResourceURL != "" {
		return rbacv1.PolicyRule{Verbs: []string{h.Verb}, NonResourceURLs: []string{h.NonResourceURL}}
	}
	return rbacv1.PolicyRule{Verbs: []string{h.Verb}, APIGroups: []string{h.APIGroup},
		Resources: []string{h.Resource}, ResourceNames: h.ResourceNames}
}

// allows reports whether the entry allows the request k describes, where it is granted: a cluster-wide grant
// everywhere, a RoleBinding's only for resource requests in its namespace (as Snapshot.Can visits them).
func (h *HeldPermission) allows(rule *rbacv1.PolicyRule, k graph.UsageKey) bool {
	if h.Namespace != "" && (k.NonResourceURL != "" || k.Namespace != h.Namespace) {
		return false
	}
	return graph.RuleAllows(rule, k.Action())
}

// SuggestedRole is a Role (Namespace set) or the ClusterRole of the suggestion, with the binding that grants it
// to the identity.
type SuggestedRole struct {
	Role    graph.Role    `json:"role"`
	Binding graph.Binding `json:"binding"`
	// Covers lists the usage keys the role is there for, in key order. A namespaced key that the ClusterRole
	// already allows is listed under the ClusterRole only.
	Covers []graph.UsageKey `json:"covers"`
}

// LeastPrivilegeDiff says what replacing the identity's grants with the suggestion changes.
type LeastPrivilegeDiff struct {
	// Removed is Unused grouped by scope: cluster-wide first, then by namespace. A Shared entry goes only by
	// changing a binding other members of its group rely on.
	Removed []ScopedPermissions `json:"removed"`
	// Kept is every used entry of Held, in Held's order.
	Kept []KeptPermission `json:"kept"`
}

// ScopedPermissions are held entries of one scope; Namespace empty means cluster-wide.
type ScopedPermissions struct {
	Namespace   string           `json:"namespace,omitempty"`
	Permissions []HeldPermission `json:"permissions"`
}

// KeptPermission is a used held entry, and whether the suggestion grants less than it.
type KeptPermission struct {
	HeldPermission
	// Narrowed is true when the suggestion replaces the entry by something smaller; NarrowedBy says where:
	// "verb", "apiGroup", "resource", "nonResourceURL" (a wildcard replaced by what was used), "resourceNames"
	// (only the names used), "scope" (a cluster-wide grant used only in namespaces becomes Roles there).
	Narrowed   bool     `json:"narrowed"`
	NarrowedBy []string `json:"narrowedBy,omitempty"`
}

// LeastPrivilege compares what id holds in snap with usage and suggests the least RBAC that allows what id used in
// the window. Records of other principals are ignored, so that a caller may pass a whole store's worth; records
// without a principal are taken as id's. Only usage current RBAC grants is suggested (Snapshot.Can with an RBAC
// reason): the suggestion never allows what id cannot do now, and a fresh identity bound only to it is allowed
// every usage key of the window that RBAC grants.
//
// Returns an error if snap is nil, opts.Now is zero, opts.UnusedFor is not positive or id has no user name, and
// ctx's error if ctx ends first.
func LeastPrivilege(ctx context.Context, snap *graph.Snapshot, id graph.Identity, usage []graph.Usage,
	opts LeastPrivilegeOptions) (*LeastPrivilegeReport, error) {
	switch {
	case snap == nil:
		return nil, errors.New("least privilege: no snapshot")
	case id.User == "":
		return nil, errors.New("least privilege: identity has no user name")
	case opts.Now.IsZero():
		return nil, errors.New("least privilege: Now is not set")
	case opts.UnusedFor <= 0:
		return nil, fmt.Errorf("least privilege: UnusedFor must be positive, got %v", opts.UnusedFor)
	}
	from := opts.Now.Add(-opts.UnusedFor)
	rep := &LeastPrivilegeReport{
		Identity:  id,
		Superuser: id.InGroup(graph.GroupMasters),
		Window:    usageWindow(opts, from),
	}

	keys, last := mergeUsage(id.User, usage)
	var counted []graph.UsageKey
	for _, k := range keys {
		if last[k].Before(from) {
			rep.Summary.StaleKeys++
		} else {
			counted = append(counted, k)
		}
	}
	rep.Summary.UsageKeys = len(counted)

	perms, err := snap.EffectivePermissions(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("least privilege for %s: %w", id.User, err)
	}
	held, rules := expandPermissions(perms)
	narrow, err := markUse(ctx, held, rules, keys, last, from)
	if err != nil {
		return nil, fmt.Errorf("least privilege for %s: %w", id.User, err)
	}
	rep.Held = held

	s := newSuggestionBuilder()
	for i, k := range counted {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("least privilege for %s: %w", id.User, err)
			}
		}
		if !ruleCanName(k) {
			rep.Unrepresentable = append(rep.Unrepresentable, k)
			continue
		}
		d := snap.Can(id, k.Action())
		if len(d.Reasons) == 0 {
			rep.NotGrantedByRBAC = append(rep.NotGrantedByRBAC, k)
			continue
		}
		s.add(k, nameScoped(k, d.Reasons))
	}
	rep.Suggested = s.roles(id)
	rep.YAML, err = suggestionYAML(rep)
	if err != nil {
		return nil, fmt.Errorf("least privilege for %s: %w", id.User, err)
	}

	rep.Unused = []HeldPermission{}
	rep.Diff = LeastPrivilegeDiff{Removed: []ScopedPermissions{}, Kept: []KeptPermission{}}
	for i := range held {
		h := &held[i]
		if !h.Used {
			rep.Unused = append(rep.Unused, *h)
			continue
		}
		by := narrow[i].narrowedBy(h)
		rep.Diff.Kept = append(rep.Diff.Kept, KeptPermission{HeldPermission: *h, Narrowed: len(by) > 0, NarrowedBy: by})
	}
	rep.Diff.Removed = unusedByScope(rep.Unused)
	rep.Summary.Held, rep.Summary.Unused = len(held), len(rep.Unused)
	rep.Summary.Used = len(held) - len(rep.Unused)
	rep.Summary.NotGrantedByRBAC = len(rep.NotGrantedByRBAC)
	for _, r := range rep.Suggested {
		rep.Summary.SuggestedRules += len(r.Role.Rules)
	}
	return rep, nil
}

// Changes returns the suggested objects as additions, for Snapshot.Apply: the what-if of granting the
// suggestion (the identity's current bindings are left as they are).
func (r *LeastPrivilegeReport) Changes() []graph.Change {
	var out []graph.Change
	for i := range r.Suggested {
		role, binding := r.Suggested[i].Role, r.Suggested[i].Binding
		out = append(out, graph.NewChange(nil, &role), graph.NewChange(nil, &binding))
	}
	return out
}

func usageWindow(opts LeastPrivilegeOptions, from time.Time) UsageWindow {
	w := UsageWindow{From: from, To: opts.Now, ObservedSince: opts.ObservedSince}
	span := fmt.Sprintf("audit usage from %s to %s (%s)", from.UTC().Format(time.RFC3339),
		opts.Now.UTC().Format(time.RFC3339), windowDays(opts.UnusedFor))
	switch {
	case opts.ObservedSince.IsZero():
		w.Evidence = span + "; when audit observation began is unknown, so unused may only mean unobserved"
	case !opts.ObservedSince.After(from):
		w.Complete = true
		w.Evidence = span + "; observed since " + opts.ObservedSince.UTC().Format(time.RFC3339) + ", the whole window"
	default:
		observed := max(opts.Now.Sub(opts.ObservedSince), 0)
		w.Evidence = fmt.Sprintf("%s; observed only since %s, the last %s of the window, so unused may only mean unobserved",
			span, opts.ObservedSince.UTC().Format(time.RFC3339), windowDays(observed))
	}
	return w
}

// windowDays renders a duration the way windows are spoken of: "90d", "1d12h0m0s".
func windowDays(d time.Duration) string {
	const day = 24 * time.Hour
	// A window of observation is read in days and hours; seconds and below are noise there.
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	n, rest := d/day, d%day
	switch {
	case n == 0:
		return d.String()
	case rest == 0:
		return fmt.Sprintf("%dd", n)
	}
	return fmt.Sprintf("%dd%s", n, rest)
}

// mergeUsage keeps the records of user (and those that name no principal), merged by key with the latest Last,
// and returns the keys in key order.
func mergeUsage(user string, usage []graph.Usage) ([]graph.UsageKey, map[graph.UsageKey]time.Time) {
	last := map[graph.UsageKey]time.Time{}
	for _, u := range usage {
		if u.Principal != "" && u.Principal != user {
			continue
		}
		if t, ok := last[u.UsageKey]; !ok || u.Last.After(t) {
			last[u.UsageKey] = u.Last
		}
	}
	keys := slices.SortedFunc(maps.Keys(last), compareUsageKeys)
	return keys, last
}

// compareUsageKeys orders keys by where they apply, then what they name: the order of every key list.
func compareUsageKeys(a, b graph.UsageKey) int {
	return cmp.Or(
		strings.Compare(a.NonResourceURL, b.NonResourceURL), // resource keys ("") first
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.APIGroup, b.APIGroup),
		strings.Compare(a.Resource, b.Resource),
		strings.Compare(a.Subresource, b.Subresource),
		strings.Compare(a.Name, b.Name),
		strings.Compare(a.Verb, b.Verb),
	)
}

// expandPermissions breaks every permission's rule into held entries, and returns with them the one-combination
// rule of each, built once for the matching loop.
func expandPermissions(perms []graph.Permission) ([]HeldPermission, []rbacv1.PolicyRule) {
	held := []HeldPermission{}
	var rules []rbacv1.PolicyRule
	for _, p := range perms {
		base := HeldPermission{
			Namespace: p.Namespace,
			Binding:   *p.Binding,
			Subject:   *p.Subject,
			Shared:    p.Subject.Kind == rbacv1.GroupKind,
			Role:      *p.Role,
			RuleIndex: p.RuleIndex,
		}
		if p.AggregatedFrom != nil {
			from := *p.AggregatedFrom
			base.AggregatedFrom = &from
		}
		r := p.Rule
		// A rule may carry resources and URLs both; each part grants on its own.
		for _, g := range ruleValues(r.APIGroups) {
			for _, res := range ruleValues(r.Resources) {
				for _, v := range ruleValues(r.Verbs) {
					h := base
					h.Verb, h.APIGroup, h.Resource = v, g, res
					h.ResourceNames = slices.Clone(r.ResourceNames)
					held = append(held, h)
					rules = append(rules, h.Rule())
				}
			}
		}
		for _, u := range ruleValues(r.NonResourceURLs) {
			for _, v := range ruleValues(r.Verbs) {
				h := base
				h.Verb, h.NonResourceURL = v, u
				h.Ineffective = p.Namespace != ""
				held = append(held, h)
				rules = append(rules, h.Rule())
			}
		}
	}
	return held, rules
}

// ruleValues returns ss without repeats, first occurrence first.
func ruleValues(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// narrowing gathers, while usage is matched, what NarrowedBy needs beyond UsedBy's capped list.
type narrowing struct {
	names      map[string]bool // names of the window's keys under the entry
	unnamed    bool            // a key without a name is under the entry
	clusterKey bool            // a key outside any namespace (all namespaces, cluster-scoped, URL) is under it
}

// markUse sets Used, LastUsed, UsedBy and Uses of every held entry from the keys (window and older).
func markUse(ctx context.Context, held []HeldPermission, rules []rbacv1.PolicyRule, keys []graph.UsageKey,
	last map[graph.UsageKey]time.Time, from time.Time) ([]narrowing, error) {
	narrow := make([]narrowing, len(held))
	for i := range held {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		h, n := &held[i], &narrow[i]
		for _, k := range keys {
			if !h.allows(&rules[i], k) {
				continue
			}
			t := last[k]
			if h.LastUsed == nil || t.After(*h.LastUsed) {
				h.LastUsed = &t
			}
			if t.Before(from) {
				continue
			}
			h.Used = true
			h.Uses++
			if len(h.UsedBy) < maxUsedBy {
				h.UsedBy = append(h.UsedBy, k)
			}
			if k.Name == "" {
				n.unnamed = true
			} else {
				if n.names == nil {
					n.names = map[string]bool{}
				}
				n.names[k.Name] = true
			}
			n.clusterKey = n.clusterKey || k.Namespace == "" || k.NonResourceURL != ""
		}
	}
	return narrow, nil
}

// narrowedBy says where the suggestion grants less than used entry h.
func (n *narrowing) narrowedBy(h *HeldPermission) []string {
	var by []string
	if h.Verb == rbacv1.VerbAll {
		by = append(by, "verb")
	}
	if h.NonResourceURL != "" {
		if strings.HasSuffix(h.NonResourceURL, "*") {
			by = append(by, "nonResourceURL")
		}
		return by
	}
	if h.APIGroup == rbacv1.APIGroupAll {
		by = append(by, "apiGroup")
	}
	if h.Resource == rbacv1.ResourceAll || strings.HasPrefix(h.Resource, "*/") {
		by = append(by, "resource")
	}
	// Named keys become rules listing their names: less than the entry unless it lists exactly those.
	if !n.unnamed && len(n.names) > 0 && (len(h.ResourceNames) == 0 || len(ruleValues(h.ResourceNames)) > len(n.names)) {
		by = append(by, "resourceNames")
	}
	if h.Namespace == "" && !n.clusterKey {
		by = append(by, "scope")
	}
	return by
}

func unusedByScope(unused []HeldPermission) []ScopedPermissions {
	out := []ScopedPermissions{}
	idx := map[string]int{}
	for _, h := range unused {
		i, ok := idx[h.Namespace]
		if !ok {
			i = len(out)
			idx[h.Namespace] = i
			out = append(out, ScopedPermissions{Namespace: h.Namespace})
		}
		out[i].Permissions = append(out[i].Permissions, h)
	}
	// Stable: each group keeps Held's order, and "" (cluster-wide) sorts first.
	slices.SortStableFunc(out, func(a, b ScopedPermissions) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out
}

// ruleCanName reports whether a rule can name k literally: RBAC reads "*" (and "*/sub", and a URL ending in
// "*") in a rule as a wildcard, so a key holding one cannot be granted alone. An empty resource has no rule
// spelling either.
func ruleCanName(k graph.UsageKey) bool {
	if k.Verb == rbacv1.VerbAll || k.Verb == "" {
		return false
	}
	if k.NonResourceURL != "" {
		return !strings.HasSuffix(k.NonResourceURL, "*")
	}
	return k.Resource != "" && k.APIGroup != rbacv1.APIGroupAll && k.Resource != rbacv1.ResourceAll &&
		!strings.HasPrefix(keyResource(k), "*/")
}

// keyResource is how a rule names the key's resource: "pods/log".
func keyResource(k graph.UsageKey) string {
	if k.Subresource == "" {
		return k.Resource
	}
	return k.Resource + "/" + k.Subresource
}

// nameScoped reports whether a request without a name is allowed only by rules with resourceNames (which can
// only be resourceNames: [""]): the suggestion must then keep the name restriction rather than drop it.
func nameScoped(k graph.UsageKey, reasons []graph.GrantPath) bool {
	if k.Name != "" {
		return true
	}
	if k.NonResourceURL != "" {
		return false
	}
	for _, r := range reasons {
		if len(r.Rule.ResourceNames) == 0 {
			return false
		}
	}
	return true
}

// grantAtom is one granted piece of the suggestion: a verb on a group and resource, restricted to name when named,
// or a verb on a URL.
type grantAtom struct {
	url, group, resource, verb, name string
	named                            bool
}

// suggestionBuilder collects atoms by scope ("" is the ClusterRole) with the keys behind them.
type suggestionBuilder struct {
	atoms map[string]map[grantAtom]bool
	keys  map[string][]graph.UsageKey
	// keyAtom keeps each key's atom, so that keys whose namespaced atom the ClusterRole subsumes move with it.
	keyAtom map[graph.UsageKey]grantAtom
}

func newSuggestionBuilder() *suggestionBuilder {
	return &suggestionBuilder{atoms: map[string]map[grantAtom]bool{}, keys: map[string][]graph.UsageKey{},
		keyAtom: map[graph.UsageKey]grantAtom{}}
}

// add puts granted key k in the suggestion; named says whether its rule must list its name.
func (s *suggestionBuilder) add(k graph.UsageKey, named bool) {
	a := grantAtom{verb: k.Verb}
	scope := ""
	if k.NonResourceURL != "" {
		a.url = k.NonResourceURL // the apiserver authorizes URLs outside any namespace: ClusterRole only
	} else {
		a.group, a.resource, a.name, a.named = k.APIGroup, keyResource(k), k.Name, named
		scope = k.Namespace
	}
	if s.atoms[scope] == nil {
		s.atoms[scope] = map[grantAtom]bool{}
	}
	s.atoms[scope][a] = true
	s.keys[scope] = append(s.keys[scope], k)
	s.keyAtom[k] = a
}

// atomSubsumed reports whether atoms, granted where they are, already allow a: an unnamed atom allows every name.
func atomSubsumed(atoms map[grantAtom]bool, a grantAtom) bool {
	if !a.named {
		return false
	}
	unnamed := a
	unnamed.name, unnamed.named = "", false
	return atoms[unnamed]
}

// roles builds the suggested roles: the ClusterRole first, then Roles by namespace. Atoms that the ClusterRole
// (granted everywhere) or an unnamed atom of their own scope already allow are dropped, so that each piece is
// granted once; the keys behind a dropped namespaced atom are listed under the ClusterRole.
func (s *suggestionBuilder) roles(id graph.Identity) []SuggestedRole {
	name, subject := suggestedName(id.User), suggestedSubject(id.User)
	cluster := s.atoms[""]
	inCluster := func(a grantAtom) bool { return cluster[a] || atomSubsumed(cluster, a) }
	clusterCovers := slices.Clone(s.keys[""])
	out := []SuggestedRole{}
	for _, scope := range slices.Sorted(maps.Keys(s.atoms)) {
		if scope == "" {
			continue
		}
		atoms := map[grantAtom]bool{}
		for a := range s.atoms[scope] {
			if !inCluster(a) && !atomSubsumed(s.atoms[scope], a) {
				atoms[a] = true
			}
		}
		var covers []graph.UsageKey
		for _, k := range s.keys[scope] {
			if inCluster(s.keyAtom[k]) {
				clusterCovers = append(clusterCovers, k)
			} else {
				covers = append(covers, k)
			}
		}
		if len(atoms) > 0 {
			out = append(out, suggestedRole(scope, name, subject, atoms, covers))
		}
	}
	if len(cluster) > 0 {
		atoms := map[grantAtom]bool{}
		for a := range cluster {
			if !atomSubsumed(cluster, a) {
				atoms[a] = true
			}
		}
		out = slices.Insert(out, 0, suggestedRole("", name, subject, atoms, clusterCovers))
	}
	return out
}

func suggestedRole(scope, name string, subject rbacv1.Subject, atoms map[grantAtom]bool,
	covers []graph.UsageKey) SuggestedRole {
	slices.SortFunc(covers, compareUsageKeys)
	roleKind, bindingKind := graph.KindRole, graph.KindRoleBinding
	if scope == "" {
		roleKind, bindingKind = graph.KindClusterRole, graph.KindClusterRoleBinding
	}
	return SuggestedRole{
		Role: graph.Role{Kind: roleKind, Meta: graph.Meta{Namespace: scope, Name: name}, Rules: compactRules(atoms)},
		Binding: graph.Binding{
			Kind:     bindingKind,
			Meta:     graph.Meta{Namespace: scope, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: string(roleKind), Name: name},
			Subjects: []rbacv1.Subject{subject},
		},
		Covers: covers,
	}
}

// compactRules turns atoms into rules that grant exactly them: per API group, one rule for the resources that
// share a verb set (and, for named atoms, a name set), verbs, resources and names sorted; then one rule per verb
// set of URLs. Every (resource, verb, name) a rule allows is one of the atoms, so nothing more is granted.
func compactRules(atoms map[grantAtom]bool) []rbacv1.PolicyRule {
	type gr struct{ group, resource string }
	unnamed := map[gr][]string{}          // → verbs
	named := map[gr]map[string][]string{} // → verb → names
	urls := map[string][]string{}         // → verbs
	for a := range atoms {
		k := gr{a.group, a.resource}
		switch {
		case a.url != "":
			urls[a.url] = append(urls[a.url], a.verb)
		case a.named:
			if named[k] == nil {
				named[k] = map[string][]string{}
			}
			named[k][a.verb] = append(named[k][a.verb], a.name)
		default:
			unnamed[k] = append(unnamed[k], a.verb)
		}
	}

	// shape is what resources must share to go in one rule. names is only meaningful when named: an unnamed
	// rule and a resourceNames: [""] rule differ.
	type shape struct {
		group, verbs, names string
		named               bool
	}
	type members struct{ verbs, names, items []string }
	shapes := map[shape]*members{}
	put := func(group string, verbs, names []string, isNamed bool, item string) {
		verbs, names = sortedStrings(verbs), sortedStrings(names)
		s := shape{group, stringSetKey(verbs), stringSetKey(names), isNamed}
		m := shapes[s]
		if m == nil {
			m = &members{verbs: verbs, names: names}
			shapes[s] = m
		}
		m.items = append(m.items, item)
	}
	for k, verbs := range unnamed {
		put(k.group, verbs, nil, false, k.resource)
	}
	for k, byVerb := range named {
		// The verbs of one resource that name the same names go in one rule.
		verbsOf := map[string][]string{}
		namesOf := map[string][]string{}
		for v, ns := range byVerb {
			key := stringSetKey(sortedStrings(ns))
			verbsOf[key] = append(verbsOf[key], v)
			namesOf[key] = ns
		}
		for key, verbs := range verbsOf {
			put(k.group, verbs, namesOf[key], true, k.resource)
		}
	}
	var rules []rbacv1.PolicyRule
	for s, m := range shapes {
		r := rbacv1.PolicyRule{APIGroups: []string{s.group}, Resources: sortedStrings(m.items), Verbs: m.verbs}
		if s.named {
			r.ResourceNames = m.names
		}
		rules = append(rules, r)
	}
	clear(shapes)
	for u, verbs := range urls {
		put("", verbs, nil, false, u)
	}
	for _, m := range shapes {
		rules = append(rules, rbacv1.PolicyRule{NonResourceURLs: sortedStrings(m.items), Verbs: m.verbs})
	}
	slices.SortFunc(rules, compareRules)
	return rules
}

// stringSetKey is a map key for a sorted set of strings, whatever they hold.
func stringSetKey(ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

func sortedStrings(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// compareRules orders resource rules before URL rules, then by group, resources, names and verbs.
func compareRules(a, b rbacv1.PolicyRule) int {
	isURL := func(r rbacv1.PolicyRule) int {
		if len(r.NonResourceURLs) > 0 {
			return 1
		}
		return 0
	}
	return cmp.Or(
		cmp.Compare(isURL(a), isURL(b)),
		slices.Compare(a.APIGroups, b.APIGroups),
		slices.Compare(a.Resources, b.Resources),
		slices.Compare(a.NonResourceURLs, b.NonResourceURLs),
		slices.Compare(a.ResourceNames, b.ResourceNames),
		slices.Compare(a.Verbs, b.Verbs),
	)
}

// suggestedSubject names the identity as a binding subject: a ServiceAccount by its namespace and name, anyone
// else as a User.
func suggestedSubject(user string) rbacv1.Subject {
	if ns, name, ok := graph.SplitServiceAccountUsername(user); ok {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}
}

// suggestedName is kiem-least-<ns>.<name> for a ServiceAccount (a namespace holds no dot, so the name tells
// ServiceAccounts apart) and kiem-least-<user> for a user, both DNS-1123 subdomains of at most 253 characters.
// A user name that had to be changed to fit, or a name too long, gets a hash of the user name so that two users
// never share a name.
func suggestedName(user string) string {
	body, exact := sanitiseName(user), false
	if ns, name, ok := graph.SplitServiceAccountUsername(user); ok {
		body, exact = ns+"."+name, true
	} else {
		exact = body == user
	}
	name := leastPrefix + body
	const maxLen = 253
	if exact && len(name) <= maxLen {
		return name
	}
	sum := sha256.Sum256([]byte(user))
	suffix := "-" + hex.EncodeToString(sum[:5])
	if len(name) > maxLen-len(suffix) {
		name = strings.TrimRight(name[:maxLen-len(suffix)], "-.")
	}
	return name + suffix
}

// sanitiseName maps s to DNS-1123 subdomain labels: lower case, anything but [a-z0-9.] becomes '-', and labels
// are trimmed of '-' and never empty.
func sanitiseName(s string) string {
	mapped := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, s)
	var labels []string
	for _, l := range strings.Split(mapped, ".") {
		if l = strings.Trim(l, "-"); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return "user"
	}
	return strings.Join(labels, ".")
}

// suggestionYAML renders the suggestion as kubectl applies it, with a header saying where it comes from.
func suggestionYAML(rep *LeastPrivilegeReport) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by kiem from %s.\n", rep.Window.Evidence)
	fmt.Fprintf(&b, "# Least-privilege RBAC for %s: what it used and RBAC grants, nothing more. "+
		"Review before applying;\n", commentSafe(rep.Identity.User))
	b.WriteString("# usage RBAC did not grant (other authorizers, system:masters) is left out.\n")
	if len(rep.Suggested) == 0 {
		b.WriteString("# No usage to grant in the window: nothing suggested.\n")
	}
	typeMeta := func(k graph.Kind) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: string(k)}
	}
	for _, s := range rep.Suggested {
		var role, binding any
		meta := metav1.ObjectMeta{Namespace: s.Role.Namespace, Name: s.Role.Name}
		if s.Role.Kind == graph.KindClusterRole {
			role = &rbacv1.ClusterRole{TypeMeta: typeMeta(s.Role.Kind), ObjectMeta: meta, Rules: s.Role.Rules}
			binding = &rbacv1.ClusterRoleBinding{TypeMeta: typeMeta(s.Binding.Kind), ObjectMeta: meta,
				RoleRef: s.Binding.RoleRef, Subjects: s.Binding.Subjects}
		} else {
			role = &rbacv1.Role{TypeMeta: typeMeta(s.Role.Kind), ObjectMeta: meta, Rules: s.Role.Rules}
			binding = &rbacv1.RoleBinding{TypeMeta: typeMeta(s.Binding.Kind), ObjectMeta: meta,
				RoleRef: s.Binding.RoleRef, Subjects: s.Binding.Subjects}
		}
		for _, o := range []any{role, binding} {
			y, err := yaml.Marshal(o)
			if err != nil {
				return "", fmt.Errorf("render %s %s: %w", s.Role.Kind, s.Role.Name, err)
			}
			b.WriteString("---\n")
			b.Write(y)
		}
	}
	return b.String(), nil
}

// commentSafe keeps a user name from breaking out of a YAML comment.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
