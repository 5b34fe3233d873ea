package sinks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Headers of a delivery (docs/sinks.md).
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderDelivery       = "X-Kiem-Delivery"
	HeaderTimestamp      = "X-Kiem-Timestamp"
	HeaderSignature      = "X-Kiem-Signature"
)

// AlertKind is the "kind" of the generic webhook body.
const AlertKind = "kiem.alert"

// maxResponseRead is how much of a response body is read, for the error message of a failed attempt.
const maxResponseRead = 4 << 10

// outcome is what an attempt came to.
type outcome struct {
	ok         bool // a 2xx answered
	answered   bool // an HTTP response came, whatever its status
	code       int
	err        string
	retryAfter time.Duration
}

// envelope is the body of a generic webhook delivery.
type envelope struct {
	Kind  string          `json:"kind"`
	Sink  string          `json:"sink"`
	Alert json.RawMessage `json:"alert"`
}

// payload is the body to post for e to s.
func payload(s sinkRecord, e entry) ([]byte, error) {
	if s.Type == TypeSlack {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{e.Summary})
	}
	return json.Marshal(envelope{Kind: AlertKind, Sink: s.ID, Alert: e.Body})
}

// signature is the X-Kiem-Signature of body sent at timestamp (unix seconds, as sent in X-Kiem-Timestamp).
func signature(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// send makes one attempt at delivering e to s. It never puts a Slack URL (a secret) in the error.
func (d *Deliverer) send(ctx context.Context, s sinkRecord, e entry) outcome {
	body, err := payload(s, e)
	if err != nil {
		return outcome{err: fmt.Sprintf("encode the body: %v", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: "the sink's URL does not make a request"}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "kiem")
	h.Set(HeaderIdempotencyKey, e.MessageID+"."+e.SinkID)
	h.Set(HeaderDelivery, e.ID)
	if s.Type == TypeWebhook {
		ts := strconv.FormatInt(d.now().Unix(), 10)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, signature(s.Secret, ts, body))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL; name the sink by its masked one.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return outcome{err: fmt.Sprintf("post %s: %v", maskURL(s.Type, s.URL), err)}
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	out := outcome{answered: true, code: resp.StatusCode}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		out.ok = true
	case c >= 300 && c < 400:
		out.err = fmt.Sprintf("HTTP %d: redirect not followed", c)
	default:
		msg := oneLine(text)
		if msg == "" {
			msg = http.StatusText(c)
		}
		out.err = fmt.Sprintf("HTTP %d: %s", c, msg)
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
			out.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.now())
		}
	}
	return out
}

// oneLine makes a response body fit an error message: valid UTF-8, no control characters, spaces collapsed.
func oneLine(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "\uFFFD"))
	return strings.Join(strings.Fields(s), " ")
}

// parseRetryAfter reads a Retry-After header, delay-seconds or an HTTP date; 0 when absent or malformed.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
