package gql

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries/alerts"
	"github.com/kiem-io/kiem/queries/filters"
	"github.com/kiem-io/kiem/queries/sinks"
)

// AlertSource is the alerts engine (*alerts.Engine): it reloads the filters when they change, lists the stored
// alerts and publishes new ones.
type AlertSource interface {
	NotifyFiltersChanged(ctx context.Context) error
	Alerts(ctx context.Context, q alerts.Query) ([]alerts.Alert, error)
	Subscribe(filterIDs []string) (<-chan *alerts.Alert, func())
}

var errAlertsOff = &gqlerror.Error{Message: "saved filters and alerts are not enabled on this server",
	Extensions: map[string]any{"code": "NOT_ENABLED"}}

func (r *Resolver) alertsOn() error {
	if r.opts.Alerts == nil || r.opts.Graph == nil {
		return coded(errAlertsOff)
	}
	return nil
}

// SavedFilter is a saved filter.
type SavedFilter struct{ f filters.Filter }

func (f *SavedFilter) ID() string                 { return f.f.ID }
func (f *SavedFilter) Name() string               { return f.f.Name }
func (f *SavedFilter) Description() string        { return f.f.Description }
func (f *SavedFilter) Owner() string              { return f.f.Owner }
func (f *SavedFilter) Target() FilterTarget       { return FilterTarget(strings.ToUpper(string(f.f.Target))) }
func (f *SavedFilter) Kind() *string              { return optional(string(f.f.Kind)) }
func (f *SavedFilter) Expression() string         { return f.f.Expression }
func (f *SavedFilter) Source() string             { return f.f.Source }
func (f *SavedFilter) Created() time.Time         { return f.f.Created }
func (f *SavedFilter) Updated() time.Time         { return f.f.Updated }
func savedFilterOf(f filters.Filter) *SavedFilter { return &SavedFilter{f} }

func (r *Resolver) savedFilters(ctx context.Context) ([]*SavedFilter, error) {
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	fs, err := filters.List(ctx, r.opts.Graph.Store())
	if err != nil {
		return nil, err
	}
	out := make([]*SavedFilter, len(fs))
	for i := range fs {
		out[i] = savedFilterOf(fs[i])
	}
	return out, nil
}

func (r *Resolver) saveFilter(ctx context.Context, in SavedFilterInput) (*SavedFilter, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, &userError{err.Error()}
	}
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	f := filters.Filter{ID: in.ID, Name: in.Name, Description: deref(in.Description), Owner: deref(in.Owner),
		Target: filters.Target(strings.ToLower(string(in.Target))), Kind: graph.Kind(deref(in.Kind)), Expression: in.Expression}
	if f.Owner == "" {
		if p, ok := auth.PrincipalFrom(ctx); ok {
			f.Owner = p.User
		}
	}
	saved, err := filters.Save(ctx, r.opts.Graph.Store(), f, time.Now())
	if errors.Is(err, filters.ErrInvalid) {
		return nil, userErrorf("saveFilter: %v", err)
	} else if err != nil {
		return nil, err
	}
	if err := r.opts.Alerts.NotifyFiltersChanged(ctx); err != nil {
		return nil, err
	}
	return savedFilterOf(saved), nil
}

func (r *Resolver) deleteFilter(ctx context.Context, id string) (bool, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return false, &userError{err.Error()}
	}
	if err := r.alertsOn(); err != nil {
		return false, err
	}
	err := filters.Delete(ctx, r.opts.Graph.Store(), id)
	if errors.Is(err, graph.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, r.opts.Alerts.NotifyFiltersChanged(ctx)
}

// Alert is a raised alert. st reads the actors audit events attach to its causes after it was raised.
type Alert struct {
	a  *alerts.Alert
	st *graph.Store
}

func (a *Alert) ID() string               { return a.a.ID }
func (a *Alert) FilterID() string         { return a.a.FilterID }
func (a *Alert) FilterName() string       { return a.a.FilterName }
func (a *Alert) Target() FilterTarget     { return FilterTarget(strings.ToUpper(string(a.a.Target))) }
func (a *Alert) From() graph.Revision     { return a.a.From }
func (a *Alert) Revision() graph.Revision { return a.a.Revision }
func (a *Alert) Time() time.Time          { return a.a.Time }
func (a *Alert) Entered() []*AlertMatch   { return matchesOf(a.a.Entered) }
func (a *Alert) Left() []*AlertMatch      { return matchesOf(a.a.Left) }
func (a *Alert) CausesTotal() int         { return a.a.CausesTotal }
func (a *Alert) EnteredTotal() int        { return a.a.EnteredTotal }
func (a *Alert) LeftTotal() int           { return a.a.LeftTotal }
func (a *Alert) Causes() []*AlertCause {
	out := make([]*AlertCause, len(a.a.Causes))
	for i := range a.a.Causes {
		out[i] = &AlertCause{a.a.Causes[i], a.st}
	}
	return out
}

// AlertMatch is one value that entered or left a filter's match set.
type AlertMatch struct{ m alerts.Match }

func (m *AlertMatch) Key() string           { return m.m.Key }
func (m *AlertMatch) Text() string          { return m.m.Text }
func (m *AlertMatch) Data() json.RawMessage { return m.m.Data }

func matchesOf(ms []alerts.Match) []*AlertMatch {
	out := make([]*AlertMatch, len(ms))
	for i := range ms {
		out[i] = &AlertMatch{ms[i]}
	}
	return out
}

// AlertCause is one change behind an alert.
type AlertCause struct {
	c  alerts.Cause
	st *graph.Store
}

func (c *AlertCause) Revision() graph.Revision { return c.c.Revision }
func (c *AlertCause) Seq() int                 { return c.c.Seq }
func (c *AlertCause) Op() ChangeOp             { return changeOp(c.c.Op) }
func (c *AlertCause) Kind() string             { return string(c.c.Ref.Kind) }
func (c *AlertCause) Namespace() *string       { return optional(c.c.Ref.Namespace) }
func (c *AlertCause) Name() string             { return c.c.Ref.Name }

// Actor is who made the change: known when the alert was raised, or attached since from an audit event (audit
// batches arrive seconds after the change that raised the alert).
func (c *AlertCause) Actor(ctx context.Context) (*string, error) {
	if c.c.Actor != "" || c.st == nil {
		return optional(c.c.Actor), nil
	}
	var actor string
	err := c.st.Changes(ctx, c.c.Revision-1, c.c.Revision, func(rec graph.ChangeRecord) bool {
		if rec.Seq == c.c.Seq && rec.Actor != nil {
			actor = rec.Actor.User
		}
		return rec.Seq < c.c.Seq
	})
	if errors.Is(err, graph.ErrRevisionGone) {
		return nil, nil
	}
	return optional(actor), err
}

// maxAlerts bounds one page of alerts or deliveries.
const maxAlerts = 1000

func (r *Resolver) alerts(ctx context.Context, filter *string, since *graph.Revision, first *int) ([]*Alert, error) {
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	q := alerts.Query{Filter: deref(filter), First: 100}
	if since != nil {
		q.Since = *since
	}
	if first != nil {
		if *first < 0 || *first > maxAlerts {
			return nil, userErrorf("alerts: first must be between 0 and %d", maxAlerts)
		}
		q.First = *first
	}
	if q.First == 0 {
		return []*Alert{}, nil
	}
	as, err := r.opts.Alerts.Alerts(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]*Alert, len(as))
	for i := range as {
		out[i] = &Alert{&as[i], r.opts.Graph.Store()}
	}
	return out, nil
}

func (r *Resolver) subscribeAlerts(ctx context.Context, ids []string, since *graph.Revision) (<-chan *Alert, error) {
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	// Subscribe first, then read what is stored: an alert raised in between comes both ways and is sent once.
	in, cancel := r.opts.Alerts.Subscribe(ids)
	var replay []alerts.Alert
	if since != nil {
		filterIDs := ids
		if len(filterIDs) == 0 {
			filterIDs = []string{""} // every filter's
		}
		for _, id := range filterIDs {
			as, err := r.opts.Alerts.Alerts(ctx, alerts.Query{Filter: id, Since: *since, First: maxAlerts})
			if err != nil {
				cancel()
				return nil, err
			}
			replay = append(replay, as...)
		}
		slices.SortFunc(replay, func(a, b alerts.Alert) int { return strings.Compare(a.ID, b.ID) }) // oldest first
	}
	out := make(chan *Alert, 16)
	go func() {
		defer close(out)
		defer cancel()
		sent := map[string]bool{}
		emit := func(a *alerts.Alert) bool {
			if sent[a.ID] {
				return true
			}
			sent[a.ID] = true
			select {
			case out <- &Alert{a, r.opts.Graph.Store()}:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for i := range replay {
			if !emit(&replay[i]) {
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case a, ok := <-in:
				if !ok {
					return // fell too far behind: the client reconnects with since
				}
				if !emit(a) {
					return
				}
			}
		}
	}()
	return out, nil
}

// Sink is a sink, as the API may show it.
type Sink struct{ s sinks.SinkView }

func (s *Sink) ID() string         { return s.s.ID }
func (s *Sink) Name() string       { return s.s.Name }
func (s *Sink) Type() SinkType     { return SinkType(strings.ToUpper(string(s.s.Type))) }
func (s *Sink) URL() string        { return s.s.URL }
func (s *Sink) HasSecret() bool    { return s.s.HasSecret }
func (s *Sink) Filters() []string  { return nonNil(s.s.Filters) }
func (s *Sink) Owner() string      { return s.s.Owner }
func (s *Sink) Created() time.Time { return s.s.Created }
func (s *Sink) Updated() time.Time { return s.s.Updated }

func (r *Resolver) sinks(ctx context.Context) ([]*Sink, error) {
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	vs, err := sinks.List(ctx, r.opts.Graph.Store())
	if err != nil {
		return nil, err
	}
	out := make([]*Sink, len(vs))
	for i := range vs {
		out[i] = &Sink{vs[i]}
	}
	return out, nil
}

func (r *Resolver) saveSink(ctx context.Context, in SinkInput) (*Sink, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return nil, &userError{err.Error()}
	}
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	s := sinks.Sink{ID: in.ID, Name: in.Name, Type: sinks.Type(strings.ToLower(string(in.Type))), URL: deref(in.URL),
		Secret: deref(in.Secret), Filters: in.Filters, Owner: deref(in.Owner)}
	if s.Owner == "" {
		if p, ok := auth.PrincipalFrom(ctx); ok {
			s.Owner = p.User
		}
	}
	st := r.opts.Graph.Store()
	if err := sinks.Save(ctx, st, s, time.Now()); err != nil {
		if errors.Is(err, sinks.ErrInvalid) {
			return nil, userErrorf("saveSink: %v", err)
		}
		return nil, err
	}
	v, err := sinks.Get(ctx, st, s.ID)
	if err != nil {
		return nil, err
	}
	return &Sink{v}, nil
}

func (r *Resolver) deleteSink(ctx context.Context, id string) (bool, error) {
	if err := auth.RequireAdmin(ctx); err != nil {
		return false, &userError{err.Error()}
	}
	if err := r.alertsOn(); err != nil {
		return false, err
	}
	err := sinks.Delete(ctx, r.opts.Graph.Store(), id)
	if errors.Is(err, graph.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Delivery is one alert's delivery to one sink.
type Delivery struct{ d sinks.Delivery }

func (d *Delivery) ID() string               { return d.d.ID }
func (d *Delivery) AlertID() string          { return d.d.MessageID }
func (d *Delivery) SinkID() string           { return d.d.SinkID }
func (d *Delivery) FilterID() string         { return d.d.FilterID }
func (d *Delivery) Revision() graph.Revision { return graph.Revision(d.d.Revision) }
func (d *Delivery) Status() DeliveryStatus {
	return DeliveryStatus(strings.ToUpper(string(d.d.Status)))
}
func (d *Delivery) Attempts() int           { return d.d.Attempts }
func (d *Delivery) LastError() *string      { return optional(d.d.LastError) }
func (d *Delivery) Created() time.Time      { return d.d.Created }
func (d *Delivery) NextAttempt() *time.Time { return optionalTime(d.d.NextAttempt) }
func (d *Delivery) DeliveredAt() *time.Time { return optionalTime(d.d.DeliveredAt) }
func (d *Delivery) LastCode() *int {
	if d.d.LastCode == 0 {
		return nil
	}
	return &d.d.LastCode
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (r *Resolver) deliveries(ctx context.Context, sink, alert, filter *string, status *DeliveryStatus, first *int) ([]*Delivery, error) {
	if err := r.alertsOn(); err != nil {
		return nil, err
	}
	q := sinks.Query{SinkID: deref(sink), MessageID: deref(alert), FilterID: deref(filter), First: 100}
	if status != nil {
		q.Status = sinks.Status(strings.ToLower(string(*status)))
	}
	if first != nil {
		if *first < 0 || *first > maxAlerts {
			return nil, userErrorf("deliveries: first must be between 0 and %d", maxAlerts)
		}
		q.First = *first
	}
	if q.First == 0 {
		return []*Delivery{}, nil
	}
	ds, err := sinks.Deliveries(ctx, r.opts.Graph.Store(), q)
	if err != nil {
		return nil, err
	}
	out := make([]*Delivery, len(ds))
	for i := range ds {
		out[i] = &Delivery{ds[i]}
	}
	return out, nil
}
