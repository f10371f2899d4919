package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// ObserveInFlight reports the files a worker holds now. It is observed,
// not counted: the pipeline already keeps the number for /v1/status, and
// one source cannot disagree with itself.
func (t *Telemetry) ObserveInFlight(inFlight func() int64) error {
	_, err := t.inst.meter.Int64ObservableGauge("files.in_flight", metric.WithUnit("{file}"),
		metric.WithDescription("Files a worker is claiming, copying, uploading or completing"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(inFlight())
			return nil
		}))
	return err
}
