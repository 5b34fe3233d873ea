package sinks

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kiem-io/kiem/graph"
)

const slackURL = "https://hooks.slack.example/services/T000/B000/tokentokentoken"

func TestValidate(t *testing.T) {
	ok := webhook("ops-1", "https://receiver.example/kiem")
	slack := Sink{ID: "chat", Name: "chat", Type: TypeSlack, URL: slackURL}
	with := func(s Sink, f func(*Sink)) Sink { f(&s); return s }
	for _, tc := range []struct {
		name string
		s    Sink
		want []string // substrings of the error; none: valid
	}{
		{"webhook", ok, nil},
		{"slack", slack, nil},
		{"filters", with(ok, func(s *Sink) { s.Filters = []string{"a", "b"} }), nil},
		{"upper id", with(ok, func(s *Sink) { s.ID = "Ops" }), []string{`id "Ops": want 1 to 63 of a-z, 0-9 and '-'`}},
		{"empty id", with(ok, func(s *Sink) { s.ID = "" }), []string{`id ""`}},
		{"long id", with(ok, func(s *Sink) { s.ID = strings.Repeat("a", 64) }), []string{"id"}},
		{"slash id", with(ok, func(s *Sink) { s.ID = "a/b" }), []string{`id "a/b"`}},
		{"no name", with(ok, func(s *Sink) { s.Name = " " }), []string{"name: empty"}},
		{"bad type", with(ok, func(s *Sink) { s.Type = "email" }), []string{`type "email": want "webhook" or "slack"`}},
		{"ftp", with(ok, func(s *Sink) { s.URL = "ftp://receiver.example/x" }), []string{`url: scheme "ftp", want http or https`}},
		{"no scheme", with(ok, func(s *Sink) { s.URL = "receiver.example/x" }), []string{"url: scheme", "url: no host"}},
		{"no host", with(ok, func(s *Sink) { s.URL = "https:///x" }), []string{"url: no host"}},
		{"no url", with(ok, func(s *Sink) { s.URL = "" }), []string{"url: empty"}},
		{"bad url", with(ok, func(s *Sink) { s.URL = "http://[::1" }), []string{"url: does not parse"}},
		{"no secret", with(ok, func(s *Sink) { s.Secret = "" }), []string{"secret: a webhook sink needs one"}},
		{"short secret", with(ok, func(s *Sink) { s.Secret = "short" }), []string{"secret: want 16 to 1024 bytes, got 5"}},
		{"slack secret", with(slack, func(s *Sink) { s.Secret = testSecret }), []string{"secret: slack sinks are not signed"}},
		{"slack no path", with(slack, func(s *Sink) { s.URL = "https://hooks.slack.example/" }), []string{"url: no path"}},
		{"empty filter", with(ok, func(s *Sink) { s.Filters = []string{"a", ""} }), []string{"filters[1]: empty filter id"}},
		{"dup filter", with(ok, func(s *Sink) { s.Filters = []string{"a", "a"} }), []string{`filters[1]: "a" listed twice`}},
		{"several", Sink{ID: "X"}, []string{`id "X"`, "name: empty", `type ""`, "url: empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.s)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want an ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to say %q", err, w)
				}
			}
			for _, secret := range []string{tc.s.Secret, "tokentokentoken"} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("Validate() = %q quotes a secret", err)
				}
			}
		})
	}
}

func TestView(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Sink
		url  string
		has  bool
	}{
		{"webhook", webhook("a", "https://receiver.example/kiem?x=1"), "https://receiver.example/kiem?x=1", true},
		{"webhook password", webhook("a", "https://u:pw@receiver.example/kiem"), "https://u:xxxxx@receiver.example/kiem", true},
		{"slack", Sink{ID: "c", Type: TypeSlack, URL: slackURL}, "https://hooks.slack.example", true},
		{"slack port", Sink{ID: "c", Type: TypeSlack, URL: "http://127.0.0.1:8080/T/B/tok"}, "http://127.0.0.1:8080", true},
		{"slack no url", Sink{ID: "c", Type: TypeSlack}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.s.View()
			if v.URL != tc.url || v.HasSecret != tc.has {
				t.Errorf("View() URL %q HasSecret %v, want %q %v", v.URL, v.HasSecret, tc.url, tc.has)
			}
			if s := fmt.Sprintf("%+v", v); strings.Contains(s, testSecret) || strings.Contains(s, "tok") {
				t.Errorf("View() = %s shows a secret", s)
			}
		})
	}
}

// stored reads a sink's record, secret included.
func stored(t *testing.T, st Store, id string) sinkRecord {
	t.Helper()
	var r sinkRecord
	if err := st.ViewSide(t.Context(), func(tx *graph.SideTxn) error {
		var err error
		r, err = getSink(tx, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSaveWriteOnly(t *testing.T) {
	ctx := t.Context()
	st := mustOpenStore(t)
	noLeak := func(what string, v any) {
		t.Helper()
		s := fmt.Sprintf("%+v", v)
		for _, secret := range []string{testSecret, "other-secret-0123456789", "tokentokentoken", "/services/"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s = %s shows %q", what, s, secret)
			}
		}
	}

	mustSave(t, st, webhook("hook", "https://receiver.example/kiem", "f1"))
	slack := Sink{ID: "chat", Name: "chat", Type: TypeSlack, URL: slackURL, Owner: "bob"}
	mustSave(t, st, slack)

	// An update leaving the write-only parts empty keeps them; it keeps Created and moves Updated.
	upd := webhook("hook", "https://receiver.example/v2")
	upd.Secret = ""
	if err := Save(ctx, st, upd, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := stored(t, st, "hook"); r.Secret != testSecret || r.URL != "https://receiver.example/v2" || len(r.Filters) != 0 ||
		!r.Created.Equal(t0) || !r.Updated.Equal(t0.Add(time.Hour)) {
		t.Errorf("after an update without secret: %+v, want the old secret, the new URL and filters, Created %v", r, t0)
	}
	for _, url := range []string{"", "https://hooks.slack.example"} { // empty, or the masked URL the UI shows
		if err := Save(ctx, st, Sink{ID: "chat", Name: "renamed", Type: TypeSlack, URL: url}, t0.Add(time.Hour)); err != nil {
			t.Fatalf("Save(chat, url %q): %v", url, err)
		}
		if r := stored(t, st, "chat"); r.URL != slackURL || r.Name != "renamed" {
			t.Errorf("after an update with url %q: %+v, want the old URL and the new name", url, r)
		}
	}
	// A new secret replaces the old one.
	upd.Secret = "other-secret-0123456789"
	if err := Save(ctx, st, upd, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := stored(t, st, "hook"); r.Secret != upd.Secret {
		t.Errorf("secret %q after setting a new one", r.Secret)
	}
	// A type change keeps no write-only part: a slack sink needs its own URL, a webhook its own secret.
	if err := Save(ctx, st, Sink{ID: "hook", Name: "n", Type: TypeSlack, URL: "https://receiver.example/v2"}, t0); err != nil {
		t.Fatalf("webhook to slack with a URL: %v", err)
	}
	if r := stored(t, st, "hook"); r.Secret != "" {
		t.Errorf("a slack sink kept the webhook's secret")
	}
	if err := Save(ctx, st, Sink{ID: "hook", Name: "n", Type: TypeWebhook, URL: "https://receiver.example/v3"}, t0); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "secret: a webhook sink needs one") {
		t.Errorf("slack to webhook without secret: %v, want the missing secret", err)
	}
	if err := Save(ctx, st, Sink{ID: "new", Name: "n", Type: TypeSlack, URL: "https://hooks.slack.example"}, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("creating a slack sink from a masked URL: %v, want ErrInvalid", err)
	}
	if err := Save(ctx, st, webhook("BAD", "https://x.example"), t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save(bad id) = %v, want ErrInvalid", err)
	}

	list, err := List(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	noLeak("List()", list)
	want := []SinkView{
		{ID: "chat", Name: "renamed", Type: TypeSlack, URL: "https://hooks.slack.example", HasSecret: true, Created: t0, Updated: t0.Add(time.Hour)},
		{ID: "hook", Name: "n", Type: TypeSlack, URL: "https://receiver.example", HasSecret: true, Created: t0, Updated: t0},
	}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("List() (-want +got):\n%s", diff)
	}
	for _, id := range []string{"chat", "hook"} {
		v, err := Get(ctx, st, id)
		if err != nil {
			t.Fatal(err)
		}
		noLeak("Get()", v)
	}
}

func TestNotFound(t *testing.T) {
	st := mustOpenStore(t)
	if _, err := Get(t.Context(), st, "nope"); !errors.Is(err, graph.ErrNotFound) {
		t.Errorf("Get(nope) = %v, want ErrNotFound", err)
	}
	if err := Delete(t.Context(), st, "nope"); !errors.Is(err, graph.ErrNotFound) {
		t.Errorf("Delete(nope) = %v, want ErrNotFound", err)
	}
	mustSave(t, st, webhook("a", "https://x.example"))
	if err := Delete(t.Context(), st, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(t.Context(), st, "a"); !errors.Is(err, graph.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}
