// Package telemetry sets up logs, traces and metrics.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
)

// Telemetry holds what the rest of the program reports to.
type Telemetry struct {
	Logger   *slog.Logger
	Observer pipeline.Observer
	// WrapHTTP instruments one route (nil: none).
	WrapHTTP func(route string, h http.Handler) http.Handler
	shutdown []func(context.Context) error
}

// Setup configures telemetry from the standard OTEL_* variables.
func Setup(ctx context.Context, getenv func(string) string, stdout io.Writer) (*Telemetry, error) {
	t := &Telemetry{Logger: NewLogger(stdout, slog.LevelInfo, nil)}
	return t, nil
}

// Shutdown flushes and stops every provider.
func (t *Telemetry) Shutdown(ctx context.Context) {
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		_ = t.shutdown[i](ctx)
	}
}
