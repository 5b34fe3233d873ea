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
	api, err := newAPIServer(g)
	if err != nil {
		b.Fatal(err)
	}
	defer api.close()
	call := api.call
	vars := canVars(g.Current(), 5_000, 11)

	for b.Loop() {
		res, err := measureAPICan(ctx, g, api, vars, 50, 1000)
		if err != nil {
			b.Fatal(err)
		}
		l, elapsed := res.l, res.elapsed
		report(b, "GraphQL can over HTTP, 50 clients, during ingest", l)
		b.ReportMetric(float64(res.errs), "errors")
		b.ReportMetric(float64(len(l))/elapsed.Seconds(), "req/s")
		fmt.Printf("L GraphQL can over HTTP: 50 clients, %d requests in %v (%.0f req/s), %d errors %v; ingest meanwhile %d changes (%.0f/s)\n",
			len(l), elapsed.Round(time.Millisecond), float64(len(l))/elapsed.Seconds(), res.errs, res.firstErr, res.ingested, float64(res.ingested)/elapsed.Seconds())

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

// apiServer is kiem's GraphQL handler with authentication and limits, served over real HTTP on loopback, and a
// client that calls it.
type apiServer struct {
	srv    *httptest.Server
	client *http.Client
}

// apiToken is the bearer token of the static authenticator the benchmarks' server accepts.
const apiToken = "bench-token"

// newAPIServer serves g's GraphQL API on loopback; close it when done.
func newAPIServer(g *graph.Live) (*apiServer, error) {
	authn, err := auth.NewStatic(apiToken, "bench", auth.RoleViewer)
	if err != nil {
		return nil, fmt.Errorf("authenticator: %w", err)
	}
	h, err := gql.NewHandler(gql.Options{Graph: g, Cluster: "bench"}, gql.ServeOptions{Auth: authn})
	if err != nil {
		return nil, fmt.Errorf("GraphQL handler: %w", err)
	}
	return &apiServer{
		srv:    httptest.NewServer(h),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}, nil
}

func (a *apiServer) close() {
	a.client.CloseIdleConnections()
	a.srv.Close()
}

// call sends one GraphQL request and returns its latency, from sending to the whole answer read; an HTTP error
// or a GraphQL error in the answer is an error.
func (a *apiServer) call(query string, vars map[string]any) (time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiToken)
	start := time.Now()
	resp, err := a.client.Do(req)
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

// canQuery is the GraphQL can query the API benchmarks send.
const canQuery = `query($s: SubjectInput!, $a: ActionInput!) { can(subject: $s, action: $a) { allowed reasons { text } } }`

// canVars returns the variables of n can queries sampled from s like BenchmarkL's.
func canVars(s *graph.Snapshot, n int, seed uint64) []map[string]any {
	qs := sampleQueries(s, n, seed)
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
	return vars
}

// apiCan is what measureAPICan measured.
type apiCan struct {
	l        latencies // the requests that succeeded
	elapsed  time.Duration
	errs     int64
	firstErr any // the first failed request's error, nil when none failed
	ingested int // changes committed meanwhile
}

// measureAPICan has clients goroutines each send perClient can queries one after the other while a writer
// commits 5 new RoleBindings to g every 10 ms (500 changes/s, the batcher's shape) until they are done. A failed
// request is counted, not fatal; a failed commit is returned.
func measureAPICan(ctx context.Context, g *graph.Live, api *apiServer, vars []map[string]any, clients, perClient int) (apiCan, error) {
	stop := make(chan struct{})
	type ingest struct {
		n   int
		err error
	}
	ingested := make(chan ingest, 1)
	rbs := g.Current().Objects().RoleBindings
	go func() {
		r := rand.New(rand.NewPCG(5, 0))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		n := 0
		var firstErr error
		for {
			select {
			case <-stop:
				ingested <- ingest{n, firstErr}
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
			if _, err := g.Commit(ctx, "bench:ingest", cs); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("ingest during the API benchmark: %w", err)
			}
		}
	}()
	var mu sync.Mutex
	var out apiCan
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			mine := make(latencies, 0, perClient)
			for i := range perClient {
				took, err := api.call(canQuery, vars[(c*perClient+i)%len(vars)])
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, took)
			}
			mu.Lock()
			out.l = append(out.l, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	close(stop)
	in := <-ingested
	out.ingested, out.errs, out.firstErr = in.n, errs.Load(), firstErr.Load()
	return out, in.err
}
