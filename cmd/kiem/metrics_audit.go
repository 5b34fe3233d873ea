package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
)

// auditCollector reads the audit ingester's counters when scraped.
type auditCollector struct {
	in                                                 *indexer.AuditIngester
	store                                              *graph.AuditStore
	events, usage, attributed, unattributable, expired *prometheus.Desc
	pending, batches, storeBytes                       *prometheus.Desc
}

func newAuditCollector(in *indexer.AuditIngester, store *graph.AuditStore) *auditCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &auditCollector{
		in: in, store: store,
		events:         d("kiem_audit_events_total", "Audit events received, by result: ingested, malformed (refused, logged), duplicate (seen before; ingested without effect).", "result"),
		usage:          d("kiem_audit_usage_total", "Allowed requests recorded as usage."),
		attributed:     d("kiem_audit_attributed_total", "Changes given their actor from an audit event."),
		unattributable: d("kiem_audit_unattributable_total", "RBAC or ServiceAccount writes whose event lacks the response object (log them at RequestResponse)."),
		expired:        d("kiem_audit_expired_total", "Actors of writes given up on: no change matched within the patience."),
		pending:        d("kiem_audit_pending", "Actors of writes waiting for their change."),
		batches:        d("kiem_audit_batches_total", "Batches ingested (webhook requests and log reads)."),
		storeBytes:     d("kiem_audit_store_bytes", "Bytes the audit store takes on disk."),
	}
}

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.usage, c.attributed, c.unattributable, c.expired, c.pending, c.batches, c.storeBytes} {
		ch <- d
	}
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.in.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.events, st.Events-st.Duplicates, "ingested")
	counter(c.events, st.Duplicates, "duplicate")
	counter(c.events, st.Malformed, "malformed")
	counter(c.usage, st.Usage)
	counter(c.attributed, st.Attributed)
	counter(c.unattributable, st.Unattributable)
	counter(c.expired, st.Expired)
	counter(c.batches, st.Batches)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.storeBytes, prometheus.GaugeValue, float64(c.store.Size()))
}
