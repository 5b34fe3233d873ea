package filters

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// Target is what a filter's expression is evaluated on.
type Target string

// Targets. Findings, grants and entities have a match set, and an alert says what entered and what left it;
// every change that matches a changes filter raises one.
const (
	TargetFindings Target = "findings"
	TargetGrants   Target = "grants"
	TargetChanges  Target = "changes"
	TargetEntities Target = "entities"
)

// Filter is a saved filter.
type Filter struct {
	// ID names the filter in the API and in alerts: lower-case letters, digits and '-', at most 63.
	ID          string `json:"id" yaml:"id"`
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description"`
	Owner       string `json:"owner,omitempty" yaml:"owner"`
	Target      Target `json:"target" yaml:"target"`
	// Kind is the kind of entity an entities filter is about (ClusterRoleBinding, Pod, …).
	Kind graph.Kind `json:"kind,omitempty" yaml:"kind"`
	// Expression is CEL over the target's model; it must give a bool.
	Expression string `json:"expression" yaml:"expression"`
	// Source says where the filter comes from: "api", or the file it was declared in (such filters are
	// replaced from the file at every start).
	Source  string    `json:"source,omitempty" yaml:"-"`
	Created time.Time `json:"created" yaml:"-"`
	Updated time.Time `json:"updated" yaml:"-"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// entityKinds are the kinds an entities filter may name.
var entityKinds = []graph.Kind{graph.KindClusterRole, graph.KindRole, graph.KindClusterRoleBinding, graph.KindRoleBinding,
	graph.KindServiceAccount, graph.KindPod, graph.KindNamespace, graph.KindNode, graph.KindSecret, graph.KindUser}

// ErrInvalid marks a filter that cannot be saved; the message says why.
var ErrInvalid = errors.New("invalid filter")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// check validates everything but the expression.
func (f *Filter) check() error {
	switch {
	case !idPattern.MatchString(f.ID):
		return invalid("id %q: use lower-case letters, digits and '-' (at most 63)", f.ID)
	case f.Name == "":
		return invalid("filter %s: name is required", f.ID)
	case f.Expression == "":
		return invalid("filter %s: expression is required", f.ID)
	}
	switch f.Target {
	case TargetFindings, TargetGrants, TargetChanges:
		if f.Kind != "" {
			return invalid("filter %s: kind is for target entities only", f.ID)
		}
	case TargetEntities:
		known := false
		for _, k := range entityKinds {
			known = known || k == f.Kind
		}
		if !known {
			return invalid("filter %s: kind %q: one of %v", f.ID, f.Kind, entityKinds)
		}
	default:
		return invalid("filter %s: target %q: one of findings, grants, changes, entities", f.ID, f.Target)
	}
	return nil
}
