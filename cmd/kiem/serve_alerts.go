package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/alerts"
	"github.com/kiem-io/kiem/queries/filters"
	"github.com/kiem-io/kiem/queries/sinks"
)

// startAlerts declares the filters of --filters, and starts the alerts engine (after the findings tracker) and
// the sinks' deliverer under wg; they stop when ctx ends.
func startAlerts(ctx context.Context, log *slog.Logger, g *graph.Live, tr *queries.Tracker, filtersFile string, wg *sync.WaitGroup) (*alerts.Engine, error) {
	st := g.Store()
	if filtersFile != "" {
		fs, err := filters.ReadFile(filtersFile)
		if err != nil {
			return nil, fmt.Errorf("--filters: %w", err)
		}
		if err := filters.Declare(ctx, st, filtersFile, fs, time.Now()); err != nil {
			return nil, fmt.Errorf("--filters: %w", err)
		}
		log.Info("saved filters declared", "file", filtersFile, "filters", len(fs))
	}
	dlog := log.With("component", "sinks")
	d := sinks.NewDeliverer(st, sinks.Options{Logger: dlog})
	alog := log.With("component", "alerts")
	e := alerts.NewEngine(st, tr, g, alerts.Options{Logger: alog, Outbox: d})
	wg.Go(func() {
		if err := d.Run(ctx); err != nil {
			dlog.Error("deliverer stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := e.Run(ctx); err != nil {
			alog.Error("alerts engine stopped", "err", err)
		}
	})
	return e, nil
}
