package filters

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// The models below are what expressions see (docs/alerts.md lists them). Absent references have empty fields.

// Ref names an object or a subject.
type Ref struct {
	Kind      string `cel:"kind" json:"kind,omitempty"`
	Namespace string `cel:"namespace" json:"namespace,omitempty"`
	Name      string `cel:"name" json:"name,omitempty"`
}

func refOf(r *graph.ObjectRef) Ref {
	if r == nil {
		return Ref{}
	}
	return Ref{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name}
}

// Finding is a risk finding (variable `finding`).
type Finding struct {
	Rule        string `cel:"rule" json:"rule,omitempty"`
	Pack        string `cel:"pack" json:"pack,omitempty"`
	Title       string `cel:"title" json:"title,omitempty"`
	Severity    string `cel:"severity" json:"severity,omitempty"` // info, low, medium, high, critical
	Status      string `cel:"status" json:"status,omitempty"`     // risky, expected, suppressed
	Subject     Ref    `cel:"subject" json:"subject,omitempty"`
	Object      Ref    `cel:"object" json:"object,omitempty"`
	Namespace   string `cel:"namespace" json:"namespace,omitempty"`
	Message     string `cel:"message" json:"message,omitempty"`
	Fingerprint string `cel:"fingerprint" json:"fingerprint,omitempty"`
}

// FindingOf is the model of a finding.
func FindingOf(f *queries.Finding) *Finding {
	return &Finding{Rule: f.Rule, Pack: f.Pack, Title: f.Title, Severity: f.Severity.String(), Status: string(f.Status),
		Subject: refOf(f.Subject), Object: refOf(f.Object), Namespace: f.Namespace, Message: f.Message,
		Fingerprint: f.Fingerprint}
}

// Grant is one rule granted to a subject through one binding (variable `grant`): gained or lost by a change.
type Grant struct {
	Subject Ref `cel:"subject" json:"subject,omitempty"`
	// Namespace is where the grant applies; empty for a ClusterRoleBinding's, which apply everywhere.
	Namespace       string   `cel:"namespace" json:"namespace,omitempty"`
	Verbs           []string `cel:"verbs" json:"verbs,omitempty"`
	APIGroups       []string `cel:"apiGroups" json:"apiGroups,omitempty"`
	Resources       []string `cel:"resources" json:"resources,omitempty"`
	ResourceNames   []string `cel:"resourceNames" json:"resourceNames,omitempty"`
	NonResourceURLs []string `cel:"nonResourceURLs" json:"nonResourceURLs,omitempty"`
	Binding         Ref      `cel:"binding" json:"binding,omitempty"`
	Role            Ref      `cel:"role" json:"role,omitempty"`

	rule *rbacv1.PolicyRule
}

// GrantOf is the model of a permission of subject.
func GrantOf(subject graph.ObjectRef, p *graph.Permission) *Grant {
	r := p.Rule
	return &Grant{Subject: refOf(&subject), Namespace: p.Namespace, Verbs: nonNil(r.Verbs), APIGroups: nonNil(r.APIGroups),
		Resources: nonNil(r.Resources), ResourceNames: nonNil(r.ResourceNames), NonResourceURLs: nonNil(r.NonResourceURLs),
		Binding: refOf(p.Binding), Role: refOf(p.Role), rule: r}
}

// allows answers grant.allows(verbs, resource): whether the rule allows any of the verbs on the resource (kubectl
// notation: "secrets", "pods/exec", "deployments.apps"), for some object, with the authorizer's matching.
func (g *Grant) allows(verbs []string, resource string) bool {
	if g.rule == nil {
		return false
	}
	res, sub, _ := strings.Cut(resource, "/")
	group := ""
	if name, grp, ok := strings.Cut(res, "."); ok {
		res, group = name, grp
	}
	for _, v := range verbs {
		a := graph.Action{Verb: v, APIGroup: group, Resource: res, Subresource: sub}
		if len(g.rule.ResourceNames) > 0 {
			a.Name = g.rule.ResourceNames[0]
		}
		if graph.RuleAllows(g.rule, a) {
			return true
		}
	}
	return false
}

// Change is one change of the cluster (variable `change`).
type Change struct {
	Op        string `cel:"op" json:"op,omitempty"` // add, update, delete
	Kind      string `cel:"kind" json:"kind,omitempty"`
	Namespace string `cel:"namespace" json:"namespace,omitempty"`
	Name      string `cel:"name" json:"name,omitempty"`
	Revision  int64  `cel:"revision" json:"revision,omitempty"`
	Source    string `cel:"source" json:"source,omitempty"`
	// Actor is who made the change when audit events told (else empty); ActorGroups their groups.
	Actor       string   `cel:"actor" json:"actor,omitempty"`
	ActorGroups []string `cel:"actorGroups" json:"actorGroups,omitempty"`
	// Object is the object after the change (before it, for a delete); Before the object before it (empty for
	// an add).
	Object Entity `cel:"object" json:"object,omitempty"`
	Before Entity `cel:"before" json:"before,omitempty"`
}

// ChangeOf is the model of a change record.
func ChangeOf(c *graph.ChangeRecord) *Change {
	m := &Change{Op: string(c.Op), Kind: string(c.Ref.Kind), Namespace: c.Ref.Namespace, Name: c.Ref.Name,
		Revision: int64(c.Revision), Source: c.Source, ActorGroups: []string{}}
	if c.Actor != nil {
		m.Actor, m.ActorGroups = c.Actor.User, nonNil(c.Actor.Groups)
	}
	switch {
	case c.After != nil:
		m.Object = *EntityOf(c.After)
	case c.Before != nil:
		m.Object = *EntityOf(c.Before)
	default:
		m.Object = *emptyEntity(c.Ref)
	}
	if c.Before != nil {
		m.Before = *EntityOf(c.Before)
	} else {
		m.Before = *emptyEntity(graph.ObjectRef{})
	}
	return m
}

// Rule is one rule of a role.
type Rule struct {
	Verbs           []string `cel:"verbs" json:"verbs,omitempty"`
	APIGroups       []string `cel:"apiGroups" json:"apiGroups,omitempty"`
	Resources       []string `cel:"resources" json:"resources,omitempty"`
	ResourceNames   []string `cel:"resourceNames" json:"resourceNames,omitempty"`
	NonResourceURLs []string `cel:"nonResourceURLs" json:"nonResourceURLs,omitempty"`
}

// Entity is an object of the graph (variable `object`); the fields of other kinds are empty.
type Entity struct {
	Kind        string            `cel:"kind" json:"kind,omitempty"`
	Namespace   string            `cel:"namespace" json:"namespace,omitempty"`
	Name        string            `cel:"name" json:"name,omitempty"`
	Labels      map[string]string `cel:"labels" json:"labels,omitempty"`
	Annotations map[string]string `cel:"annotations" json:"annotations,omitempty"`
	// Bindings.
	RoleRef  Ref   `cel:"roleRef" json:"roleRef,omitempty"`
	Subjects []Ref `cel:"subjects" json:"subjects,omitempty"`
	// Roles (an aggregated ClusterRole's rules as the snapshot computed them).
	Rules      []Rule `cel:"rules" json:"rules,omitempty"`
	Aggregated bool   `cel:"aggregated" json:"aggregated,omitempty"`
	// ServiceAccounts and pods: whether the token is mounted (unset means yes); pods: their account and node.
	AutomountToken     bool   `cel:"automountToken" json:"automountToken,omitempty"`
	ServiceAccountName string `cel:"serviceAccountName" json:"serviceAccountName,omitempty"`
	NodeName           string `cel:"nodeName" json:"nodeName,omitempty"`
	// Secrets: their type and, for token secrets, their ServiceAccount.
	Type string `cel:"type" json:"type,omitempty"`
	// Users declared with their groups.
	Groups []string `cel:"groups" json:"groups,omitempty"`
}

func emptyEntity(ref graph.ObjectRef) *Entity {
	return &Entity{Kind: string(ref.Kind), Namespace: ref.Namespace, Name: ref.Name, Labels: map[string]string{},
		Annotations: map[string]string{}, Subjects: []Ref{}, Rules: []Rule{}, Groups: []string{}}
}

// EntityOf is the model of an object.
func EntityOf(o graph.Object) *Entity {
	meta := graph.MetaOf(o)
	e := emptyEntity(o.Ref())
	if meta.Labels != nil {
		e.Labels = meta.Labels
	}
	if meta.Annotations != nil {
		e.Annotations = meta.Annotations
	}
	switch v := o.(type) {
	case *graph.Binding:
		e.RoleRef = Ref{Kind: v.RoleRef.Kind, Name: v.RoleRef.Name}
		if v.RoleRef.Kind == "Role" {
			e.RoleRef.Namespace = v.Namespace
		}
		for _, s := range v.Subjects {
			e.Subjects = append(e.Subjects, Ref{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name})
		}
	case *graph.Role:
		for _, r := range v.Rules {
			e.Rules = append(e.Rules, Rule{Verbs: nonNil(r.Verbs), APIGroups: nonNil(r.APIGroups), Resources: nonNil(r.Resources),
				ResourceNames: nonNil(r.ResourceNames), NonResourceURLs: nonNil(r.NonResourceURLs)})
		}
		e.Aggregated = v.AggregationRule != nil
	case *graph.ServiceAccount:
		e.AutomountToken = v.AutomountToken == nil || *v.AutomountToken
	case *graph.Pod:
		e.ServiceAccountName, e.NodeName = v.ServiceAccount, v.NodeName
		e.AutomountToken = v.AutomountToken == nil || *v.AutomountToken
	case *graph.Secret:
		e.Type, e.ServiceAccountName = v.Type, v.ServiceAccount
	case *graph.User:
		e.Groups = nonNil(v.Groups)
	}
	return e
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
