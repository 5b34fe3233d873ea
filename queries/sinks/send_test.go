package sinks

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	d := NewDeliverer(nil, Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Second, MaxAge: time.Hour})
	for _, tc := range []struct {
		name       string
		attempts   int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first", 1, 0, 500 * time.Millisecond, time.Second},
		{"second", 2, 0, time.Second, 2 * time.Second},
		{"fourth", 4, 0, 4 * time.Second, 8 * time.Second},
		{"capped", 5, 0, 5 * time.Second, 10 * time.Second},
		{"many", 200, 0, 5 * time.Second, 10 * time.Second},
		{"retry-after longer", 1, 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{"retry-after shorter", 4, 100 * time.Millisecond, 4 * time.Second, 8 * time.Second},
		{"retry-after past MaxAge", 1, 48 * time.Hour, time.Hour, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				if got := d.backoff(tc.attempts, tc.retryAfter); got < tc.lo || got > tc.hi {
					t.Fatalf("backoff(%d, %v) = %v, want within [%v, %v]", tc.attempts, tc.retryAfter, got, tc.lo, tc.hi)
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"99999999999999", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  bad\r\n signature\t\x00!  ", "bad signature !"},
		{"ok \xff", "ok \uFFFD"},
	} {
		if got := oneLine([]byte(tc.in)); got != tc.want {
			t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewDelivererDefaults(t *testing.T) {
	d := NewDeliverer(nil, Options{})
	if d.client.Timeout != DefaultTimeout || d.minBackoff != DefaultMinBackoff || d.maxBackoff != DefaultMaxBackoff ||
		d.maxAge != DefaultMaxAge || d.workers != DefaultWorkers || d.retention != DefaultRetention {
		t.Errorf("defaults: timeout %v backoff %v..%v max age %v workers %d retention %v", d.client.Timeout,
			d.minBackoff, d.maxBackoff, d.maxAge, d.workers, d.retention)
	}
	if d.client.CheckRedirect == nil || d.client.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Errorf("the default client follows redirects")
	}
	// A caller's client is copied, not changed.
	own := &http.Client{Timeout: time.Minute}
	d = NewDeliverer(nil, Options{Client: own, MinBackoff: time.Minute, MaxBackoff: time.Second})
	if own.CheckRedirect != nil || d.client == own || d.client.Timeout != time.Minute || d.client.CheckRedirect == nil {
		t.Errorf("the caller's client was changed, or its copy follows redirects")
	}
	if d.maxBackoff != time.Minute {
		t.Errorf("MaxBackoff below MinBackoff: %v, want raised to MinBackoff", d.maxBackoff)
	}
}
