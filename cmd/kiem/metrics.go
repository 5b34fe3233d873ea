package main

import (
	"net/http"

	"github.com/kiem-io/kiem/queries"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves kiem's metrics from a registry of its own (no global one): the graph's revision and store
// size, and the indexer's counters, read when scraped.
func (s *server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newKiemCollector(s))
	if s.audit != nil {
		reg.MustRegister(newAuditCollector(s.audit.ingester, s.audit.store))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// kiemCollector reads kiem's figures when scraped. Its descriptors are made per collector: no package state.
type kiemCollector struct {
	s                                                                    *server
	revision, horizon, store, ready                                      *prometheus.Desc
	events, changes, revisions, skipped, commitErrors, queue, lastCommit *prometheus.Desc
	findings, findingsRevision, findingsUpdate                           *prometheus.Desc
}

func newKiemCollector(s *server) *kiemCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &kiemCollector{
		s:            s,
		revision:     d("kiem_revision", "Head revision of the graph."),
		horizon:      d("kiem_retention_horizon_revision", "Oldest revision that can still be read."),
		store:        d("kiem_store_bytes", "Bytes the store takes on disk."),
		ready:        d("kiem_ready", "1 once the initial sync is committed."),
		events:       d("kiem_indexer_events_total", "Informer events delivered, by kind and type.", "kind", "type"),
		changes:      d("kiem_indexer_changes_total", "Object changes the indexer committed."),
		revisions:    d("kiem_indexer_revisions_total", "Revisions the indexer committed."),
		skipped:      d("kiem_indexer_skipped_total", "Queued objects whose change touched nothing kiem keeps."),
		commitErrors: d("kiem_indexer_commit_errors_total", "Failed commits (their changes are retried)."),
		queue:        d("kiem_indexer_queue_depth", "Object keys waiting for a worker (informer lag)."),
		lastCommit:   d("kiem_indexer_last_commit_seconds", "Duration of the latest commit (durable write and snapshot update)."),

		findings:         d("kiem_findings", "Risk findings of the evaluated revision, by severity and status.", "severity", "status"),
		findingsRevision: d("kiem_findings_revision", "Revision whose findings are evaluated."),
		findingsUpdate:   d("kiem_findings_last_update_seconds", "Duration of the latest re-evaluation of the findings."),
	}
}

func (c *kiemCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.revision, c.horizon, c.store, c.ready, c.events, c.changes, c.revisions, c.skipped, c.commitErrors, c.queue, c.lastCommit, c.findings, c.findingsRevision, c.findingsUpdate} {
		ch <- d
	}
}

func (c *kiemCollector) Collect(ch chan<- prometheus.Metric) {
	c.collectFindings(ch)
	g := c.s.graph
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(g.Head()))
	ch <- prometheus.MustNewConstMetric(c.horizon, prometheus.GaugeValue, float64(g.Store().Horizon()))
	ch <- prometheus.MustNewConstMetric(c.store, prometheus.GaugeValue, float64(g.Store().SizeBytes()))
	ready := 0.0
	select {
	case <-c.s.ready:
		ready = 1
	default:
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	if c.s.indexer == nil {
		return
	}
	st := c.s.indexer.Stats()
	for kind, e := range st.Events {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.Added), string(kind), "add")
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.Updated), string(kind), "update")
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.Deleted), string(kind), "delete")
	}
	ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(st.Changes))
	ch <- prometheus.MustNewConstMetric(c.revisions, prometheus.CounterValue, float64(st.Revisions))
	ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(st.Skipped))
	ch <- prometheus.MustNewConstMetric(c.commitErrors, prometheus.CounterValue, float64(st.CommitErrors))
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(st.QueueDepth))
	ch <- prometheus.MustNewConstMetric(c.lastCommit, prometheus.GaugeValue, st.LastCommitLatency.Seconds())
}

// collectFindings reports the findings of the revision the tracker has evaluated, counted by severity and status.
func (c *kiemCollector) collectFindings(ch chan<- prometheus.Metric) {
	if c.s.findings == nil {
		return
	}
	rev, res := c.s.findings.Current()
	if res == nil {
		return
	}
	type key struct {
		sev    queries.Severity
		status queries.Status
	}
	counts := map[key]int{}
	for _, f := range res.Findings() {
		counts[key{f.Severity, f.Status}]++
	}
	for _, sev := range queries.Severities() {
		for _, st := range []queries.Status{queries.StatusRisky, queries.StatusExpected, queries.StatusSuppressed} {
			ch <- prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(counts[key{sev, st}]), sev.String(), string(st))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.findingsRevision, prometheus.GaugeValue, float64(rev))
	if d, ok := c.s.findings.Last(); ok {
		ch <- prometheus.MustNewConstMetric(c.findingsUpdate, prometheus.GaugeValue, d.Took.Seconds())
	}
}
