package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Binary names inside the directory BinDir returns.
const (
	etcdBin      = "etcd"
	apiserverBin = "kube-apiserver"
	kcmBin       = "kube-controller-manager"
)

// Environment variables BinDir reads.
const (
	// envBinDir overrides where the binaries live; hack/kube-binaries.sh reads it too.
	envBinDir = "KIEM_KUBE_BIN_DIR"
	// envRepoRoot locates hack/kube-binaries.sh when the source tree is not where this file was compiled
	// (a -trimpath build, or a test binary copied elsewhere).
	envRepoRoot = "KIEM_REPO_ROOT"
)

// binDirMemo is the only package-level state: asking the script once per test binary keeps every Start after
// the first free of a bash and a `kube-apiserver --version` run.
var binDirMemo struct {
	once sync.Once
	dir  string
	err  error
}

// BinDir returns the directory holding etcd, kube-apiserver and kube-controller-manager. It runs
// `hack/kube-binaries.sh --check` once per process and memoizes the answer, so the first caller's ctx bounds
// the lookup for everyone. It never builds: if the binaries are missing the error says to run
// `make kube-binaries`, because a cold build (~10 min) does not fit in `go test`'s default timeout.
//
// The script is found through $KIEM_REPO_ROOT or else relative to this package's source directory.
// $KIEM_KUBE_BIN_DIR, when set, names the directory (the script honours it); if the script cannot be found
// that directory is used as long as it holds the three binaries.
func BinDir(ctx context.Context) (string, error) {
	binDirMemo.once.Do(func() {
		binDirMemo.dir, binDirMemo.err = findBinDir(ctx)
	})
	return binDirMemo.dir, binDirMemo.err
}

// findBinDir does BinDir's work without the memo, so tests can exercise the failure paths.
func findBinDir(ctx context.Context) (string, error) {
	script, scriptErr := scriptPath()
	if scriptErr != nil {
		if dir := os.Getenv(envBinDir); dir != "" {
			return dir, checkBinaries(dir)
		}
		return "", fmt.Errorf("kube binaries: %w", scriptErr)
	}
	cmd := exec.CommandContext(ctx, "bash", script, "--check")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kube binaries: %s --check: %w: %s\nrun `make kube-binaries` first",
			script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("kube binaries: %s --check printed no directory", script)
	}
	// The script already checked; this catches a script and a package that disagree on the names.
	return dir, checkBinaries(dir)
}

// scriptPath locates hack/kube-binaries.sh.
func scriptPath() (string, error) {
	root := os.Getenv(envRepoRoot)
	if root == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", errors.New("cannot locate kubetest's source file; set " + envRepoRoot)
		}
		// This file is <root>/internal/kubetest/bindir.go.
		root = filepath.Join(filepath.Dir(file), "..", "..")
	}
	script := filepath.Join(root, "hack", "kube-binaries.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("find build script (set %s to the repository root): %w", envRepoRoot, err)
	}
	return script, nil
}

// checkBinaries reports which of the three binaries dir lacks.
func checkBinaries(dir string) error {
	var missing []string
	for _, b := range []string{etcdBin, apiserverBin, kcmBin} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kube binaries: %s lacks %s: run `make kube-binaries` first",
			dir, strings.Join(missing, ", "))
	}
	return nil
}

// Kubectl returns the kubectl to run against test clusters: the one `make kube-binaries` builds beside the
// apiserver (the same version; a fresh CI machine has no other), else the one on PATH.
func Kubectl(ctx context.Context) (string, error) {
	if dir, err := BinDir(ctx); err == nil {
		p := filepath.Join(dir, "kubectl")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		return "", fmt.Errorf("kubectl not found: run `make kube-binaries`, which builds it beside kube-apiserver: %w", err)
	}
	return p, nil
}
