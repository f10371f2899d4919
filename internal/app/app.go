// Package app wires configuration, telemetry, Azure, the pipeline and the
// HTTP API together. Run is the whole program; main only calls it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/blob"
	"github.com/edge/nfs-watcher-uploader/internal/cli"
	"github.com/edge/nfs-watcher-uploader/internal/config"
	"github.com/edge/nfs-watcher-uploader/internal/httpapi"
	"github.com/edge/nfs-watcher-uploader/internal/lease"
	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
	"github.com/edge/nfs-watcher-uploader/internal/service"
	"github.com/edge/nfs-watcher-uploader/internal/telemetry"
)

// ErrReported means Run already logged why it failed.
var ErrReported = errors.New("start-up failed")

// Run reads the configuration from getenv and serves until ctx ends; with
// a command in args (args[0] is the program) it is the command line client.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && cli.IsCommand(args[1:]) {
		return cli.Run(ctx, args[1:], getenv, stdout, stderr)
	}
	environ := map[string]string{}
	for _, name := range config.Names() {
		if v := getenv(name); v != "" {
			environ[name] = v
		}
	}
	bootLog := telemetry.NewLogger(stdout, slog.LevelInfo, nil)
	cfg, err := config.Load(environ)
	if err != nil {
		bootLog.Error(err.Error())
		return ErrReported
	}

	tel, err := telemetry.Setup(ctx, getenv, stdout, telemetry.Options{MetricsAddr: cfg.MetricsAddr})
	if err != nil {
		bootLog.Error("telemetry set-up failed", "error", err.Error())
		return ErrReported
	}
	log := tel.Logger
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		tel.Shutdown(sctx)
	}()

	layout := pipeline.Layout{Incoming: cfg.NFSIncomingDir, Processing: cfg.NFSProcessingRoot, Staging: cfg.LocalStagingRoot}

	// Listen before touching NFS: on a hung export /healthz must still
	// answer, or the startup probe kills the pod over and over.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.HTTPAddr, "error", err.Error())
		return ErrReported
	}
	log.Info("listening", "addr", ln.Addr().String())

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	b := &boot{stats: pipeline.NewStats(tel.Observer), bw: newBandwidth(cfg, log)}
	defer b.bw.ctl.Close()
	if err := tel.ObserveBandwidthLimit(func() *int64 { return b.bw.ctl.State().Limit }); err != nil {
		log.Warn("cannot observe the bandwidth limit", "step", "telemetry", "error", err.Error())
	}
	srv := &http.Server{
		Handler:           httpapi.Routes(lazyController{b}, tel.WrapHTTP, httpapi.WithToken(cfg.APIToken), httpapi.WithBandwidth(b.bw)),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	// Start-up runs beside the server and is abandoned on SIGTERM: a step
	// stuck in a hung NFS call must not keep the process alive.
	failed := make(chan struct{})
	go func() {
		if err := b.run(runCtx, cfg, layout, tel, log); err != nil && runCtx.Err() == nil {
			close(failed)
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-srvErr:
		log.Error("http server failed", "error", err.Error())
		return ErrReported
	case <-failed:
		return ErrReported
	}
	cancelRun()
	// Correctness comes from idempotent steps, not draining: wait briefly
	// for workers, never for a call stuck on a hung NFS.
	store, workersDone := b.shutdownParts()
	if workersDone != nil {
		select {
		case <-workersDone:
		case <-time.After(3 * time.Second):
			log.Warn("exiting with workers still busy; their files are recovered on next start")
		}
	}
	if store != nil {
		store.Close()
	}
	return nil
}

// boot is the start-up in progress and what the API sees of it.
type boot struct {
	stats *pipeline.Stats
	svc   atomic.Pointer[service.Service]
	bw    *bandwidthControl

	mu          sync.Mutex
	problem     *service.Problem // last failure of a step being retried
	done        bool
	store       *blob.Store
	workersDone chan struct{}
}

// run does every start-up step that touches NFS or Azure. Configuration
// errors (folders, credentials) end the process; recovery and resume are
// retried with capped backoff until they work, with /readyz 503 meanwhile.
func (b *boot) run(ctx context.Context, cfg config.Config, layout pipeline.Layout, tel *telemetry.Telemetry, log *slog.Logger) error {
	if err := checkFolders(layout); err != nil {
		log.Error(err.Error())
		return err
	}
	b.bw.load(layout.Processing)
	store, err := blob.Open(ctx, blob.Credentials{
		Mode: cfg.AzureAuth, AccountURL: cfg.AzureAccountURL, ConnectionString: cfg.AzureConnectionString,
		AccountName: cfg.AzureAccountName, AccountKey: cfg.AzureAccountKey, AuthTimeout: cfg.AzureAuthTimeout(),
	}, blob.Options{
		Container: cfg.AzureContainer, BlockSize: cfg.AzureMaxBlockSize, SinglePutSize: cfg.AzureMaxSinglePutSize,
		Concurrency: cfg.AzureMaxConcurrency, TryTimeout: cfg.AzureTryTimeout(), AccessTier: cfg.AccessTier(), Tags: cfg.BlobTags(),
		RootCAs:   cfg.RootCAs(),
		Bandwidth: b.bw.limiter,
	})
	if err != nil {
		if ctx.Err() == nil {
			log.Error("azure authentication failed", "error", err.Error())
		}
		return err
	}
	for _, f := range store.Failed {
		log.Warn("azure credential failed; trying the next", "credential", f.Credential, "error", f.Error)
	}
	b.mu.Lock()
	b.store = store
	b.mu.Unlock()
	log.Info("azure container ready", "container", cfg.AzureContainer, "credential", store.Method)

	pipe := pipeline.New(pipeline.Options{
		Layout: layout, Workers: cfg.WorkerConcurrency, QueueSize: cfg.MaxQueueSize,
		RetryBase: cfg.RetryBase(), RetryMax: cfg.RetryMax(), StagingMode: cfg.StagingMode,
		StagingMaxBytes:  cfg.LocalStagingMaxBytes,
		InflightMaxBytes: cfg.MaxInflightBytes,
	}, store, b.stats, log)
	if err := tel.ObserveOldestWaiting(pipe.OldestPending); err != nil {
		log.Warn("cannot observe the oldest waiting file", "step", "telemetry", "error", err.Error())
	}
	if err := tel.ObserveInFlight(b.stats.InFlight); err != nil {
		log.Warn("cannot observe the files in flight", "step", "telemetry", "error", err.Error())
	}
	if tel.MetricsURL != "" {
		log.Info("prometheus metrics", "url", tel.MetricsURL)
	}
	// The processing root is the holder id: stable across restarts of the
	// same pod (it takes its own lease back at once), unique per pod.
	holder, err := filepath.Abs(layout.Processing)
	if err != nil {
		holder = layout.Processing
	}
	svc := service.New(ctx, service.Options{
		Extensions: cfg.Extensions(), Exclude: cfg.FileExclude(), MinAge: cfg.MinFileAge(), Poll: cfg.PollInterval(), GCInterval: cfg.GCInterval(),
		Leases: lease.NewManager(layout.Incoming, holder, cfg.SessionLease()),
	}, pipe, log)

	backoff := startupBackoff{base: cfg.RetryBase(), max: min(cfg.RetryMax(), maxStartupBackoff)}
	items, err := retry(ctx, b, log, backoff, "recovery", func() ([]*pipeline.Item, error) { return pipe.Recover(ctx) })
	if err != nil {
		return err
	}
	workersDone := make(chan struct{})
	b.mu.Lock()
	b.workersDone = workersDone
	b.mu.Unlock()
	go func() {
		defer close(workersDone)
		pipe.Run(ctx)
	}()
	pipe.EnqueueAll(ctx, items)
	if len(items) > 0 {
		log.Info("recovered unfinished files", "step", "recovery", "files", len(items))
	}
	b.svc.Store(svc)
	resumed, err := retry(ctx, b, log, backoff, "resume", func() (*service.Started, error) { return svc.Resume(ctx) })
	if err != nil {
		return err
	}
	go svc.RunGC(ctx)
	b.mu.Lock()
	b.done, b.problem = true, nil
	b.mu.Unlock()
	svc.SetReady()
	if resumed == nil {
		log.Info("ready; no active session")
	} else {
		log.Info("ready", "session", resumed.Session)
	}
	return nil
}

func (b *boot) shutdownParts() (*blob.Store, chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.store, b.workersDone
}

func (b *boot) fail(step string, err error) {
	b.mu.Lock()
	b.problem = &service.Problem{Time: time.Now().UTC(), Step: step, Error: err.Error()}
	b.mu.Unlock()
}

func (b *boot) startupError() *service.Problem {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done || b.problem == nil {
		return nil
	}
	p := *b.problem
	return &p
}

// maxStartupBackoff keeps a repaired export from waiting minutes for the
// next attempt (APP_RETRY_MAX_S is sized for Azure, 300 s by default).
const maxStartupBackoff = 30 * time.Second

type startupBackoff struct{ base, max time.Duration }

// retry runs fn until it succeeds or ctx ends. A failure never ends the
// process: the export may come back, and the pod must not crash-loop.
func retry[T any](ctx context.Context, b *boot, log *slog.Logger, bo startupBackoff, step string, fn func() (T, error)) (T, error) {
	delay := bo.base
	for {
		v, err := fn()
		if err == nil || ctx.Err() != nil {
			return v, ctx.Err()
		}
		b.fail(step, err)
		log.Error("start-up step failed; retrying", "step", step, "error", err.Error(), "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, bo.max)
	}
}

// checkFolders creates the roots and makes sure incoming and processing
// share one filesystem: the claim is a rename, which cannot cross devices.
func checkFolders(l pipeline.Layout) error {
	problems := map[string]string{}
	for name, dir := range map[string]string{
		"APP_NFS_INCOMING_DIR": l.Incoming, "APP_NFS_PROCESSING_ROOT": l.Processing, "APP_LOCAL_STAGING_ROOT": l.Staging,
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			problems[name] = fmt.Sprintf("cannot create %s: %v", dir, err)
		}
	}
	if len(problems) == 0 {
		var a, b syscall.Stat_t
		if err := syscall.Stat(l.Incoming, &a); err != nil {
			problems["APP_NFS_INCOMING_DIR"] = err.Error()
		} else if err := syscall.Stat(l.Processing, &b); err != nil {
			problems["APP_NFS_PROCESSING_ROOT"] = err.Error()
		} else if a.Dev != b.Dev {
			msg := fmt.Sprintf("%s and %s are on different filesystems; a claim is a rename and cannot cross them", l.Incoming, l.Processing)
			problems["APP_NFS_INCOMING_DIR"] = msg
			problems["APP_NFS_PROCESSING_ROOT"] = msg
		}
	}
	if len(problems) > 0 {
		return &config.Error{Problems: problems}
	}
	return nil
}

// lazyController answers probes and status before the service exists.
type lazyController struct{ b *boot }

func (c lazyController) Ready() bool {
	s := c.b.svc.Load()
	return s != nil && s.Ready()
}

var errStarting = errors.New("service is still starting")

func (c lazyController) Start(name string) (service.Started, error) {
	s := c.b.svc.Load()
	if s == nil || !s.Ready() {
		return service.Started{}, errStarting
	}
	return s.Start(name)
}

func (c lazyController) Stop() (string, bool, error) {
	s := c.b.svc.Load()
	if s == nil || !s.Ready() {
		return "", false, errStarting
	}
	return s.Stop()
}

func (c lazyController) Status() service.Status {
	var st service.Status
	if s := c.b.svc.Load(); s != nil {
		st = s.Status()
	} else {
		st.Counts = c.b.stats.Snapshot()
	}
	st.StartupError = c.b.startupError()
	st.State = c.b.bw.ctl.State()
	return st
}
