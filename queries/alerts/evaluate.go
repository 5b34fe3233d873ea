package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/filters"
)

// step is what the revisions (from, to] changed.
type step struct {
	from, to graph.Revision
	time     time.Time
	changes  []graph.ChangeRecord
	// grants gives the grants gained and lost, computed only when a grants filter asks.
	grants func() ([]graph.GrantDelta, error)
	// findings are the findings new and resolved; nil when no findings filter asks.
	findings *queries.Delta
}

// evaluate runs every filter on the step and returns the alerts it raises, in filter order. Filters are indexed
// by the field equality they require (filters.Guard), so each value is matched against the few filters that may
// take it, not all of them.
func evaluate(ctx context.Context, fs []*filters.Compiled, st *step) ([]Alert, error) {
	causes, total := causesOf(st.changes)
	byTarget := map[filters.Target][]*filters.Compiled{}
	order := map[*filters.Compiled]int{}
	for i, f := range fs {
		byTarget[f.Target] = append(byTarget[f.Target], f)
		order[f] = i
	}
	open := map[*filters.Compiled]*Alert{}
	alertOf := func(f *filters.Compiled) *Alert {
		a := open[f]
		if a == nil {
			a = &Alert{FilterID: f.ID, FilterName: f.Name, Target: f.Target, From: st.from, Revision: st.to, Time: st.time,
				Causes: causes, CausesTotal: total}
			open[f] = a
		}
		return a
	}
	var out []Alert
	var buf []*filters.Compiled
	// Changes: every matching change is an alert of its own.
	if ix := newIndex(byTarget[filters.TargetChanges]); ix != nil {
		for i := range st.changes {
			c := &st.changes[i]
			m := filters.ChangeOf(c)
			if buf = ix.candidates(m, buf[:0]); len(buf) == 0 {
				continue
			}
			var mt *Match
			for _, f := range buf {
				ok, err := f.Match(ctx, m)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				if mt == nil {
					v := match(fmt.Sprintf("%d/%d", c.Revision, c.Seq), changeText(c), m)
					mt = &v
				}
				a := Alert{FilterID: f.ID, FilterName: f.Name, Target: f.Target, From: st.from, Revision: st.to,
					Time: st.time, Entered: []Match{*mt}, EnteredTotal: 1, Causes: []Cause{causeOf(c)}, CausesTotal: 1}
				out = append(out, a)
			}
		}
	}
	// The others: what entered and left each filter's match set.
	side := func(f *filters.Compiled, entered bool, m func() Match) {
		a := alertOf(f)
		if entered {
			if a.EnteredTotal++; len(a.Entered) < maxMatches {
				a.Entered = append(a.Entered, m())
			}
		} else if a.LeftTotal++; len(a.Left) < maxMatches {
			a.Left = append(a.Left, m())
		}
	}
	if ix := newIndex(byTarget[filters.TargetEntities]); ix != nil {
		for _, o := range condense(st.changes) {
			var before, after *filters.Entity
			if o.Before != nil {
				before = filters.EntityOf(o.Before)
			}
			if o.After != nil {
				after = filters.EntityOf(o.After)
			}
			buf = buf[:0]
			for _, e := range []*filters.Entity{before, after} {
				if e != nil {
					buf = ix.candidates(e, buf)
				}
			}
			slices.SortFunc(buf, func(a, b *filters.Compiled) int { return order[a] - order[b] })
			buf = slices.Compact(buf)
			for _, f := range buf {
				if f.Kind != o.Ref.Kind {
					continue
				}
				var was, is bool
				var err error
				if before != nil {
					if was, err = f.Match(ctx, before); err != nil {
						return nil, err
					}
				}
				if after != nil {
					if is, err = f.Match(ctx, after); err != nil {
						return nil, err
					}
				}
				switch {
				case is && !was:
					side(f, true, func() Match { return match(o.Ref.String(), refText(o.Ref), after) })
				case was && !is:
					side(f, false, func() Match { return match(o.Ref.String(), refText(o.Ref), before) })
				}
			}
		}
	}
	if ix := newIndex(byTarget[filters.TargetGrants]); ix != nil {
		grants, err := st.grants()
		if err != nil {
			return nil, err
		}
		for _, d := range grants {
			for k, ps := range [2][]graph.Permission{d.Gained, d.Lost} {
				for i := range ps {
					g := filters.GrantOf(d.Subject, &ps[i])
					for _, f := range ix.candidates(g, buf[:0]) {
						ok, err := f.Match(ctx, g)
						if err != nil {
							return nil, err
						}
						if ok {
							p := &ps[i]
							side(f, k == 0, func() Match { return match(grantKey(d.Subject, p), grantText(d.Subject, p), g) })
						}
					}
				}
			}
		}
	}
	// Findings enter and leave by fingerprint (the tracker's delta): a finding whose severity or status changes
	// while its fingerprint stays does not enter or leave a filter on those fields. Known gap (docs/alerts.md).
	if ix := newIndex(byTarget[filters.TargetFindings]); ix != nil && st.findings != nil {
		for k, fs := range [2][]queries.Finding{st.findings.New, st.findings.Resolved} {
			for i := range fs {
				fm := filters.FindingOf(&fs[i])
				for _, f := range ix.candidates(fm, buf[:0]) {
					ok, err := f.Match(ctx, fm)
					if err != nil {
						return nil, err
					}
					if ok {
						fd := &fs[i]
						side(f, k == 0, func() Match { return match(fd.Fingerprint, findingText(fd), fm) })
					}
				}
			}
		}
	}
	for _, a := range open {
		out = append(out, *a)
	}
	for i := range out {
		out[i].ID = alertID(&out[i])
	}
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// index finds the filters that may match a value: those without a guard, and those whose guard's field holds
// the guard's value.
type index struct {
	always  []*filters.Compiled
	guarded map[string]map[string][]*filters.Compiled // field → value → filters
	readers map[string]*filters.Guard                 // field → a guard that reads it
	// orEmpty are the guards an empty field passes too (OrEmpty): field → value → filters, and field → all.
	orEmpty    map[string]map[string][]*filters.Compiled
	orEmptyAll map[string][]*filters.Compiled
}

func newIndex(fs []*filters.Compiled) *index {
	if len(fs) == 0 {
		return nil
	}
	ix := &index{guarded: map[string]map[string][]*filters.Compiled{}, readers: map[string]*filters.Guard{},
		orEmpty: map[string]map[string][]*filters.Compiled{}, orEmptyAll: map[string][]*filters.Compiled{}}
	for _, f := range fs {
		if !f.HasGuard {
			ix.always = append(ix.always, f)
			continue
		}
		g := &f.Guard
		if g.OrEmpty {
			if ix.orEmpty[g.Field] == nil {
				ix.orEmpty[g.Field] = map[string][]*filters.Compiled{}
				ix.readers[g.Field] = g
			}
			ix.orEmpty[g.Field][g.Value] = append(ix.orEmpty[g.Field][g.Value], f)
			ix.orEmptyAll[g.Field] = append(ix.orEmptyAll[g.Field], f)
			continue
		}
		if ix.guarded[g.Field] == nil {
			ix.guarded[g.Field] = map[string][]*filters.Compiled{}
			ix.readers[g.Field] = g
		}
		ix.guarded[g.Field][g.Value] = append(ix.guarded[g.Field][g.Value], f)
	}
	return ix
}

// candidates appends the filters that may match model to dst.
func (ix *index) candidates(model any, dst []*filters.Compiled) []*filters.Compiled {
	dst = append(dst, ix.always...)
	for field, byValue := range ix.guarded {
		dst = append(dst, byValue[ix.readers[field].Of(model)]...)
	}
	for field, byValue := range ix.orEmpty {
		if v := ix.readers[field].Of(model); v == "" {
			dst = append(dst, ix.orEmptyAll[field]...)
		} else {
			dst = append(dst, byValue[v]...)
		}
	}
	return dst
}

func match(key, text string, model any) Match {
	data, err := json.Marshal(model)
	if err != nil {
		data = []byte("null")
	}
	return Match{Key: key, Text: text, Data: data}
}

func causesOf(cs []graph.ChangeRecord) ([]Cause, int) {
	out := make([]Cause, 0, min(len(cs), maxCauses))
	for i := range cs {
		if len(out) == maxCauses {
			break
		}
		out = append(out, causeOf(&cs[i]))
	}
	return out, len(cs)
}

func causeOf(c *graph.ChangeRecord) Cause {
	out := Cause{Revision: c.Revision, Seq: c.Seq, Op: c.Op, Ref: c.Ref}
	if c.Actor != nil {
		out.Actor = c.Actor.User
	}
	return out
}

// condense folds the change records into one difference per object.
func condense(cs []graph.ChangeRecord) []graph.ObjectDiff {
	changes := make([]graph.Change, len(cs))
	for i, c := range cs {
		changes[i] = graph.Change{Op: c.Op, Ref: c.Ref, Before: c.Before, After: c.After}
	}
	return graph.CondenseChanges(changes)
}

func refText(r graph.ObjectRef) string {
	if r.Namespace == "" {
		return string(r.Kind) + " " + r.Name
	}
	return string(r.Kind) + " " + r.Namespace + "/" + r.Name
}

func changeText(c *graph.ChangeRecord) string {
	s := string(c.Op) + " " + refText(c.Ref)
	if c.Actor != nil && c.Actor.User != "" {
		s += " by " + c.Actor.User
	}
	return s
}

func grantKey(subject graph.ObjectRef, p *graph.Permission) string {
	return fmt.Sprintf("%s|%s|%d", subject, p.Binding, p.RuleIndex)
}

func grantText(subject graph.ObjectRef, p *graph.Permission) string {
	where := "cluster-wide"
	if p.Namespace != "" {
		where = "in " + p.Namespace
	}
	return fmt.Sprintf("%s: %s %s (%s → %s)", refText(subject), graph.FormatRule(p.Rule), where, refText(*p.Binding), refText(*p.Role))
}

func findingText(f *queries.Finding) string {
	return fmt.Sprintf("[%s] %s: %s", f.Severity, f.Rule, f.Message)
}
