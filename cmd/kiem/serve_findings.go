package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// findingsFlags configure the risk packs kiem serve keeps evaluated.
type findingsFlags struct {
	packs        []string
	suppressions string
}

// findings is the risk-pack side of kiem serve: the tracker that keeps the head's findings current, and the
// suppressions file the console edits.
type findings struct {
	tracker *queries.Tracker
	// stopped is closed when the tracker's goroutine returns.
	stopped      <-chan struct{}
	suppressions *queries.SuppressionFile
}

// startFindings loads the packs and suppressions, and starts a tracker on g under wg; it stops when ctx ends.
// A suppression added or removed through the API rebuilds the engine and re-evaluates the head before the
// mutation answers.
func startFindings(ctx context.Context, log *slog.Logger, g *graph.Live, f *findingsFlags, dataDir string, wg *sync.WaitGroup) (*findings, error) {
	packs, err := queries.LoadPacks(f.packs...)
	if err != nil {
		return nil, fmt.Errorf("--packs: %w", err)
	}
	path := f.suppressions
	if path == "" {
		path = filepath.Join(dataDir, "suppressions.yaml")
	}
	sf, err := queries.OpenSuppressionFile(path)
	if err != nil {
		return nil, fmt.Errorf("--suppressions: %w", err)
	}
	engine := func(s *queries.Suppressions) (*queries.Engine, error) {
		return queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline(), Suppressions: s})
	}
	e, err := engine(sf.Current())
	if err != nil {
		return nil, err
	}
	flog := log.With("component", "findings")
	tr := queries.NewTracker(e, g, queries.TrackerOptions{Logger: flog})
	sf.OnChange(func(s *queries.Suppressions) {
		e, err := engine(s)
		if err == nil {
			err = tr.SetEngine(ctx, e)
		}
		if err != nil {
			flog.Error("re-evaluating after a suppression change", "err", err)
		}
	})
	stopped := make(chan struct{})
	wg.Go(func() {
		defer close(stopped)
		if err := tr.Run(ctx); err != nil {
			flog.Error("findings tracker stopped", "err", err)
		}
	})
	n := 0
	for _, p := range packs {
		n += len(p.Rules)
	}
	flog.Info("risk packs loaded", "packs", len(packs), "rules", n, "suppressions", path)
	return &findings{tracker: tr, suppressions: sf, stopped: stopped}, nil
}
