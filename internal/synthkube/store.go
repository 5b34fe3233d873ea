package synthkube

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// rvBase is the resourceVersion of an empty server. It is not 0 because "0" means "any" to the API.
const rvBase = 1

// object is one stored object. Nothing in it changes after it is published, except that Delete stamps the
// deletion's resourceVersion on obj, under the write lock, once the object is no longer reachable.
type object struct {
	namespace, name string
	obj             runtime.Object // as applied, with TypeMeta and server-set metadata
	raw             []byte         // obj's JSON: a subslice of the frame of the event that wrote it
}

// event is one entry of the shared log; frame is the complete watch event line, shared by every watcher.
type event struct {
	kind      int
	namespace string
	frame     []byte
}

// eventLog is a ring of the last capacity events. Events are numbered from 0 in write order, and event i
// carries resourceVersion rvBase+i+1, so a watch from resourceVersion X resumes at event X-rvBase. Events
// lo..hi-1 are retained.
type eventLog struct {
	buf    []*event
	cap    uint64
	lo, hi uint64
}

func newEventLog(capacity int) eventLog {
	return eventLog{cap: uint64(capacity), buf: make([]*event, 0, min(capacity, 4096))}
}

func (l *eventLog) append(e *event) {
	// The ring grows by append until full, so buf[i%cap] is event i in both phases.
	if uint64(len(l.buf)) < l.cap {
		l.buf = append(l.buf, e)
	} else {
		l.buf[l.hi%l.cap] = e
	}
	l.hi++
	if l.hi-l.lo > l.cap {
		l.lo = l.hi - l.cap
	}
}

func (l *eventLog) compact() {
	for i := l.lo; i < l.hi; i++ {
		l.buf[i%l.cap] = nil // let the frames go now rather than when the ring wraps
	}
	l.lo = l.hi
}

// read appends events from..hi-1 to dst, up to its capacity. expired reports that from is no longer retained.
func (l *eventLog) read(from uint64, dst []*event) (out []*event, next uint64, expired bool) {
	if from < l.lo {
		return dst, from, true
	}
	for i := from; i < l.hi && len(dst) < cap(dst); i++ {
		dst = append(dst, l.buf[i%l.cap])
	}
	return dst, from + uint64(len(dst)), false
}

// currentRV is the resourceVersion of the last write; callers hold s.mu.
func (s *Server) currentRV() uint64 { return rvBase + s.log.hi }

func objectKey(namespace, name string) string { return namespace + "/" + name }

// Apply creates obj or replaces the stored object of the same kind, namespace and name, and returns the
// resourceVersion of the write. obj must be one of the nine kinds (see KindOf), have a name, and have a
// namespace exactly when its kind is namespaced; anything else is a bug in the test and panics. The server
// keeps a deep copy. On create it assigns a random UID and creationTimestamp; on replace it keeps the stored
// ones, whatever obj says, as the real apiserver does.
func (s *Server) Apply(obj runtime.Object) uint64 {
	kind, err := KindOf(obj)
	if err != nil {
		panic(fmt.Errorf("synthkube: Apply: %w", err))
	}
	k, _ := s.kindIndex(kind)
	info := &s.kinds[k]
	cp := obj.DeepCopyObject()
	cp.GetObjectKind().SetGroupVersionKind(info.gvk())
	m := cp.(metav1.Object) // every supported type embeds ObjectMeta
	if m.GetName() == "" {
		panic(fmt.Errorf("synthkube: Apply: %s without a name", kind))
	}
	if info.namespaced != (m.GetNamespace() != "") {
		panic(fmt.Errorf("synthkube: Apply: %s %q: namespace %q does not fit a namespaced=%v kind",
			kind, m.GetName(), m.GetNamespace(), info.namespaced))
	}
	key := objectKey(m.GetNamespace(), m.GetName())
	now := metav1.NewTime(time.Now().Truncate(time.Second)) // the wire keeps seconds only

	s.mu.Lock()
	defer s.mu.Unlock()
	typ := "ADDED"
	if old, ok := s.objects[k][key]; ok {
		typ = "MODIFIED"
		om := old.obj.(metav1.Object)
		m.SetUID(om.GetUID())
		m.SetCreationTimestamp(om.GetCreationTimestamp())
	} else {
		m.SetUID(newUID())
		m.SetCreationTimestamp(now)
	}
	rv := s.currentRV() + 1
	m.SetResourceVersion(strconv.FormatUint(rv, 10))
	frame, raw := encodeEvent(typ, cp)
	s.objects[k][key] = &object{namespace: m.GetNamespace(), name: m.GetName(), obj: cp, raw: raw}
	s.publish(k, &event{kind: k, namespace: m.GetNamespace(), frame: frame})
	return rv
}

// Delete removes the object and returns the resourceVersion of the deletion, or false if there was none.
func (s *Server) Delete(kind Kind, namespace, name string) (uint64, bool) {
	k, ok := s.kindIndex(kind)
	if !ok {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := objectKey(namespace, name)
	old, ok := s.objects[k][key]
	if !ok {
		return 0, false
	}
	delete(s.objects[k], key)
	// The DELETED event carries the object's last state at the deletion's resourceVersion, as the real server's.
	rv := s.currentRV() + 1
	old.obj.(metav1.Object).SetResourceVersion(strconv.FormatUint(rv, 10))
	frame, _ := encodeEvent("DELETED", old.obj)
	s.publish(k, &event{kind: k, namespace: namespace, frame: frame})
	return rv, true
}

// publish appends e to the log, which advances the resourceVersion, and wakes the kind's watchers. Callers
// hold the write lock.
func (s *Server) publish(k int, e *event) {
	s.log.append(e)
	close(s.notify[k])
	s.notify[k] = make(chan struct{})
}

// ResourceVersion returns the current global resourceVersion.
func (s *Server) ResourceVersion() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.currentRV()
}

// Get returns the stored object decoded from the JSON the server sends for it, so it is both a deep copy and
// exactly what a client sees, TypeMeta included.
func (s *Server) Get(kind Kind, namespace, name string) (runtime.Object, bool) {
	k, ok := s.kindIndex(kind)
	if !ok {
		return nil, false
	}
	s.mu.RLock()
	o, ok := s.objects[k][objectKey(namespace, name)]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return s.decode(k, o.raw), true
}

// Objects returns every stored object as Get would, ordered by kind (as Kinds lists them), namespace and name.
func (s *Server) Objects() []runtime.Object {
	// One read lock for all kinds, so the result is the state at a single resourceVersion.
	all := make([][]*object, len(s.kinds))
	s.mu.RLock()
	for k := range s.kinds {
		_, all[k] = s.snapshot(k, "")
	}
	s.mu.RUnlock()
	var out []runtime.Object
	for k, items := range all {
		sortObjects(items)
		for _, o := range items {
			out = append(out, s.decode(k, o.raw))
		}
	}
	return out
}

// snapshot returns the objects of kind k (in namespace ns, or all if empty), unordered, and the
// resourceVersion they are current at. Callers hold s.mu at least for reading, and sort after releasing it so
// that writers wait only for the copy.
func (s *Server) snapshot(k int, ns string) (uint64, []*object) {
	items := make([]*object, 0, len(s.objects[k]))
	for _, o := range s.objects[k] {
		if ns == "" || o.namespace == ns {
			items = append(items, o)
		}
	}
	return s.currentRV(), items
}

// sortObjects orders items by namespace and name, as etcd's key order lists them.
func sortObjects(items []*object) {
	slices.SortFunc(items, func(a, b *object) int {
		return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
}

func (s *Server) decode(k int, raw []byte) runtime.Object {
	obj := s.kinds[k].newObj()
	if err := json.Unmarshal(raw, obj); err != nil {
		// The bytes were produced by json.Marshal of the same type; failing to read them back is a bug here.
		panic(fmt.Errorf("synthkube: decoding stored %s: %w", s.kinds[k].kind, err))
	}
	return obj
}

// encodeEvent returns the watch event line for obj and, inside it, obj's own JSON. Encoding straight after the
// prefix makes the event and the object share one allocation.
func encodeEvent(typ string, obj runtime.Object) (frame, raw []byte) {
	var b bytes.Buffer
	prefix := `{"type":"` + typ + `","object":`
	b.WriteString(prefix)
	if err := json.NewEncoder(&b).Encode(obj); err != nil {
		// The nine API types always marshal; an error means a broken object, which is the test's bug.
		panic(fmt.Errorf("synthkube: encoding %T: %w", obj, err))
	}
	frame = b.Bytes()
	frame[len(frame)-1] = '}' // Encode ends with a newline; the event object closes there instead
	frame = append(frame, '\n')
	return frame, frame[len(prefix) : len(frame)-2]
}

// newUID returns a random RFC 4122 version 4 UUID, as the apiserver assigns.
func newUID() types.UID {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails since Go 1.24
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]))
}
