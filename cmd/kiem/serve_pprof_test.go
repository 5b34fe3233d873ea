package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/internal/testutil"
)

// TestServePprofLoopbackOnly checks that profiling is refused on a non-loopback address, before anything is
// served, and served on loopback.
func TestServePprofLoopbackOnly(t *testing.T) {
	var stderr testutil.Buffer
	code := run(t.Context(), []string{"serve", "--demo", "--insecure-no-auth", "--listen", freeAddr(t), "--pprof-listen", "0.0.0.0:0"},
		nil, &testutil.Buffer{}, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "profiling is served on loopback addresses only") {
		t.Fatalf("--pprof-listen 0.0.0.0:0: exit %d, stderr %s; want refused", code, stderr.String())
	}

	addr, pprofAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var out testutil.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--insecure-no-auth", "--listen", addr, "--pprof-listen", pprofAddr},
			nil, &testutil.Buffer{}, &out)
	}()
	waitFor(t, "profiling endpoints", func() bool {
		code, body := get("http://" + pprofAddr + "/debug/pprof/")
		return code == 200 && strings.Contains(body, "goroutine")
	})
	stopServe(t, cancel, done, &out)
}
