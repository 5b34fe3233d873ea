package workload

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// pool is the set of user or group names bindings draw from. Every name is handed out at least once: until the
// pending ones run out, half the draws take the next pending name; the other draws favour low indices, so that a
// few names appear in many bindings and most in one or two, as in a real directory.
type pool struct {
	names   []string
	used    []bool
	pending []int // indices of names, in random order; those before next were handed out
	next    int
}

// subjectPools builds exactly spec.Users user names and spec.Groups group names, none of which base's bindings
// already name.
func (g *generator) subjectPools() {
	takenU, takenG := names{}, names{}
	for _, bs := range [][]graph.Binding{g.out.RoleBindings, g.out.ClusterRoleBindings} {
		for _, b := range bs {
			for _, s := range b.Subjects {
				switch s.Kind {
				case rbacv1.UserKind:
					takenU[s.Name] = true
				case rbacv1.GroupKind:
					takenG[s.Name] = true
				}
			}
		}
	}
	g.users = g.newPool(g.spec.Users, takenU, g.userName)
	g.groups = g.newPool(g.spec.Groups, takenG, g.groupName)
}

// newPool makes a pool of n names from gen, which is called with a growing attempt number until its name is free.
func (g *generator) newPool(n int, taken names, gen func(attempt int) string) *pool {
	p := &pool{names: make([]string, 0, n)}
	for len(p.names) < n {
		for attempt := 0; ; attempt++ {
			if name := gen(attempt); !taken[name] {
				taken[name] = true
				p.names = append(p.names, name)
				break
			}
		}
	}
	p.used = make([]bool, n)
	p.pending = g.r.Perm(n)
	return p
}

// draw returns a name of p, which must not be empty.
func (g *generator) draw(p *pool) string {
	for p.next < len(p.pending) && p.used[p.pending[p.next]] {
		p.next++
	}
	i := g.skewed(len(p.names))
	if p.next < len(p.pending) && g.r.IntN(2) == 0 {
		i = p.pending[p.next]
		p.next++
	}
	p.used[i] = true
	return p.names[i]
}

// userName returns a user name in one of the shapes real authenticators produce: e-mail addresses, OIDC issuer
// URLs with a fragment, prefixed OIDC claims, AWS IAM ARNs, Azure AD object IDs, plain and display names, and
// (rarely) a ServiceAccount's user name bound as a User. attempt > 0 adds a number to make the name unique.
func (g *generator) userName(attempt int) string {
	first, last := pick(g.r, firstNames()), pick(g.r, lastNames())
	num := ""
	if attempt > 0 {
		num = strconv.Itoa(attempt + 1)
	}
	switch n := g.r.IntN(100); {
	case n < 52:
		return first + "." + last + num + "@" + pick(g.r, mailDomains())
	case n < 64:
		return pick(g.r, []string{"https://idp.example.com#", "https://accounts.example.com/realms/corp#"}) + first + "." + last + num
	case n < 74:
		return "oidc:" + first + "." + last + num + "@example.com"
	case n < 82:
		acct := strconv.Itoa(100000000000 + g.r.IntN(900000000000))
		if g.chance(0.5) {
			return "arn:aws:iam::" + acct + ":user/" + first + "." + last + num
		}
		return "arn:aws:sts::" + acct + ":assumed-role/" + title(pick(g.r, teams())) + "Admin/" + first + num
	case n < 87:
		return g.uuid() // an Azure AD object ID
	case n < 93:
		return first[:1] + last + num
	case n < 98:
		return title(first) + " " + title(last) + num
	default:
		ns, sa := g.randomSA()
		return graph.ServiceAccountUsername(ns, sa) + num
	}
}

// groupName returns a group name as identity providers spell them: plain team groups, prefixed OIDC groups,
// GitHub teams ("org/team"), LDAP distinguished names and, rarely, a namespace's ServiceAccount group.
func (g *generator) groupName(attempt int) string {
	team := pick(g.r, teams())
	role := pick(g.r, []string{"admins", "devs", "oncall", "readonly", "sre", "leads", "contractors", "auditors", "deployers"})
	if attempt > 0 {
		role += strconv.Itoa(attempt + 1)
	}
	switch n := g.r.IntN(100); {
	case n < 35:
		return team + "-" + role
	case n < 55:
		return "oidc:" + team + "-" + role
	case n < 75:
		return "github:kiem-io/" + team + "-" + role
	case n < 90:
		return "cn=" + team + "-" + role + ",ou=groups,dc=example,dc=com"
	case n < 97 || attempt > 0:
		return "team-" + team + "-" + role
	default:
		return "system:serviceaccounts:" + pick(g.r, g.tenants).name
	}
}

// title upper-cases the first letter of s.
func title(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// human returns a User or Group subject, whichever pool is not empty (a ServiceAccount when both are).
func (g *generator) human() rbacv1.Subject {
	useUser := len(g.users.names) > 0 && (len(g.groups.names) == 0 || g.chance(0.6))
	switch {
	case useUser:
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: g.draw(g.users)}
	case len(g.groups.names) > 0:
		return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: g.draw(g.groups)}
	}
	sns, name := g.randomSA()
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: sns, Name: name}
}

// serviceAccount returns a ServiceAccount subject for a binding in namespace ns ("" for a ClusterRoleBinding):
// mostly one of t's own, sometimes one of another namespace (CI deployers, Argo CD); a RoleBinding's own
// ServiceAccount sometimes omits the namespace, which then means the binding's.
func (g *generator) serviceAccount(t *tenant, ns string) rbacv1.Subject {
	if t == nil || g.chance(0.25) {
		sns, name := g.randomSA()
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: sns, Name: name}
	}
	s := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: t.name, Name: g.localSA(t)}
	if ns != "" && g.chance(0.2) {
		s.Namespace = ""
	}
	return s
}

// placeUnusedSubjects adds every user and group no binding has named yet to a random synthetic binding, so that
// each appears at least once. It prefers bindings with fewer than four subjects.
func (g *generator) placeUnusedSubjects() {
	nRB := len(g.out.RoleBindings) - g.firstRB
	n := nRB + len(g.out.ClusterRoleBindings) - g.firstCRB
	if n == 0 {
		return
	}
	for _, p := range []*pool{g.users, g.groups} {
		kind := rbacv1.UserKind
		if p == g.groups {
			kind = rbacv1.GroupKind
		}
		for _, i := range p.pending[p.next:] {
			if p.used[i] {
				continue
			}
			p.used[i] = true
			var b *graph.Binding
			for try := 0; try < 8 && (b == nil || len(b.Subjects) >= 4); try++ {
				if i := g.r.IntN(n); i < nRB {
					b = &g.out.RoleBindings[g.firstRB+i]
				} else {
					b = &g.out.ClusterRoleBindings[g.firstCRB+i-nRB]
				}
			}
			b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: kind, APIGroup: rbacv1.GroupName, Name: p.names[i]})
		}
	}
}
