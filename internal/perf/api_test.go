package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiem-io/kiem/gql"
	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
)

// BenchmarkAPIL measures the GraphQL API over real HTTP on loopback, on workload L in a real store:
// can with 50 concurrent clients while the store ingests 500 changes/s (in revisions of 5 every 10 ms, the
// batcher's shape), then search and neighbourhood from one client.
func BenchmarkAPIL(b *testing.B) {
	ctx := context.Background()
	objs := workloadL(b)
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	g, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Commit(ctx, "bench:initial-list", graph.ReconcileChanges(g.Current(), objs)); err != nil {
		b.Fatal(err)
	}
	const token = "bench-token"
	authn, err := auth.NewStatic(token, "bench", auth.RoleViewer)
	if err != nil {
		b.Fatal(err)
	}
	h, err := gql.NewHandler(gql.Options{Graph: g, Cluster: "bench"}, gql.ServeOptions{Auth: authn})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	call := func(query string, vars map[string]any) (time.Duration, error) {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			return 0, err
		}
		var out struct{ Errors []any }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || len(out.Errors) > 0 {
			return 0, fmt.Errorf("status %d: %.200s", resp.StatusCode, raw)
		}
		return took, nil
	}

	qs := sampleQueries(g.Current(), 5_000, 11)
	const canQuery = `query($s: SubjectInput!, $a: ActionInput!) { can(subject: $s, action: $a) { allowed reasons { text } } }`
	vars := make([]map[string]any, len(qs))
	for i, q := range qs {
		var s map[string]any
		if ns, name, ok := graph.SplitServiceAccountUsername(q.id.User); ok {
			s = map[string]any{"kind": "SERVICE_ACCOUNT", "namespace": ns, "name": name}
		} else {
			groups := slices.DeleteFunc(slices.Clone(q.id.Groups), func(g string) bool { return g == graph.GroupAuthenticated })
			s = map[string]any{"kind": "USER", "name": q.id.User, "groups": append([]string{}, groups...)}
		}
		a := map[string]any{"verb": q.a.Verb, "apiGroup": q.a.APIGroup, "resource": q.a.Resource, "subresource": q.a.Subresource,
			"namespace": q.a.Namespace, "name": q.a.Name}
		vars[i] = map[string]any{"s": s, "a": a}
	}

	for b.Loop() {
		// Ingest: 5 new RoleBindings every 10 ms until the clients are done.
		stop := make(chan struct{})
		ingested := make(chan int, 1)
		rbs := g.Current().Objects().RoleBindings
		go func() {
			r := rand.New(rand.NewPCG(5, 0))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			n := 0
			for {
				select {
				case <-stop:
					ingested <- n
					return
				case <-tick.C:
				}
				cs := make([]graph.Change, 5)
				for i := range cs {
					nb := rbs[r.IntN(len(rbs))]
					nb.Name = fmt.Sprintf("api-bench-%d", n)
					n++
					cs[i] = graph.NewChange(nil, &nb)
				}
				if _, err := g.Commit(ctx, "bench:ingest", cs); err != nil {
					b.Error(err)
				}
			}
		}()
		const clients, perClient = 50, 1000
		var mu sync.Mutex
		var l latencies
		var errs atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Go(func() {
				mine := make(latencies, 0, perClient)
				for i := range perClient {
					took, err := call(canQuery, vars[(c*perClient+i)%len(vars)])
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					mine = append(mine, took)
				}
				mu.Lock()
				l = append(l, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(stop)
		n := <-ingested
		report(b, "GraphQL can over HTTP, 50 clients, during ingest", l)
		b.ReportMetric(float64(errs.Load()), "errors")
		b.ReportMetric(float64(len(l))/elapsed.Seconds(), "req/s")
		fmt.Printf("L GraphQL can over HTTP: 50 clients, %d requests in %v (%.0f req/s), %d errors %v; ingest meanwhile %d changes (%.0f/s)\n",
			len(l), elapsed.Round(time.Millisecond), float64(len(l))/elapsed.Seconds(), errs.Load(), firstErr.Load(), n, float64(n)/elapsed.Seconds())

		// Search and neighbourhood, one client.
		searches := []map[string]any{
			{"q": "kube-system"}, {"q": "secrets", "k": []string{"CLUSTER_ROLE", "ROLE"}}, {"q": "pods/exec"},
			{"q": "user-1"}, {"q": "ns-0042"}, {"q": "deployer"}, {"q": "clusteradmn"}, {"q": "sa-12", "ns": "ns-0007"},
		}
		var sl latencies
		for i := range 400 {
			took, err := call(`query($q: String!, $k: [Kind!], $ns: String) { search(query: $q, kinds: $k, namespace: $ns, first: 20) { edges { field rank node { id name } } } }`, searches[i%len(searches)])
			if err != nil {
				b.Fatal(err)
			}
			sl = append(sl, took)
		}
		report(b, "GraphQL search over HTTP", sl)
		fmt.Printf("L GraphQL search over HTTP: p50 %v p99 %v\n", sl.pct(0.5), sl.pct(0.99))

		cur := g.Current().Objects()
		r := rand.New(rand.NewPCG(3, 0))
		var nl latencies
		for i := range 300 {
			var ref graph.ObjectRef
			switch i % 3 {
			case 0:
				ref = cur.ServiceAccounts[r.IntN(len(cur.ServiceAccounts))].Ref()
			case 1:
				ref = cur.RoleBindings[r.IntN(len(cur.RoleBindings))].Ref()
			default:
				ref = cur.ClusterRoles[r.IntN(len(cur.ClusterRoles))].Ref()
			}
			took, err := call(`query($id: ID!) { neighbourhood(id: $id, depth: 2, first: 200) { truncated nodes { id kind name } edges { from to type } } }`,
				map[string]any{"id": graph.NodeID("bench", ref)})
			if err != nil {
				b.Fatal(err)
			}
			nl = append(nl, took)
		}
		report(b, "GraphQL neighbourhood depth 2 over HTTP", nl)
		fmt.Printf("L GraphQL neighbourhood (depth 2, first 200) over HTTP: p50 %v p99 %v\n", nl.pct(0.5), nl.pct(0.99))
	}
}
