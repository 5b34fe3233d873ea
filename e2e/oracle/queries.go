package oracle

import (
	"math/rand/v2"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// Query is one authorization request: who asks, and for what.
type Query struct {
	ID     graph.Identity `json:"identity"`
	Action graph.Action   `json:"action"`
}

// Requests is the vocabulary random requests are drawn from.
type Requests struct {
	Verbs, APIGroups, Resources, Subresources, Namespaces, Names, URLs []string
	// Users are plain user names; Groups are group names identities may carry.
	Users, Groups []string
	// ServiceAccounts are namespace/name pairs whose token identities are asked about.
	ServiceAccounts [][2]string
}

// WorldRequests is the request vocabulary for RandomWorld: the world's own words plus near misses (other
// namespaces, verbs, names and URLs that rule prefixes do or do not cover).
func WorldRequests() Requests {
	r := Requests{
		Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
			"impersonate", "bind", "escalate", "use", "GET", "proxy", "*"},
		APIGroups: []string{"", "", "apps", "rbac.authorization.k8s.io", "example.com", "other.io", "*"},
		Resources: []string{"pods", "deployments", "secrets", "serviceaccounts", "nodes", "widgets", "configmaps",
			"*"},
		Subresources: []string{"", "", "", "", "exec", "log", "scale", "status", "token", "proxy", "*"},
		Namespaces:   []string{"ns1", "ns2", "ns3", "ns1", "ns2", "ns3", "", "other"},
		Names:        []string{"", "", "a", "b", "c"},
		URLs: []string{"/healthz", "/healthz/ready", "/healthz/*", "/api", "/api/v1", "/apis", "/apis/apps",
			"/apisx", "/metrics", "/metrics/x", "/logs/", "/logs", "/logs/x", "/a", "/a*", "/a**", "/ab", "/", "*"},
		Users: []string{"alice", "Alice", "bob", "eve", "system:serviceaccount:ns1:sa1", "system:serviceaccount:ns2:sa2",
			"system:serviceaccount:ns1:Bad_SA",
			"system:anonymous", "carol@example.com", "https://idp.example.com/u:dave"},
		Groups: []string{"system:authenticated", "system:unauthenticated", "system:serviceaccounts",
			"system:serviceaccounts:ns1", "system:serviceaccounts:ns2", "devs", "ops"},
	}
	for _, ns := range []string{"ns1", "ns2", "ns3"} {
		for _, sa := range []string{"sa1", "sa2", "sa3"} {
			r.ServiceAccounts = append(r.ServiceAccounts, [2]string{ns, sa})
		}
	}
	return r
}

// QueryGen draws requests against one policy: half at random from a vocabulary, half aimed at a binding of the
// policy (an identity one of its subjects names, an action one of its role's rules covers, sometimes nudged off
// it), so that both allowed and denied answers are frequent.
type QueryGen struct {
	rng *rand.Rand
	v   Requests
	p   *Policy
}

// NewQueryGen returns a generator over p, which should be the policy the oracle sees (aggregated rules
// included), so that aimed requests hit real rules.
func NewQueryGen(rng *rand.Rand, p *Policy, v Requests) *QueryGen {
	return &QueryGen{rng: rng, v: v, p: p}
}

// Next draws one query.
func (g *QueryGen) Next() Query {
	if g.rng.IntN(2) == 0 {
		return Query{ID: g.Identity(), Action: g.randomAction()}
	}
	q := g.aimed()
	if g.rng.IntN(10) == 0 {
		q.ID = g.Identity() // someone else asks
	}
	return q
}

// Action draws one action, at random or aimed at a rule.
func (g *QueryGen) Action() graph.Action {
	if g.rng.IntN(2) == 0 {
		return g.randomAction()
	}
	return g.aimed().Action
}

// Identity draws one identity: a user with random groups, a ServiceAccount token, an impersonated user (with the
// groups impersonation adds), a group member, a system:masters member, or an anonymous caller.
func (g *QueryGen) Identity() graph.Identity {
	switch x := g.rng.IntN(100); {
	case x < 30:
		return graph.Identity{User: pick(g.rng, g.v.Users), Groups: g.groups(3)}
	case x < 50 && len(g.v.ServiceAccounts) > 0:
		sa := pick(g.rng, g.v.ServiceAccounts)
		return graph.ServiceAccountIdentity(sa[0], sa[1])
	case x < 70:
		u := pick(g.rng, g.v.Users)
		if g.rng.IntN(3) == 0 && len(g.v.ServiceAccounts) > 0 {
			sa := pick(g.rng, g.v.ServiceAccounts)
			u = graph.ServiceAccountUsername(sa[0], sa[1])
		}
		var gs []string
		if g.rng.IntN(2) == 0 {
			gs = g.groups(2)
		}
		return graph.ImpersonatedIdentity(u, gs)
	case x < 74:
		return graph.Identity{User: "root", Groups: append(g.groups(1), graph.GroupMasters)}
	case x < 85:
		return graph.Identity{User: "kiem-oracle-probe", Groups: []string{pick(g.rng, g.v.Groups)}}
	case x < 92:
		return graph.Identity{User: graph.UserAnonymous, Groups: []string{graph.GroupUnauthenticated}}
	default:
		return graph.Identity{User: pick(g.rng, g.v.Users)}
	}
}

func (g *QueryGen) groups(max int) []string {
	n := g.rng.IntN(max + 1)
	if n == 0 {
		return nil
	}
	return pickSome(g.rng, g.v.Groups, n)
}

func (g *QueryGen) randomAction() graph.Action {
	if g.rng.IntN(5) == 0 {
		a := graph.Action{Verb: pick(g.rng, g.v.Verbs), NonResourceURL: pick(g.rng, g.v.URLs)}
		if g.rng.IntN(4) == 0 {
			a.Namespace = pick(g.rng, g.v.Namespaces) // ignored for non-resource requests
		}
		return a
	}
	a := graph.Action{
		Verb: pick(g.rng, g.v.Verbs), APIGroup: pick(g.rng, g.v.APIGroups), Resource: pick(g.rng, g.v.Resources),
		Subresource: pick(g.rng, g.v.Subresources), Namespace: pick(g.rng, g.v.Namespaces),
		Name: pick(g.rng, g.v.Names),
	}
	// Most requests have neither a subresource nor a name, whatever the vocabulary's proportions.
	if g.rng.IntN(2) == 0 {
		a.Subresource = ""
	}
	if g.rng.IntN(2) == 0 {
		a.Name = ""
	}
	return a
}

// aimed picks a binding, an identity its subjects name and an action a rule of its role covers.
func (g *QueryGen) aimed() Query {
	var (
		ns       string
		ref      rbacv1.RoleRef
		subjects []rbacv1.Subject
	)
	nRB := len(g.p.RoleBindings)
	switch i := g.rng.IntN(nRB + len(g.p.ClusterRoleBindings) + 1); {
	case i < nRB:
		b := g.p.RoleBindings[i]
		ns, ref, subjects = b.Namespace, b.RoleRef, b.Subjects
	case i < nRB+len(g.p.ClusterRoleBindings):
		b := g.p.ClusterRoleBindings[i-nRB]
		ref, subjects = b.RoleRef, b.Subjects
	default:
		return Query{ID: g.Identity(), Action: g.randomAction()}
	}
	id := g.Identity()
	if len(subjects) > 0 {
		id = g.identityFor(pick(g.rng, subjects), ns)
	}
	rules, _ := g.p.RoleRules(ref, ns)
	if len(rules) == 0 {
		return Query{ID: id, Action: g.randomAction()}
	}
	a := g.actionFor(&rules[g.rng.IntN(len(rules))], ns)
	g.nudge(&a)
	return Query{ID: id, Action: a}
}

// identityFor returns an identity that subject s of a binding in namespace ns names, or might name.
func (g *QueryGen) identityFor(s rbacv1.Subject, ns string) graph.Identity {
	switch s.Kind {
	case rbacv1.UserKind:
		if g.rng.IntN(2) == 0 {
			return graph.ImpersonatedIdentity(s.Name, nil)
		}
		return graph.Identity{User: s.Name, Groups: g.groups(2)}
	case rbacv1.GroupKind:
		return graph.Identity{User: pick(g.rng, g.v.Users), Groups: append(g.groups(1), s.Name)}
	case rbacv1.ServiceAccountKind:
		saNS := s.Namespace
		if saNS == "" {
			saNS = ns
		}
		if saNS == "" {
			saNS = pick(g.rng, g.v.Namespaces) // matches nothing in a ClusterRoleBinding
		}
		if g.rng.IntN(4) == 0 {
			return graph.Identity{User: graph.ServiceAccountUsername(saNS, s.Name)}
		}
		return graph.ServiceAccountIdentity(saNS, s.Name)
	}
	return g.Identity()
}

// actionFor returns an action that rule r (of a binding in namespace ns, "" for a ClusterRoleBinding) covers,
// when the rule allows anything at all.
func (g *QueryGen) actionFor(r *rbacv1.PolicyRule, ns string) graph.Action {
	verb := pick(g.rng, g.v.Verbs)
	if len(r.Verbs) > 0 && g.rng.IntN(8) != 0 {
		if v := pick(g.rng, r.Verbs); v != rbacv1.VerbAll {
			verb = v
		}
	}
	if len(r.NonResourceURLs) > 0 && (len(r.Resources) == 0 || g.rng.IntN(2) == 0) {
		return graph.Action{Verb: verb, NonResourceURL: g.urlFor(pick(g.rng, r.NonResourceURLs))}
	}
	a := graph.Action{Verb: verb, Namespace: ns, APIGroup: pick(g.rng, g.v.APIGroups)}
	if ns == "" {
		a.Namespace = pick(g.rng, g.v.Namespaces)
	}
	if len(r.APIGroups) > 0 {
		if grp := pick(g.rng, r.APIGroups); grp != rbacv1.APIGroupAll {
			a.APIGroup = grp
		}
	}
	a.Resource, a.Subresource = pick(g.rng, g.v.Resources), ""
	if len(r.Resources) > 0 {
		res, sub, hasSub := strings.Cut(pick(g.rng, r.Resources), "/")
		if res != rbacv1.ResourceAll {
			a.Resource = res
		}
		switch {
		case hasSub && sub == "*":
			a.Subresource = pick(g.rng, []string{"*", "exec", "status"}) // "pods/*" is literal, not a glob
		case hasSub:
			a.Subresource = sub
		case res == rbacv1.ResourceAll:
			a.Subresource = pick(g.rng, g.v.Subresources)
		}
	}
	a.Name = pick(g.rng, g.v.Names)
	if len(r.ResourceNames) > 0 {
		a.Name = pick(g.rng, r.ResourceNames)
	}
	return a
}

// urlFor returns a path that rule URL u covers: u itself, or for a prefix rule the prefix and more.
func (g *QueryGen) urlFor(u string) string {
	if u == "*" {
		return pick(g.rng, g.v.URLs)
	}
	if strings.HasSuffix(u, "*") && g.rng.IntN(4) != 0 {
		return strings.TrimRight(u, "*") + pick(g.rng, []string{"", "x", "/y", "*"})
	}
	return u
}

// nudge moves an aimed action off its rule now and then, for near misses.
func (g *QueryGen) nudge(a *graph.Action) {
	if g.rng.IntN(4) != 0 {
		return
	}
	switch g.rng.IntN(6) {
	case 0:
		a.Verb = pick(g.rng, g.v.Verbs)
	case 1:
		a.Namespace = pick(g.rng, g.v.Namespaces)
	case 2:
		a.Name = pick(g.rng, g.v.Names)
	case 3:
		a.Subresource = pick(g.rng, g.v.Subresources)
	case 4:
		a.APIGroup = pick(g.rng, g.v.APIGroups)
	default:
		if a.NonResourceURL != "" {
			a.NonResourceURL = pick(g.rng, g.v.URLs)
		} else {
			a.Resource = pick(g.rng, g.v.Resources)
		}
	}
}

// PolicyRequests derives a request vocabulary from a policy: its verbs, API groups, resources and subresources,
// resource names, non-resource URLs (and paths under their prefixes), namespaces, bound users and groups and
// ServiceAccounts, plus a few words it does not hold, for denials.
func PolicyRequests(p *Policy) Requests {
	set := map[string]map[string]bool{}
	add := func(kind string, vals ...string) {
		if set[kind] == nil {
			set[kind] = map[string]bool{}
		}
		for _, v := range vals {
			set[kind][v] = true
		}
	}
	add("verb", "get", "list", "create", "delete", "impersonate", "escalate")
	add("group", "", "example.com")
	add("resource", "pods", "widgets")
	add("sub", "", "", "exec")
	add("ns", "", "other")
	add("name", "", "x")
	add("url", "/", "/nope")
	add("user", graph.UserAnonymous, "nobody")
	add("group-name", graph.GroupAuthenticated, graph.GroupUnauthenticated, graph.GroupServiceAccounts)
	sas := map[[2]string]bool{}
	rules := func(rs []rbacv1.PolicyRule) {
		for _, r := range rs {
			for _, v := range r.Verbs {
				add("verb", strings.ReplaceAll(v, "*", "get"))
			}
			for _, grp := range r.APIGroups {
				add("group", strings.ReplaceAll(grp, "*", "apps"))
			}
			for _, res := range r.Resources {
				res, sub, _ := strings.Cut(res, "/")
				add("resource", strings.ReplaceAll(res, "*", "pods"))
				add("sub", sub)
			}
			add("name", r.ResourceNames...)
			for _, u := range r.NonResourceURLs {
				add("url", u)
				if strings.HasSuffix(u, "*") {
					add("url", strings.TrimRight(u, "*"), strings.TrimRight(u, "*")+"x")
				}
			}
		}
	}
	subjects := func(ss []rbacv1.Subject, ns string) {
		for _, s := range ss {
			switch s.Kind {
			case rbacv1.UserKind:
				add("user", s.Name)
			case rbacv1.GroupKind:
				add("group-name", s.Name)
			case rbacv1.ServiceAccountKind:
				saNS := s.Namespace
				if saNS == "" {
					saNS = ns
				}
				if saNS != "" {
					sas[[2]string{saNS, s.Name}] = true
				}
			}
		}
	}
	for _, sa := range p.ServiceAccounts {
		add("ns", sa.Namespace)
		sas[[2]string{sa.Namespace, sa.Name}] = true
	}
	for _, r := range p.Roles {
		add("ns", r.Namespace)
		rules(r.Rules)
	}
	for _, cr := range p.ClusterRoles {
		rules(cr.Rules)
	}
	for _, b := range p.RoleBindings {
		add("ns", b.Namespace)
		subjects(b.Subjects, b.Namespace)
	}
	for _, b := range p.ClusterRoleBindings {
		subjects(b.Subjects, "")
	}
	keys := func(kind string) []string {
		var out []string
		for k := range set[kind] {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	r := Requests{
		Verbs: keys("verb"), APIGroups: keys("group"), Resources: keys("resource"), Subresources: keys("sub"),
		Namespaces: keys("ns"), Names: keys("name"), URLs: keys("url"), Users: keys("user"),
		Groups: keys("group-name"),
	}
	for sa := range sas {
		r.ServiceAccounts = append(r.ServiceAccounts, sa)
	}
	slices.SortFunc(r.ServiceAccounts, func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) })
	return r
}
