package load

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// writer is what the source needs of the synthetic cluster: the write and delete of one object.
type writer struct {
	apply  func(runtime.Object) error
	delete func(runtime.Object) error
}

// source makes a steady stream of changes of every kind kiem keeps, each one a write that changes something kiem
// records (so every write must become part of a revision): bindings created, edited and deleted, pods and
// ServiceAccounts created and deleted, role rules edited, labels changed. Created objects are kept in bounded
// pools, so the cluster's size stays about constant over any run length: memory that grows with time is kiem's.
// A source is used by one goroutine.
type source struct {
	w   writer
	r   *rand.Rand
	seq int

	namespaces []*corev1.Namespace
	sas        map[string][]string // namespace → ServiceAccount names, for subjects and pods
	nodes      []string
	roles      []*rbacv1.Role
	crs        []*rbacv1.ClusterRole // non-aggregated, not system:, editable
	rbs        []*rbacv1.RoleBinding // every binding, initial and created
	crbs       []*rbacv1.ClusterRoleBinding
	created    pools

	ops   [opCount]atomic.Int64
	total atomic.Int64
}

// pools are the objects the source created and may delete.
type pools struct {
	rbs  []*rbacv1.RoleBinding
	pods []*corev1.Pod
	sas  []*corev1.ServiceAccount
	crbs []*rbacv1.ClusterRoleBinding
}

const (
	poolBindings = 3000
	poolPods     = 3000
	poolSAs      = 1000
	poolCRBs     = 100
)

type op int

const (
	opBindingCreateDelete op = iota
	opBindingSubjects
	opPodCreateDelete
	opPodLabels
	opRoleRules
	opSACreateDelete
	opSAAutomount
	opCRBCreateDelete
	opClusterRoleRules
	opNamespaceLabels
	opCount
)

var opNames = [opCount]string{"RoleBinding create/delete", "RoleBinding subjects", "Pod create/delete", "Pod labels",
	"Role rules", "ServiceAccount create/delete", "ServiceAccount automount", "ClusterRoleBinding create/delete",
	"ClusterRole rules", "Namespace labels"}

// opWeights is the mix, in percent.
var opWeights = [opCount]int{25, 15, 20, 5, 10, 8, 4, 3, 5, 5}

// newSource takes the cluster's initial objects (as applied) as the material of its changes.
func newSource(w writer, objs []runtime.Object, seed uint64) *source {
	s := &source{w: w, r: rand.New(rand.NewPCG(seed, 0x6c6f6164)), sas: map[string][]string{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			s.namespaces = append(s.namespaces, o)
		case *corev1.ServiceAccount:
			s.sas[o.Namespace] = append(s.sas[o.Namespace], o.Name)
		case *corev1.Node:
			s.nodes = append(s.nodes, o.Name)
		case *rbacv1.Role:
			s.roles = append(s.roles, o)
		case *rbacv1.ClusterRole:
			if o.AggregationRule == nil && !isSystem(o.Name) && !aggregatedInto(o) {
				s.crs = append(s.crs, o)
			}
		case *rbacv1.RoleBinding:
			s.rbs = append(s.rbs, o)
		case *rbacv1.ClusterRoleBinding:
			if !isSystem(o.Name) {
				s.crbs = append(s.crbs, o)
			}
		}
	}
	// A namespace without ServiceAccounts still has pods running as "default".
	for _, ns := range s.namespaces {
		if len(s.sas[ns.Name]) == 0 {
			s.sas[ns.Name] = []string{"default"}
		}
	}
	return s
}

func isSystem(name string) bool { return len(name) > 7 && name[:7] == "system:" }

// aggregatedInto reports whether the role carries an aggregate-to label: its edits would be the aggregation
// controller's to propagate, which the synthetic cluster does not run.
func aggregatedInto(r *rbacv1.ClusterRole) bool {
	for k := range r.Labels {
		if len(k) > 38 && k[:38] == "rbac.authorization.k8s.io/aggregate-to" {
			return true
		}
	}
	return false
}

// run writes rate changes per second until ctx ends, catching up when it falls behind, and returns the first
// write that failed.
func (s *source) run(ctx context.Context, rate int) error {
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int64(float64(rate) * time.Since(start).Seconds())
		for s.total.Load() < due {
			if err := s.step(); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// step makes one change.
func (s *source) step() error {
	n := s.r.IntN(100)
	o := op(0)
	for ; o < opCount-1 && n >= opWeights[o]; o++ {
		n -= opWeights[o]
	}
	if err := s.do(o); err != nil {
		return fmt.Errorf("%s: %w", opNames[o], err)
	}
	s.ops[o].Add(1)
	s.total.Add(1)
	return nil
}

func (s *source) name(prefix string) string {
	s.seq++
	return prefix + "-" + strconv.Itoa(s.seq)
}

func (s *source) namespace() string { return s.namespaces[s.r.IntN(len(s.namespaces))].Name }

// subject names a ServiceAccount of ns, a user or a group, as bindings do.
func (s *source) subject(ns string) rbacv1.Subject {
	switch s.r.IntN(3) {
	case 0:
		sas := s.sas[ns]
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sas[s.r.IntN(len(sas))]}
	case 1:
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("load-user-%d@example.com", s.r.IntN(500))}
	}
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: fmt.Sprintf("load-group-%d", s.r.IntN(50))}
}

// roleRef picks a Role of ns when there is one, else a ClusterRole bound in namespaces in real clusters.
func (s *source) roleRef(ns string) rbacv1.RoleRef {
	if s.r.IntN(2) == 0 {
		for range 8 {
			if r := s.roles[s.r.IntN(len(s.roles))]; r.Namespace == ns {
				return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name}
			}
		}
	}
	names := []string{"view", "edit", "admin"}
	if len(s.crs) > 0 && s.r.IntN(2) == 0 {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: s.crs[s.r.IntN(len(s.crs))].Name}
	}
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: names[s.r.IntN(len(names))]}
}

// grow says whether a pool should gain an object rather than lose one: it fills to half its bound, then
// hovers there.
func (s *source) grow(n, bound int) bool {
	return n == 0 || n < bound/2 || (n < bound && s.r.IntN(2) == 0)
}

func (s *source) do(o op) error {
	switch o {
	case opBindingCreateDelete:
		if s.grow(len(s.created.rbs), poolBindings) {
			ns := s.namespace()
			rb := &rbacv1.RoleBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.name("load-rb")},
				Subjects:   []rbacv1.Subject{s.subject(ns)},
				RoleRef:    s.roleRef(ns),
			}
			s.created.rbs = append(s.created.rbs, rb)
			s.rbs = append(s.rbs, rb)
			return s.w.apply(rb)
		}
		rb := takeRandom(s.r, &s.created.rbs)
		s.rbs = slices.DeleteFunc(s.rbs, func(b *rbacv1.RoleBinding) bool { return b == rb })
		return s.w.delete(rb)
	case opBindingSubjects:
		rb := s.rbs[s.r.IntN(len(s.rbs))]
		next := rb.DeepCopy()
		if len(next.Subjects) > 1 && s.r.IntN(2) == 0 {
			next.Subjects = next.Subjects[:len(next.Subjects)-1]
		} else {
			next.Subjects = append(next.Subjects, s.subject(rb.Namespace))
		}
		s.stamp(next)
		s.replaceRB(rb, next)
		return s.w.apply(next)
	case opPodCreateDelete:
		if s.grow(len(s.created.pods), poolPods) {
			ns := s.namespace()
			sas := s.sas[ns]
			p := &corev1.Pod{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.name("load-pod"), Labels: map[string]string{"app": "load"}},
				Spec:       corev1.PodSpec{ServiceAccountName: sas[s.r.IntN(len(sas))]},
			}
			if len(s.nodes) > 0 {
				p.Spec.NodeName = s.nodes[s.r.IntN(len(s.nodes))]
			}
			s.created.pods = append(s.created.pods, p)
			return s.w.apply(p)
		}
		return s.w.delete(takeRandom(s.r, &s.created.pods))
	case opPodLabels:
		if len(s.created.pods) == 0 {
			return s.do(opPodCreateDelete)
		}
		i := s.r.IntN(len(s.created.pods))
		next := s.created.pods[i].DeepCopy()
		s.stamp(next)
		s.created.pods[i] = next
		return s.w.apply(next)
	case opRoleRules:
		i := s.r.IntN(len(s.roles))
		next := s.roles[i].DeepCopy()
		toggleVerb(&next.Rules, "deletecollection")
		s.stamp(next)
		s.roles[i] = next
		return s.w.apply(next)
	case opSACreateDelete:
		if s.grow(len(s.created.sas), poolSAs) {
			ns := s.namespace()
			sa := &corev1.ServiceAccount{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.name("load-sa")},
			}
			s.created.sas = append(s.created.sas, sa)
			return s.w.apply(sa)
		}
		return s.w.delete(takeRandom(s.r, &s.created.sas))
	case opSAAutomount:
		if len(s.created.sas) == 0 {
			return s.do(opSACreateDelete)
		}
		i := s.r.IntN(len(s.created.sas))
		next := s.created.sas[i].DeepCopy()
		if next.AutomountServiceAccountToken == nil {
			next.AutomountServiceAccountToken = new(false)
		} else {
			next.AutomountServiceAccountToken = nil
		}
		s.stamp(next)
		s.created.sas[i] = next
		return s.w.apply(next)
	case opCRBCreateDelete:
		if s.grow(len(s.created.crbs), poolCRBs) {
			crb := &rbacv1.ClusterRoleBinding{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
				ObjectMeta: metav1.ObjectMeta{Name: s.name("load-crb")},
				Subjects:   []rbacv1.Subject{s.subject(s.namespace())},
				RoleRef:    s.roleRef(""),
			}
			crb.RoleRef.Kind = "ClusterRole"
			if crb.RoleRef.Name == "" || s.r.IntN(2) == 0 {
				crb.RoleRef.Name = "view"
			}
			s.created.crbs = append(s.created.crbs, crb)
			return s.w.apply(crb)
		}
		return s.w.delete(takeRandom(s.r, &s.created.crbs))
	case opClusterRoleRules:
		if len(s.crs) == 0 {
			return s.do(opRoleRules)
		}
		i := s.r.IntN(len(s.crs))
		next := s.crs[i].DeepCopy()
		toggleVerb(&next.Rules, "deletecollection")
		s.stamp(next)
		s.crs[i] = next
		return s.w.apply(next)
	case opNamespaceLabels:
		i := s.r.IntN(len(s.namespaces))
		next := s.namespaces[i].DeepCopy()
		s.stamp(next)
		s.namespaces[i] = next
		return s.w.apply(next)
	}
	return fmt.Errorf("unknown op %d", o)
}

// stamp labels an object with a number never used before. Every update then makes a state the object never had,
// so none reverts an earlier one: kiem keeps the resourceVersion of the last write that changed what it keeps,
// and a toggle undone within one batch would (rightly) leave it at the older version. With stamps, kiem's head
// must hold every object at the resourceVersion of its last write.
func (s *source) stamp(o metav1.Object) {
	l := maps.Clone(o.GetLabels())
	if l == nil {
		l = map[string]string{}
	}
	s.seq++
	l["kiem.io/load"] = strconv.Itoa(s.seq)
	o.SetLabels(l)
}

func (s *source) replaceRB(old, next *rbacv1.RoleBinding) {
	for i, b := range s.rbs {
		if b == old {
			s.rbs[i] = next
		}
	}
	for i, b := range s.created.rbs {
		if b == old {
			s.created.rbs[i] = next
		}
	}
}

// toggleVerb adds verb to the first rule that names resources, or takes it away: a change of what the role grants.
func toggleVerb(rules *[]rbacv1.PolicyRule, verb string) {
	for i := range *rules {
		r := &(*rules)[i]
		if len(r.Resources) == 0 {
			continue
		}
		if j := slices.Index(r.Verbs, verb); j >= 0 {
			r.Verbs = slices.Delete(r.Verbs, j, j+1)
			if len(r.Verbs) == 0 {
				r.Verbs = []string{"get"}
			}
		} else {
			r.Verbs = append(r.Verbs, verb)
		}
		return
	}
	*rules = append(*rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}})
}

// takeRandom removes a random element of pool and returns it.
func takeRandom[T any](r *rand.Rand, pool *[]T) T {
	i := r.IntN(len(*pool))
	v := (*pool)[i]
	(*pool)[i] = (*pool)[len(*pool)-1]
	*pool = (*pool)[:len(*pool)-1]
	return v
}
