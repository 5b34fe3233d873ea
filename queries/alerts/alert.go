package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries/filters"
)

// Alert is raised when a filter's match set changes at a revision (findings, grants, entities), or for one change
// that a changes filter matches.
type Alert struct {
	// ID is made of the revision, the filter and a sequence number: evaluating a revision again (after a crash)
	// makes the same IDs, so an alert is never stored twice.
	ID         string         `json:"id"`
	FilterID   string         `json:"filterId"`
	FilterName string         `json:"filterName"`
	Target     filters.Target `json:"target"`
	// From and Revision bound the step evaluated: the changes of (From, Revision].
	From     graph.Revision `json:"from"`
	Revision graph.Revision `json:"revision"`
	Time     time.Time      `json:"time"`
	// Entered and Left are what entered and left the match set (the first maxMatches of each; the totals count
	// them all); a changes alert has its change in Entered.
	Entered      []Match `json:"entered,omitempty"`
	Left         []Match `json:"left,omitempty"`
	EnteredTotal int     `json:"enteredTotal"`
	LeftTotal    int     `json:"leftTotal"`
	// Causes are the changes of the step (at most maxCauses; CausesTotal counts them all).
	Causes      []Cause `json:"causes"`
	CausesTotal int     `json:"causesTotal"`
}

// Match is one value of a filter's target: a finding, a grant, an entity or a change.
type Match struct {
	// Key identifies it within the target: a finding's fingerprint, a grant's subject, binding and rule, an
	// object's reference, a change's revision and position.
	Key string `json:"key"`
	// Text says it in one line.
	Text string `json:"text"`
	// Data is its model, as the filter's expression saw it.
	Data json.RawMessage `json:"data"`
}

// Cause is one change of the step.
type Cause struct {
	Revision graph.Revision  `json:"revision"`
	Seq      int             `json:"seq"`
	Op       graph.Op        `json:"op"`
	Ref      graph.ObjectRef `json:"ref"`
	Actor    string          `json:"actor,omitempty"`
}

// maxCauses and maxMatches bound what an alert carries: a step may be a resync of thousands of objects, and an
// alert must fit a webhook's body.
const (
	maxCauses  = 100
	maxMatches = 100
)

// Summary says the alert in one line (Slack, logs).
func (a *Alert) Summary() string {
	switch {
	case a.Target == filters.TargetChanges && len(a.Entered) == 1:
		return fmt.Sprintf("kiem: %s at revision %d: %s", a.FilterName, a.Revision, a.Entered[0].Text)
	case a.LeftTotal == 0 && a.EnteredTotal == 1:
		return fmt.Sprintf("kiem: %s at revision %d: now matches %s", a.FilterName, a.Revision, a.Entered[0].Text)
	case a.EnteredTotal == 0 && a.LeftTotal == 1:
		return fmt.Sprintf("kiem: %s at revision %d: no longer matches %s", a.FilterName, a.Revision, a.Left[0].Text)
	}
	return fmt.Sprintf("kiem: %s at revision %d: %d entered, %d left", a.FilterName, a.Revision, a.EnteredTotal, a.LeftTotal)
}

// alertID names an alert by its revision, its filter and what it holds: evaluating the same step again (after a
// restart) gives the same ID, and two steps at one revision (the findings refreshed in place) different ones.
func alertID(a *Alert) string {
	h := sha256.New()
	for _, ms := range [][]Match{a.Entered, a.Left} {
		for _, m := range ms {
			h.Write([]byte(m.Key))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	return fmt.Sprintf("%016x.%s.%s", uint64(a.Revision), a.FilterID, hex.EncodeToString(h.Sum(nil)[:6]))
}
