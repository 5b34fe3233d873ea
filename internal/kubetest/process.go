package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawner starts child processes from one OS thread that stays alive, and locked, until close.
//
// Children get PR_SET_PDEATHSIG so they die with the test binary even when it never runs its cleanups (a
// `go test -timeout` panic, a SIGINT that, thanks to Setpgid, only the test binary receives). Linux delivers
// that signal when the forking *thread* exits, not the process, and the Go runtime terminates a thread when a
// goroutine exits while locked to it; starting every child from a thread this spawner keeps locked means the
// signal fires only when the process really goes away.
type spawner struct {
	reqs chan func()
	done chan struct{}
}

// newSpawner starts the spawner's goroutine; close stops it and waits for it.
func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		runtime.LockOSThread()
		// Unlocking before returning hands the thread back to the scheduler instead of terminating it.
		defer runtime.UnlockOSThread()
		for f := range s.reqs {
			f()
		}
	}()
	return s
}

// start runs cmd.Start on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// close stops the spawner. Call it only once every child it started has exited.
func (s *spawner) close() {
	close(s.reqs)
	<-s.done
}

// process is one child, leader of its own process group, with stdout and stderr appended to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once Wait has returned; err is set by then
	err     error
}

// startProcess starts bin with args through sp. The log file is opened for append so that a restarted
// kube-apiserver keeps the previous run's output above its own.
func startProcess(sp *spawner, name, bin, logPath string, args []string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	// An *os.File is handed to the child directly, so no copying goroutines outlive it.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sp.start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	// The process owns this goroutine: it ends when the child does, and stop waits for it.
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the child's PID, which is also its process group ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the child has exited and been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, escalates to SIGKILL when ctx ends, and returns once the child has
// been reaped.
func (p *process) stop(ctx context.Context) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-ctx.Done():
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	// Catches anything the child forked into its group. ESRCH (an empty group) is the normal outcome. The
	// kernel hands out no PID that is still in use as a group ID, and allocates PIDs sequentially, so this
	// cannot reach an unrelated group.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// logTailBytes bounds how much of a log goes into an error: enough for the fatal lines, not a screenful of klog.
const logTailBytes = 4 << 10

// logTail returns the last lines of the process's log, or why it cannot.
func (p *process) logTail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no %s log: %v)", p.name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(stat %s log: %v)", p.name, err)
	}
	off := max(fi.Size()-logTailBytes, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return fmt.Sprintf("(read %s log: %v)", p.name, err)
	}
	s := string(b)
	if off > 0 {
		// Drop the partial first line.
		if _, rest, ok := strings.Cut(s, "\n"); ok {
			s = rest
		}
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", p.logPath, strings.TrimRight(s, "\n"))
}

// waitReady polls probe every pollInterval until it succeeds, p exits, or timeout passes. Errors carry the
// last probe error and the tail of p's log.
func waitReady(ctx context.Context, p *process, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A probe stuck on a socket nobody serves (the port taken by someone else) must end when the process does,
	// not when the HTTP client times out.
	probeCtx, cancelProbe := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-p.done:
			cancelProbe()
		case <-probeCtx.Done():
		}
	}()
	defer func() {
		cancelProbe()
		<-watched
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := probe(probeCtx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s: %w (last probe: %v)\n%s", p.name, timeout, ctx.Err(), err, p.logTail())
		case <-tick.C:
		}
	}
}

// pollInterval is short because every readiness poll is cheap and start-up time is what tests wait on.
const pollInterval = 50 * time.Millisecond

// freePorts returns n distinct free loopback ports. All listeners stay open until every port is chosen, so the
// ports differ; another process may still take one before the child binds it, which surfaces as a start error.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve loopback port: %w", err)
		}
		ls = append(ls, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, errors.New("reserve loopback port: listener has no TCP address")
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}

// ownerFile, in a cluster dir, holds the PID of the test binary that owns the cluster.
const ownerFile = "owner.pid"

// claimDir records this process as the owner of a cluster dir, for sweepStale.
func claimDir(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fmt.Errorf("claim cluster dir: %w", err)
	}
	return nil
}

// sweepStale removes cluster dirs (matching pattern) whose owner has died. Their processes died with it
// (Pdeathsig), but a test binary killed by a `go test` timeout or SIGKILL never runs Stop, and each dir holds
// ~120 MB of etcd data. Dirs without an owner file are skipped: they may be being created right now. An owner
// PID that is alive, even if reused by an unrelated process, keeps its dir; a false keep is harmless.
func sweepStale(pattern string) {
	dirs, _ := filepath.Glob(pattern)
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			// Best effort: a dir another sweeper removes first, or one we may not delete, is not our concern.
			_ = os.RemoveAll(dir)
		}
	}
}
