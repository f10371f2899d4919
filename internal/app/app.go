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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edge/nfs-watcher-uploader/internal/blob"
	"github.com/edge/nfs-watcher-uploader/internal/config"
	"github.com/edge/nfs-watcher-uploader/internal/httpapi"
	"github.com/edge/nfs-watcher-uploader/internal/pipeline"
	"github.com/edge/nfs-watcher-uploader/internal/service"
	"github.com/edge/nfs-watcher-uploader/internal/telemetry"
)

// ErrReported means Run already logged why it failed.
var ErrReported = errors.New("start-up failed")

// Run reads the configuration from getenv and serves until ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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
	if err := checkFolders(layout); err != nil {
		log.Error(err.Error())
		return ErrReported
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.HTTPAddr, "error", err.Error())
		return ErrReported
	}
	log.Info("listening", "addr", ln.Addr().String())

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	stats := pipeline.NewStats(tel.Observer)
	var ctl atomic.Pointer[service.Service]
	srv := &http.Server{
		Handler:           httpapi.Routes(lazyController{&ctl}, tel.WrapHTTP),
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

	// Azure is checked while /healthz already answers, so the startup probe
	// sees a live process during a slow credential chain.
	store, err := blob.Open(ctx, blob.Credentials{
		Mode: cfg.AzureAuth, AccountURL: cfg.AzureAccountURL, ConnectionString: cfg.AzureConnectionString,
		AccountName: cfg.AzureAccountName, AccountKey: cfg.AzureAccountKey, AuthTimeout: cfg.AzureAuthTimeout(),
	}, blob.Options{
		Container: cfg.AzureContainer, BlockSize: cfg.AzureMaxBlockSize, SinglePutSize: cfg.AzureMaxSinglePutSize,
		Concurrency: cfg.AzureMaxConcurrency, TryTimeout: cfg.AzureTryTimeout(),
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		log.Error("azure authentication failed", "error", err.Error())
		return ErrReported
	}
	defer store.Close()
	log.Info("azure container ready", "container", cfg.AzureContainer, "credential", store.Method)

	pipe := pipeline.New(pipeline.Options{
		Layout: layout, Workers: cfg.WorkerConcurrency, QueueSize: cfg.MaxQueueSize,
		RetryBase: cfg.RetryBase(), RetryMax: cfg.RetryMax(), StagingMode: cfg.StagingMode,
		StagingMaxBytes: cfg.LocalStagingMaxBytes,
	}, store, stats, log)
	if err := tel.ObserveOldestWaiting(pipe.OldestPending); err != nil {
		log.Warn("cannot observe the oldest waiting file", "step", "telemetry", "error", err.Error())
	}
	if tel.MetricsURL != "" {
		log.Info("prometheus metrics", "url", tel.MetricsURL)
	}
	svc := service.New(runCtx, service.Options{
		Extensions: cfg.Extensions(), MinAge: cfg.MinFileAge(), Poll: cfg.PollInterval(), GCInterval: cfg.GCInterval(),
	}, pipe, log)

	items, err := pipe.Recover(runCtx)
	if err != nil {
		log.Error("recovery failed", "step", "recovery", "error", err.Error())
		return ErrReported
	}
	workersDone := make(chan struct{})
	go func() {
		defer close(workersDone)
		pipe.Run(runCtx)
	}()
	pipe.EnqueueAll(runCtx, items)
	if len(items) > 0 {
		log.Info("recovered unfinished files", "step", "recovery", "files", len(items))
	}
	ctl.Store(svc)
	resumed, err := svc.Resume()
	if err != nil {
		log.Error("cannot resume the persisted session", "step", "recovery", "error", err.Error())
		return ErrReported
	}
	go svc.RunGC(runCtx)
	svc.SetReady()
	if resumed == nil {
		log.Info("ready; no active session")
	} else {
		log.Info("ready", "session", resumed.Session)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-srvErr:
		log.Error("http server failed", "error", err.Error())
		return ErrReported
	}
	cancelRun()
	// Correctness comes from idempotent steps, not draining: wait briefly
	// for workers, never for a call stuck on a hung NFS.
	select {
	case <-workersDone:
	case <-time.After(3 * time.Second):
		log.Warn("exiting with workers still busy; their files are recovered on next start")
	}
	return nil
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

// lazyController answers probes before the service exists.
type lazyController struct {
	s *atomic.Pointer[service.Service]
}

func (c lazyController) Ready() bool {
	s := c.s.Load()
	return s != nil && s.Ready()
}

func (c lazyController) Start(name string) (service.Started, error) {
	s := c.s.Load()
	if s == nil {
		return service.Started{}, errors.New("service is still starting")
	}
	return s.Start(name)
}

func (c lazyController) Stop() (string, bool, error) {
	s := c.s.Load()
	if s == nil {
		return "", false, nil
	}
	return s.Stop()
}

func (c lazyController) Status() service.Status {
	s := c.s.Load()
	if s == nil {
		return service.Status{}
	}
	return s.Status()
}
