// Package httpapi serves the HTTP API of SPEC §3.
package httpapi

import (
	"net/http"

	"github.com/edge/nfs-watcher-uploader/internal/service"
)

// Controller is the service as the API drives it.
type Controller interface {
	Ready() bool
	Start(name string) (service.Started, error)
	Stop() (session string, stopped bool, err error)
	Status() service.Status
}

// Probes are never traced: kubelet calls them every few seconds.
var Probes = []string{"/healthz", "/readyz"}

// Routes lists every endpoint in one place. wrap instruments the non-probe
// routes (nil for none).
func Routes(c Controller, wrap func(route string, h http.Handler) http.Handler, opts ...Option) *http.ServeMux {
	if wrap == nil {
		wrap = func(_ string, h http.Handler) http.Handler { return h }
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /readyz", readyz(c))
	mux.Handle("POST /v1/watch/start", wrap("/v1/watch/start", requireToken(o.token, start(c))))
	mux.Handle("POST /v1/watch/stop", wrap("/v1/watch/stop", requireToken(o.token, stop(c))))
	mux.Handle("GET /v1/status", wrap("/v1/status", status(c)))
	mux.Handle("PUT /v1/bandwidth", wrap("/v1/bandwidth", requireToken(o.token, putBandwidth(o.bw))))
	mux.Handle("DELETE /v1/bandwidth", wrap("/v1/bandwidth", requireToken(o.token, resetBandwidth(o.bw))))
	mux.Handle("GET /{$}", wrap("/", asset("index.html", "text/html; charset=utf-8")))
	mux.Handle("GET /openapi.json", wrap("/openapi.json", asset("openapi.json", "application/json")))
	mux.Handle("GET /docs", wrap("/docs", asset("docs.html", "text/html; charset=utf-8")))
	mux.Handle("/", wrap("/", notFound()))
	return mux
}
