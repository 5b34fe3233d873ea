package synthkube

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// watchBatch is how many log entries a watch reads per lock acquisition: enough to amortise the lock under
// churn, few enough that BreakWatches and Close are noticed between batches.
const watchBatch = 512

// watchStream is one running watch: the request handler's goroutine writes it and nothing else touches it.
type watchStream struct {
	s    *Server
	k    int
	ns   string
	bw   *bufio.Writer
	rc   *http.ResponseController
	sent int64 // ADDED/MODIFIED/DELETED events written since the last flush, for Stats
}

// serveWatch streams the events of kind k (in namespace ns, or all) as newline-delimited JSON until the
// client leaves, timeoutSeconds passes, BreakWatches or Close is called, or the watch falls behind the
// retained history.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, k int, ns string) {
	p, ok := parseParams(w, r, true, s.opts.NoWatchList)
	if !ok {
		return
	}
	// The API sends the current state first when no resourceVersion to resume from is given, unless told not
	// to; WatchList asks for it explicitly and gets a bookmark marking its end.
	initial := !p.rvSet
	if p.sendInitialEvents != nil {
		initial = *p.sendInitialEvents
	}
	endMarker := p.sendInitialEvents != nil && *p.sendInitialEvents

	var items []*object
	var cursor, current, oldest uint64
	expired := false
	s.mu.RLock()
	current, oldest = s.currentRV(), rvBase+s.log.lo
	broken := s.broken
	switch {
	case p.rv > current: // answered below, without the lock
	case initial:
		_, items = s.snapshot(k, ns)
		cursor = s.log.hi
	case !p.rvSet:
		cursor = s.log.hi
	case p.rv < oldest:
		expired = true
	default:
		cursor = p.rv - rvBase
	}
	s.mu.RUnlock()
	if p.rv > current {
		writeTooLarge(w, p.rv, current)
		return
	}

	s.stats.watches.Add(1)
	s.stats.openWatches.Add(1)
	defer s.stats.openWatches.Add(-1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	ws := &watchStream{s: s, k: k, ns: ns, bw: bufio.NewWriterSize(w, 32<<10), rc: http.NewResponseController(w)}
	// Headers go out now, as the real server sends them: client-go's Watch call returns only once it has them,
	// so holding them until the first event would stall an idle watch (and time out kubectl get -w).
	if ws.flush() != nil {
		return
	}
	if expired {
		ws.expire(p.rv, oldest)
		return
	}
	if initial {
		s.stats.initialStreams.Add(1)
		sortObjects(items)
		for _, o := range items {
			ws.writeAdded(o.raw)
		}
		if endMarker {
			ws.writeBookmark(rvBase+cursor, true)
		}
		if ws.flush() != nil {
			return
		}
	}
	ws.follow(r, p, cursor, broken)
}

// follow streams the shared log from cursor on. It reads under the read lock in batches and writes without
// it, so the only thing a slow client holds up is its own handler.
func (ws *watchStream) follow(r *http.Request, p params, cursor uint64, broken <-chan struct{}) {
	s := ws.s
	var tick, timeout <-chan time.Time
	if p.bookmarks && s.opts.BookmarkInterval > 0 {
		t := time.NewTicker(s.opts.BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	if p.timeoutSeconds > 0 {
		t := time.NewTimer(time.Duration(p.timeoutSeconds) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	stop := func() bool {
		select {
		case <-broken:
			s.stats.broken.Add(1)
		case <-s.closing:
		case <-r.Context().Done():
		default:
			return false
		}
		return true
	}
	buf := make([]*event, 0, watchBatch) // reused: read appends within its capacity
	bookmarkDue := false
	for {
		s.mu.RLock()
		batch, next, expired := s.log.read(cursor, buf[:0])
		oldest := rvBase + s.log.lo
		wake := s.notify[ws.k] // taken with the read, so no event can slip between reading and waiting
		s.mu.RUnlock()
		if expired {
			ws.expire(rvBase+cursor, oldest)
			return
		}
		wrote := false
		for _, e := range batch {
			if e.kind == ws.k && (ws.ns == "" || e.namespace == ws.ns) {
				_, _ = ws.bw.Write(e.frame) // errors stick in bw and surface at flush
				ws.sent++
				wrote = true
			}
		}
		cursor = next
		caughtUp := len(batch) < cap(batch)
		// A bookmark is only honest once every event up to its resourceVersion has been written; reading the
		// whole log first also keeps an idle kind's bookmark as fresh as the busiest kind's.
		if caughtUp && bookmarkDue {
			ws.writeBookmark(rvBase+cursor, false)
			bookmarkDue, wrote = false, true
		}
		if wrote && ws.flush() != nil {
			return
		}
		if !caughtUp {
			if stop() {
				return
			}
			continue
		}
		select {
		case <-wake:
		case <-tick:
			bookmarkDue = true
		case <-timeout:
			return
		case <-broken:
			s.stats.broken.Add(1)
			return
		case <-s.closing:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (ws *watchStream) writeAdded(raw []byte) {
	_, _ = ws.bw.WriteString(`{"type":"ADDED","object":`)
	_, _ = ws.bw.Write(raw)
	_, _ = ws.bw.WriteString("}\n")
	ws.sent++
}

// writeBookmark writes a BOOKMARK whose object is an empty object of the watched kind carrying only the
// resourceVersion (and, to end WatchList's initial events, the annotation reflectors wait for).
func (ws *watchStream) writeBookmark(rv uint64, initialEventsEnd bool) {
	info := &ws.s.kinds[ws.k]
	ann := ""
	if initialEventsEnd {
		ann = fmt.Sprintf(`,"annotations":{%q:"true"}`, metav1.InitialEventsAnnotationKey)
	}
	_, _ = fmt.Fprintf(ws.bw, `{"type":"BOOKMARK","object":{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"%s}}}`+"\n",
		string(info.kind), info.apiVersion(), rv, ann)
	ws.s.stats.bookmarks.Add(1)
}

// expire ends the stream the way the watch cache does when asked for history it no longer has: an ERROR event
// with a 410 Expired Status, which reflectors answer by listing again.
func (ws *watchStream) expire(want, oldest uint64) {
	st, err := json.Marshal(newStatus(http.StatusGone, metav1.StatusReasonExpired, tooOldMessage(want, oldest), nil))
	if err != nil {
		panic(fmt.Errorf("synthkube: encoding 410 status: %w", err)) // unreachable: Status always marshals
	}
	_, _ = ws.bw.WriteString(`{"type":"ERROR","object":`)
	_, _ = ws.bw.Write(st)
	_, _ = ws.bw.WriteString("}\n")
	ws.s.stats.gone.Add(1)
	_ = ws.flush() // the stream ends either way
}

func (ws *watchStream) flush() error {
	ws.s.stats.events.Add(ws.sent)
	ws.sent = 0
	if err := ws.bw.Flush(); err != nil {
		return fmt.Errorf("synthkube: writing watch events: %w", err)
	}
	if err := ws.rc.Flush(); err != nil {
		return fmt.Errorf("synthkube: flushing watch events: %w", err)
	}
	return nil
}
