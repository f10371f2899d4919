package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edge/nfs-watcher-uploader/internal/lease"
	"github.com/edge/nfs-watcher-uploader/internal/service"
)

// maxBody bounds request bodies; a start request is a few dozen bytes.
const maxBody = 64 << 10

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string, extra ...any) {
	body := map[string]any{"error": msg}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	writeJSON(w, code, body)
}

// healthz touches nothing but memory: a hung NFS must not fail liveness
// through this handler, only through the process being wedged.
func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
}

func readyz(c Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]bool{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
}

type startRequest struct {
	Session *string `json:"session"`
}

func start(c Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.Ready() {
			writeError(w, http.StatusServiceUnavailable, "service is still starting")
			return
		}
		name, code, err := decodeStart(w, r)
		if err != nil {
			writeError(w, code, err.Error())
			return
		}
		res, err := c.Start(name)
		var active *service.ActiveError
		var held *lease.HeldError
		switch {
		case err == nil:
			writeJSON(w, http.StatusCreated, res)
		case errors.As(err, &active):
			writeError(w, http.StatusConflict, err.Error(), "session", active.Session)
		case errors.As(err, &held):
			writeError(w, http.StatusConflict, err.Error(), "session", held.Session, "holder", held.Holder, "holder_host", held.Host)
		case errors.Is(err, service.ErrBadName):
			writeError(w, http.StatusBadRequest, err.Error())
		default:
			writeError(w, http.StatusInternalServerError, err.Error())
		}
	})
}

// readBody reads a request body of at most maxBody bytes; the int is the
// status to answer on error.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", maxBody)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %v", err)
	}
	return body, 0, nil
}

// decodeOne decodes exactly one JSON value with no unknown fields into v;
// want describes the expected body in the error.
func decodeOne(body []byte, v any, want string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body (%s): %v", want, err)
	}
	if dec.More() {
		return errors.New("bad JSON body: more than one JSON value")
	}
	return nil
}

func decodeStart(w http.ResponseWriter, r *http.Request) (string, int, error) {
	body, code, err := readBody(w, r)
	if err != nil {
		return "", code, err
	}
	if strings.TrimSpace(string(body)) == "" {
		return "", 0, nil
	}
	var req startRequest
	if err := decodeOne(body, &req, `want {"session": "name"} or {}`); err != nil {
		return "", http.StatusBadRequest, err
	}
	if req.Session == nil {
		return "", 0, nil
	}
	if *req.Session == "" {
		return "", http.StatusBadRequest, errors.New("session name must not be empty; omit it for a generated name")
	}
	return *req.Session, 0, nil
}

func stop(c Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Before start-up finished a persisted session may still resume:
		// "nothing stopped" would be a lie.
		if !c.Ready() {
			writeError(w, http.StatusServiceUnavailable, "service is still starting")
			return
		}
		name, stopped, err := c.Stop()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error(), "session", name, "stopped", stopped)
			return
		}
		var s *string
		if stopped {
			s = &name
		}
		writeJSON(w, http.StatusOK, map[string]any{"stopped": stopped, "session": s})
	})
}

func status(c Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}
