package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// ObserveBandwidthLimit reports the upload bandwidth limit in force, in
// bytes per second; limit returns nil when nothing is limited. With no
// limit the gauge has no data point at all, as /v1/status shows null: a 0
// would read as "nothing may be sent", and a comparison such as
// throughput >= 0.9 * limit would hold for every upload.
func (t *Telemetry) ObserveBandwidthLimit(limit func() *int64) error {
	_, err := t.inst.meter.Int64ObservableGauge("bandwidth.limit", metric.WithUnit("By/s"),
		metric.WithDescription("Upload bandwidth limit in force (APP_BANDWIDTH_LIMIT or the override); no data point when none"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			if l := limit(); l != nil {
				o.Observe(*l)
			}
			return nil
		}))
	return err
}
