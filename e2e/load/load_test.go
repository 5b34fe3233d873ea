package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kiem-io/kiem/internal/synthkube"
)

var (
	durationFlag = flag.Duration("load.duration", 60*time.Second, "how long the load runs (make soak sets hours)")
	rateFlag     = flag.Int("load.rate", 1000, "changes per second the synthetic cluster makes")
	clientsFlag  = flag.Int("load.clients", 50, "concurrent GraphQL clients")
	kiemFlag     = flag.String("load.kiem", "", "kiem binary to test (default: built from this checkout)")
	maxRSSFlag   = flag.Int64("load.max-rss-mib", 2048, "anonymous resident memory kiem must stay under, in MiB: the chart's default memory limit")
	memLimitFlag = flag.String("load.gomemlimit", "1740MiB", "GOMEMLIMIT of kiem: what the chart sets for its default 2Gi memory limit")
	keepFlag     = flag.String("load.keep", "", "directory to keep kiem's store and log in (default: a temporary one)")
	logLevelFlag = flag.String("load.log-level", "info", "kiem's --log-level")
	kiemArgsFlag = flag.String("load.kiem-args", "", "more arguments for kiem serve, space-separated (e.g. --pprof-listen=127.0.0.1:6060)")
)

// TestLoadAndFaults runs kiem against a synthetic cluster making -load.rate changes per second for
// -load.duration while -load.clients GraphQL clients query it, and injects faults:
//
//   - every sixth of the run, the cluster cuts every watch stream (informers re-watch from their last version);
//   - halfway, it compacts its watch history, so every informer gets 410 Gone and relists;
//   - at 30 % of the run kiem is killed with SIGKILL and restarted on the same store, the cluster still changing;
//   - 2 % of client requests are malformed, unauthenticated, oversized or too costly, and 1 % are abandoned
//     mid-flight; one subscriber subscribes and never reads.
//
// It asserts:
//
//   - no errors: every valid request succeeds (except while kiem is down), every bad one gets its clean 4xx or
//     GraphQL error, kiem logs no ERROR and never panics, and exits cleanly on SIGTERM at the end;
//   - bounded memory: kiem's resident memory stays under -load.max-rss-mib, and over the run after the restart,
//     the peak of its second half is not above that of its first half by more than a quarter (no growth with
//     time or with the number of revisions);
//   - no lost revision: the subscribers received every revision, each once and in order, across the kill;
//     every revision from the first to the head is stored with its changes; and the head holds exactly the
//     cluster's final state, every object at the resourceVersion of its last write and with its content.
func TestLoadAndFaults(t *testing.T) {
	d := *durationFlag
	ctx := t.Context()
	bin := kiemBinary(t)

	// The cluster, and the material of the source's changes.
	token := randomToken(t)
	// The watch history holds 2 minutes of changes: informers resume after a cut, and relist only when the
	// schedule compacts it.
	cl := synthkube.New(synthkube.Options{Token: token + "-cluster", WatchHistory: 120 * *rateFlag})
	t.Cleanup(cl.Close)
	objs := initialObjects(t)
	for _, o := range objs {
		cl.Apply(o)
	}
	smp := sampleOf(objs)
	src := newSource(writer{
		apply:  func(o runtime.Object) error { cl.Apply(o); return nil },
		delete: func(o runtime.Object) error { return deleteObject(cl, o) },
	}, objs, 7)

	// kiem, reading the cluster with its own credentials and serving with a token file.
	dir := *keepFlag
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cl.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, token+",load-test,viewer\n")
	filters := filepath.Join(dir, "filters.yaml")
	writeFile(t, filters, filtersYAML)
	addr := freeAddr(t)
	logPath := filepath.Join(dir, "kiem.log")
	args := []string{"serve", "--kubeconfig", kubeconfig, "--data-dir", filepath.Join(dir, "store"),
		"--listen", addr, "--token-file", tokens, "--filters", filters, "--cluster-name", "load", "--log-level", *logLevelFlag}
	k := startKiem(t, bin, logPath, append(args, strings.Fields(*kiemArgsFlag)...)...)
	base := "http://" + addr
	a := newAPI(base, token)
	if err := waitReady(ctx, base); err != nil {
		t.Fatal(err)
	}
	t.Logf("initial cluster: %d objects; kiem ready", len(objs))

	// Everything below runs for d and is stopped by stopLoad; the subscribers run until every revision arrived.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	var wg sync.WaitGroup
	start := time.Now()

	mem := &memSampler{}
	wg.Go(func() { mem.run(loadCtx, k, start, 250*time.Millisecond) })

	subs := []*subscriber{{a: a}, {a: a}}
	var subWG sync.WaitGroup
	for _, s := range subs {
		subWG.Go(func() { s.run(subCtx) })
	}
	wg.Go(func() { stalledSubscriber(loadCtx, a) })

	// down is set while kiem is killed and restarting: transport errors then are expected, not failures.
	var down atomic.Bool
	var downs atomic.Int64
	ops := make([]opStats, len(clientOps))
	var bad, abandoned opStats
	var past atomic.Uint64
	for i := range *clientsFlag {
		wg.Go(func() {
			c := &client{a: a, r: mrand.New(mrand.NewPCG(uint64(i), 99)), s: smp, past: &past}
			runClient(loadCtx, c, ops, &bad, &abandoned, &down, &downs)
		})
	}

	var srcErr error
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		srcErr = src.run(loadCtx, *rateFlag)
	}()

	// The faults, on a schedule relative to the run.
	restartErr := make(chan error, 1)
	var injected faultCounts
	wg.Go(func() {
		restartErr <- faults(loadCtx, d, cl, k, base, &down, &past, a, &injected)
	})

	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	stopLoad()
	<-srcDone
	wg.Wait()
	elapsed := time.Since(start)
	if srcErr != nil {
		t.Fatalf("source: %v", srcErr)
	}
	if err := <-restartErr; err != nil {
		t.Fatalf("faults: %v", err)
	}

	// Catch up: kiem's head must come to hold exactly the cluster's state.
	catchUp := time.Now()
	final := cl.Objects()
	if err := eventuallyEqual(ctx, a, final); err != nil {
		t.Fatal(err)
	}
	caughtUp := time.Since(catchUp)
	head, err := a.head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := waitSubscribers(ctx, subs, head); err != nil {
		t.Error(err)
	}
	stopSubs()
	subWG.Wait()
	for i, s := range subs {
		if g := s.disorder(); len(g) > 0 {
			t.Errorf("subscriber %d: revisions repeated or out of order: %v", i, g[:min(len(g), 10)])
		}
		first, last, n := s.span()
		t.Logf("subscriber %d: revisions %d..%d (%d), reconnected %d times", i, first, last, n, s.reconn)
	}

	// Requests.
	var total, failed int
	for i, op := range clientOps {
		s := &ops[i]
		total += s.ok + s.failed
		failed += s.failed
		if s.failed > 0 {
			t.Errorf("%s: %d of %d requests failed; first: %s", op.name, s.failed, s.ok+s.failed, s.firstErr)
		}
		if s.ok == 0 {
			t.Errorf("%s: no request succeeded", op.name)
		}
	}
	if bad.failed > 0 {
		t.Errorf("bad requests: %d of %d answered wrongly; first: %s", bad.failed, bad.ok+bad.failed, bad.firstErr)
	}

	// Memory: under the bound throughout, and not growing over the run after the restart.
	_, gen := k.pid()
	all := mem.of(gen, 0)
	if len(all) < 8 {
		t.Fatalf("only %d memory samples of the restarted kiem", len(all))
	}
	half := all[len(all)/2].at
	firstHalf, secondHalf := mem.of(gen, 0), mem.of(gen, half)
	firstHalf = firstHalf[:len(firstHalf)-len(secondHalf)]
	peak1, peak2 := peak(firstHalf), peak(secondHalf)
	overall := max(peak(mem.of(1, 0)), peak1, peak2)
	if overall > *maxRSSFlag<<20 {
		t.Errorf("kiem's anonymous resident memory reached %s, over the bound of %d MiB", mib(overall), *maxRSSFlag)
	}
	if peak2 > peak1+peak1/4 {
		t.Errorf("kiem's memory grows: peak %s in the first half of the run after the restart, %s in the second", mib(peak1), mib(peak2))
	}

	// kiem ends cleanly, and its log holds no error.
	if err := k.stop(30 * time.Second); err != nil {
		t.Error(err)
	}
	problems, err := logProblems(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems[:min(len(problems), 20)] {
		t.Errorf("kiem logged: %s", p)
	}

	// The store: every revision there, and the head equal to the cluster.
	if err := checkStore(ctx, filepath.Join(dir, "store"), head, final, subs); err != nil {
		t.Error(err)
	}

	st := cl.Stats()
	var lines []string
	lines = append(lines, fmt.Sprintf("load: %v, %d changes (%.0f/s) from the synthetic cluster; kiem's head at revision %d; caught up %v after the load stopped",
		elapsed.Round(time.Millisecond), src.total.Load(), float64(src.total.Load())/elapsed.Seconds(), head, caughtUp.Round(time.Millisecond)))
	for o := range opCount {
		lines = append(lines, fmt.Sprintf("  %-32s %d", opNames[o], src.ops[o].Load()))
	}
	lines = append(lines, fmt.Sprintf("faults: %d watch cuts, %d compactions (%d answered 410 Gone; %d lists, %d watches in all), %d kill -9 (%d requests refused while down), %d bad requests, %d abandoned",
		injected.cuts.Load(), injected.compactions.Load(), st.Gone, st.Lists, st.Watches, injected.kills.Load(), downs.Load(), bad.ok+bad.failed, abandoned.ok+abandoned.failed))
	lines = append(lines, fmt.Sprintf("requests: %d valid (%d failed), %.0f/s", total, failed, float64(total)/elapsed.Seconds()))
	for i, op := range clientOps {
		s := &ops[i]
		lines = append(lines, fmt.Sprintf("  %-22s %6d  p50 %8v  p99 %8v", op.name, s.ok, s.pct(0.5).Round(10*time.Microsecond), s.pct(0.99).Round(10*time.Microsecond)))
	}
	lines = append(lines, fmt.Sprintf("memory (anonymous RSS): peak %s before the kill; after the restart %s (first half) and %s (second half)", mib(peak(mem.of(1, 0))), mib(peak1), mib(peak2)))
	fmt.Println(strings.Join(lines, "\n"))
}

// runClient makes requests until ctx ends: the valid mix, with bad and abandoned ones among them.
func runClient(ctx context.Context, c *client, ops []opStats, bad, abandoned *opStats, down *atomic.Bool, downs *atomic.Int64) {
	weights := 0
	for _, op := range clientOps {
		weights += op.weight
	}
	badOnes := badRequests()
	for ctx.Err() == nil {
		wasDown := down.Load()
		start := time.Now()
		var err error
		var stats *opStats
		switch n := c.r.IntN(100); {
		case n < 2:
			stats = bad
			err = c.a.checkBad(ctx, badOnes[c.r.IntN(len(badOnes))])
		case n < 3:
			// Abandoned: the client gives up after a millisecond; the server must shrug it off.
			actx, cancel := context.WithTimeout(ctx, time.Millisecond)
			_ = clientOps[0].run(actx, c)
			cancel()
			abandoned.record(0, nil)
			continue
		default:
			w := c.r.IntN(weights)
			i := 0
			for ; w >= clientOps[i].weight; i++ {
				w -= clientOps[i].weight
			}
			stats = &ops[i]
			err = clientOps[i].run(ctx, c)
		}
		if ctx.Err() != nil {
			return // the run ended mid-request: its outcome says nothing
		}
		if errors.Is(err, errNoPast) {
			continue
		}
		if err != nil && (wasDown || down.Load()) && unavailable(err) {
			downs.Add(1) // refused or cut while kiem was down
			continue
		}
		stats.record(time.Since(start), err)
	}
}

// faults injects the cluster's and the process' faults at their times in the run. It also moves the revision
// clients travel back to.
// unavailable reports whether err is what a client may meet while kiem restarts: the connection refused or cut,
// or the findings not yet evaluated (kiem says so, and to retry). Any other answer is a failure.
func unavailable(err error) bool {
	if strings.Contains(err.Error(), "risk findings are not evaluated yet") {
		return true
	}
	return !errors.Is(err, errStatus) && !strings.HasPrefix(err.Error(), "graphql error")
}

// faultCounts are the faults injected.
type faultCounts struct{ cuts, compactions, kills atomic.Int64 }

func faults(ctx context.Context, d time.Duration, cl *synthkube.Server, k *kiemProc, base string, down *atomic.Bool, past *atomic.Uint64, a *api, n *faultCounts) error {
	start := time.Now()
	at := func(frac float64) <-chan time.Time {
		return time.After(time.Until(start.Add(time.Duration(frac * float64(d)))))
	}
	killAt, compactAt := at(0.3), at(0.5)
	breaks := time.NewTicker(d / 6)
	defer breaks.Stop()
	pastTick := time.NewTicker(time.Second)
	defer pastTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-breaks.C:
			cl.BreakWatches()
			n.cuts.Add(1)
		case <-compactAt:
			cl.Compact()
			n.compactions.Add(1)
		case <-pastTick.C:
			// Revisions carry a batch of changes each (a hundred or more under this load): 20 back is seconds.
			if h, err := a.head(ctx); err == nil && h > 20 {
				past.Store(h - 20)
			}
		case <-killAt:
			down.Store(true)
			k.kill()
			n.kills.Add(1)
			if err := k.start(); err != nil {
				return err
			}
			if err := waitReady(ctx, base); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("after kill -9: %w", err)
			}
			// Ready means indexed; the findings of the restarted process follow their first evaluation.
			if err := waitFindings(ctx, a); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("after kill -9: %w", err)
			}
			down.Store(false)
		}
	}
}

// waitFindings polls until the findings query answers.
func waitFindings(ctx context.Context, a *api) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		err := a.query(ctx, `{ findings(first: 1) { revision } }`, nil, nil)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("findings never answered: %w", err)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// stalledSubscriber subscribes to every change and never reads: the server must neither block on it nor hold
// what it cannot send without bound.
func stalledSubscriber(ctx context.Context, a *api) {
	conn, err := dialSubscription(ctx, a)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	<-ctx.Done()
}

// eventuallyEqual waits until kiem's head holds every object of the cluster at its resourceVersion, and nothing
// else of the kinds the cluster serves.
func eventuallyEqual(ctx context.Context, a *api, final []runtime.Object) error {
	want := map[string]string{}
	for _, o := range final {
		want[refOf(o)] = rvOf(o)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	last := "no comparison finished"
	for {
		got, err := headVersions(ctx, a)
		if err == nil {
			diff := compareVersions(want, got)
			if len(diff) == 0 {
				return nil
			}
			last = fmt.Sprintf("%d objects differ, e.g. %v", len(diff), diff[:min(len(diff), 8)])
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kiem's head never came to equal the cluster: %s", last)
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

func compareVersions(want, got map[string]string) []string {
	var out []string
	for ref, rv := range want {
		if g, ok := got[ref]; !ok {
			out = append(out, ref+" missing")
		} else if g != rv {
			out = append(out, fmt.Sprintf("%s at resourceVersion %s, want %s", ref, g, rv))
		}
	}
	for ref := range got {
		if _, ok := want[ref]; !ok {
			out = append(out, ref+" deleted in the cluster, still in kiem")
		}
	}
	slices.Sort(out)
	return out
}

// headVersions pages every object of the cluster's kinds at one revision through GraphQL.
func headVersions(ctx context.Context, a *api) (map[string]string, error) {
	head, err := a.head(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	kinds := []string{"NAMESPACE", "SERVICE_ACCOUNT", "ROLE", "CLUSTER_ROLE", "ROLE_BINDING", "CLUSTER_ROLE_BINDING", "POD", "NODE"}
	const q = `query($k: Kind!, $at: Revision, $after: String) { nodes(kind: $k, at: $at, first: 1000, after: $after) {
		pageInfo { hasNextPage endCursor }
		nodes { kind namespace name
			... on ServiceAccount { optMeta: meta { resourceVersion } } ... on Role { meta { resourceVersion } }
			... on ClusterRole { meta { resourceVersion } } ... on RoleBinding { meta { resourceVersion } }
			... on ClusterRoleBinding { meta { resourceVersion } } ... on Namespace { optMeta: meta { resourceVersion } }
			... on Pod { meta { resourceVersion } } ... on ClusterNode { meta { resourceVersion } } } } }`
	for _, kind := range kinds {
		var after *string
		for {
			var page struct {
				Nodes struct {
					PageInfo struct {
						HasNextPage bool
						EndCursor   *string
					}
					Nodes []struct {
						Kind, Namespace, Name string
						Meta, OptMeta         *struct{ ResourceVersion string }
					}
				}
			}
			if err := a.query(ctx, q, map[string]any{"k": kind, "at": head, "after": after}, &page); err != nil {
				return nil, err
			}
			for _, n := range page.Nodes.Nodes {
				rv := ""
				if n.Meta != nil {
					rv = n.Meta.ResourceVersion
				} else if n.OptMeta != nil {
					rv = n.OptMeta.ResourceVersion
				}
				out[kindName(n.Kind)+"/"+n.Namespace+"/"+n.Name] = rv
			}
			if !page.Nodes.PageInfo.HasNextPage {
				break
			}
			after = page.Nodes.PageInfo.EndCursor
		}
	}
	return out, nil
}

// kindName maps the GraphQL Kind to the API kind.
func kindName(k string) string {
	switch k {
	case "NAMESPACE":
		return "Namespace"
	case "SERVICE_ACCOUNT":
		return "ServiceAccount"
	case "ROLE":
		return "Role"
	case "CLUSTER_ROLE":
		return "ClusterRole"
	case "ROLE_BINDING":
		return "RoleBinding"
	case "CLUSTER_ROLE_BINDING":
		return "ClusterRoleBinding"
	case "POD":
		return "Pod"
	case "NODE":
		return "Node"
	}
	return k
}

func refOf(o runtime.Object) string {
	m := metaOf(o)
	return kindOf(o) + "/" + m.GetNamespace() + "/" + m.GetName()
}

func rvOf(o runtime.Object) string { return metaOf(o).GetResourceVersion() }

// waitSubscribers waits until every subscriber received revision head.
func waitSubscribers(ctx context.Context, subs []*subscriber, head uint64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		done := true
		for _, s := range subs {
			if _, last, _ := s.span(); last < head {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			var at []string
			for _, s := range subs {
				_, last, _ := s.span()
				at = append(at, fmt.Sprint(last))
			}
			return fmt.Errorf("subscribers stopped at revisions %s, head is %d", strings.Join(at, ", "), head)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// sampleOf picks what clients ask about from the initial cluster.
func sampleOf(objs []runtime.Object) *sample {
	s := &sample{}
	users, groups := map[string]bool{}, map[string]bool{}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			s.serviceAccounts = append(s.serviceAccounts, [2]string{o.Namespace, o.Name})
			if len(s.names) < 200 && len(s.serviceAccounts)%20 == 0 {
				s.names = append(s.names, o.Name)
			}
		case *corev1.Namespace:
			s.namespaces = append(s.namespaces, o.Name)
		case *rbacv1.RoleBinding:
			for _, sub := range o.Subjects {
				switch sub.Kind {
				case rbacv1.UserKind:
					users[sub.Name] = true
				case rbacv1.GroupKind:
					groups[sub.Name] = true
				}
			}
		}
	}
	for u := range users {
		s.users = append(s.users, u)
	}
	for g := range groups {
		s.groups = append(s.groups, g)
	}
	slices.Sort(s.users)
	slices.Sort(s.groups)
	s.names = append(s.names, "kube-system", "secrets", "pods/exec", "cluster-admin", "deployer", "clusteradmn", "view", "edit")
	return s
}

func randomToken(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// filtersYAML are saved filters of every target, so alerts are evaluated on every revision of the run.
const filtersYAML = `filters:
- id: people-cluster-admin
  name: people given cluster-admin
  target: changes
  expression: change.op != 'delete' && change.object.roleRef.name == 'cluster-admin'
- id: secrets-in-ns-0001
  name: read on secrets in one namespace
  target: grants
  expression: grant.allows(['get', 'list', 'watch'], 'secrets') && grant.appliesIn('ns-0001')
- id: critical
  name: critical risks
  target: findings
  expression: finding.severity == 'critical' && finding.status == 'risky'
- id: wildcard-roles
  name: roles granting everything
  target: entities
  kind: ClusterRole
  expression: object.rules.exists(r, '*' in r.verbs && '*' in r.resources)
`
