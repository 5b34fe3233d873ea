// Package ui serves kiem's browser console: a single-page app built from ui/src into ui/dist (committed, so
// `go build` needs no Node) and embedded in the binary, so it works air-gapped. It talks to /graphql only and
// imports nothing of kiem.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// ContentSecurityPolicy is sent with every page and asset: scripts, styles, workers and connections from kiem's
// own origin only, no inline script or style elements, no framing, no plugins. Data reaches the page as JSON
// and is rendered as text, so even a name such as <img src=x onerror=…> that slipped into markup could not run.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// graphiQLPolicy relaxes style-src for the GraphiQL page only: its editor (CodeMirror) and tooltips set inline
// style elements. Scripts stay 'self'.
const graphiQLPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	etag  string
	ctype string
}

// Handler serves the console: the files of dist at their paths, /graphiql, and index.html for every other path
// (the app's routes are deep links: /e/ID, /who-can?…, /diff?…). It serves GET and HEAD only and never
// consults authentication: the assets hold no data, and every query the app makes is authenticated by /graphql.
func Handler() http.Handler {
	assets := map[string]asset{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(b)
		}
		assets[strings.TrimPrefix(p, "dist")] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		// The embedded tree is fixed at build time; failing to walk it is a broken build.
		panic("ui: embedded assets: " + err.Error())
	}
	index := assets["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		// Assets keep their names across releases; revalidating by ETag is cheap and never serves a stale app.
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		a, ok := assets[p]
		switch {
		case ok && p == "/graphiql.html":
			h.Set("Content-Security-Policy", graphiQLPolicy)
		case ok && p != "/index.html":
		case p == "/graphiql" || p == "/graphiql/":
			a = assets["/graphiql.html"]
			h.Set("Content-Security-Policy", graphiQLPolicy)
		case strings.HasPrefix(p, "/assets/"):
			// A missing asset is a 404, not the app: a broken asset link must show as broken. Other paths are
			// the app's routes, whose IDs may hold dots.
			http.NotFound(w, r)
			return
		default:
			a = index
		}
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
