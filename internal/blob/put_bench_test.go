package blob

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/edge/nfs-watcher-uploader/internal/object"
	"github.com/edge/nfs-watcher-uploader/internal/procstat"
)

// BenchmarkPut4KiB is the client side of one 4 KiB blob, 32 at a time
// against Azurite: the service's Put (CRC64, metadata, content type, its
// transport layers) beside the SDK's plain Upload on a default client, as
// cmd/bench's raw side sends it. cpu-µs/op is this process's CPU per blob.
func BenchmarkPut4KiB(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	crc := crcOf(data)
	ctx := context.Background()
	run := func(b *testing.B, put func(name string) error) {
		var n atomic.Int64
		b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
		cpu0, az0 := cpuNow(), azuriteCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := put(fmt.Sprintf("f-%08d.bin", n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		b.ReportMetric((azuriteCPU()-az0)/float64(b.N)*1e6, "azurite-cpu-µs/op")
	}
	b.Run("service", func(b *testing.B) {
		s := openB(b, Options{})
		run(b, func(name string) error {
			_, err := s.Put(ctx, object.Object{Name: name, Src: bytes.NewReader(data), Size: int64(len(data)), CRC64: crc,
				Session: "bench", Date: "20261127", Mtime: time.Unix(1, 0)})
			return err
		})
	})
	b.Run("sdk", func(b *testing.B) {
		c, err := azblob.NewClientFromConnectionString(az.ConnectionString(""), nil)
		if err != nil {
			b.Fatal(err)
		}
		cc := c.ServiceClient().NewContainerClient("bench-sdk")
		_, _ = cc.Create(ctx, nil)
		run(b, func(name string) error {
			_, err := cc.NewBlockBlobClient(name).Upload(ctx, nopCloser{bytes.NewReader(data)}, (*blockblob.UploadOptions)(nil))
			return err
		})
	})
}

func openB(b *testing.B, o Options) *Store {
	o.Container = "bench-service"
	o.TryTimeout = time.Minute
	s, err := Open(context.Background(), Credentials{Mode: "connection-string", ConnectionString: az.ConnectionString(""), AuthTimeout: 10 * time.Second}, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

func azuriteCPU() float64 {
	s, _ := procstat.CPUSeconds(az.Pid())
	return s
}

func cpuNow() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
