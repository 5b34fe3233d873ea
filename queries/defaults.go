package queries

import (
	"strings"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries/baseline"
)

// DefaultBaseline returns the classifier of the platform defaults kiem ships (see queries/baseline).
func DefaultBaseline() Baseline { return FromBaseline(baseline.Builtin()) }

// FromBaseline adapts a baseline (kiem's, or kiem's merged with an operator's, see baseline.Load) to the
// engine.
func FromBaseline(b *baseline.Baseline) Baseline { return baselineClassifier{b} }

type baselineClassifier struct{ b *baseline.Baseline }

func (c baselineClassifier) Path(p graph.GrantPath) (bool, string) { return c.b.Path(p) }

func (c baselineClassifier) Classify(o graph.Object) (Status, bool, string) {
	v := c.b.Object(o)
	switch v.Status {
	case baseline.Default:
		return StatusExpected, false, "platform default (" + v.Source + ")"
	case baseline.Modified:
		return StatusRisky, true, "modified platform default (" + v.Source + "): " + strings.Join(v.Differences, "; ")
	}
	return StatusRisky, false, ""
}
