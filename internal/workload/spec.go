package workload

import "github.com/kiem-io/kiem/graph"

// Spec gives the size of a generated workload. Every field counts synthetic objects only: the base objects
// passed to Generate come on top. Negative numbers count as zero.
type Spec struct {
	// Namespaces is the number of namespaces. Namespaced objects need at least one; with none they are put in
	// the "default" namespace, which every cluster has.
	Namespaces int
	// ServiceAccounts includes the "default" ServiceAccount of every namespace. With fewer ServiceAccounts than
	// namespaces only the first namespaces get their "default" one (pods elsewhere still name "default").
	ServiceAccounts int
	// Roles is the number of namespaced Roles, spread over the namespaces by their size.
	Roles int
	// RoleBindings is the number of RoleBindings, a few of them in kube-system when base has kubeadm's
	// extension-apiserver-authentication-reader Role.
	RoleBindings int
	// ClusterRoles is the number of ClusterRoles, about 5% of them aggregated.
	ClusterRoles int
	// ClusterRoleBindings is the number of ClusterRoleBindings. Bindings of both kinds carry the users and
	// groups: with no binding at all, no user or group can be named.
	ClusterRoleBindings int
	// Users is the exact number of distinct user names that synthetic bindings name as subjects, none of which
	// base's bindings name.
	Users int
	// Groups is the exact number of distinct group names that synthetic bindings name as subjects, none of which
	// base's bindings name.
	Groups int
	// Pods is the number of pods, grouped into workloads and spread over the namespaces by their size.
	Pods int
}

// L returns the large reference workload of ARCHITECTURE.md §8.
func L() Spec {
	return Spec{
		Namespaces:          2000,
		ServiceAccounts:     40000,
		Roles:               10000,
		RoleBindings:        60000,
		ClusterRoles:        1000,
		ClusterRoleBindings: 2000,
		Users:               5000,
		Groups:              500,
		Pods:                100000,
	}
}

// S returns the small reference workload: a few apps on top of a kubeadm cluster.
func S() Spec {
	return Spec{
		Namespaces:          5,
		ServiceAccounts:     40,
		Roles:               20,
		RoleBindings:        40,
		ClusterRoles:        20,
		ClusterRoleBindings: 10,
		Users:               15,
		Groups:              5,
		Pods:                100,
	}
}

// Scale returns the spec with every count multiplied by k, so that Scale(2) of L is a cluster twice L's size in
// every respect: namespaces, ServiceAccounts, roles, bindings, the users and groups they name, and pods. The
// shares the generator draws (aggregated roles, subjects per binding, pods per workload) stay those of the spec,
// which is what a benchmark across sizes wants. k below 1 gives the empty spec.
func (s Spec) Scale(k int) Spec {
	k = max(k, 0)
	s = s.normalized()
	for _, p := range s.counts() {
		*p *= k
	}
	return s
}

// counts returns pointers to every count of s.
func (s *Spec) counts() []*int {
	return []*int{
		&s.Namespaces, &s.ServiceAccounts, &s.Roles, &s.RoleBindings, &s.ClusterRoles,
		&s.ClusterRoleBindings, &s.Users, &s.Groups, &s.Pods,
	}
}

// normalized returns the spec with negative numbers raised to zero.
func (s Spec) normalized() Spec {
	for _, p := range s.counts() {
		*p = max(*p, 0)
	}
	return s
}

// Count returns how many objects of each kind objs holds. For KindUser and KindGroup it counts the distinct
// names that bindings give as subjects of that kind, since users and groups are not API objects.
func Count(objs *graph.Objects) map[graph.Kind]int {
	c := map[graph.Kind]int{}
	if objs == nil {
		return c
	}
	c[graph.KindNamespace] = len(objs.Namespaces)
	c[graph.KindServiceAccount] = len(objs.ServiceAccounts)
	c[graph.KindRole] = len(objs.Roles)
	c[graph.KindClusterRole] = len(objs.ClusterRoles)
	c[graph.KindRoleBinding] = len(objs.RoleBindings)
	c[graph.KindClusterRoleBinding] = len(objs.ClusterRoleBindings)
	c[graph.KindPod] = len(objs.Pods)
	users, groups := map[string]bool{}, map[string]bool{}
	for _, bs := range [][]graph.Binding{objs.RoleBindings, objs.ClusterRoleBindings} {
		for _, b := range bs {
			for _, s := range b.Subjects {
				switch s.Kind {
				case "User":
					users[s.Name] = true
				case "Group":
					groups[s.Name] = true
				}
			}
		}
	}
	c[graph.KindUser] = len(users)
	c[graph.KindGroup] = len(groups)
	return c
}
