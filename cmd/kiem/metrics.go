package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves kiem's metrics from a registry of its own (no global one): the graph's revision and store
// size, and the indexer's counters, read when scraped.
func (s *server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &kiemCollector{s: s})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

type kiemCollector struct{ s *server }

var (
	descRevision  = prometheus.NewDesc("kiem_revision", "Head revision of the graph.", nil, nil)
	descHorizon   = prometheus.NewDesc("kiem_retention_horizon_revision", "Oldest revision that can still be read.", nil, nil)
	descStore     = prometheus.NewDesc("kiem_store_bytes", "Bytes the store takes on disk.", nil, nil)
	descReady     = prometheus.NewDesc("kiem_ready", "1 once the initial sync is committed.", nil, nil)
	descEvents    = prometheus.NewDesc("kiem_indexer_events_total", "Informer events delivered, by kind and type.", []string{"kind", "type"}, nil)
	descChanges   = prometheus.NewDesc("kiem_indexer_changes_total", "Object changes the indexer committed.", nil, nil)
	descRevisions = prometheus.NewDesc("kiem_indexer_revisions_total", "Revisions the indexer committed.", nil, nil)
	descSkipped   = prometheus.NewDesc("kiem_indexer_skipped_total", "Queued objects whose change touched nothing kiem keeps.", nil, nil)
	descErrors    = prometheus.NewDesc("kiem_indexer_commit_errors_total", "Failed commits (their changes are retried).", nil, nil)
	descQueue     = prometheus.NewDesc("kiem_indexer_queue_depth", "Object keys waiting for a worker (informer lag).", nil, nil)
	descLatency   = prometheus.NewDesc("kiem_indexer_last_commit_seconds", "Duration of the latest commit (durable write and snapshot update).", nil, nil)
)

func (c *kiemCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRevision, descHorizon, descStore, descReady, descEvents, descChanges, descRevisions, descSkipped, descErrors, descQueue, descLatency} {
		ch <- d
	}
}

func (c *kiemCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.s.graph
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(g.Head()))
	ch <- prometheus.MustNewConstMetric(descHorizon, prometheus.GaugeValue, float64(g.Store().Horizon()))
	ch <- prometheus.MustNewConstMetric(descStore, prometheus.GaugeValue, float64(g.Store().SizeBytes()))
	ready := 0.0
	select {
	case <-c.s.ready:
		ready = 1
	default:
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	if c.s.indexer == nil {
		return
	}
	st := c.s.indexer.Stats()
	for kind, e := range st.Events {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.Added), string(kind), "add")
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.Updated), string(kind), "update")
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(e.Deleted), string(kind), "delete")
	}
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Changes))
	ch <- prometheus.MustNewConstMetric(descRevisions, prometheus.CounterValue, float64(st.Revisions))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.CommitErrors))
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.QueueDepth))
	ch <- prometheus.MustNewConstMetric(descLatency, prometheus.GaugeValue, st.LastCommitLatency.Seconds())
}
