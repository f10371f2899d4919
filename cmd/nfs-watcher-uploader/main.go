// Command nfs-watcher-uploader ships finished files from an NFS export to
// Azure Blob Storage. It reads APP_* and OTEL_* from the environment.
// With a command (status, start, stop, check-config, version) it is the
// service's own client instead.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/edge/nfs-watcher-uploader/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		// A command (status, start, ...) has printed why and chose its code.
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			stop()
			os.Exit(coded.ExitCode())
		}
		if !errors.Is(err, app.ErrReported) {
			fmt.Fprintln(os.Stderr, err)
		}
		stop()
		os.Exit(1)
	}
}
