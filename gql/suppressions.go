package gql

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// SuppressionStore keeps the suppressions; *queries.SuppressionFile implements it. Whoever owns it rebuilds the
// findings' engine when they change (SuppressionFile.OnChange).
type SuppressionStore interface {
	// Current returns the suppressions.
	Current() *queries.Suppressions
	// Add validates s, gives it an ID when it has none, saves it and returns it as saved.
	Add(s queries.Suppression) (queries.Suppression, error)
	// Remove deletes the suppression with the given ID; false when there is none.
	Remove(id string) (bool, error)
}

var errSuppressionsOff = &gqlerror.Error{Message: "suppressions are not enabled on this server",
	Extensions: map[string]any{"code": "NOT_ENABLED"}}

// Suppression is one suppression.
type Suppression struct{ s queries.Suppression }

func (s *Suppression) ID() string                      { return s.s.ID }
func (s *Suppression) Rule() string                    { return s.s.Rule }
func (s *Suppression) Subject() *ObjectRef             { return objectRefOf(s.s.Subject) }
func (s *Suppression) Namespace() *string              { return optional(s.s.Namespace) }
func (s *Suppression) Object() *ObjectRef              { return objectRefOf(s.s.Object) }
func (s *Suppression) Owner() string                   { return s.s.Owner }
func (s *Suppression) Reason() string                  { return s.s.Reason }
func (s *Suppression) Expires() string                 { return s.s.Expires }
func (s *Suppression) Expired() bool                   { return s.s.Expired(time.Now()) }
func (s *Suppression) Source() *string                 { return optional(s.s.Source) }
func suppressionOf(s queries.Suppression) *Suppression { return &Suppression{s} }

func (r *Resolver) suppressionStore() (SuppressionStore, error) {
	if r.opts.Suppressions == nil {
		return nil, coded(errSuppressionsOff)
	}
	return r.opts.Suppressions, nil
}

func (r *Resolver) suppressions() ([]*Suppression, error) {
	st, err := r.suppressionStore()
	if err != nil {
		return nil, err
	}
	items := st.Current().Items()
	out := make([]*Suppression, len(items))
	for i := range items {
		out[i] = suppressionOf(items[i])
	}
	return out, nil
}

// addSuppression validates in and saves it. What the caller got wrong (a missing field, a bad date, a rule no
// pack has, an id already used) is a user error; only saving can fail otherwise.
func (r *Resolver) addSuppression(ctx context.Context, in SuppressionInput) (*Suppression, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, &userError{err.Error()}
	}
	st, err := r.suppressionStore()
	if err != nil {
		return nil, err
	}
	s := queries.Suppression{ID: deref(in.ID), Rule: in.Rule, Namespace: deref(in.Namespace), Owner: deref(in.Owner),
		Reason: in.Reason, Expires: in.Expires}
	if s.Owner == "" {
		if p, ok := auth.PrincipalFrom(ctx); ok {
			s.Owner = p.User
		}
	}
	if in.Subject != nil {
		ref, err := subjectRefOf(*in.Subject)
		if err != nil {
			return nil, userErrorf("addSuppression: subject: %v", err)
		}
		s.Subject = &ref
	}
	if in.Object != nil {
		ref, err := suppressedObject(*in.Object)
		if err != nil {
			return nil, err
		}
		s.Object = &ref
	}
	if eng, err := r.engine(); err == nil {
		if _, ok := eng.Rule(s.Rule); !ok {
			return nil, userErrorf("addSuppression: no rule %q is loaded", s.Rule)
		}
	}
	one, err := queries.NewSuppressions(s)
	if err != nil {
		return nil, userErrorf("addSuppression: %v", err)
	}
	if one.Items()[0].Expired(time.Now()) {
		return nil, userErrorf("addSuppression: expires %s is not after today: the suppression would never apply", s.Expires)
	}
	if _, err := st.Current().With(s); err != nil {
		return nil, userErrorf("addSuppression: %v", err)
	}
	saved, err := st.Add(s)
	if err != nil {
		return nil, err
	}
	return suppressionOf(saved), nil
}

func (r *Resolver) removeSuppression(ctx context.Context, id string) (bool, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return false, &userError{err.Error()}
	}
	st, err := r.suppressionStore()
	if err != nil {
		return false, err
	}
	return st.Remove(id)
}

// subjectRefOf is a subject as findings and the attack graph name it. The error says what is wrong with in,
// for the caller to show with its context.
func subjectRefOf(in SubjectRefInput) (graph.ObjectRef, error) {
	ns := deref(in.Namespace)
	switch {
	case in.Name == "":
		return graph.ObjectRef{}, errors.New("name is required")
	case in.Kind == SubjectKindServiceAccount && ns == "":
		return graph.ObjectRef{}, errors.New("a ServiceAccount needs its namespace")
	case in.Kind != SubjectKindServiceAccount && ns != "":
		return graph.ObjectRef{}, fmt.Errorf("a %s has no namespace", in.Kind)
	}
	switch in.Kind {
	case SubjectKindUser:
		return graph.ObjectRef{Kind: graph.KindUser, Name: in.Name}, nil
	case SubjectKindGroup:
		return graph.ObjectRef{Kind: graph.KindGroup, Name: in.Name}, nil
	}
	return graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: in.Name}, nil
}

// suppressedObject is the object of a suppression.
func suppressedObject(in ObjectRefInput) (graph.ObjectRef, error) {
	ref := graph.ObjectRef{Kind: graphKind(in.Kind), Namespace: deref(in.Namespace), Name: in.Name}
	switch {
	case ref.Name == "":
		return ref, userErrorf("addSuppression: object: name is required")
	case ref.Kind.Namespaced() && ref.Namespace == "":
		return ref, userErrorf("addSuppression: object: a %s lives in a namespace; give namespace", in.Kind)
	case !ref.Kind.Namespaced() && ref.Namespace != "":
		return ref, userErrorf("addSuppression: object: a %s has no namespace", in.Kind)
	}
	return ref, nil
}
