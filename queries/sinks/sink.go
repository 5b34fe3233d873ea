package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/kiem-io/kiem/graph"
)

// Store keeps sinks and the outbox in side records; *graph.Store is one.
type Store interface {
	ViewSide(ctx context.Context, fn func(*graph.SideTxn) error) error
	UpdateSide(ctx context.Context, fn func(*graph.SideTxn) error) error
}

// Type is the wire format of a sink.
type Type string

const (
	// TypeWebhook posts kiem's generic JSON envelope, signed with HMAC-SHA256 (docs/sinks.md).
	TypeWebhook Type = "webhook"
	// TypeSlack posts {"text": summary} to a Slack incoming-webhook URL, which is its own secret.
	TypeSlack Type = "slack"
)

// ErrInvalid is wrapped by every error about a sink, a message or a query that the caller got wrong; the message
// says what.
var ErrInvalid = errors.New("invalid")

// Sink is a destination of alert messages.
type Sink struct {
	// ID is stable and chosen by the caller: 1 to 63 of a-z, 0-9 and '-'.
	ID   string
	Name string
	Type Type
	// URL is where to post, http or https. For Slack it is itself the secret: write-only, View shows its host.
	URL string
	// Secret is the HMAC key of webhook sinks: write-only. Slack sinks have none.
	Secret string
	// Filters are the IDs of the saved filters whose alerts go to this sink; empty means every filter.
	Filters []string
	Owner   string
	// Created and Updated are set by Save.
	Created, Updated time.Time
}

// SinkView is what may be shown of a sink: never its secret and, for Slack, only the scheme and host of its URL.
type SinkView struct {
	ID   string
	Name string
	Type Type
	// URL is the webhook URL without a password, or for Slack only "scheme://host".
	URL string
	// HasSecret says whether the sink has a secret (webhook) or a URL (Slack) stored.
	HasSecret bool
	Filters   []string
	Owner     string
	Created   time.Time
	Updated   time.Time
}

// View returns what the API may show of s.
func (s Sink) View() SinkView {
	v := SinkView{
		ID:      s.ID,
		Name:    s.Name,
		Type:    s.Type,
		URL:     maskURL(s.Type, s.URL),
		Filters: slices.Clone(s.Filters),
		Owner:   s.Owner,
		Created: s.Created,
		Updated: s.Updated,
	}
	switch s.Type {
	case TypeSlack:
		v.HasSecret = s.URL != ""
	default:
		v.HasSecret = s.Secret != ""
	}
	return v
}

// maskURL is the part of a sink URL that may be shown; "" when it does not parse.
func maskURL(t Type, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	if t == TypeSlack {
		return u.Scheme + "://" + u.Host
	}
	return u.Redacted()
}

// takes reports whether alerts of filterID go to s.
func (s Sink) takes(filterID string) bool {
	return len(s.Filters) == 0 || slices.Contains(s.Filters, filterID)
}

// Limits of a sink's fields.
const (
	maxIDLen     = 63
	maxNameLen   = 200
	maxURLLen    = 2048
	minSecretLen = 16
	maxSecretLen = 1024
)

// Validate checks a complete sink and returns an error wrapping ErrInvalid that lists every problem. It never
// quotes a URL or a secret.
func Validate(s Sink) error {
	var bad []string
	if !validID(s.ID) {
		bad = append(bad, fmt.Sprintf("id %q: want 1 to %d of a-z, 0-9 and '-'", s.ID, maxIDLen))
	}
	switch name := strings.TrimSpace(s.Name); {
	case name == "":
		bad = append(bad, "name: empty")
	case len(s.Name) > maxNameLen || strings.IndexFunc(s.Name, unicode.IsControl) >= 0:
		bad = append(bad, fmt.Sprintf("name: want at most %d bytes of printable text", maxNameLen))
	}
	if s.Type != TypeWebhook && s.Type != TypeSlack {
		bad = append(bad, fmt.Sprintf("type %q: want %q or %q", s.Type, TypeWebhook, TypeSlack))
	}
	bad = append(bad, urlProblems(s.Type, s.URL)...)
	switch {
	case s.Type == TypeWebhook && s.Secret == "":
		bad = append(bad, "secret: a webhook sink needs one (the HMAC key receivers verify signatures with)")
	case s.Type == TypeWebhook && (len(s.Secret) < minSecretLen || len(s.Secret) > maxSecretLen):
		bad = append(bad, fmt.Sprintf("secret: want %d to %d bytes, got %d", minSecretLen, maxSecretLen, len(s.Secret)))
	case s.Type == TypeSlack && s.Secret != "":
		bad = append(bad, "secret: slack sinks are not signed (their URL is the secret); leave it empty")
	}
	for i, f := range s.Filters {
		switch {
		case strings.TrimSpace(f) == "":
			bad = append(bad, fmt.Sprintf("filters[%d]: empty filter id", i))
		case slices.Contains(s.Filters[:i], f):
			bad = append(bad, fmt.Sprintf("filters[%d]: %q listed twice", i, f))
		}
	}
	if len(s.Owner) > maxNameLen || strings.IndexFunc(s.Owner, unicode.IsControl) >= 0 {
		bad = append(bad, fmt.Sprintf("owner: want at most %d bytes of printable text", maxNameLen))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w sink: %s", ErrInvalid, strings.Join(bad, "; "))
	}
	return nil
}

// urlProblems checks a sink URL without ever quoting it: a Slack URL is a secret, and a webhook URL may carry a
// password.
func urlProblems(t Type, raw string) []string {
	if raw == "" {
		return []string{"url: empty"}
	}
	if len(raw) > maxURLLen {
		return []string{fmt.Sprintf("url: longer than %d bytes", maxURLLen)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return []string{"url: does not parse as a URL"}
	}
	var bad []string
	if u.Scheme != "http" && u.Scheme != "https" {
		bad = append(bad, fmt.Sprintf("url: scheme %q, want http or https", u.Scheme))
	}
	if u.Host == "" || u.Hostname() == "" {
		bad = append(bad, "url: no host")
	}
	if t == TypeSlack && strings.Trim(u.Path, "/") == "" {
		bad = append(bad, "url: no path; a Slack incoming-webhook URL carries its token in the path")
	}
	return bad
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range []byte(id) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// sinkRecord is a sink as stored under sink/<id>. Its JSON names are the storage format: keep them.
type sinkRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Type    Type      `json:"type"`
	URL     string    `json:"url"`
	Secret  string    `json:"secret,omitempty"`
	Filters []string  `json:"filters,omitempty"`
	Owner   string    `json:"owner,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Gen is the sink's incarnation (keys.go).
	Gen string `json:"gen"`
}

func (r sinkRecord) sink() Sink {
	return Sink{
		ID: r.ID, Name: r.Name, Type: r.Type, URL: r.URL, Secret: r.Secret, Filters: slices.Clone(r.Filters),
		Owner: r.Owner, Created: r.Created, Updated: r.Updated,
	}
}

func getSink(tx *graph.SideTxn, id string) (sinkRecord, error) {
	val, err := tx.Get(sinkKey(id))
	if err != nil {
		return sinkRecord{}, err
	}
	var r sinkRecord
	if err := json.Unmarshal(val, &r); err != nil {
		return sinkRecord{}, fmt.Errorf("decode sink %s: %w", id, err)
	}
	return r, nil
}

// Save creates s or replaces the sink with its ID, and validates the result (an error wrapping ErrInvalid).
// Created and Updated come from now, not from s. On a replacement of the same type, the write-only parts are
// kept when s leaves them empty: a webhook's Secret, a Slack sink's URL (also when s.URL is the masked URL that
// View shows). A sink that changes type keeps neither. Pending deliveries follow the replaced sink: their next
// attempt uses its new URL, type and secret.
func Save(ctx context.Context, st Store, s Sink, now time.Time) error {
	if !validID(s.ID) {
		return fmt.Errorf("save sink: %w", Validate(s))
	}
	err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		r := sinkRecord{
			ID: s.ID, Name: s.Name, Type: s.Type, URL: s.URL, Secret: s.Secret, Filters: slices.Clone(s.Filters),
			Owner: s.Owner, Created: now, Updated: now, Gen: newGen(),
		}
		old, err := getSink(tx, s.ID)
		switch {
		case err == nil:
			r.Created, r.Gen = old.Created, old.Gen
			if old.Type == s.Type && s.Type == TypeWebhook && s.Secret == "" {
				r.Secret = old.Secret
			}
			if old.Type == s.Type && s.Type == TypeSlack && (s.URL == "" || s.URL == maskURL(TypeSlack, old.URL)) {
				r.URL = old.URL
			}
		case !errors.Is(err, graph.ErrNotFound):
			return err
		}
		if err := Validate(r.sink()); err != nil {
			return err
		}
		val, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Set(sinkKey(s.ID), val)
	})
	if err != nil {
		return fmt.Errorf("save sink %s: %w", s.ID, err)
	}
	return nil
}

// cancelBatch is how many pending deliveries Delete cancels per transaction, keeping each one small.
const cancelBatch = 256

// Delete removes the sink id and cancels its pending deliveries: they are never sent (one already in flight may
// still arrive, and is then recorded as delivered). Returns an error wrapping graph.ErrNotFound if there is no
// such sink. The sink is gone once its first transaction commits; should cancelling stop half-way (ctx, a
// crash), the Deliverer cancels the rest when it meets them, still without sending them.
func Delete(ctx context.Context, st Store, id string) error {
	var gen string
	err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		r, err := getSink(tx, id)
		if err != nil {
			return err
		}
		gen = r.Gen
		return tx.Delete(sinkKey(id))
	})
	if err != nil {
		return fmt.Errorf("delete sink %s: %w", id, err)
	}
	for {
		n, err := cancelPending(ctx, st, id, gen)
		if err != nil {
			return fmt.Errorf("delete sink %s: cancel its deliveries: %w", id, err)
		}
		if n < cancelBatch {
			return nil
		}
	}
}

// cancelPending cancels up to cancelBatch pending deliveries of the sink id's incarnation gen, in one
// transaction, and says how many.
func cancelPending(ctx context.Context, st Store, id, gen string) (int, error) {
	var n int
	err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		n = 0
		want := dueValue(id, gen)
		var keys [][]byte
		err := tx.Scan(prefixDue, nil, false, func(k, v []byte) (bool, error) {
			if string(v) == string(want) {
				keys = append(keys, slices.Clone(k))
			}
			return len(keys) < cancelBatch, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			_, did, err := parseDueKey(k)
			if err != nil {
				return err
			}
			if err := tx.Delete(k); err != nil {
				return err
			}
			e, err := getEntry(tx, did)
			if errors.Is(err, graph.ErrNotFound) {
				continue // a stray due key; deleting it was all there was to do
			} else if err != nil {
				return err
			}
			if e.Status == StatusPending {
				e.Status = StatusCancelled
				if err := putEntry(tx, e); err != nil {
					return err
				}
			}
		}
		n = len(keys)
		return nil
	})
	return n, err
}

// List returns every sink, by ID.
func List(ctx context.Context, st Store) ([]SinkView, error) {
	var out []SinkView
	err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		out = out[:0]
		return tx.Scan(prefixSink, nil, false, func(k, v []byte) (bool, error) {
			var r sinkRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("decode %s: %w", k, err)
			}
			out = append(out, r.sink().View())
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list sinks: %w", err)
	}
	return out, nil
}

// Get returns the sink id. Returns an error wrapping graph.ErrNotFound if there is none.
func Get(ctx context.Context, st Store, id string) (SinkView, error) {
	var r sinkRecord
	err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		var err error
		r, err = getSink(tx, id)
		return err
	})
	if err != nil {
		return SinkView{}, fmt.Errorf("sink %s: %w", id, err)
	}
	return r.sink().View(), nil
}
