package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kiem-io/kiem/internal/testutil"
)

// testCA is a self-signed certificate authority that issues server certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiem test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for 127.0.0.1 and localhost with the serial given, returning the PEM of the
// certificate and of its key.
func (ca *testCA) leaf(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "kiem"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// secretDir lays files out as a Kubernetes secret volume does: tls.crt and tls.key are links into ..data, a link
// to a versioned directory that an update replaces by renaming a new link over it, so both files change at once.
type secretDir struct {
	t       *testing.T
	dir     string
	version int
}

func newSecretDir(t *testing.T) *secretDir {
	d := &secretDir{t: t, dir: t.TempDir()}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(d.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *secretDir) cert() string { return filepath.Join(d.dir, "tls.crt") }
func (d *secretDir) key() string  { return filepath.Join(d.dir, "tls.key") }

// write publishes a new version of both files at once.
func (d *secretDir) write(certPEM, keyPEM []byte) {
	d.t.Helper()
	d.version++
	name := "..v" + string(rune('0'+d.version))
	if err := os.Mkdir(filepath.Join(d.dir, name), 0o700); err != nil {
		d.t.Fatal(err)
	}
	for f, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(d.dir, name, f), data, 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(name, tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
}

// servedSerial opens a new TLS connection trusting only the CA and returns the serial of the leaf served.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestServeTLS: kiem serves HTTPS only with the certificate of --tls-cert-file, websockets included; a renewed
// certificate is served to new connections without a restart, and a broken one leaves the previous in force.
func TestServeTLS(t *testing.T) {
	ca := newTestCA(t)
	files := newSecretDir(t)
	files.write(ca.leaf(t, 1001))
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--listen", addr, "--tls-cert-file", files.cert(), "--tls-key-file", files.key()},
			strings.NewReader(""), io.Discard, &stderr)
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/readyz over https", func() bool { code, _ := do("GET", "/readyz", "", ""); return code == 200 })
	if code, body := do("GET", "/healthz", "", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz over https = %d %q", code, body)
	}
	token := printedToken(t, &stderr)
	if out := stderr.String(); !strings.Contains(out, "console at https://"+addr+"/") || !strings.Contains(out, "GraphQL API at https://"+addr+"/graphql") {
		t.Fatalf("serve did not print https URLs:\n%s", out)
	}
	q, _ := json.Marshal(map[string]string{"query": `{ can(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}, action: {verb: "*", resource: "*"}) { allowed } }`})
	if code, body := do("POST", "/graphql", token, string(q)); code != 200 || !strings.Contains(body, `"allowed":true`) {
		t.Fatalf("/graphql over https = %d %s", code, body)
	}
	if got := servedSerial(t, addr, ca.pool); got != 1001 {
		t.Fatalf("served serial %d, want 1001", got)
	}
	// TLS 1.2 at least.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	// HTTPS only: plain HTTP to the port gets nothing but Go's refusal.
	if code, body := get("http://" + addr + "/healthz"); code == 200 || strings.Contains(body, "ok") {
		t.Fatalf("plain HTTP to the TLS port = %d %q, want a refusal", code, body)
	}
	if code, body := post(t, "http://"+addr+"/graphql", token, `{ server { revision } }`); code != http.StatusBadRequest || strings.Contains(body, "revision") {
		t.Fatalf("plain HTTP GraphQL to the TLS port = %d %q, want 400 without data", code, body)
	}

	// Websockets over TLS: the console's own origin is https://host:port; a foreign origin is still refused.
	wsDial := func(origin string) (*websocket.Conn, *http.Response, error) {
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		defer dcancel()
		wsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
		return websocket.Dial(dctx, "wss://"+addr+"/graphql", &websocket.DialOptions{HTTPClient: wsClient,
			Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{"Origin": []string{origin}}})
	}
	if _, resp, err := wsDial("https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin websocket over TLS: %v, %v; want 403", resp, err)
	}
	conn, _, err := wsDial("https://" + addr)
	if err != nil {
		t.Fatalf("same-origin websocket over TLS: %v", err)
	}
	defer conn.CloseNow()
	wsctx, wscancel := context.WithTimeout(ctx, 30*time.Second)
	defer wscancel()
	send := func(m map[string]any) {
		b, _ := json.Marshal(m)
		if err := conn.Write(wsctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (typ, payload string) {
		for {
			_, b, err := conn.Read(wsctx)
			if err != nil {
				t.Fatalf("websocket read: %v", err)
			}
			var m struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("websocket message %s: %v", b, err)
			}
			if m.Type != "ping" && m.Type != "pong" {
				return m.Type, string(m.Payload)
			}
		}
	}
	send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	if typ, p := read(); typ != "connection_ack" {
		t.Fatalf("connection_init over wss: %s %s", typ, p)
	}
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `{ server { source } }`}})
	if typ, p := read(); typ != "next" || !strings.Contains(p, `"source":"demo"`) {
		t.Fatalf("query over wss: %s %s", typ, p)
	}
	conn.Close(websocket.StatusNormalClosure, "")

	// A renewed certificate (a new serial; the files swapped at once, as a secret volume does) is served to new
	// connections once the watcher has seen it.
	files.write(ca.leaf(t, 1002))
	waitFor(t, "the renewed certificate served", func() bool { return servedSerial(t, addr, ca.pool) == 1002 })
	client.CloseIdleConnections()
	if code, _ := do("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("/healthz with the renewed certificate = %d", code)
	}
	// A broken replacement is refused, logged, and the renewed certificate stays in force.
	files.write([]byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"), []byte("garbage"))
	waitFor(t, "the broken certificate reported", func() bool {
		return strings.Contains(stderr.String(), "TLS certificate not reloaded; the previous certificate stays in force")
	})
	if got := servedSerial(t, addr, ca.pool); got != 1002 {
		t.Fatalf("after a broken replacement the served serial is %d, want 1002 kept", got)
	}
	// So does a certificate with another certificate's key.
	cert3, _ := ca.leaf(t, 1003)
	_, key4 := ca.leaf(t, 1004)
	before := strings.Count(stderr.String(), "TLS certificate not reloaded")
	files.write(cert3, key4)
	waitFor(t, "the mismatched pair reported", func() bool {
		return strings.Count(stderr.String(), "TLS certificate not reloaded") > before
	})
	if out := stderr.String(); !strings.Contains(out, "private key does not match public key") {
		t.Fatalf("the log does not say why the pair was refused:\n%s", out)
	}
	if got := servedSerial(t, addr, ca.pool); got != 1002 {
		t.Fatalf("after a mismatched pair the served serial is %d, want 1002 kept", got)
	}
	// Fixed, it is taken.
	files.write(ca.leaf(t, 1005))
	waitFor(t, "the fixed certificate served", func() bool { return servedSerial(t, addr, ca.pool) == 1005 })

	stopServe(t, cancel, done, &stderr)
}

// TestServeTLSRefusals: kiem does not start with half a TLS configuration or a pair that does not load.
func TestServeTLSRefusals(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c1, k1 := ca.leaf(t, 1)
	_, k2 := ca.leaf(t, 2)
	cert, key, otherKey := write("tls.crt", c1), write("tls.key", k1), write("other.key", k2)
	garbage := write("garbage.pem", []byte("not PEM at all\n"))
	// Both halves: a key PEM block where the certificate belongs is refused too.
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"cert without key", []string{"--tls-cert-file", cert}, []string{"--tls-cert-file needs --tls-key-file"}},
		{"key without cert", []string{"--tls-key-file", key}, []string{"--tls-key-file needs --tls-cert-file"}},
		{"missing cert", []string{"--tls-cert-file", filepath.Join(dir, "nope.crt"), "--tls-key-file", key}, []string{"nope.crt", "no such file"}},
		{"missing key", []string{"--tls-cert-file", cert, "--tls-key-file", filepath.Join(dir, "nope.key")}, []string{"nope.key", "no such file"}},
		{"garbage cert", []string{"--tls-cert-file", garbage, "--tls-key-file", key}, []string{"garbage.pem", "failed to find any PEM data in certificate input"}},
		{"garbage key", []string{"--tls-cert-file", cert, "--tls-key-file", garbage}, []string{"garbage.pem", "failed to find any PEM data in key input"}},
		{"key and cert swapped", []string{"--tls-cert-file", key, "--tls-key-file", cert}, []string{"tls.key", "failed to find certificate PEM data"}},
		{"another certificate's key", []string{"--tls-cert-file", cert, "--tls-key-file", otherKey}, []string{"other.key", "private key does not match public key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append([]string{"serve", "--demo", "--listen", freeAddr(t)}, tt.args...)...)
			if r.code != 2 {
				t.Fatalf("code %d, stderr %q; want 2", r.code, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr %q, want it to say %q", r.err, w)
				}
			}
		})
	}
}

// TestCertWatcher: the watcher reloads on a change of either file, edited in place or replaced, and reports a
// failure once per change of the files.
func TestCertWatcher(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// Every write gets a modification time of its own: the steps below follow each other faster than the file
	// system's clock ticks, and a rewritten key has the same size as the one it replaces.
	mtime := time.Now().Add(-time.Hour)
	write := func(p string, data []byte) {
		t.Helper()
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	c1, k1 := ca.leaf(t, 11)
	write(certPath, c1)
	write(keyPath, k1)
	var logs testutil.Buffer
	w, err := loadCertWatcher(certPath, keyPath, newTestLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, _ := w.getCertificate(nil)
		return c.Leaf.SerialNumber.Int64()
	}
	if err := w.reloadIfChanged(); err != nil || serial() != 11 {
		t.Fatalf("unchanged files: err %v, serial %d", err, serial())
	}
	// Edited in place, key first: the half-written pair fails and is retried when the certificate follows.
	c2, k2 := ca.leaf(t, 12)
	write(keyPath, k2)
	if err := w.reloadIfChanged(); err == nil || serial() != 11 {
		t.Fatalf("new key, old certificate: err %v, serial %d; want an error and 11 kept", err, serial())
	}
	if err := w.reloadIfChanged(); err != nil {
		t.Fatalf("a failed pair is retried only when the files change again, got %v", err)
	}
	write(certPath, c2)
	if err := w.reloadIfChanged(); err != nil || serial() != 12 {
		t.Fatalf("both written: err %v, serial %d; want 12", err, serial())
	}
	// A file that disappears keeps the certificate; Run logs it once and stops with its context.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx, 5*time.Millisecond); close(stopped) }()
	waitFor(t, "the missing file reported", func() bool { return strings.Contains(logs.String(), "no such file") })
	c3, k3 := ca.leaf(t, 13)
	write(keyPath, k3)
	write(certPath, c3)
	waitFor(t, "the restored pair loaded", func() bool { return strings.Contains(logs.String(), "serial="+big.NewInt(13).Text(16)) })
	cancel()
	<-stopped
	if n := strings.Count(logs.String(), "no such file"); n != 1 {
		t.Errorf("the missing file was reported %d times, want once:\n%s", n, logs.String())
	}
	if serial() != 13 {
		t.Errorf("serial %d, want 13", serial())
	}
}

// newTestLogger logs text at every level into w.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestHTTPErrorLog: failed handshakes are debug noise; anything else the HTTP server reports is an error.
func TestHTTPErrorLog(t *testing.T) {
	var logs bytes.Buffer
	l := httpErrorLog(newTestLogger(&logs))
	l.Printf("http: TLS handshake error from 127.0.0.1:5555: client sent an HTTP request to an HTTPS server")
	l.Printf("http: panic serving 127.0.0.1:5556: boom")
	out := logs.String()
	if !strings.Contains(out, "level=DEBUG msg=\"http: TLS handshake error") || !strings.Contains(out, "level=ERROR msg=\"http: panic serving") {
		t.Fatalf("http error log:\n%s", out)
	}
}
