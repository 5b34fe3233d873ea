package synthkube_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kiem-io/kiem/internal/synthkube"
)

// TestInformersFollowChanges checks that informers of all nine kinds sync and then see a create, an update and
// a delete of each, in every way a reflector can get its initial state.
func TestInformersFollowChanges(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := synthkube.New(synthkube.Options{Token: "t", NoWatchList: m.noWatchList})
			t.Cleanup(s.Close) // runs after the informers stop: Cleanups run last-in first-out
			g := newGen(1, 5)
			for _, k := range synthkube.Kinds() {
				s.Apply(g.object(k)) // something to list before the informers start
			}
			c := startInformers(t, s, m)
			c.waitConverged(t, s, 10*time.Second)

			for _, k := range synthkube.Kinds() {
				o := g.object(k)
				o.(metav1.Object).SetName("watched")
				rv := s.Apply(o)
				c.waitFor(t, k, o, func(cached metav1.Object) bool { return cached.GetResourceVersion() == fmt.Sprint(rv) })
				created, _ := s.Get(k, o.(metav1.Object).GetNamespace(), "watched")
				uid := created.(metav1.Object).GetUID()

				o.(metav1.Object).SetLabels(map[string]string{"updated": "yes"})
				rv = s.Apply(o)
				c.waitFor(t, k, o, func(cached metav1.Object) bool {
					return cached.GetResourceVersion() == fmt.Sprint(rv) && cached.GetLabels()["updated"] == "yes" &&
						cached.GetUID() == uid
				})

				if _, ok := s.Delete(k, o.(metav1.Object).GetNamespace(), "watched"); !ok {
					t.Fatalf("Delete(%s) found nothing", k)
				}
				c.waitFor(t, k, o, nil)
			}
			c.waitConverged(t, s, 10*time.Second)

			st := s.Stats()
			switch {
			case m.watchList && !m.noWatchList && (st.InitialEventStreams < 9 || st.Lists != 0):
				t.Errorf("WatchList: want 9+ initial-event streams and no LIST, got %+v", st)
			case (!m.watchList || m.noWatchList) && st.Lists < 9:
				t.Errorf("%s: want 9+ LISTs, got %+v", m.name, st)
			}
		})
	}
}

// waitFor polls until the cache holds o's key and ok accepts it, or (ok nil) until the key is gone.
func (c *cluster) waitFor(t *testing.T, k synthkube.Kind, o any, ok func(metav1.Object) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) {
			cached, exists, err := c.stores[k].Get(o)
			if err != nil {
				return false, err
			}
			if ok == nil {
				return !exists, nil
			}
			return exists && ok(cached.(metav1.Object)), nil
		})
	if err != nil {
		t.Fatalf("%s %s: cache never reached the expected state: %v", k, key(o), err)
	}
}

// TestBulkChurnConverges applies 5,000 objects at full speed from several goroutines, deletes a fifth of
// them, and expects the caches to end exactly equal to the server.
func TestBulkChurnConverges(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			s := synthkube.New(synthkube.Options{Token: "t", WatchHistory: 100_000})
			t.Cleanup(s.Close) // runs after the informers stop: Cleanups run last-in first-out
			c := startInformers(t, s, m)

			const writers, perWriter = 4, 1250
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					g := newGen(uint64(100+w), 400)
					kinds := synthkube.Kinds()
					for i := range perWriter {
						s.Apply(g.object(kinds[i%len(kinds)]))
					}
				})
			}
			wg.Wait()
			t.Logf("%d applies in %v (%.0f/s) with 9 watches open", writers*perWriter, time.Since(start),
				float64(writers*perWriter)/time.Since(start).Seconds())
			objs := s.Objects()
			for i, o := range objs {
				if i%5 == 0 {
					k, _ := synthkube.KindOf(o)
					s.Delete(k, o.(metav1.Object).GetNamespace(), o.(metav1.Object).GetName())
				}
			}
			if got := s.ResourceVersion(); got != uint64(1+writers*perWriter+(len(objs)+4)/5) {
				t.Errorf("resourceVersion %d after %d writes: every write must advance it by one", got,
					writers*perWriter+(len(objs)+4)/5)
			}
			c.waitConverged(t, s, 60*time.Second)
			if st := s.Stats(); st.Gone != 0 {
				t.Errorf("no 410 expected with history larger than the churn, got %+v", st)
			}
		})
	}
}

// TestBreakWatchesLosesNothing ends every watch repeatedly during churn: reflectors resume from their last
// resourceVersion, so the caches converge without any 410.
func TestBreakWatchesLosesNothing(t *testing.T) {
	s := synthkube.New(synthkube.Options{Token: "t", WatchHistory: 100_000})
	t.Cleanup(s.Close) // runs after the informers stop: Cleanups run last-in first-out
	c := startInformers(t, s, modes[0])
	before := s.Stats()

	ch := startChurn(s, 7, 20)
	const breaks = 12
	for range breaks {
		waitRV(t, s, s.ResourceVersion()+300)
		s.BreakWatches()
	}
	ch.Stop()
	c.waitConverged(t, s, 30*time.Second)

	st := s.Stats()
	if st.Broken == 0 || st.Watches <= before.Watches {
		t.Errorf("BreakWatches ended no watch or none was reopened: before %+v, after %+v", before, st)
	}
	if st.Gone != 0 {
		t.Errorf("breaking watches must not expire them: %+v", st)
	}
}

// TestCompactForcesRelist compacts the history during churn and breaks the watches, so reflectors come back
// with resourceVersions the server forgot, get 410, and must list again.
func TestCompactForcesRelist(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			s := synthkube.New(synthkube.Options{Token: "t", WatchHistory: 100_000})
			t.Cleanup(s.Close) // runs after the informers stop: Cleanups run last-in first-out
			c := startInformers(t, s, m)
			before := s.Stats()

			ch := startChurn(s, 11, 20)
			const rounds = 2
			for range rounds {
				// Each round waits for all nine reflectors to be watching again, so it expires nine live
				// watches rather than reflectors still backing off from the previous round.
				waitRV(t, s, s.ResourceVersion()+500)
				waitOpenWatches(t, s, 9)
				s.Compact()
				s.BreakWatches()
			}
			ch.Stop()
			c.waitConverged(t, s, 60*time.Second)

			st := s.Stats()
			relists := (st.Lists + st.InitialEventStreams) - (before.Lists + before.InitialEventStreams)
			if st.Gone < rounds || relists < rounds {
				t.Errorf("want 410s and relists after Compact: before %+v, after %+v", before, st)
			}
			t.Logf("%d 410s, %d relists", st.Gone, relists)
		})
	}
}

// TestCloseEndsWatches closes a server with informers and raw watch streams attached: Close must return
// promptly, the streams must end, and no goroutine may be left in this package's code.
func TestCloseEndsWatches(t *testing.T) {
	s := synthkube.New(synthkube.Options{Token: "t"})
	startInformers(t, s, modes[0])

	const raw = 3
	ended := make(chan error, raw)
	for range raw {
		req, err := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/pods?watch=1&allowWatchBookmarks=true", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer t")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer resp.Body.Close()
			_, err := io.Copy(io.Discard, resp.Body)
			ended <- err
		}()
	}
	waitOpenWatches(t, s, 9+raw)

	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with open watches", d)
	}
	if n := s.Stats().OpenWatches; n != 0 {
		t.Errorf("%d watches still open after Close", n)
	}
	for range raw {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("a watch stream did not end after Close")
		}
	}
	var dump string
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) {
			buf := make([]byte, 1<<22)
			dump = string(buf[:runtime.Stack(buf, true)])
			return !strings.Contains(dump, "kiem/internal/synthkube."), nil
		})
	if err != nil {
		t.Fatalf("goroutines still running synthkube code after Close:\n%s", dump)
	}
}

func waitOpenWatches(t *testing.T, s *synthkube.Server, n int64) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return s.Stats().OpenWatches >= n, nil })
	if err != nil {
		t.Fatalf("want %d open watches: %+v", n, s.Stats())
	}
}
