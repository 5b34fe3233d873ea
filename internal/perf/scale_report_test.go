package perf

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// historySize is what measureHistory measured.
type historySize struct {
	snapshot int64 // the workload's objects, encoded as the store encodes them
	base     int64 // the store holding the workload as one revision
	total    int64 // the store after the history
	changes  int
	commit   time.Duration // committing the history
	oldest   time.Duration // reading the oldest revision back
}

func (h historySize) perChange() float64 { return float64(h.total-h.base) / float64(h.changes) }

// measureHistory replicates graph's BenchmarkStoreHistory (graph's tests cannot be called from here): it commits
// objs to a new store in dir as one revision, measures the store closed and reopened (memtables flushed), commits
// changes pod updates in revisions of perRevision, and measures again.
func measureHistory(ctx context.Context, dir string, objs *graph.Objects, changes, perRevision int) (historySize, error) {
	open := func() (*graph.Store, error) {
		st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
		if err != nil {
			return nil, fmt.Errorf("open the history store: %w", err)
		}
		return st, nil
	}
	st, err := open()
	if err != nil {
		return historySize{}, err
	}
	h := historySize{changes: changes}
	if h.snapshot, err = commitWhole(ctx, st, objs); err != nil {
		st.Close()
		return historySize{}, err
	}
	if err := st.Close(); err != nil {
		return historySize{}, fmt.Errorf("close the history store: %w", err)
	}
	if st, err = open(); err != nil {
		return historySize{}, err
	}
	h.base = st.SizeBytes()
	first := st.Head()
	start := time.Now()
	for i := 0; i < changes; i += perRevision {
		if _, err := st.Commit(ctx, "scale", time.Time{}, historyPodChanges(objs, i, perRevision)); err != nil {
			st.Close()
			return historySize{}, fmt.Errorf("commit history at change %d: %w", i, err)
		}
	}
	h.commit = time.Since(start)
	if err := st.Close(); err != nil {
		return historySize{}, fmt.Errorf("close the history store: %w", err)
	}
	if st, err = open(); err != nil {
		return historySize{}, err
	}
	defer st.Close()
	h.total = st.SizeBytes()
	t := time.Now()
	if _, err := st.Objects(ctx, first); err != nil {
		return historySize{}, fmt.Errorf("read the oldest revision: %w", err)
	}
	h.oldest = time.Since(t)
	return h, nil
}

// commitWhole commits every object of objs to st as one revision and returns the size of their encoding, the
// "one full snapshot" of ARCHITECTURE §8's bound.
func commitWhole(ctx context.Context, st *graph.Store, objs *graph.Objects) (int64, error) {
	var size int64
	all := make([]graph.Change, 0, objs.Count())
	var encErr error
	objs.Each(func(o graph.Object) bool {
		v, err := graph.MarshalObject(o)
		if err != nil {
			encErr = fmt.Errorf("encode %s: %w", o.Ref(), err)
			return false
		}
		size += int64(len(v))
		all = append(all, graph.NewChange(nil, o))
		return true
	})
	if encErr != nil {
		return 0, encErr
	}
	if _, err := st.Commit(ctx, "scale", time.Time{}, all); err != nil {
		return 0, fmt.Errorf("commit the workload: %w", err)
	}
	return size, nil
}

// historyPodChanges returns n changes, each updating one pod of objs (a label bump), starting at pod i: graph's
// podChanges.
func historyPodChanges(objs *graph.Objects, i, n int) []graph.Change {
	out := make([]graph.Change, n)
	for j := range out {
		before := &objs.Pods[(i+j)%len(objs.Pods)]
		after := *before
		after.Labels = map[string]string{"bench": strconv.Itoa(i + j)}
		out[j] = graph.NewChange(before, &after)
	}
	return out
}

// machine describes where the figures were measured.
type machine struct {
	cpu, ram, kernel, gc, commit string
	cpus                         int
}

func describeMachine() machine {
	m := machine{cpu: "unknown CPU", ram: "unknown", kernel: "unknown", commit: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			key, val, ok := strings.Cut(sc.Text(), ":")
			switch key = strings.TrimSpace(key); {
			case !ok:
			case key == "processor":
				m.cpus++
			case key == "model name" && m.cpu == "unknown CPU":
				m.cpu = strings.TrimSpace(val)
			}
		}
		f.Close()
	}
	if kib, err := meminfoKiB("MemTotal"); err == nil {
		m.ram = fmtBytes(kib << 10)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.gc = "GOGC " + cmp.Or(os.Getenv("GOGC"), "100 (default)") + ", GOMEMLIMIT " + cmp.Or(os.Getenv("GOMEMLIMIT"), "unset")
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.commit += " with uncommitted changes"
		}
	}
	return m
}

// scaleTable renders the machine, the workloads, the table and its notes as markdown.
func scaleTable(m machine, results []*sizeResult, sizes []int, took time.Duration) string {
	var w strings.Builder
	labels := make([]string, len(sizes))
	for i, k := range sizes {
		labels[i] = sizeLabel(k)
	}
	fmt.Fprintf(&w, "\n## kiem at scale: ARCHITECTURE §8 on %s\n\n", strings.Join(labels, " and "))
	fmt.Fprintf(&w, "- machine: %s, %d logical CPUs in /proc/cpuinfo (runtime.NumCPU %d), %s RAM (MemTotal)\n", m.cpu, m.cpus, runtime.NumCPU(), m.ram)
	fmt.Fprintf(&w, "- OS: %s/%s, kernel %s\n", runtime.GOOS, runtime.GOARCH, m.kernel)
	fmt.Fprintf(&w, "- Go: %s, GOMAXPROCS %d, %s\n", runtime.Version(), runtime.GOMAXPROCS(0), m.gc)
	fmt.Fprintf(&w, "- date: %s; commit %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), m.commit)
	var peak int64
	for _, r := range results {
		peak = max(peak, r.peakKiB)
		if r.skipped != "" {
			fmt.Fprintf(&w, "- %s: not measured (%s)\n", sizeLabel(r.k), r.skipped)
			continue
		}
		others := "unknown"
		if r.others >= 0 {
			others = fmt.Sprintf("%.0f%%", 100*r.others)
		}
		fmt.Fprintf(&w, "- %s = `workload.L().Scale(%d)` on the kubeadm v1.33 policy, seed 1: %s objects: %s; measured in %v, while other processes took %s of the machine's CPU time\n",
			sizeLabel(r.k), r.k, thousands(r.objects), describeCounts(r.counts), r.took.Round(time.Second), others)
	}
	fmt.Fprintf(&w, "- whole run: %v; peak RSS of the benchmark process %s\n\n", took.Round(time.Second), fmtBytes(peak<<10))

	fmt.Fprintf(&w, "| what | target | %s |\n|---|---|%s\n", strings.Join(labels, " | "), strings.Repeat("---|", len(labels)))
	for _, row := range scaleRows() {
		fmt.Fprintf(&w, "| %s | %s |", row.what, row.target)
		for _, r := range results {
			c, ok := r.cells[row.id]
			switch {
			case r.skipped != "":
				w.WriteString(" skipped |")
			case !ok:
				w.WriteString(" — |")
			default:
				fmt.Fprintf(&w, " %s |", c)
			}
		}
		w.WriteString("\n")
	}

	notes := []string{
		fmt.Sprintf("Samples per size, as the benchmarks they come from: `can` %s sampled requests, `effectivePermissions` %s ServiceAccounts, `whoCan` %s actions (BenchmarkL); search %s queries (BenchmarkSearchL); %s revisions of 10 changes of churn, the past revision is the one after the first, the diff spans the last 100 (BenchmarkLiveL); %d clients × %s `can` requests (BenchmarkAPIL); no sample was reduced for the larger sizes.",
			thousands(nCan), thousands(nEP), thousands(nWhoCan), thousands(nSearch), thousands(nChurn), apiClients, thousands(apiPerClient)),
		fmt.Sprintf("Findings: the tracker runs twice, %s revisions of 10 changes each time (RoleBindings added and deleted, pods started, Roles edited, in turn), once paced at one revision every %v and once back to back; its latency counts from the start of a commit until the tracker has published findings of that revision, so it includes commits queued behind the tracker's step over several revisions and its attack-path refresh (every embedded path rule, all subjects) when changes pause or every 10 s. Then, with the tracker stopped, %d single-change revisions are each committed and followed in the same goroutine by the tracker's step (`ObjectChanges` + `Engine.Update`), attack paths left pending; the refresh row times one `RefreshPaths` after them.",
			thousands(nTracked), trackedEvery, nOneChange),
		"Everything runs in one process on the machine's cores: the 50 GraphQL clients compete with the server for them, and the commits with the tracker.",
		"The cold-start `kiem can-i` is started from a small helper process (the test binary again), so that its peak RSS is its own: Linux counts in a child's peak the high-water mark of the memory it shared with its parent before exec, which here would be the benchmark's.",
	}
	for _, r := range results {
		notes = append(notes, r.notes...)
		if r.err != nil {
			notes = append(notes, fmt.Sprintf("%s stopped early: %v", sizeLabel(r.k), r.err))
		}
	}
	w.WriteString("\n")
	for _, n := range notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	return w.String()
}

// describeCounts lists the object counts of a workload in the order of ARCHITECTURE §8.
func describeCounts(c map[graph.Kind]int) string {
	kinds := []struct {
		k    graph.Kind
		name string
	}{
		{graph.KindNamespace, "namespaces"}, {graph.KindServiceAccount, "ServiceAccounts"}, {graph.KindRole, "Roles"},
		{graph.KindRoleBinding, "RoleBindings"}, {graph.KindClusterRole, "ClusterRoles"},
		{graph.KindClusterRoleBinding, "ClusterRoleBindings"}, {graph.KindUser, "users"}, {graph.KindGroup, "groups"},
		{graph.KindPod, "pods"},
	}
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = thousands(c[k.k]) + " " + k.name
	}
	return strings.Join(parts, ", ")
}

// cpuTimes is the CPU time the machine spent busy and the part of it this process and its children spent, in
// seconds, read at a moment.
type cpuTimes struct {
	busy, ours float64
	at         time.Time
}

// readCPU reads the machine's busy time from /proc/stat (in USER_HZ, 100 a second on Linux) and this process's
// and its waited-for children's from getrusage.
func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat begins %q", line)
	}
	t := cpuTimes{at: time.Now()}
	// user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
	for i, f := range fields[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.busy += n / 100
	}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return cpuTimes{}, fmt.Errorf("getrusage: %w", err)
		}
		t.ours += time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return t, nil
}

// othersShare returns the share of the machine's capacity (every CPU, all the time) that other processes used
// between before and t: the benchmark's figures are its own only when this is small.
func (t cpuTimes) othersShare(before cpuTimes) float64 {
	capacity := float64(runtime.NumCPU()) * t.at.Sub(before.at).Seconds()
	if capacity <= 0 {
		return 0
	}
	return max(0, (t.busy-before.busy)-(t.ours-before.ours)) / capacity
}

// meminfoKiB returns a field of /proc/meminfo in KiB.
func meminfoKiB(field string) (int64, error) { return procFieldKiB("/proc/meminfo", field) }

// procStatusKiB returns a field of /proc/self/status in KiB (VmHWM is the peak RSS).
func procStatusKiB(field string) (int64, error) { return procFieldKiB("/proc/self/status", field) }

func procFieldKiB(file, field string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file, err)
	}
	for line := range strings.Lines(string(b)) {
		if val, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s in %s: %w", field, file, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, file)
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux: 5 written to clear_refs), so that the peak
// read after a size is that size's.
func resetPeakRSS() error {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("reset the peak RSS: %w", err)
	}
	if _, err := f.WriteString("5"); err != nil {
		f.Close()
		return fmt.Errorf("reset the peak RSS: %w", err)
	}
	return f.Close()
}

// fmtDur formats d with three significant digits in a unit that suits it.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + " µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + " ms"
	}
	return sig3(d.Seconds()) + " s"
}

// fmtVs formats d like fmtDur, with more digits when d misses target by less than fmtDur shows: 200.8 µs, not
// 200 µs, against ≤ 200 µs.
func fmtVs(d, target time.Duration) string {
	s := fmtDur(d)
	if d <= target || s != fmtDur(target) {
		return s
	}
	_, unit, _ := strings.Cut(s, " ")
	scale := map[string]time.Duration{"ns": time.Nanosecond, "µs": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[unit]
	if scale == 0 {
		return s
	}
	return strconv.FormatFloat(float64(d)/float64(scale), 'f', 3, 64) + " " + unit
}

// sig3 formats v (below 1,000 unless a count of seconds) with three significant digits, never in exponent form.
func sig3(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// fmtBytes formats n bytes in MiB, or GiB from 1 GiB.
func fmtBytes(n int64) string {
	if n >= 1<<30 {
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// thousands formats n with thousands separators.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
