package indexer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// AuditEvent is what kiem reads of a Kubernetes audit event (audit.k8s.io/v1 Event), as the apiserver's webhook
// backend sends it in EventList batches and its log backend writes it, one JSON object a line. Only the fields
// kiem uses are decoded; the rest is ignored, so that k8s.io/apiserver stays out of kiem's dependencies.
type AuditEvent struct {
	AuditID                  string            `json:"auditID"`
	Stage                    string            `json:"stage"`
	Level                    string            `json:"level"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     AuditUser         `json:"user"`
	ImpersonatedUser         *AuditUser        `json:"impersonatedUser,omitempty"`
	SourceIPs                []string          `json:"sourceIPs,omitempty"`
	UserAgent                string            `json:"userAgent,omitempty"`
	ObjectRef                *AuditObjectRef   `json:"objectRef,omitempty"`
	ResponseStatus           *AuditStatus      `json:"responseStatus,omitempty"`
	RequestReceivedTimestamp time.Time         `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time         `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations,omitempty"`
	// ResponseObject is the object the apiserver answered with, at level RequestResponse: for a write, the
	// object as stored, whose metadata.uid and resourceVersion tie the event to the change the watch saw.
	ResponseObject json.RawMessage `json:"responseObject,omitempty"`
}

// AuditUser is an authenticated identity as the apiserver saw it.
type AuditUser struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// AuditObjectRef names the object a request was about.
type AuditObjectRef struct {
	Resource        string `json:"resource,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	UID             string `json:"uid,omitempty"`
	APIGroup        string `json:"apiGroup,omitempty"`
	APIVersion      string `json:"apiVersion,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Subresource     string `json:"subresource,omitempty"`
}

// AuditStatus is the HTTP outcome of a request.
type AuditStatus struct {
	Code int32 `json:"code,omitempty"`
}

// AuditKey identifies one event: every stage of one request shares its audit ID, and a webhook retry or a
// re-read log repeats both, so ingestion is idempotent on this key.
type AuditKey struct {
	AuditID, Stage string
}

// Key returns the event's identity.
func (e *AuditEvent) Key() AuditKey { return AuditKey{e.AuditID, e.Stage} }

// Principal is who the request acted as: the impersonated user when there was one.
func (e *AuditEvent) Principal() AuditUser {
	if e.ImpersonatedUser != nil {
		return *e.ImpersonatedUser
	}
	return e.User
}

// auditStages are the stages the apiserver records.
var auditStages = map[string]bool{"RequestReceived": true, "ResponseStarted": true, "ResponseComplete": true, "Panic": true}

// validate checks what kiem relies on; a fault here makes the event malformed, never a crash.
func (e *AuditEvent) validate() error {
	switch {
	case e.AuditID == "":
		return errors.New("no auditID")
	case !auditStages[e.Stage]:
		return fmt.Errorf("unknown stage %q", e.Stage)
	case e.User.Username == "":
		return errors.New("no user.username")
	case e.Verb == "":
		return errors.New("no verb")
	case e.StageTimestamp.IsZero():
		return errors.New("no stageTimestamp")
	}
	return nil
}

// AuditError is a malformed event: where it was (an EventList item's index or a log line) and why. Ingestion
// counts and logs it and goes on with the next event.
type AuditError struct {
	Where string
	Err   error
}

func (e *AuditError) Error() string { return e.Where + ": " + e.Err.Error() }
func (e *AuditError) Unwrap() error { return e.Err }

// maxAuditBatch bounds the body of one webhook batch. The apiserver's default batch is 400 events of a few KiB
// each at RequestResponse level; 64 MiB leaves ample room and keeps a hostile body from exhausting memory.
const maxAuditBatch = 64 << 20

// DecodeEventList decodes an audit.k8s.io/v1 EventList, as the apiserver's webhook backend posts it. It returns
// the well-formed events and an AuditError for each malformed item; err is set only when the body itself is not
// an EventList (then nothing is returned).
func DecodeEventList(r io.Reader) (events []AuditEvent, malformed []*AuditError, err error) {
	body, err := io.ReadAll(io.LimitReader(r, maxAuditBatch+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read audit batch: %w", err)
	}
	if len(body) > maxAuditBatch {
		return nil, nil, fmt.Errorf("audit batch over %d MiB", maxAuditBatch>>20)
	}
	var list struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, nil, fmt.Errorf("audit batch is not JSON: %w", err)
	}
	if list.Kind != "EventList" || list.APIVersion != "audit.k8s.io/v1" {
		return nil, nil, fmt.Errorf("audit batch is %s %s, want audit.k8s.io/v1 EventList", list.APIVersion, list.Kind)
	}
	for i, raw := range list.Items {
		e, err := decodeEvent(raw)
		if err != nil {
			malformed = append(malformed, &AuditError{Where: fmt.Sprintf("items[%d]", i), Err: err})
			continue
		}
		events = append(events, e)
	}
	return events, malformed, nil
}

// maxAuditLine bounds one line of an audit log, newline excluded. The log backend writes one event a line, and
// even a RequestResponse event carrying a large object stays far below this; a longer line is reported malformed
// and skipped without being held in memory, so that a corrupt or hostile log cannot exhaust it.
const maxAuditLine = 16 << 20

// errLongLine is the error of a line over maxAuditLine.
var errLongLine = fmt.Errorf("line over %d MiB", maxAuditLine>>20)

// ReadEventLines reads an audit log (the log backend's JSON lines) from r, calling fn with each well-formed event
// and onMalformed with each line that is not one, numbering lines from firstLine. It stops at the end of r or at
// the first error fn returns, and reports the bytes consumed through complete lines, so that a follower resumes
// after them (a partial last line is left for the next read). A line over 16 MiB is malformed; it is skipped
// without being read into memory whole.
func ReadEventLines(r io.Reader, firstLine int, fn func(AuditEvent) error, onMalformed func(*AuditError)) (consumed int64, err error) {
	lr := newAuditLineReader(r, maxAuditLine)
	for line := firstLine; ; line++ {
		b, n, long, err := lr.next()
		if errors.Is(err, io.EOF) {
			return consumed, nil // a partial line (or nothing): not consumed
		}
		if err != nil {
			return consumed, fmt.Errorf("read audit log: %w", err)
		}
		consumed += n
		e, ok, derr := decodeLine(b, long, n)
		if derr != nil {
			onMalformed(&AuditError{Where: fmt.Sprintf("line %d", line), Err: derr})
		} else if ok {
			if err := fn(e); err != nil {
				return consumed, err
			}
		}
	}
}

// auditLineReader splits its input into lines, holding at most about limit bytes of one line.
type auditLineReader struct {
	br    *bufio.Reader
	limit int64
	buf   []byte // a line longer than br's buffer, assembled from its fragments
}

func newAuditLineReader(r io.Reader, limit int) *auditLineReader {
	return &auditLineReader{br: bufio.NewReaderSize(r, 1<<16), limit: int64(limit)}
}

// next returns the next complete line, newline included, and n, its length in the input. A line longer than
// the limit (newline excluded) is read through but not kept: line is nil and long is true. At the end of the
// input it returns io.EOF, with n the length of a partial last line that no line returned covers (0 if there is
// none). line is valid until the next call.
func (lr *auditLineReader) next() (line []byte, n int64, long bool, err error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.br.ReadSlice('\n')
		n += int64(len(frag))
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, n, false, err
		}
		complete := err == nil
		size := n
		if complete {
			size-- // the newline
		}
		long = long || size > lr.limit
		switch {
		case long:
			lr.buf = lr.buf[:0]
		case complete && len(lr.buf) == 0:
			return frag, n, false, nil // the common case: the line is in br's buffer, no copy
		default:
			// frag is overwritten by the next read, so keep a copy.
			lr.buf = append(lr.buf, frag...)
		}
		if complete {
			if long {
				return nil, n, true, nil
			}
			return lr.buf, n, false, nil
		}
	}
}

// decodeLine decodes one line of an audit log, of length n: ok is false for a blank line, err is set for a
// malformed one.
func decodeLine(b []byte, long bool, n int64) (e AuditEvent, ok bool, err error) {
	if long {
		return AuditEvent{}, false, fmt.Errorf("%w (%d bytes)", errLongLine, n)
	}
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return AuditEvent{}, false, nil
	}
	e, err = decodeEvent(t)
	return e, err == nil, err
}

func decodeEvent(raw []byte) (AuditEvent, error) {
	var e AuditEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		return AuditEvent{}, fmt.Errorf("not an audit event: %w", err)
	}
	if err := e.validate(); err != nil {
		return AuditEvent{}, err
	}
	return e, nil
}
