package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
)

// BenchmarkAuditIngestL measures audit ingestion as the webhook endpoint does it, on workload L in a real store:
// decode a 400-event EventList (the apiserver's default batch), record identities and usage (with the name-scope
// check against the head snapshot), and commit the batch durably to the audit store. The events are requests of
// L's own ServiceAccounts and users on resources their rules mention, with object names drawn from a large set,
// so that the usage aggregation sees realistic repetition. It reports events/s and the audit store's growth per
// million events (after a flush, so that the figure is what stays on disk).
func BenchmarkAuditIngestL(b *testing.B) {
	ctx := b.Context()
	objs := workloadL(b)
	dir := b.TempDir()
	store, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: filepath.Join(dir, "store")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	g, err := graph.OpenLive(ctx, store, graph.SnapshotOptions{})
	if err != nil {
		b.Fatal(err)
	}
	empty := graph.NewSnapshot(&graph.Objects{})
	if _, err := g.Commit(ctx, "bench", graph.ReconcileChanges(empty, objs)); err != nil {
		b.Fatal(err)
	}
	audit, err := graph.OpenAuditStore(ctx, graph.AuditStoreOptions{Dir: filepath.Join(dir, "audit")})
	if err != nil {
		b.Fatal(err)
	}
	in, err := indexer.NewAuditIngester(ctx, indexer.AuditIngesterOptions{Graph: g, Store: audit})
	if err != nil {
		b.Fatal(err)
	}
	const batch, batches = 400, 128
	bodies := auditBatches(b, g.Current(), batches, batch, 0)
	b.ResetTimer()
	events := 0
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%batches == 0 {
			// Fresh events, later in time, so that every batch moves last-seen times as live traffic does.
			b.StopTimer()
			bodies = auditBatches(b, g.Current(), batches, batch, i)
			b.StartTimer()
		}
		evs, malformed, err := indexer.DecodeEventList(bytes.NewReader(bodies[i%batches]))
		if err != nil || len(malformed) > 0 {
			b.Fatalf("decode: %v %v", err, malformed)
		}
		if err := in.Ingest(ctx, evs, nil, nil); err != nil {
			b.Fatal(err)
		}
		events += len(evs)
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	st := in.Stats()
	// Closed, the store's memtables are on disk and compacted: what it keeps.
	if err := audit.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(diskUsage(b, filepath.Join(dir, "audit")))/float64(events)*1e6/(1<<20), "MiB/1M-events")
	b.ReportMetric(float64(st.Usage)/float64(events), "usage/event")
}

// auditBatches builds n EventList bodies of size events each, drawn from the snapshot's subjects and rules.
func auditBatches(tb testing.TB, snap *graph.Snapshot, n, size, round int) [][]byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(9, uint64(round)))
	objs := snap.Objects()
	type actor struct {
		user   string
		groups []string
		ns     string
	}
	var actors []actor
	for _, b := range objs.RoleBindings {
		for _, s := range b.Subjects {
			switch s.Kind {
			case "ServiceAccount":
				actors = append(actors, actor{graph.ServiceAccountUsername(s.Namespace, s.Name),
					append(graph.ServiceAccountGroups(s.Namespace), graph.GroupAuthenticated), b.Namespace})
			case "User":
				actors = append(actors, actor{s.Name, []string{"oidc:devs", graph.GroupAuthenticated}, b.Namespace})
			}
		}
	}
	if len(actors) == 0 {
		tb.Fatal("no subjects in the workload")
	}
	type res struct{ group, resource string }
	resources := []res{{"", "pods"}, {"", "configmaps"}, {"", "secrets"}, {"", "services"}, {"apps", "deployments"},
		{"", "events"}, {"batch", "jobs"}, {"coordination.k8s.io", "leases"}, {"", "pods/log"}}
	verbs := []string{"get", "list", "watch", "get", "get", "update", "patch", "create", "delete"}
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	bodies := make([][]byte, n)
	seq := round * size
	for i := range bodies {
		items := make([]map[string]any, size)
		for j := range items {
			a := actors[r.IntN(len(actors))]
			rs := resources[r.IntN(len(resources))]
			resource, sub, _ := strings.Cut(rs.resource, "/")
			verb := verbs[r.IntN(len(verbs))]
			name := ""
			if verb != "list" && verb != "watch" && verb != "create" {
				name = fmt.Sprintf("obj-%d", r.IntN(5000))
			}
			decision := "allow"
			if r.IntN(20) == 0 {
				decision = "forbid"
			}
			at := start.Add(time.Duration(seq) * time.Millisecond)
			seq++
			items[j] = map[string]any{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
				"auditID": fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, round, j), "stage": "ResponseComplete", "verb": verb,
				"requestURI": "/api/v1/namespaces/" + a.ns + "/" + rs.resource,
				"user":       map[string]any{"username": a.user, "groups": a.groups}, "sourceIPs": []string{"10.0.0.1"},
				"userAgent":      "controller/v1.0",
				"objectRef":      map[string]any{"resource": resource, "subresource": sub, "namespace": a.ns, "name": name, "apiGroup": rs.group, "apiVersion": "v1"},
				"responseStatus": map[string]any{"code": 200}, "annotations": map[string]string{"authorization.k8s.io/decision": decision},
				"requestReceivedTimestamp": at.Format(time.RFC3339Nano), "stageTimestamp": at.Add(time.Millisecond).Format(time.RFC3339Nano)}
		}
		body, err := json.Marshal(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})
		if err != nil {
			tb.Fatal(err)
		}
		bodies[i] = body
	}
	return bodies
}

// diskUsage is the bytes the files under dir occupy (allocated blocks: Badger preallocates its logs sparsely).
func diskUsage(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
