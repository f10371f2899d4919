package app

import (
	"log/slog"

	"github.com/edge/nfs-watcher-uploader/internal/bandwidth"
	"github.com/edge/nfs-watcher-uploader/internal/blob"
	"github.com/edge/nfs-watcher-uploader/internal/config"
)

// bandwidthControl is the upload limiter and what sets it: the configured
// limit from the start, the persisted override once the processing root
// was read, and the API's changes.
type bandwidthControl struct {
	limiter *blob.Bandwidth
	ctl     *bandwidth.Controller
	log     *slog.Logger
}

func newBandwidth(cfg config.Config, log *slog.Logger) *bandwidthControl {
	lim := blob.NewBandwidth()
	b := &bandwidthControl{limiter: lim, ctl: bandwidth.New(cfg.Bandwidth(), lim, nil), log: log}
	return b
}

// load reads the persisted override. A damaged one is reported and the
// configured limit stays: a bandwidth setting is no reason not to upload.
func (b *bandwidthControl) load(processingRoot string) {
	if err := b.ctl.Load(processingRoot); err != nil {
		b.log.Error("ignoring the persisted bandwidth override", "step", "bandwidth", "error", err.Error())
	}
	b.logState("bandwidth limit")
}

func (b *bandwidthControl) PutBandwidth(limit string) (bandwidth.State, error) {
	st, err := b.ctl.Put(limit)
	if err == nil {
		b.logState("bandwidth override set")
	}
	return st, err
}

func (b *bandwidthControl) ResetBandwidth() (bandwidth.State, error) {
	st, err := b.ctl.Reset()
	if err == nil {
		b.logState("bandwidth override removed")
	}
	return st, err
}

func (b *bandwidthControl) logState(msg string) {
	st := b.ctl.State()
	attrs := []any{"step", "bandwidth"}
	if st.Limit != nil {
		attrs = append(attrs, "bytes_per_second", *st.Limit)
	} else {
		attrs = append(attrs, "bytes_per_second", "unlimited")
	}
	if st.Source != nil {
		attrs = append(attrs, "source", *st.Source, "schedule", *st.Schedule)
	}
	b.log.Info(msg, attrs...)
}
