package synthkube

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// ServeHTTP routes the API paths the server implements. It is exported only to satisfy http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.stats.unauthorized.Add(1)
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized", nil)
		return
	}
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			"synthkube serves reads only; change objects with Server.Apply and Server.Delete", nil)
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	rbac := rbacv1.GroupName
	switch {
	case len(segs) == 1 && (segs[0] == "healthz" || segs[0] == "readyz" || segs[0] == "livez"):
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok"))
	case len(segs) == 1 && segs[0] == "version":
		writeJSON(w, http.StatusOK, version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2-synthkube",
			GoVersion: "synthkube", Platform: "linux/amd64"})
	case len(segs) == 1 && segs[0] == "api":
		writeJSON(w, http.StatusOK, s.apiVersions(r))
	case len(segs) == 1 && segs[0] == "apis":
		writeJSON(w, http.StatusOK, metav1.APIGroupList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups:   []metav1.APIGroup{s.apiGroup(rbac)},
		})
	case len(segs) == 2 && segs[0] == "apis" && segs[1] == rbac:
		g := s.apiGroup(rbac)
		g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		writeJSON(w, http.StatusOK, g)
	case len(segs) >= 2 && segs[0] == "api" && segs[1] == "v1":
		s.serveGroupVersion(w, r, "", segs[2:])
	case len(segs) >= 3 && segs[0] == "apis" && segs[1] == rbac && segs[2] == "v1":
		s.serveGroupVersion(w, r, rbac, segs[3:])
	default:
		notFound(w)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// serveGroupVersion handles everything under /api/v1 or /apis/GROUP/v1: the resource list, collections
// (cluster-wide or in one namespace), and single objects.
func (s *Server) serveGroupVersion(w http.ResponseWriter, r *http.Request, group string, rest []string) {
	if len(rest) == 0 {
		writeJSON(w, http.StatusOK, s.apiResourceList(group))
		return
	}
	var ns, resource, name string
	inNamespace := len(rest) >= 3 && rest[0] == "namespaces"
	switch {
	case inNamespace && len(rest) <= 4:
		ns, resource = rest[1], rest[2]
		if len(rest) == 4 {
			name = rest[3]
		}
	case !inNamespace && len(rest) <= 2:
		resource = rest[0]
		if len(rest) == 2 {
			name = rest[1]
		}
	default:
		notFound(w) // subresources, and the long-deprecated /watch/ prefix
		return
	}
	k, ok := s.resourceIndex(group, resource)
	// A namespaced kind has no cluster-wide single-object path, and a cluster-scoped kind no namespaced one.
	if !ok || (inNamespace && !s.kinds[k].namespaced) || (name != "" && !inNamespace && s.kinds[k].namespaced) {
		notFound(w)
		return
	}
	q := r.URL.Query()
	if name != "" {
		s.serveGet(w, k, ns, name)
		return
	}
	if q.Get("labelSelector") != "" || q.Get("fieldSelector") != "" {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			"synthkube does not implement label or field selectors", nil)
		return
	}
	watching, err := parseBool(q.Get("watch"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "watch: "+err.Error(), nil)
		return
	}
	if watching {
		s.serveWatch(w, r, k, ns)
		return
	}
	s.serveList(w, r, k, ns)
}

func (s *Server) serveGet(w http.ResponseWriter, k int, ns, name string) {
	s.mu.RLock()
	o, ok := s.objects[k][objectKey(ns, name)]
	s.mu.RUnlock()
	if !ok {
		info := &s.kinds[k]
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("%s %q not found", info.resource, name),
			&metav1.StatusDetails{Name: name, Group: info.group, Kind: info.resource})
		return
	}
	s.stats.gets.Add(1)
	writeRaw(w, http.StatusOK, o.raw)
}

// serveList answers with the whole collection at the current resourceVersion; see the package comment for
// why limit is ignored and which resourceVersion requests are refused.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, k int, ns string) {
	p, ok := parseParams(w, r, false, s.opts.NoWatchList)
	if !ok {
		return
	}
	s.mu.RLock()
	rv, items := s.snapshot(k, ns)
	s.mu.RUnlock()
	switch {
	case p.rv > rv:
		writeTooLarge(w, p.rv, rv)
		return
	case p.match == metav1.ResourceVersionMatchExact && p.rv < rv:
		// Serving an older snapshot would need MVCC; a compacted etcd answers the same way.
		s.stats.gone.Add(1)
		writeStatus(w, http.StatusGone, metav1.StatusReasonExpired, tooOldMessage(p.rv, rv), nil)
		return
	}
	sortObjects(items)
	info := &s.kinds[k]
	head := fmt.Sprintf(`{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"},"items":[`,
		string(info.kind)+"List", info.apiVersion(), rv)
	size := len(head) + 3
	for _, o := range items {
		size += len(o.raw) + 1
	}
	body := make([]byte, 0, size)
	body = append(body, head...)
	for i, o := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, o.raw...)
	}
	body = append(body, "]}\n"...)
	s.stats.lists.Add(1)
	writeRaw(w, http.StatusOK, body)
}

// params are the list and watch query parameters the server acts on.
type params struct {
	rv                uint64 // 0 for both "" and "0"
	rvSet             bool   // resourceVersion was given and is not "0"
	rvAny             bool   // resourceVersion was "0"
	match             metav1.ResourceVersionMatch
	sendInitialEvents *bool
	bookmarks         bool
	timeoutSeconds    int64
}

// parseParams reads and validates the query as the apiserver's ValidateListOptions does, answering 400 for
// malformed values and 422 for forbidden combinations. It reports false when it has answered.
func parseParams(w http.ResponseWriter, r *http.Request, watching, noWatchList bool) (params, bool) {
	q := r.URL.Query()
	var p params
	var errs []string
	bad := func(err error) (params, bool) {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return p, false
	}
	if q.Get("continue") != "" {
		return bad(errors.New("continue: synthkube never issues continue tokens"))
	}
	rv, err := parseRV(q.Get("resourceVersion"))
	if err != nil {
		return bad(err)
	}
	p.rv, p.rvSet, p.rvAny = rv, rv != 0, q.Get("resourceVersion") == "0"
	if p.bookmarks, err = parseBool(q.Get("allowWatchBookmarks")); err != nil {
		return bad(fmt.Errorf("allowWatchBookmarks: %w", err))
	}
	if v := q.Get("sendInitialEvents"); v != "" {
		b, err := parseBool(v)
		if err != nil {
			return bad(fmt.Errorf("sendInitialEvents: %w", err))
		}
		p.sendInitialEvents = &b
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		if p.timeoutSeconds, err = strconv.ParseInt(v, 10, 64); err != nil {
			return bad(fmt.Errorf("timeoutSeconds: invalid value %q: %w", v, err))
		}
	}
	p.match = metav1.ResourceVersionMatch(q.Get("resourceVersionMatch"))
	notOlder, exact := metav1.ResourceVersionMatchNotOlderThan, metav1.ResourceVersionMatchExact
	switch {
	case watching:
		if p.sendInitialEvents != nil && p.match != notOlder {
			errs = append(errs, "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
		}
		if p.sendInitialEvents != nil && noWatchList {
			errs = append(errs, "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
		}
		if p.match != "" && p.sendInitialEvents == nil {
			errs = append(errs, "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
		}
		if p.match != "" && p.match != notOlder {
			errs = append(errs, fmt.Sprintf("resourceVersionMatch: unsupported value %q", p.match))
		}
	default:
		if p.match != "" && q.Get("resourceVersion") == "" {
			errs = append(errs, "resourceVersionMatch is forbidden unless resourceVersion is provided")
		}
		if p.match != "" && p.match != exact && p.match != notOlder {
			errs = append(errs, fmt.Sprintf("resourceVersionMatch: unsupported value %q", p.match))
		}
		if p.match == exact && p.rvAny {
			errs = append(errs, `resourceVersionMatch "exact" is forbidden for resourceVersion "0"`)
		}
		if p.sendInitialEvents != nil {
			errs = append(errs, "sendInitialEvents is forbidden for list")
		}
	}
	if len(errs) > 0 {
		writeStatus(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
			"ListOptions.meta.k8s.io is invalid: "+strings.Join(errs, ", "), nil)
		return p, false
	}
	return p, true
}

// parseRV reads a resourceVersion parameter; "" and "0" both come back as 0, which callers tell apart where
// the API does.
func parseRV(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("resourceVersion: invalid value %q: %w", v, err)
	}
	return n, nil
}

// parseBool reads a boolean query parameter the way the apiserver's conversion does: absent is false.
func parseBool(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("invalid boolean %q: %w", v, err)
	}
	return b, nil
}

// tooOldMessage is the watch cache's wording; oldest is the oldest resourceVersion still served.
func tooOldMessage(want, oldest uint64) string {
	return fmt.Sprintf("too old resource version: %d (%d)", want, oldest)
}

// writeTooLarge answers the way the real server does once its watch cache gave up waiting for a
// resourceVersion it has not reached; reflectors recognise it by the cause and relist from "".
func writeTooLarge(w http.ResponseWriter, want, current uint64) {
	writeStatus(w, http.StatusGatewayTimeout, metav1.StatusReasonTimeout,
		fmt.Sprintf("Timeout: Too large resource version: %d, current: %d", want, current),
		&metav1.StatusDetails{Causes: []metav1.StatusCause{{
			Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}},
			RetryAfterSeconds: 1})
}

func notFound(w http.ResponseWriter) {
	writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource", nil)
}

func newStatus(code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) metav1.Status {
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Details: details, Code: int32(code),
	}
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) {
	writeJSON(w, code, newStatus(code, reason, msg, details))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only API structs pass through here, and they always marshal.
		panic(fmt.Errorf("synthkube: encoding %T response: %w", v, err))
	}
	writeRaw(w, code, append(b, '\n'))
}

func writeRaw(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body) // a client gone mid-response is its own problem
}
