package graph

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Well-known user and group names of the kube-apiserver.
const (
	// GroupMasters is the privileged group: the apiserver allows its members before RBAC is consulted.
	GroupMasters = "system:masters"
	// GroupAuthenticated holds every authenticated caller.
	GroupAuthenticated = "system:authenticated"
	// GroupUnauthenticated holds the anonymous caller.
	GroupUnauthenticated = "system:unauthenticated"
	// GroupServiceAccounts holds every ServiceAccount.
	GroupServiceAccounts = "system:serviceaccounts"
	// UserAnonymous is the name of the anonymous caller.
	UserAnonymous = "system:anonymous"

	serviceAccountPrefix      = "system:serviceaccount:"
	serviceAccountGroupPrefix = "system:serviceaccounts:"
)

// Identity is a caller as the authorizer sees it: a user name and the groups it authenticated with. Groups are
// taken literally: nothing is added (see ImpersonatedIdentity and ServiceAccountIdentity for the identities the
// apiserver builds).
type Identity struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
}

// InGroup reports whether the identity carries group g.
func (id Identity) InGroup(g string) bool { return slices.Contains(id.Groups, g) }

// ServiceAccountUsername returns the user name of ServiceAccount ns/name: system:serviceaccount:ns:name.
func ServiceAccountUsername(ns, name string) string { return serviceAccountPrefix + ns + ":" + name }

// ServiceAccountGroups returns the groups every token of a ServiceAccount in namespace ns carries, except
// system:authenticated, which the authenticator adds for every caller.
func ServiceAccountGroups(ns string) []string {
	return []string{GroupServiceAccounts, serviceAccountGroupPrefix + ns}
}

// SplitServiceAccountUsername parses system:serviceaccount:ns:name. ok is false when user is not the user name of
// a ServiceAccount whose namespace and name are valid API names, which is the apiserver's own test: such a name is
// treated as a plain user.
func SplitServiceAccountUsername(user string) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(user, serviceAccountPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 2 || len(validation.IsDNS1123Label(parts[0])) > 0 || len(validation.IsDNS1123Subdomain(parts[1])) > 0 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// ServiceAccountIdentity is the identity of a token of ServiceAccount ns/name: its user name in the ServiceAccount
// groups and system:authenticated.
func ServiceAccountIdentity(ns, name string) Identity {
	return Identity{User: ServiceAccountUsername(ns, name), Groups: append(ServiceAccountGroups(ns), GroupAuthenticated)}
}

// ImpersonatedIdentity builds the identity the apiserver's impersonation filter builds for
// `--as user --as-group g...`: a ServiceAccount user name with no groups given gets the ServiceAccount groups; every
// user but system:anonymous gets system:authenticated unless system:authenticated or system:unauthenticated was
// given; system:anonymous gets system:unauthenticated unless given.
func ImpersonatedIdentity(user string, groups []string) Identity {
	gs := slices.Clone(groups)
	if ns, _, ok := SplitServiceAccountUsername(user); ok && len(groups) == 0 {
		gs = ServiceAccountGroups(ns)
	}
	if user == UserAnonymous {
		if !slices.Contains(gs, GroupUnauthenticated) {
			gs = append(gs, GroupUnauthenticated)
		}
	} else if !slices.Contains(gs, GroupAuthenticated) && !slices.Contains(gs, GroupUnauthenticated) {
		gs = append(gs, GroupAuthenticated)
	}
	return Identity{User: user, Groups: gs}
}
