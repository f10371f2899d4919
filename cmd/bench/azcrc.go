package main

import (
	_ "embed"
	"flag"
	"os"
	"path/filepath"
)

//go:embed azurite-crc64.js
var azuriteCRC64 []byte

var flagStockCRC = flag.Bool("azurite-stock-crc64", false,
	"keep Azurite's own CRC64 check (a byte-at-a-time JavaScript loop that slows the side sending CRC64s)")

// useFastCRC64 makes every Azurite this process starts check CRC64s with
// azurite-crc64.js: the same checks, without the emulator's slow loop.
func useFastCRC64(work string) error {
	if *flagStockCRC {
		return nil
	}
	p := filepath.Join(work, "azurite-crc64.js")
	if err := os.WriteFile(p, azuriteCRC64, 0o644); err != nil {
		return err
	}
	return os.Setenv("NODE_OPTIONS", "--require="+p)
}
