package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kiemBinary returns -load.kiem, or builds kiem from this checkout.
func kiemBinary(t *testing.T) string {
	t.Helper()
	if *kiemFlag != "" {
		return *kiemFlag
	}
	bin := filepath.Join(t.TempDir(), "kiem")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kiem-io/kiem/cmd/kiem")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build kiem: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address nothing listens on; kiem is restarted on the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// kiemProc is the kiem process under test; restarts append to the same log.
type kiemProc struct {
	bin  string
	args []string
	log  *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	gen  int // incremented at every start
	done chan struct{}
}

func startKiem(t *testing.T, bin, logPath string, args ...string) *kiemProc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	k := &kiemProc{bin: bin, args: args, log: f}
	if err := k.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.kill() })
	return k
}

func (k *kiemProc) start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gen++
	fmt.Fprintf(k.log, "=== load test: start %d\n", k.gen)
	cmd := exec.Command(k.bin, k.args...)
	cmd.Stdout, cmd.Stderr = k.log, k.log
	cmd.Env = append(os.Environ(), "GOMEMLIMIT="+*memLimitFlag)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kiem: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	k.cmd, k.done = cmd, done
	return nil
}

// pid returns the running process' id and its generation.
func (k *kiemProc) pid() (int, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cmd.Process.Pid, k.gen
}

// kill ends the process with SIGKILL, as the OOM killer or a node failure would, and waits for it.
func (k *kiemProc) kill() {
	k.mu.Lock()
	cmd, done := k.cmd, k.done
	k.mu.Unlock()
	cmd.Process.Kill()
	<-done
}

// stop asks the process to end with SIGTERM, as the kubelet does, and returns its exit status.
func (k *kiemProc) stop(timeout time.Duration) error {
	k.mu.Lock()
	cmd, done := k.cmd, k.done
	k.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("kiem did not stop within %v of SIGTERM", timeout)
	}
	if !cmd.ProcessState.Success() {
		return fmt.Errorf("kiem exited with %v", cmd.ProcessState)
	}
	return nil
}

// waitReady polls /readyz until kiem has committed its initial sync.
func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kiem not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// memSample is the resident memory of one kiem process at one moment.
type memSample struct {
	at  time.Duration // since the load started
	gen int
	rss int64
}

// memSampler reads kiem's anonymous resident memory from /proc every interval.
type memSampler struct {
	mu      sync.Mutex
	samples []memSample
}

func (m *memSampler) run(ctx context.Context, k *kiemProc, start time.Time, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pid, gen := k.pid()
		if rss, err := rssAnon(pid); err == nil {
			m.mu.Lock()
			m.samples = append(m.samples, memSample{at: time.Since(start), gen: gen, rss: rss})
			m.mu.Unlock()
		}
	}
}

func (m *memSampler) of(gen int, from time.Duration) []memSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []memSample
	for _, s := range m.samples {
		if s.gen == gen && s.at >= from {
			out = append(out, s)
		}
	}
	return out
}

// rssAnon reads a process' anonymous resident memory in bytes: its heap and stacks, what a container's memory
// limit kills for. VmRSS also counts the pages of files kiem maps (Badger's tables and value log), which the
// kernel reclaims under pressure instead.
func rssAnon(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no RssAnon in /proc/%d/status", pid)
}

func peak(s []memSample) int64 {
	var p int64
	for _, x := range s {
		p = max(p, x.rss)
	}
	return p
}

// logProblems returns kiem's log lines at level ERROR, and any panic.
func logProblems(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
			strings.Contains(line, "DATA RACE") {
			out = append(out, line)
		}
	}
	return out, nil
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
