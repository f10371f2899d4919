package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/failure"
	"github.com/edge/nfs-watcher-uploader/internal/object"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"
)

// Options configure the pipeline.
type Options struct {
	Layout      Layout
	Workers     int
	QueueSize   int
	RetryBase   time.Duration
	RetryMax    time.Duration
	StagingMode string // "copy" (default) or "direct"
	// StagingMaxBytes bounds the bytes held in staging files at once
	// (0: no bound).
	StagingMaxBytes int64
	// InflightMaxBytes bounds the bytes of the files being copied and
	// uploaded at once (0: no bound); see admission.
	InflightMaxBytes int64
}

// Pipeline runs the workers. Every file it is given stays reserved (in
// pending) until it is completed or found gone, so it is never queued twice
// and a new file of the same name waits for the one in flight.
type Pipeline struct {
	opts   Options
	store  Store
	log    *slog.Logger
	stats  *Stats
	tracer trace.Tracer

	budget    *budget
	admission *admission
	// copying lets one staging copy run at a time: copies share one disk
	// (and one NFS mount), so together they take as long one after another,
	// but the first file can start its upload after its own copy instead of
	// after all of them.
	copying *semaphore.Weighted
	// slots bounds the queue: a sender holds a slot from before its item is
	// counted until a worker takes it, so queue_depth never passes the cap.
	slots chan struct{}
	queue chan *Item

	mu      sync.Mutex
	pending map[fileID]*Item

	dirs atomic.Pointer[sessionDirs] // the last session's folders
}

// New builds a pipeline; Run starts its workers.
func New(opts Options, store Store, stats *Stats, log *slog.Logger) *Pipeline {
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	if opts.QueueSize < 1 {
		opts.QueueSize = 1
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax < opts.RetryBase {
		opts.RetryMax = opts.RetryBase
	}
	if opts.StagingMaxBytes <= 0 {
		opts.StagingMaxBytes = math.MaxInt64
	}
	stats.setStagingBudget(opts.StagingMaxBytes)
	return &Pipeline{
		opts: opts, store: store, log: log, stats: stats,
		tracer:    otel.Tracer("nfs-watcher-uploader/pipeline"),
		budget:    newBudget(opts.StagingMaxBytes),
		copying:   semaphore.NewWeighted(1),
		admission: newAdmission(opts.InflightMaxBytes),
		slots:     make(chan struct{}, opts.QueueSize),
		queue:     make(chan *Item, opts.QueueSize),
		pending:   map[fileID]*Item{},
	}
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() *Stats { return p.stats }

// Layout returns the folders the pipeline works in.
func (p *Pipeline) Layout() Layout { return p.opts.Layout }

// Pending reports whether a file of that date prefix, session and
// relative name (that blob name) is queued, in flight or waiting. The
// watcher asks for every file at every poll, so no name is built.
func (p *Pipeline) Pending(date, session, name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.pending[fileID{date, session, name}]
	return ok
}

// Reserve marks the item pending; false if a file of that key already is.
func (p *Pipeline) Reserve(it *Item) bool {
	id := it.id()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[id]; ok {
		return false
	}
	p.pending[id] = it
	return true
}

// OldestPending returns when the oldest file still queued, in flight or
// waiting for a retry was seen stable; the zero time when there is none.
func (p *Pipeline) OldestPending() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var oldest time.Time
	for _, it := range p.pending {
		if oldest.IsZero() || it.Found.Before(oldest) {
			oldest = it.Found
		}
	}
	return oldest
}

// release ends a file's reservation; it is no longer failing or retrying
// (only a file with a failed attempt ever was).
func (p *Pipeline) release(ctx context.Context, it *Item) {
	if it.attempts > 0 {
		p.stats.setRetrying(ctx, it.Key(), false)
	}
	id := it.id()
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// Offer reserves and queues an item, blocking while the queue is full (the
// watcher's backpressure). It returns false if the item was already pending
// or ctx ended first.
func (p *Pipeline) Offer(ctx context.Context, it *Item) bool {
	if !p.Reserve(it) {
		return false
	}
	if err := p.enqueue(ctx, it); err != nil {
		p.release(context.WithoutCancel(ctx), it)
		return false
	}
	return true
}

// Enqueue queues an item already reserved with Reserve.
func (p *Pipeline) Enqueue(ctx context.Context, it *Item) error { return p.enqueue(ctx, it) }

func (p *Pipeline) enqueue(ctx context.Context, it *Item) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.stats.queued(ctx, 1)
	p.queue <- it // never blocks: a slot is held
	return nil
}

// Run starts the workers and returns when ctx ends. Workers stop between
// files; a file in flight when ctx ends is left where it is, and recovery
// picks it up on the next start (every step is idempotent).
func (p *Pipeline) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case it := <-p.queue:
					p.stats.queued(ctx, -1)
					<-p.slots
					p.process(ctx, it)
				}
			}
		})
	}
	wg.Wait()
}

// stepError says which step failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step, err}
}

// errSkip ends a file's run without an error: someone else has it.
var errSkip = errors.New("skip")

func (p *Pipeline) process(ctx context.Context, it *Item) {
	p.stats.inFlight(1)
	defer p.stats.inFlight(-1)
	ctx, span := p.tracer.Start(ctx, "file", trace.WithAttributes(
		attribute.String("session", it.Session),
		attribute.String("file.name", it.Name),
		attribute.Int("attempt", it.attempts+1),
	))
	defer span.End()
	size, upload, err := p.run(ctx, it)
	switch {
	case err == nil:
		if span.IsRecording() { // the arguments alone cost an allocation per file
			span.SetAttributes(attribute.String("outcome", "uploaded"), attribute.Int64("file.size", size))
		}
		p.stats.processed(ctx, it, size, upload)
		p.logUploaded(ctx, it, size, upload)
		p.release(ctx, it)
	case errors.Is(err, errSkip):
		span.SetAttributes(attribute.String("outcome", "skipped"))
		p.release(ctx, it)
	case errors.Is(err, errVanished) && p.alreadyUploaded(ctx, it):
		span.SetAttributes(attribute.String("outcome", "already-uploaded"))
		p.log.WarnContext(ctx, "file gone from processing, its blob holds its bytes: dropped", "session", it.Session,
			"file", it.Name, "step", stepOf(err), "error", err.Error())
		p.release(ctx, it)
	case errors.Is(err, errVanished):
		span.SetAttributes(attribute.String("outcome", "vanished"))
		span.SetStatus(codes.Error, err.Error())
		p.stats.vanished(ctx, it, err)
		p.log.ErrorContext(ctx, "file vanished from processing before its upload was confirmed", "session", it.Session,
			"file", it.Name, "step", stepOf(err), "error", err.Error())
		p.release(ctx, it)
	case ctx.Err() != nil:
		// Shutting down: the file stays where it is and recovery finds it.
		span.SetAttributes(attribute.String("outcome", "interrupted"))
		p.release(context.WithoutCancel(ctx), it)
	default:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("outcome", "failed"))
		p.retryLater(ctx, it, err)
	}
}

// logUploaded writes the line every uploaded file gets (the benchmark and
// operators count uploads by it). The record is built here, with typed
// attributes, and handed to the handler: slog.Logger would walk the stack
// for the caller's program counter, which no output uses (no source is
// logged), and box every value, for each file. The line is the same.
func (p *Pipeline) logUploaded(ctx context.Context, it *Item, size int64, upload time.Duration) {
	h := p.log.Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "file uploaded", 0)
	r.AddAttrs(slog.String("session", it.Session), slog.String("file", it.Name), slog.String("blob", it.Key()),
		slog.Int64("bytes", size), slog.Int64("upload_ms", upload.Milliseconds()),
		slog.Int64("latency_ms", time.Since(it.Found).Milliseconds()), slog.Int("attempts", it.attempts+1))
	_ = h.Handle(ctx, r)
}

// alreadyUploaded: a vanished file counts as uploaded only when the blob
// holds exactly the bytes it had when last read, never merely because a
// blob of that name (perhaps an older version) exists.
func (p *Pipeline) alreadyUploaded(ctx context.Context, it *Item) bool {
	return it.read && p.store.Verify(ctx, it.Key(), it.lastSize, it.lastCRC) == nil
}

func stepOf(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.step
	}
	return "unknown"
}

// retryLater keeps the file reserved and visible, and queues it again after
// an exponential, jittered, capped delay; permanent errors wait the cap.
func (p *Pipeline) retryLater(ctx context.Context, it *Item, err error) {
	it.attempts++
	if it.firstFailure.IsZero() {
		it.firstFailure = time.Now()
	}
	perm := failure.IsPermanent(err)
	delay := p.opts.RetryMax
	if !perm {
		delay = backoff(p.opts.RetryBase, p.opts.RetryMax, it.attempts)
	}
	it.nextTry = time.Now().Add(delay)
	step := stepOf(err)
	p.stats.setRetrying(ctx, it.Key(), true)
	p.stats.failed(ctx, it, step, err, perm)
	level := slog.LevelWarn
	if perm {
		level = slog.LevelError
	}
	p.log.Log(ctx, level, "file failed; will retry", "session", it.Session, "file", it.Name, "step", step,
		"error", err.Error(), "attempt", it.attempts, "permanent", perm, "retry_in_ms", delay.Milliseconds())
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.enqueue(ctx, it) != nil {
			return
		}
	}()
}

func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	// Full jitter in [d/2, d]: spreads retries of many files after an outage.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// span runs one step of a file in a child span of the file's. A file span
// that is not recorded (no trace exporter, or not sampled) would only get
// unrecorded children: the step then runs in the file's span, and a line
// it logs carries the file's trace and span ids.
func (p *Pipeline) span(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return stepErr(name, fn(ctx))
	}
	ctx, span := p.tracer.Start(ctx, name)
	defer span.End()
	err := fn(ctx)
	if err != nil && !errors.Is(err, errSkip) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return stepErr(name, err)
}

// run does the steps of one file; it returns the size and upload time. A
// file that changed after it was read is read and uploaded again.
func (p *Pipeline) run(ctx context.Context, it *Item) (int64, time.Duration, error) {
	if !it.Claimed {
		if err := p.span(ctx, "claim", func(ctx context.Context) error { return p.claim(ctx, it) }); err != nil {
			return 0, 0, err
		}
		it.Claimed = true
	}
	for try := 1; ; try++ {
		size, upload, err := p.upload(ctx, it)
		if errors.Is(err, errChanged) && try < maxTornCopies {
			p.log.WarnContext(ctx, "file changed after it was read; uploading it again", "session", it.Session,
				"file", it.Name, "step", stepOf(err), "error", err.Error())
			continue
		}
		return size, upload, err
	}
}

// upload stages, uploads, confirms and completes the claimed file once.
func (p *Pipeline) upload(ctx context.Context, it *Item) (int64, time.Duration, error) {
	release, err := p.admit(ctx, it)
	if err != nil {
		return 0, 0, err
	}
	defer release()
	var src *source
	err = p.span(ctx, "stage", func(ctx context.Context) error {
		var err error
		src, err = p.stage(ctx, it)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	start := time.Now()
	err = p.span(ctx, "upload", func(ctx context.Context) error {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(attribute.Int64("file.size", src.size))
		}
		confirmed, err := p.store.Put(ctx, object.Object{
			Name: it.Key(), Src: src.r, Size: src.size, CRC64: src.crc64, BlockCRC: src.blockCRC,
			Session: it.Session, Date: it.Date, Mtime: time.Unix(0, src.sig.Mtime).UTC(),
		})
		if err != nil {
			return err
		}
		if err := src.unchanged(); err != nil {
			return err
		}
		if confirmed {
			return nil
		}
		return p.store.Verify(ctx, it.Key(), src.size, src.crc64)
	})
	upload := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if err := p.span(ctx, "complete", func(ctx context.Context) error { return p.complete(ctx, it, src) }); err != nil {
		return 0, 0, err
	}
	return src.size, upload, nil
}

func (p *Pipeline) String() string {
	return fmt.Sprintf("pipeline(%d workers)", p.opts.Workers)
}
