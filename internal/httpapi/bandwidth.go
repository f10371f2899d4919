package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/edge/nfs-watcher-uploader/internal/bandwidth"
)

// BandwidthController changes the upload bandwidth limit at run time.
type BandwidthController interface {
	// PutBandwidth overrides the configured limit until ResetBandwidth;
	// the override survives restarts.
	PutBandwidth(limit string) (bandwidth.State, error)
	ResetBandwidth() (bandwidth.State, error)
}

// WithBandwidth serves PUT and DELETE /v1/bandwidth through b; without it
// they answer 503.
func WithBandwidth(b BandwidthController) Option { return func(o *options) { o.bw = b } }

type bandwidthRequest struct {
	Limit *string `json:"limit"`
}

func putBandwidth(b BandwidthController) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit, code, err := decodeBandwidth(w, r)
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		if b == nil {
			writeError(w, http.StatusServiceUnavailable, "bandwidth control is not available")
			return
		}
		st, err := b.PutBandwidth(limit)
		writeBandwidth(w, st, err)
	})
}

func resetBandwidth(b BandwidthController) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b == nil {
			writeError(w, http.StatusServiceUnavailable, "bandwidth control is not available")
			return
		}
		st, err := b.ResetBandwidth()
		writeBandwidth(w, st, err)
	})
}

func writeBandwidth(w http.ResponseWriter, st bandwidth.State, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, bandwidth.ErrBadLimit):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, bandwidth.ErrNotLoaded):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func decodeBandwidth(w http.ResponseWriter, r *http.Request) (string, int, error) {
	body, code, err := readBody(w, r)
	if err != nil {
		return "", code, err
	}
	const want = `want {"limit": "10M"}, rclone --bwlimit syntax`
	var req bandwidthRequest
	if err := decodeOne(body, &req, want); err != nil {
		return "", http.StatusBadRequest, err
	}
	if req.Limit == nil {
		return "", http.StatusBadRequest, fmt.Errorf("missing \"limit\" (%s; \"off\" for none, DELETE to return to the configured limit)", want)
	}
	return *req.Limit, 0, nil
}
