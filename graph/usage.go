package graph

import (
	"time"
)

// UsageKey is one kind of request a principal made, as its audit events show it: the attributes the RBAC
// authorizer decides on. Name is kept only when the grant that allowed the request is name-scoped (its rule lists
// resourceNames), so that a usage record says what a least-privilege rule needs and no more. A non-resource request
// has NonResourceURL set and no resource attributes.
type UsageKey struct {
	Verb           string `json:"verb"`
	APIGroup       string `json:"apiGroup,omitempty"`
	Resource       string `json:"resource,omitempty"`
	Subresource    string `json:"subresource,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	Name           string `json:"name,omitempty"`
	NonResourceURL string `json:"nonResourceURL,omitempty"`
}

// Action returns the request the key describes.
func (k UsageKey) Action() Action {
	return Action(k)
}

// Usage is a UsageKey a principal exercised: allowed requests only, the first and last time an audit event
// showed one. Principal is the user name the apiserver authorized (system:serviceaccount:NS:NAME for a
// ServiceAccount; the impersonated user for an impersonated request).
type Usage struct {
	Principal string `json:"principal"`
	UsageKey
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Seen is when audit events first and last showed an identity: a user, a group, or a user's membership of a group.
type Seen struct {
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// merge widens s to cover o.
func (s Seen) merge(o Seen) Seen {
	if s.First.IsZero() || (!o.First.IsZero() && o.First.Before(s.First)) {
		s.First = o.First
	}
	if o.Last.After(s.Last) {
		s.Last = o.Last
	}
	return s
}

// Coverage is the span of time audit events have been ingested over: what "unused for N days" can be judged on.
type Coverage struct {
	Seen
	// Events counts the events ingested (duplicates included: it is a rate indicator, not an exact count).
	Events uint64 `json:"events"`
}
