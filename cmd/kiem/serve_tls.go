package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// certPollInterval is how often kiem checks whether the certificate or key file changed.
const certPollInterval = 2 * time.Second

// tlsFlags are the certificate and key kiem serves HTTPS with; both or neither.
type tlsFlags struct {
	certFile, keyFile string
}

// check refuses one file without the other.
func (t tlsFlags) check() error {
	switch {
	case t.certFile != "" && t.keyFile == "":
		return errors.New("--tls-cert-file needs --tls-key-file (the certificate's private key)")
	case t.certFile == "" && t.keyFile != "":
		return errors.New("--tls-key-file needs --tls-cert-file (the certificate chain)")
	}
	return nil
}

func (t tlsFlags) enabled() bool { return t.certFile != "" }

// scheme is the URL scheme kiem serves with these flags.
func (t tlsFlags) scheme() string {
	if t.enabled() {
		return "https"
	}
	return "http"
}

// certPair is one good load of the certificate and key files, with the files as they were read.
type certPair struct {
	cert *tls.Certificate
	// certStat and keyStat are the files as read, to notice an edit in place or a replacement (a rename, or a
	// Kubernetes secret volume swapping its ..data link). A failed load records the files it tried, with the
	// last good certificate, so that a broken pair is reported once, not at every check.
	certStat, keyStat os.FileInfo
}

// certWatcher serves the certificate of a certificate file and a key file (PEM; the certificate file may hold
// the chain after the leaf), and re-reads them when either changes. A pair that fails to load (unparsable, a
// key that does not match, a missing file) leaves the last good one in force, and the log says why.
type certWatcher struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[certPair]
}

// loadCertWatcher loads the pair; kiem does not start without a good one.
func loadCertWatcher(certFile, keyFile string, log *slog.Logger) (*certWatcher, error) {
	w := &certWatcher{certFile: certFile, keyFile: keyFile, log: log}
	p, err := w.read()
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
	}
	w.cur.Store(p)
	w.loaded(p.cert, "TLS certificate loaded")
	return w, nil
}

// config is the server's TLS configuration: TLS 1.2 or newer, Go's default cipher suites, the current pair.
func (w *certWatcher) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: w.getCertificate}
}

func (w *certWatcher) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return w.cur.Load().cert, nil
}

// Run reloads the pair whenever either file's modification time, size or identity changes, checking every
// interval until ctx ends. A failed reload is logged once per change of the files.
func (w *certWatcher) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := w.reloadIfChanged()
		switch {
		case err == nil:
			last = ""
		case err.Error() != last:
			last = err.Error()
			w.log.Error("TLS certificate not reloaded; the previous certificate stays in force", "cert", w.certFile, "key", w.keyFile, "err", err)
		}
	}
}

// reloadIfChanged reloads the pair if either file differs from the version last read.
func (w *certWatcher) reloadIfChanged() error {
	cur := w.cur.Load()
	cs, err := os.Stat(w.certFile)
	if err != nil {
		return err
	}
	ks, err := os.Stat(w.keyFile)
	if err != nil {
		return err
	}
	if !fileChanged(cur.certStat, cs) && !fileChanged(cur.keyStat, ks) {
		return nil
	}
	p, err := w.read()
	if err != nil {
		// Remember the files as they are now, so that the failure is retried only when they change again.
		w.cur.Store(&certPair{cert: cur.cert, certStat: cs, keyStat: ks})
		return err
	}
	w.cur.Store(p)
	w.loaded(p.cert, "TLS certificate reloaded")
	return nil
}

// read loads both files; the stamps are those of the files actually read.
func (w *certWatcher) read() (*certPair, error) {
	certPEM, cs, err := readStat(w.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, ks, err := readStat(w.keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", w.certFile, w.keyFile, err)
	}
	return &certPair{cert: &cert, certStat: cs, keyStat: ks}, nil
}

// loaded logs what the certificate is, and warns when it is not valid now: kiem serves it all the same (the
// operator may be replacing it), but clients will refuse it.
func (w *certWatcher) loaded(cert *tls.Certificate, msg string) {
	leaf := cert.Leaf
	if leaf == nil {
		return
	}
	w.log.Info(msg, "cert", w.certFile, "subject", leaf.Subject.String(), "dns", strings.Join(leaf.DNSNames, ","),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		w.log.Warn("TLS certificate has expired", "cert", w.certFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		w.log.Warn("TLS certificate is not valid yet", "cert", w.certFile, "not_before", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
}

// readStat reads a file and stats the handle it read.
func readStat(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, fi, nil
}

// fileChanged reports whether the file now described by next differs from the one old was taken from.
func fileChanged(old, next os.FileInfo) bool {
	return !os.SameFile(old, next) || !old.ModTime().Equal(next.ModTime()) || old.Size() != next.Size()
}

// httpErrorLog is the http.Server's error log, into kiem's: failed TLS handshakes (scanners, health checks that
// only open a TCP connection, plain HTTP sent to the HTTPS port) at debug, anything else (a handler's panic) at
// error.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return log.New(httpLogWriter{l}, "", 0)
}

type httpLogWriter struct{ log *slog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelError
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
