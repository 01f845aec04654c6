// Package web is Communiqué's browser client. Its sources are in src/; the
// bundle that build.mjs makes from them (npm ci && node build.mjs, or make
// web) is committed in dist/ and embedded here, so `go build` needs no Node.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed dist
var dist embed.FS

// NoncePlaceholder appears in dist/index.html wherever the page needs the
// Content-Security-Policy nonce of the response (the editor's style
// elements carry it).
const NoncePlaceholder = "__CSP_NONCE__"

// FS is the built client: index.html, favicon.svg and assets/.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("web: " + err.Error()) // dist is embedded at build time
	}
	return sub
}

// Index is dist/index.html with nonce in place of NoncePlaceholder. The
// nonce must be base64 (it is written into the page as it is).
func Index(nonce string) []byte {
	b, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		return []byte("<!doctype html><title>Communiqué</title><p>The web client was not built (make web).")
	}
	return bytes.ReplaceAll(b, []byte(NoncePlaceholder), []byte(nonce))
}

// Handler serves the static files of dist (assets/…, favicon.svg). Names
// under assets/ carry a hash of their content, so they are cached for a
// year; anything else is revalidated. Text files go out gzipped to clients
// that accept it (compressed once, on first use).
func Handler() http.Handler {
	files := http.FileServerFS(FS())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		name := strings.TrimPrefix(p, "/")
		if p == "/" || p == "/index.html" {
			http.NotFound(w, r) // the page is served with its nonce, not as a file
			return
		}
		if st, err := fs.Stat(FS(), name); err != nil || st.IsDir() {
			http.NotFound(w, r) // no directory listings
			return
		}
		h := w.Header()
		if strings.HasPrefix(p, "/assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		if compressible(name) {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r) {
				if gz, err := gzipped(name); err == nil {
					h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
					h.Set("Content-Encoding", "gzip")
					h.Set("Content-Length", strconv.Itoa(len(gz)))
					if r.Method != http.MethodHead {
						_, _ = w.Write(gz)
					}
					return
				}
			}
		}
		files.ServeHTTP(w, r)
	})
}

func compressible(name string) bool {
	switch path.Ext(name) {
	case ".js", ".css", ".svg", ".txt", ".html":
		return true
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

var gzCache sync.Map // name → []byte

// gzipped returns the gzip form of an embedded file, made once.
func gzipped(name string) ([]byte, error) {
	if b, ok := gzCache.Load(name); ok {
		return b.([]byte), nil
	}
	raw, err := fs.ReadFile(FS(), name)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b, _ := gzCache.LoadOrStore(name, buf.Bytes())
	return b.([]byte), nil
}
