package telemetry

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instruments turn the pipeline's counts into metrics. Attribute sets stay
// small (session, outcome, step): never a file name.
type instruments struct {
	meter     metric.Meter
	processed metric.Int64Counter
	failed    metric.Int64Counter
	bytes     metric.Int64Counter
	upload    metric.Float64Histogram
	latency   metric.Float64Histogram
	size      metric.Int64Histogram
	queue     metric.Int64UpDownCounter
	retrying  metric.Int64UpDownCounter
	scan      metric.Float64Histogram
	gc        metric.Int64Counter
	staging   metric.Int64UpDownCounter
	direct    metric.Int64Counter

	lastSession atomic.Pointer[sessionOpt]
}

// Bucket bounds for durations in seconds: 10 ms to 30 min.
var durationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// Bucket bounds for file sizes: 1 KiB to 16 GiB, by 4.
var sizeBuckets = []float64{1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28, 1 << 30, 1 << 32, 1 << 34}

func newInstruments(m metric.Meter) (*instruments, error) {
	i := &instruments{meter: m}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	i.processed, err = m.Int64Counter("files.processed", metric.WithUnit("{file}"),
		metric.WithDescription("Files uploaded, verified and marked completed"))
	add(err)
	i.failed, err = m.Int64Counter("files.failed", metric.WithUnit("{file}"),
		metric.WithDescription("Failed attempts of a step (each is retried; outcome=permanent waits longer)"))
	add(err)
	i.bytes, err = m.Int64Counter("bytes.uploaded", metric.WithUnit("By"),
		metric.WithDescription("Bytes of completed uploads"))
	add(err)
	i.upload, err = m.Float64Histogram("upload.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to upload and verify one file"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	i.latency, err = m.Float64Histogram("file.latency", metric.WithUnit("s"),
		metric.WithDescription("Time from a file seen stable to its blob committed"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	i.size, err = m.Int64Histogram("file.size", metric.WithUnit("By"),
		metric.WithDescription("Size of uploaded files"), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	add(err)
	i.queue, err = m.Int64UpDownCounter("queue.depth", metric.WithUnit("{file}"),
		metric.WithDescription("Files queued for a worker"))
	add(err)
	i.retrying, err = m.Int64UpDownCounter("files.retrying", metric.WithUnit("{file}"),
		metric.WithDescription("Files waiting for a retry after a failure"))
	add(err)
	i.scan, err = m.Float64Histogram("scan.duration", metric.WithUnit("s"),
		metric.WithDescription("Time of one poll of the incoming folder"), metric.WithExplicitBucketBoundaries(durationBuckets...))
	add(err)
	i.gc, err = m.Int64Counter("gc.deleted", metric.WithUnit("{file}"),
		metric.WithDescription("Completed files deleted from NFS by the GC"))
	add(err)
	i.staging, err = m.Int64UpDownCounter("staging.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes held in local staging files (kept within APP_LOCAL_STAGING_MAX_BYTES)"))
	add(err)
	i.direct, err = m.Int64Counter("files.direct", metric.WithUnit("{file}"),
		metric.WithDescription("Files uploaded straight from NFS because no staging copy fitted"))
	add(err)
	return i, errors.Join(errs...)
}

func (i *instruments) observeOldest(oldest func() time.Time) error {
	_, err := i.meter.Float64ObservableGauge("files.oldest_waiting.age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest file queued, in flight or waiting for a retry (0 when none)"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			age := 0.0
			if t := oldest(); !t.IsZero() {
				age = time.Since(t).Seconds()
			}
			o.Observe(age)
			return nil
		}))
	return err
}

func sessionAttr(s string) attribute.KeyValue { return attribute.String("session", s) }

// sessionOpt is the attribute set {session} as a measurement option.
type sessionOpt struct {
	session string
	opt     metric.MeasurementOption
}

// forSession returns the {session} attributes of a measurement. There is
// one session at a time, so the last one's set is kept: building a set
// (sorting, hashing, allocating) per measurement cost more than recording
// it, five times per file.
func (i *instruments) forSession(session string) metric.MeasurementOption {
	if c := i.lastSession.Load(); c != nil && c.session == session {
		return c.opt
	}
	c := &sessionOpt{session: session, opt: metric.WithAttributeSet(attribute.NewSet(sessionAttr(session)))}
	i.lastSession.Store(c)
	return c.opt
}

func (i *instruments) FileProcessed(ctx context.Context, session string, size int64, upload, latency time.Duration) {
	attrs := i.forSession(session)
	i.processed.Add(ctx, 1, attrs)
	i.bytes.Add(ctx, size, attrs)
	i.size.Record(ctx, size, attrs)
	i.upload.Record(ctx, upload.Seconds(), attrs)
	i.latency.Record(ctx, latency.Seconds(), attrs)
}

func (i *instruments) FileFailed(ctx context.Context, session, step string, permanent bool) {
	outcome := "transient"
	if permanent {
		outcome = "permanent"
	}
	i.failed.Add(ctx, 1, metric.WithAttributes(sessionAttr(session), attribute.String("step", step), attribute.String("outcome", outcome)))
}

func (i *instruments) QueueDelta(ctx context.Context, n int64) { i.queue.Add(ctx, n) }
func (i *instruments) Retrying(ctx context.Context, n int64)   { i.retrying.Add(ctx, n) }
func (i *instruments) GCDeleted(ctx context.Context, n int64)  { i.gc.Add(ctx, n) }
func (i *instruments) StagingDelta(ctx context.Context, n int64) {
	i.staging.Add(ctx, n)
}
func (i *instruments) FileDirect(ctx context.Context, session string) {
	i.direct.Add(ctx, 1, i.forSession(session))
}

func (i *instruments) ScanDone(ctx context.Context, session string, d time.Duration, _ int) {
	i.scan.Record(ctx, d.Seconds(), i.forSession(session))
}
