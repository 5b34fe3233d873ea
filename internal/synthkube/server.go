package synthkube

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchHistory is the event log length used when Options.WatchHistory is zero.
const DefaultWatchHistory = 10_000

// Options configures a Server.
type Options struct {
	// Token is the bearer token every request must carry. Empty turns authentication off.
	Token string
	// WatchHistory is how many events the shared log keeps for watches to resume from; a watch from an older
	// resourceVersion gets 410 Expired. Zero means DefaultWatchHistory.
	WatchHistory int
	// BookmarkInterval is how often a watch that allowed bookmarks gets one. Zero means one second, which keeps
	// reflectors' resourceVersions fresh enough to survive Compact; negative turns periodic bookmarks off.
	BookmarkInterval time.Duration
	// NoWatchList makes the server refuse sendInitialEvents with 422, as an apiserver with the WatchList
	// feature off does, so that reflectors fall back to LIST then WATCH.
	NoWatchList bool
}

// Stats counts what the server has done since New. Counters only grow, except OpenWatches.
type Stats struct {
	Lists               int64  // LIST responses (200) served
	Gets                int64  // single-object GET responses (200) served
	Watches             int64  // watch streams opened (200 written), including ones ended at once by a 410
	InitialEventStreams int64  // watches that began with synthetic ADDED events (WatchList, or from "" or "0")
	Events              int64  // ADDED/MODIFIED/DELETED watch events written, synthetic ones included
	Bookmarks           int64  // BOOKMARK events written, the initial-events-end ones included
	Gone                int64  // 410 Expired answers: ERROR events in watches and LIST responses
	Broken              int64  // watch streams ended by BreakWatches
	Unauthorized        int64  // 401 answers
	OpenWatches         int64  // watch streams running now
	ResourceVersion     uint64 // the current global resourceVersion
}

// counters holds Stats as atomics so request handlers never take the store lock to count.
type counters struct {
	lists, gets, watches, initialStreams, events, bookmarks, gone, broken, unauthorized, openWatches atomic.Int64
}

// Server is a synthetic API server listening on 127.0.0.1. Its methods are safe for concurrent use.
type Server struct {
	opts  Options
	kinds []kindInfo
	ts    *httptest.Server
	stats counters

	// closing is closed by Close so that watch handlers return and httptest can finish shutting down.
	closing   chan struct{}
	closeOnce sync.Once

	mu      sync.RWMutex
	objects []map[string]*object // per kind index, keyed by objectKey
	log     eventLog
	// notify holds, per kind, a channel closed (and replaced) when an event of that kind is logged, so that
	// watchers of other kinds are not woken by churn they would only skip.
	notify []chan struct{}
	// broken is closed (and replaced) by BreakWatches; each watch keeps the channel current when it started.
	broken chan struct{}
}

// New starts a server on a loopback port. Close it when done.
func New(opts Options) *Server {
	if opts.WatchHistory <= 0 {
		opts.WatchHistory = DefaultWatchHistory
	}
	if opts.BookmarkInterval == 0 {
		opts.BookmarkInterval = time.Second
	}
	s := &Server{
		opts:    opts,
		kinds:   kindTable(),
		closing: make(chan struct{}),
		broken:  make(chan struct{}),
		log:     newEventLog(opts.WatchHistory),
	}
	s.objects = make([]map[string]*object, len(s.kinds))
	s.notify = make([]chan struct{}, len(s.kinds))
	for i := range s.kinds {
		s.objects[i] = map[string]*object{}
		s.notify[i] = make(chan struct{})
	}
	// TLS is not for show: clientcmd drops a kubeconfig's credentials unless the transport is TLS, so over
	// plain HTTP every client-go request would arrive without its token. HTTP/2 because client-go negotiates it
	// with a real apiserver too, multiplexing all watches over one connection.
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.EnableHTTP2 = true
	s.ts.StartTLS()
	return s
}

// URL is the server's base URL, e.g. https://127.0.0.1:41234.
func (s *Server) URL() string { return s.ts.URL }

// Client returns an HTTP client that trusts the server's certificate, for tests that speak HTTP directly. It
// sends no token.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// CAData returns the PEM certificate the server presents, which is its own CA.
func (s *Server) CAData() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// Close ends every watch, stops the listener and waits until no request handler is running. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		// A handler blocked writing to a client that stopped reading would hold httptest's Close forever;
		// cutting the connections turns that write into an error the handler returns on.
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// BreakWatches ends every open watch stream cleanly, as an apiserver restart or a load balancer would. Clients
// are expected to watch again from the last resourceVersion they saw and miss nothing.
func (s *Server) BreakWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.broken)
	s.broken = make(chan struct{})
}

// Compact forgets the whole event history, as an etcd compaction at the current revision does for an apiserver
// without a watch cache: a watch from an older resourceVersion, or a running watch that has not yet read up to
// now, gets 410 Expired and its reflector must list again.
func (s *Server) Compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.compact()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	rv := s.currentRV()
	s.mu.RUnlock()
	return Stats{
		Lists:               s.stats.lists.Load(),
		Gets:                s.stats.gets.Load(),
		Watches:             s.stats.watches.Load(),
		InitialEventStreams: s.stats.initialStreams.Load(),
		Events:              s.stats.events.Load(),
		Bookmarks:           s.stats.bookmarks.Load(),
		Gone:                s.stats.gone.Load(),
		Broken:              s.stats.broken.Load(),
		Unauthorized:        s.stats.unauthorized.Load(),
		OpenWatches:         s.stats.openWatches.Load(),
		ResourceVersion:     rv,
	}
}

// WriteKubeconfig writes a kubeconfig (mode 0600) whose current context points at the server with the bearer
// token, for client-go's clientcmd and kubectl.
func (s *Server) WriteKubeconfig(path string) error {
	// JSON strings are valid YAML scalars, which spares this package a YAML dependency and any quoting doubt.
	// (client-go is not used either: only kiem's client packages may import it, see internal/archtest.)
	q := func(v string) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Errorf("synthkube: quoting %q: %w", v, err)) // unreachable: strings always marshal
		}
		return string(b)
	}
	user := "  user: {}\n"
	if s.opts.Token != "" {
		user = "  user:\n    token: " + q(s.opts.Token) + "\n"
	}
	cfg := "apiVersion: v1\nkind: Config\n" +
		"clusters:\n- name: synthkube\n  cluster:\n    server: " + q(s.URL()) + "\n" +
		"    certificate-authority-data: " + q(base64.StdEncoding.EncodeToString(s.CAData())) + "\n" +
		"contexts:\n- name: synthkube\n  context:\n    cluster: synthkube\n    user: synthkube\n" +
		"current-context: synthkube\n" +
		"users:\n- name: synthkube\n" + user
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("synthkube: writing kubeconfig: %w", err)
	}
	return nil
}
