package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// The "file uploaded" line built by hand is the line slog.Logger makes of
// the same arguments.
func TestUploadedLineIsLoggersLine(t *testing.T) {
	// Time and latency move between the two calls; latency is checked apart.
	var latency int64 = -1
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey:
			return slog.Attr{}
		case "latency_ms":
			latency = a.Value.Int64()
			return slog.Attr{}
		}
		return a
	}
	var got, want bytes.Buffer
	p, _ := benchPipeline(t)
	p.log = slog.New(slog.NewJSONHandler(&got, &slog.HandlerOptions{ReplaceAttr: noTime})).With("pod", "p-1")
	it := &Item{Session: "s", Date: "20260101", Name: "a/b \"c\".bin", Found: time.Now().Add(-1500 * time.Millisecond), attempts: 2}
	ctx := context.Background()
	p.logUploaded(ctx, it, 4096, 1234*time.Millisecond)
	if latency < 1500 {
		t.Fatalf("latency_ms %d, want at least 1500", latency)
	}
	slog.New(slog.NewJSONHandler(&want, &slog.HandlerOptions{ReplaceAttr: noTime})).With("pod", "p-1").InfoContext(ctx, "file uploaded",
		"session", it.Session, "file", it.Name, "blob", it.Key(), "bytes", int64(4096), "upload_ms", int64(1234), "latency_ms", time.Since(it.Found).Milliseconds(), "attempts", it.attempts+1)
	if got.String() != want.String() {
		t.Fatalf("line\n%s\nwant\n%s", got.String(), want.String())
	}
	p.log = slog.New(slog.NewJSONHandler(&got, &slog.HandlerOptions{Level: slog.LevelWarn}))
	got.Reset()
	p.logUploaded(ctx, it, 4096, time.Second)
	if got.Len() != 0 {
		t.Fatalf("logged below the handler's level: %s", got.String())
	}
}
