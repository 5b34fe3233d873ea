package perf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
	"github.com/kiem-io/kiem/queries"
)

// The flags of BenchmarkScale: go test … -args -scale.sizes=1,2 -scale.out=PATH.
var (
	scaleSizesFlag = flag.String("scale.sizes", "1,2", "BenchmarkScale: the sizes to measure, as multiples of workload L (1,2 is L then 2×L)")
	scaleOutFlag   = flag.String("scale.out", "", "BenchmarkScale: also write the table to this file (a relative path is relative to internal/perf, where go test runs it)")
)

// Targets of ARCHITECTURE §8 (and, for the full pack evaluation, docs/performance.md).
const (
	targetCold      = 30 * time.Second
	targetColdRSS   = 3 << 30
	targetCanP50    = 20 * time.Microsecond
	targetCanP99    = 200 * time.Microsecond
	targetEP        = 2 * time.Millisecond
	targetWhoCan    = 10 * time.Millisecond
	targetChange    = 50 * time.Millisecond
	targetRate      = 1000.0 // changes/s sustained
	targetAPI       = 5 * time.Millisecond
	targetSearch    = 20 * time.Millisecond
	targetPast      = 5 * time.Second
	targetDiff      = time.Second
	targetPacksFull = 10 * time.Second
)

// Sample sizes, per size of workload: the same as the benchmarks the figures come from (BenchmarkL,
// BenchmarkSearchL, BenchmarkLiveL, BenchmarkAPIL, BenchmarkStoreHistory), so that L's column reads like them.
const (
	nCan          = 100_000
	nEP           = 20_000
	nWhoCan       = 2_000
	nSearch       = 6_000
	nChurn        = 1_000 // revisions of 10 changes
	apiClients    = 50
	apiPerClient  = 1_000
	historyLen    = 100_000 // changes
	historyPerRev = 10
	nTracked      = 1_000 // revisions of 10 changes, in each tracked run
	trackedEvery  = 10 * time.Millisecond
	nOneChange    = 600 // single-change revisions followed by the findings' update
)

// scaleRow is one row of BenchmarkScale's table.
type scaleRow struct{ id, what, target string }

// scaleRows are the rows of the table: ARCHITECTURE §8 in its order, each figure in the words of what was measured.
func scaleRows() []scaleRow {
	return []scaleRow{
		{"cold", "cold index to queryable: a `kiem can-i --snapshot` process on the workload as JSON, start to answer", "≤ 30 s"},
		{"coldRSS", "… peak RSS of that process", "≤ 3 GiB"},
		{"coldInProc", "… in process: read the JSON (`indexer.Load`) + index (`NewSnapshot`)", "≤ 30 s"},
		{"ingest", "… ingest into an empty store: one durable revision, snapshot built (`Live.Commit`)", "≤ 30 s"},
		{"canP50", "`can` in process, p50", "≤ 20 µs"},
		{"canP99", "`can` in process, p99", "≤ 200 µs"},
		{"ep", "`effectivePermissions` of one ServiceAccount, p99", "≤ 2 ms"},
		{"whoCan", "`whoCan` for one verb/resource/namespace, p99", "≤ 10 ms"},
		{"commit10", "one change → durable revision and snapshot: revisions of 10 changes (`Live.Commit`: store + `Apply`), p99 per revision", "≤ 50 ms"},
		{"commit10Rate", "… sustained, store and snapshot only, no findings", "≥ 1,000 changes/s"},
		{"findings1", "one change → findings updated: `ObjectChanges` + `Engine.Update` after a commit of that one change, p99", "≤ 50 ms"},
		{"combined1", "one change → durable revision, snapshot and findings: commit of 1 change, then the tracker's step in the same goroutine (attack paths deferred), p99", "≤ 50 ms"},
		{"combined1Rate", "… sustained, one change at a time (1 / mean)", "≥ 1,000 changes/s"},
		{"trackedPaced", "… with `queries.Tracker` running, store fed 1,000 changes/s (10 every 10 ms, 10 s): commit start → tracker published that revision, p99", "≤ 50 ms"},
		{"trackedMax", "… with `queries.Tracker` running, commits as fast as they go: changes/s until the tracker caught up", "≥ 1,000 changes/s"},
		{"api", "GraphQL `can` over HTTP, 50 concurrent clients (in process, on loopback) while the store ingests 500 changes/s, p99", "≤ 5 ms"},
		{"search", "search in process (names, prefixes, rule contents, e-mail substrings, typos; warm index), p99", "≤ 20 ms"},
		{"past", "open a past revision (store read + index, `Live.At`)", "≤ 5 s"},
		{"diff", "diff two revisions 1,000 changes apart (`Live.Diff`)", "≤ 1 s"},
		{"history", "history of 100,000 changes on disk (pod updates in revisions of 10, on top of the workload)", "≤ 2 × one full snapshot + 2 KB per change"},
		{"packsFull", "full evaluation of every embedded pack (the tracker's first evaluation; target from docs/performance.md)", "≤ 10 s"},
		{"refreshPaths", "attack-path findings refreshed when changes pause (`Engine.RefreshPaths`)", "—"},
		{"peakRSS", "peak RSS of the benchmark process while measuring this size", "—"},
		{"peakLive", "peak live Go heap (marked by a collection) outside the tracked runs", "—"},
	}
}

// verdict says how a figure compares with its target.
type verdict int

const (
	informational verdict = iota // no target, or not measured
	pass
	miss
)

// cell is one figure of the table.
type cell struct {
	text string
	v    verdict
}

// judged returns a cell that passes when ok.
func judged(text string, ok bool) cell {
	if ok {
		return cell{text, pass}
	}
	return cell{text, miss}
}

func (c cell) String() string {
	switch c.v {
	case pass:
		return c.text + " ✓"
	case miss:
		return c.text + " ✗ MISS"
	}
	return c.text
}

// sizeResult is what BenchmarkScale measured on one size of workload.
type sizeResult struct {
	k       int
	counts  map[graph.Kind]int
	objects int
	cells   map[string]cell
	notes   []string // footnotes about this size
	skipped string   // why the size was not measured, when it was not
	err     error    // what stopped the measurement, when something did
	peakKiB int64    // peak RSS of this process while measuring it (VmHWM, reset before)
	// liveTracked is the peak live Go heap during the tracked runs, liveOther outside them.
	liveTracked, liveOther uint64
	took                   time.Duration
	others                 float64 // the share of the machine's CPU time that other processes took meanwhile, -1 when unknown
}

func sizeLabel(k int) string {
	if k == 1 {
		return "L"
	}
	return fmt.Sprintf("%d×L", k)
}

// BenchmarkScale measures every figure of ARCHITECTURE §8 on L and on multiples of it (-scale.sizes, 2×L by
// default; a larger size is skipped, with the reason printed, when MemAvailable cannot hold it, estimated from the
// peak RSS of the size before), and prints one table with the machine's description. It runs once, whatever
// -benchtime says, and takes about half an hour for L and 2×L on 2 cores: run it with `make bench-scale`.
//
// Each size is generated in process and measured phase by phase (cold load, in-process queries, history on disk,
// a live store with churn, past revisions and the API, then the findings), each phase letting go of what it
// built, and the memory is returned to the OS before the next size.
func BenchmarkScale(b *testing.B) {
	// `make bench` selects the other benchmarks ('L$'); this one is make bench-scale's.
	sizes, err := parseSizes(*scaleSizesFlag)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	// A soft memory limit keeps a size that outgrows the machine from being killed, or from starving whatever
	// else runs on it: the collector works harder near the limit instead. It binds only near MemAvailable, and
	// an operator's GOMEMLIMIT wins.
	var limit string
	if os.Getenv("GOMEMLIMIT") == "" {
		if avail, err := meminfoKiB("MemAvailable"); err == nil {
			n := avail << 10 * 85 / 100
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(n))
			limit = fmt.Sprintf("; the benchmark sets a soft memory limit of %s (85%% of MemAvailable at its start)", fmtBytes(n))
		}
	}
	base, err := kubeadmPolicy(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// The kiem binary is built once for every size; a failed build (the command's code being edited, say)
	// costs the cold-start rows their figure, not the whole run.
	fmt.Fprintf(os.Stderr, "scale: building kiem for the cold-start figures\n")
	bin, binErr := buildKiem(b.TempDir())
	if binErr != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", binErr)
	}

	var results []*sizeResult
	var largest *sizeResult // the largest size measured so far, for the memory estimate of the next
	for _, k := range sizes {
		releaseMemory()
		if largest != nil {
			if why := memoryShortfall(largest, k); why != "" {
				fmt.Fprintf(os.Stderr, "scale: %s\n", why)
				results = append(results, &sizeResult{k: k, skipped: why})
				continue
			}
		}
		run := &scaleRun{b: b, start: start, prev: largest, res: &sizeResult{k: k, cells: map[string]cell{}}}
		run.measure(ctx, base, bin, binErr)
		results = append(results, run.res)
		if run.res.err == nil && run.res.liveOther > 0 {
			largest = run.res
		}
		releaseMemory()
	}

	m := describeMachine()
	m.gc += limit
	table := scaleTable(m, results, sizes, time.Since(start))
	fmt.Print(table)
	if *scaleOutFlag != "" {
		if err := os.WriteFile(*scaleOutFlag, []byte(table), 0o644); err != nil {
			b.Errorf("write the table: %v", err)
		} else {
			fmt.Fprintf(os.Stderr, "scale: table written to %s\n", *scaleOutFlag)
		}
	}
	for _, r := range results {
		if r.err != nil {
			b.Errorf("%s: %v", sizeLabel(r.k), r.err)
		}
	}
}

// parseSizes parses -scale.sizes: positive multiples of L, measured in increasing order.
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			return nil, fmt.Errorf("-scale.sizes=%q: want positive whole multiples of L, such as 1,2", s)
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// releaseMemory collects what the last measurement left and returns it to the OS, so that MemAvailable and the
// next size's peak RSS are its own.
func releaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// memoryShortfall returns why size k should be skipped, or "" when the memory the benchmark may use holds it:
// the peak live heap of the largest size measured (outside the tracked runs, which are judged on their own),
// scaled linearly to k, with a quarter more so that the collector need not run all the time. The live heap, not
// the peak RSS, is what must fit: above it the RSS is the collector's headroom (GOGC), which the soft memory
// limit trades for collections.
func memoryShortfall(largest *sizeResult, k int) string {
	need := scaledNeed(largest.liveOther, largest.k, k)
	budget, err := memoryBudget()
	if k <= largest.k || err != nil || need <= budget {
		return "" // no larger, no estimate to go by, or it fits
	}
	return fmt.Sprintf("%s skipped: %s peaked at %s of live Go heap (and %s of RSS), so %s needs about %s; this process may use %s (%s)",
		sizeLabel(k), sizeLabel(largest.k), fmtBytes(int64(largest.liveOther)), fmtBytes(largest.peakKiB<<10), sizeLabel(k),
		fmtBytes(need), fmtBytes(budget), budgetWhy())
}

// scaledNeed estimates the memory size k needs from live, the peak live heap of size of: linear in the size, and
// a quarter more.
func scaledNeed(live uint64, of, k int) int64 { return int64(live) * int64(k) / int64(of) * 5 / 4 }

// memoryBudget returns how much memory this process may use: its soft memory limit, or what it holds plus
// MemAvailable when that is less.
func memoryBudget() (int64, error) {
	avail, err := meminfoKiB("MemAvailable")
	if err != nil {
		return 0, err
	}
	rss, err := procStatusKiB("VmRSS")
	if err != nil {
		return 0, err
	}
	return min((avail+rss)<<10, debug.SetMemoryLimit(-1)), nil
}

func budgetWhy() string { return "the lesser of its soft memory limit and its RSS plus MemAvailable" }

// heapWatch samples the live Go heap (what the last collection marked) and keeps its peak: the memory a
// measurement needs, whatever GOGC lets the heap grow to between collections.
type heapWatch struct {
	mu   sync.Mutex
	peak uint64
	stop chan struct{}
	done chan struct{}
}

func watchHeap() *heapWatch {
	h := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			h.sample()
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapWatch) sample() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return // not in this runtime: no peak
	}
	h.mu.Lock()
	h.peak = max(h.peak, s[0].Value.Uint64())
	h.mu.Unlock()
}

// take returns the peak since the last take and starts a new one.
func (h *heapWatch) take() uint64 {
	h.sample()
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peak
	h.peak = 0
	return p
}

func (h *heapWatch) close() {
	close(h.stop)
	<-h.done
}

// scaleRun measures one size.
type scaleRun struct {
	b     *testing.B
	start time.Time   // of the benchmark, for the progress lines
	prev  *sizeResult // the largest size measured before, nil for the first
	res   *sizeResult
	heap  *heapWatch
}

// progress prints where the measurement is, on stderr, so that the table alone is on stdout.
func (s *scaleRun) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale %s [%v] %s\n", sizeLabel(s.res.k), time.Since(s.start).Round(time.Second), fmt.Sprintf(format, args...))
}

func (s *scaleRun) set(id string, c cell) {
	s.res.cells[id] = c
	s.progress("%s: %s", id, c)
}

func (s *scaleRun) note(format string, args ...any) {
	s.res.notes = append(s.res.notes, fmt.Sprintf(format, args...))
}

// metric reports a figure to the benchmark framework under the size's name (L-…, 2xL-…).
func (s *scaleRun) metric(v float64, unit string) {
	prefix := "L"
	if s.res.k != 1 {
		prefix = fmt.Sprintf("%dxL", s.res.k)
	}
	s.b.ReportMetric(v, prefix+"-"+unit)
}

// measure runs every phase on size k of L; the first error stops it and is kept in the result.
func (s *scaleRun) measure(ctx context.Context, base *graph.Objects, bin string, binErr error) {
	start := time.Now()
	s.res.others = -1
	before, cpuErr := readCPU()
	if err := resetPeakRSS(); err != nil {
		s.note("%s: peak RSS not reset before this size (%v): it may be an earlier size's", sizeLabel(s.res.k), err)
	}
	s.heap = watchHeap()
	s.res.err = s.phases(ctx, base, bin, binErr)
	s.res.liveOther = max(s.res.liveOther, s.heap.take())
	s.heap.close()
	live := fmtBytes(int64(s.res.liveOther))
	if s.res.liveTracked > 0 {
		live += fmt.Sprintf(" (during the tracked runs: %s)", fmtBytes(int64(s.res.liveTracked)))
	}
	s.set("peakLive", cell{text: live})
	if s.res.err != nil {
		s.progress("stopped: %v", s.res.err)
	}
	if kib, err := procStatusKiB("VmHWM"); err == nil {
		s.res.peakKiB = kib
		if limit := debug.SetMemoryLimit(-1); kib<<10 >= limit/10*9 {
			s.note("%s: the RSS reached %s, near the soft memory limit of %s: the collector ran more often than GOGC alone asks, which slows what allocates most (the pack evaluation).",
				sizeLabel(s.res.k), fmtBytes(kib<<10), fmtBytes(limit))
		}
		s.set("peakRSS", cell{text: fmtBytes(kib << 10)})
		s.metric(float64(kib)/1024, "peak-rss-MiB")
	}
	s.res.took = time.Since(start)
	if after, err := readCPU(); err == nil && cpuErr == nil {
		s.res.others = after.othersShare(before)
	}
	s.progress("done in %v", s.res.took.Round(time.Second))
}

func (s *scaleRun) phases(ctx context.Context, base *graph.Objects, bin string, binErr error) error {
	dir, err := os.MkdirTemp("", "kiem-scale-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	s.progress("generating the workload")
	t := time.Now()
	objs := workload.Generate(base, workload.L().Scale(s.res.k), 1)
	s.res.counts, s.res.objects = workload.Count(objs), objs.Count()
	s.progress("generated %d objects in %v", s.res.objects, time.Since(t).Round(time.Millisecond))

	if err := s.cold(ctx, objs, dir, bin, binErr); err != nil {
		return err
	}
	runtime.GC()
	if err := s.inProcess(ctx, objs); err != nil {
		return err
	}
	runtime.GC()
	if err := s.history(ctx, objs, filepath.Join(dir, "history")); err != nil {
		return err
	}
	runtime.GC()
	return s.live(ctx, objs, filepath.Join(dir, "live"))
}

// cold measures row 1: the `kiem can-i --snapshot` process on the workload written as JSON (as BenchmarkLoadL),
// and the same load and index in process.
func (s *scaleRun) cold(ctx context.Context, objs *graph.Objects, dir, bin string, binErr error) error {
	file := filepath.Join(dir, "workload.json")
	s.progress("writing the workload as JSON")
	size, err := writeWorkload(file, objs, "json")
	if err != nil {
		return err
	}
	defer os.Remove(file)
	if binErr != nil {
		s.set("cold", cell{text: "not measured (kiem did not build)"})
		s.note("%s: the cold-start process was not run: %v", sizeLabel(s.res.k), binErr)
	} else {
		s.progress("running kiem can-i --snapshot on %s of JSON", fmtBytes(size))
		wall, rssKiB, err := runCanIAlone(bin, file)
		if err != nil {
			s.set("cold", cell{text: "failed (see notes)"})
			s.note("%s: the cold-start process failed: %v", sizeLabel(s.res.k), err)
		} else {
			s.set("cold", judged(fmt.Sprintf("%s (%s of JSON)", fmtVs(wall, targetCold), fmtBytes(size)), wall <= targetCold))
			s.set("coldRSS", judged(fmtBytes(rssKiB<<10), rssKiB<<10 <= targetColdRSS))
			s.metric(wall.Seconds(), "cold-process-s")
			s.metric(float64(rssKiB)/1024, "cold-process-rss-MiB")
		}
	}
	s.progress("loading and indexing the JSON in process")
	load, index, err := loadInProcess(ctx, file)
	if err != nil {
		return err
	}
	s.set("coldInProc", judged(fmt.Sprintf("%s + %s", fmtDur(load), fmtDur(index)), load+index <= targetCold))
	s.metric((load + index).Seconds(), "load+index-s")
	return nil
}

// The environment variables that make TestCanIHelper run `kiem can-i` for runCanIAlone.
const (
	canIHelperBin  = "KIEM_PERF_CANI_BIN"
	canIHelperFile = "KIEM_PERF_CANI_FILE"
)

// runCanIAlone runs `kiem can-i --snapshot file` like runCanI, but from a small helper process (this test binary
// again, as TestCanIHelper), so that the peak RSS is kiem's own. Linux counts in a child's peak RSS the
// high-water mark of the address space it had before exec, which a child of Go's os/exec shares with its parent:
// a kiem started directly from a benchmark that holds gigabytes reports the benchmark's peak when that is higher.
func runCanIAlone(bin, file string) (wall time.Duration, maxRSSKiB int64, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCanIHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), canIHelperBin+"="+bin, canIHelperFile+"="+file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("kiem can-i from a helper process: %w\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, err := fmt.Sscanf(line, "kiem-can-i wall-ns=%d maxrss-kib=%d", &wall, &maxRSSKiB); err == nil {
			return wall, maxRSSKiB, nil
		}
	}
	return 0, 0, fmt.Errorf("kiem can-i from a helper process: no result in its output:\n%s", out)
}

// TestCanIHelper is not a test: it is the helper process of runCanIAlone, and does nothing (passes) unless
// started as one. It does not skip, so that test runs show no skipped tests.
func TestCanIHelper(t *testing.T) {
	bin, file := os.Getenv(canIHelperBin), os.Getenv(canIHelperFile)
	if bin == "" || file == "" {
		return
	}
	wall, rss, err := runCanI(bin, file)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("kiem-can-i wall-ns=%d maxrss-kib=%d\n", wall.Nanoseconds(), rss)
}

// inProcess measures rows 2, 3, 4 and 7 on one snapshot of the workload, as BenchmarkL and BenchmarkSearchL do.
func (s *scaleRun) inProcess(ctx context.Context, objs *graph.Objects) error {
	snap := graph.NewSnapshot(objs)
	qs := sampleQueries(snap, nCan, 7)

	s.progress("Can: %d sampled requests", len(qs))
	l, allowed := measureCan(snap, qs)
	s.set("canP50", judged(fmt.Sprintf("%s (mean %s)", fmtVs(l.pct(0.50), targetCanP50), fmtDur(l.mean())), l.pct(0.50) <= targetCanP50))
	s.set("canP99", judged(fmtVs(l.pct(0.99), targetCanP99), l.pct(0.99) <= targetCanP99))
	s.metric(float64(l.pct(0.50).Nanoseconds()), "can-p50-ns")
	s.metric(float64(l.pct(0.99).Nanoseconds()), "can-p99-ns")
	s.progress("Can allowed %d of %d", allowed, len(qs))

	s.progress("EffectivePermissions: %d ServiceAccounts", nEP)
	l, err := measureEffectivePermissions(ctx, snap, rand.New(rand.NewPCG(3, 0)), nEP)
	if err != nil {
		return err
	}
	s.set("ep", judged(fmt.Sprintf("%s (p50 %s)", fmtVs(l.pct(0.99), targetEP), fmtDur(l.pct(0.50))), l.pct(0.99) <= targetEP))
	s.metric(float64(l.pct(0.99).Nanoseconds()), "ep-p99-ns")

	s.progress("WhoCan: %d actions", nWhoCan)
	if l, err = measureWhoCan(ctx, snap, qs[:nWhoCan]); err != nil {
		return err
	}
	s.set("whoCan", judged(fmt.Sprintf("%s (p50 %s)", fmtVs(l.pct(0.99), targetWhoCan), fmtDur(l.pct(0.50))), l.pct(0.99) <= targetWhoCan))
	s.metric(float64(l.pct(0.99).Nanoseconds()), "whocan-p99-ns")

	s.progress("Search: the first search indexes every shard, then %d searches", nSearch)
	sq := searchQueries(snap, nSearch, 11)
	t := time.Now()
	if _, err := snap.Search(ctx, graph.SearchQuery{Text: "secrets"}); err != nil {
		return fmt.Errorf("first search: %w", err)
	}
	first := time.Since(t)
	w, err := measureSearch(ctx, snap, sq)
	if err != nil {
		return err
	}
	if w.hits == 0 {
		return errors.New("no search found anything")
	}
	s.set("search", judged(fmt.Sprintf("%s (p50 %s; first search, indexing every shard: %s)", fmtVs(w.all.pct(0.99), targetSearch), fmtDur(w.all.pct(0.50)), fmtDur(first)),
		w.all.pct(0.99) <= targetSearch))
	s.metric(float64(w.all.pct(0.99).Nanoseconds()), "search-p99-ns")
	return nil
}

// history measures row 9 as graph's BenchmarkStoreHistory does, on a store of its own in dir: the workload as
// one revision, then historyLen pod updates in revisions of historyPerRev, against the bound of ARCHITECTURE §8.
func (s *scaleRun) history(ctx context.Context, objs *graph.Objects, dir string) error {
	defer os.RemoveAll(dir)
	s.progress("history: committing the workload to a store of its own")
	h, err := measureHistory(ctx, dir, objs, historyLen, historyPerRev)
	if err != nil {
		return err
	}
	bound := 2*h.snapshot + 2048*int64(historyLen)
	s.set("history", judged(fmt.Sprintf("%s: %s over the %s of the workload's revision (%.0f B/change); bound %s",
		fmtBytes(h.total), fmtBytes(h.total-h.base), fmtBytes(h.base), h.perChange(), fmtBytes(bound)), h.total <= bound))
	s.note("%s history: %s changes committed in %v; the oldest revision read back in %v.", sizeLabel(s.res.k), thousands(historyLen),
		h.commit.Round(time.Millisecond), h.oldest.Round(time.Millisecond))
	s.metric(h.perChange(), "history-B/change")
	return nil
}

// live measures rows 5, 6 and 8 and the findings on a live graph in a real store in dir.
func (s *scaleRun) live(ctx context.Context, objs *graph.Objects, dir string) error {
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		return fmt.Errorf("open the store: %w", err)
	}
	defer st.Close()
	g, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		return fmt.Errorf("open the live graph: %w", err)
	}
	s.progress("ingesting the workload into an empty store")
	t := time.Now()
	first, err := g.Commit(ctx, "scale:initial-list", graph.ReconcileChanges(g.Current(), objs))
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	ingest := time.Since(t)
	s.set("ingest", judged(fmtDur(ingest), ingest <= targetCold))
	s.metric(ingest.Seconds(), "ingest-s")

	s.progress("churn: %d revisions of 10 changes", nChurn)
	ch, err := churnTens(ctx, g, nChurn)
	if err != nil {
		return err
	}
	rate := float64(ch.changes) / ch.elapsed.Seconds()
	s.set("commit10", judged(fmt.Sprintf("%s (p50 %s)", fmtVs(ch.perRevision.pct(0.99), targetChange), fmtDur(ch.perRevision.pct(0.50))), ch.perRevision.pct(0.99) <= targetChange))
	s.set("commit10Rate", judged(fmt.Sprintf("%s changes/s", thousands(int(rate))), rate >= targetRate))
	s.metric(float64(ch.perRevision.pct(0.99).Nanoseconds()), "commit10-p99-ns")
	s.metric(rate, "commit10-changes/s")

	revs := append([]graph.Revision{first}, ch.revs...)
	s.progress("opening past revision %d", revs[1])
	open, _, err := openPast(ctx, g, revs[1])
	if err != nil {
		return err
	}
	s.set("past", judged(fmtVs(open, targetPast), open <= targetPast))
	s.metric(open.Seconds(), "open-past-s")
	diff, d, err := timeDiff(ctx, g, revs[len(revs)-101], revs[len(revs)-1])
	if err != nil {
		return err
	}
	s.set("diff", judged(fmt.Sprintf("%s (%s subjects with deltas)", fmtVs(diff, targetDiff), thousands(len(d.Subjects))), diff <= targetDiff))
	s.metric(diff.Seconds(), "diff-1000-s")

	runtime.GC()
	if err := s.api(ctx, g); err != nil {
		return err
	}
	runtime.GC()
	return s.findings(ctx, g)
}

// api measures row 6 as BenchmarkAPIL does, ingest included.
func (s *scaleRun) api(ctx context.Context, g *graph.Live) error {
	api, err := newAPIServer(g)
	if err != nil {
		return err
	}
	defer api.close()
	vars := canVars(g.Current(), 5_000, 11)
	s.progress("GraphQL can over HTTP: %d clients × %d requests, while ingesting", apiClients, apiPerClient)
	res, err := measureAPICan(ctx, g, api, vars, apiClients, apiPerClient)
	if err != nil {
		return err
	}
	p99 := res.l.pct(0.99)
	text := fmt.Sprintf("%s (p50 %s; %s req/s; %d errors)", fmtVs(p99, targetAPI), fmtDur(res.l.pct(0.50)),
		thousands(int(float64(len(res.l))/res.elapsed.Seconds())), res.errs)
	s.set("api", judged(text, p99 <= targetAPI && res.errs == 0))
	if res.errs > 0 {
		s.note("%s API: %d requests failed, the first with %v", sizeLabel(s.res.k), res.errs, res.firstErr)
	}
	s.note("%s API: %s changes ingested during the %v the clients took (%.0f/s).", sizeLabel(s.res.k), thousands(res.ingested),
		res.elapsed.Round(time.Millisecond), float64(res.ingested)/res.elapsed.Seconds())
	s.metric(float64(p99.Nanoseconds()), "api-can-p99-ns")
	return nil
}

// findings measures the rest of row 5 and the pack rows: the tracker's first (full) evaluation, the tracker
// following paced and unpaced commits, then, with the tracker stopped, single-change commits each followed by
// the tracker's step in the same goroutine, and finally the attack-path refresh the tracker does when changes
// pause.
func (s *scaleRun) findings(ctx context.Context, g *graph.Live) error {
	packs, err := queries.Embedded()
	if err != nil {
		return fmt.Errorf("embedded packs: %w", err)
	}
	e, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline()})
	if err != nil {
		return fmt.Errorf("pack engine: %w", err)
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	// History holds every delta of both tracked runs, for counting the tracker's steps and refreshes.
	tr := queries.NewTracker(e, g, queries.TrackerOptions{History: 10 * nTracked})
	ran := make(chan error, 1)
	go func() { ran <- tr.Run(tctx) }()
	stopTracker := func() error {
		stop()
		if err := <-ran; err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		return nil
	}

	s.progress("packs: the tracker's first evaluation (every embedded pack)")
	select {
	case <-tr.Ready():
	case err := <-ran:
		return fmt.Errorf("tracker stopped before its first evaluation: %v", err)
	case <-time.After(30 * time.Minute):
		_ = stopTracker()
		return errors.New("the tracker's first evaluation took over 30 minutes")
	}
	first, _ := tr.Last()
	heap := heapInUse()
	s.set("packsFull", judged(fmt.Sprintf("%s (Go heap in use after: %s)", fmtVs(first.Took, targetPacksFull), fmtBytes(int64(heap))), first.Took <= targetPacksFull))
	s.metric(first.Took.Seconds(), "packs-full-s")

	gen := &changeGen{r: rand.New(rand.NewPCG(5, 5)), o: g.Current().Objects()}
	if why := s.trackedShortfall(); why != "" {
		s.set("trackedPaced", cell{text: "not run (memory, see notes)"})
		s.set("trackedMax", cell{text: "not run (memory, see notes)"})
		s.note("%s", why)
	} else {
		s.res.liveOther = max(s.res.liveOther, s.heap.take())
		err := s.tracked(ctx, g, tr, gen)
		s.res.liveTracked = s.heap.take()
		if err != nil {
			_ = stopTracker()
			return err
		}
	}
	if err := stopTracker(); err != nil {
		return err
	}

	// The tracker is stopped: from its last result on, this goroutine commits and updates the findings itself,
	// which is the tracker's step without the hand-over between goroutines and without its attack-path refresh.
	rev, res := tr.Current()
	if rev != g.Head() {
		return fmt.Errorf("tracker stopped at revision %d, head is %d", rev, g.Head())
	}
	s.progress("%d single-change commits, each followed by the findings' update", nOneChange)
	one, res, err := commitThenUpdate(ctx, g, e, rev, res, gen, nOneChange)
	if err != nil {
		return err
	}
	total, upd := one.total.pct(0.99), one.findings.pct(0.99)
	s.set("findings1", judged(fmt.Sprintf("%s (p50 %s)", fmtVs(upd, targetChange), fmtDur(one.findings.pct(0.50))), upd <= targetChange))
	s.set("combined1", judged(fmt.Sprintf("%s (p50 %s; the commit alone: p99 %s)", fmtVs(total, targetChange), fmtDur(one.total.pct(0.50)), fmtDur(one.commit.pct(0.99))),
		total <= targetChange))
	oneRate := float64(len(one.total)) / one.elapsed.Seconds()
	s.set("combined1Rate", judged(fmt.Sprintf("%s changes/s", thousands(int(oneRate))), oneRate >= targetRate))
	s.metric(float64(upd.Nanoseconds()), "findings-one-p99-ns")
	s.metric(float64(total.Nanoseconds()), "change+findings-p99-ns")
	var byKind []string
	for _, k := range changeKinds {
		byKind = append(byKind, fmt.Sprintf("%s p50 %s / p99 %s", k, fmtDur(one.byKind[k].pct(0.50)), fmtDur(one.byKind[k].pct(0.99))))
	}
	s.note("%s findings after one change (`ObjectChanges` + `Engine.Update`), by kind: %s.", sizeLabel(s.res.k), strings.Join(byKind, "; "))

	s.progress("attack-path refresh")
	t := time.Now()
	res, _, err = e.RefreshPaths(ctx, res)
	if err != nil {
		return fmt.Errorf("refresh attack paths: %w", err)
	}
	refresh := time.Since(t)
	s.set("refreshPaths", cell{text: fmtDur(refresh)})
	s.metric(refresh.Seconds(), "refresh-paths-s")
	s.note("%s packs: %s findings on the last revision.", sizeLabel(s.res.k), thousands(len(res.Findings())))
	return nil
}
