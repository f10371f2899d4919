package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	sdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/edge/nfs-watcher-uploader/internal/azurite"
	"github.com/minio/crc64nvme"
)

var flagWarm = flag.Int("warm", 3000, "requests sent to each fresh Azurite before the sides are measured (0: none)")

// warm sends every kind of request the sides send (Put Blob with and
// without CRC64 and metadata, Put Block, Put Block List) to a fresh
// Azurite, straight to it, not through the link. Node compiles Azurite's
// hot paths only after thousands of requests: otherwise the side measured
// first pays for that, in Azurite's CPU and in the time it waits.
func warm(az *azurite.Server) error {
	if *flagWarm <= 0 {
		return nil
	}
	// The first failure ends the warm-up: with Azurite down, every request
	// would go through the SDK's retries.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := azblob.NewClientFromConnectionString(az.ConnectionString(az.BlobEndpoint()), nil)
	if err != nil {
		return err
	}
	cc := c.ServiceClient().NewContainerClient("bench-warm")
	if _, err := cc.Create(ctx, nil); err != nil {
		return err
	}
	data := bytes.Repeat([]byte("warm-up 16 bytes"), 256)
	crc := crc64nvme.Checksum(data)
	ct, session, mtime := "application/octet-stream", "warm", time.Now().UTC().Format(time.RFC3339Nano)
	meta := map[string]*string{"mtime": &mtime, "session": &session}
	jobs := make(chan int)
	errs := make(chan error, *flagWorkers)
	var wg sync.WaitGroup
	for range *flagWorkers {
		wg.Go(func() {
			for i := range jobs {
				bb := cc.NewBlockBlobClient(fmt.Sprintf("w-%06d", i))
				var err error
				switch i % 8 {
				case 0, 1, 2, 7: // the service's Put Blob
					_, err = bb.Upload(ctx, nopRSC{bytes.NewReader(data)}, &blockblob.UploadOptions{
						HTTPHeaders: &sdkblob.HTTPHeaders{BlobContentType: &ct}, Metadata: meta,
						TransactionalValidation: sdkblob.TransferValidationTypeCRC64(crc)})
				case 3, 4, 5: // the raw SDK's
					_, err = bb.Upload(ctx, nopRSC{bytes.NewReader(data)}, nil)
				case 6: // blocks, with and without CRC64, and their commit
					ids := []string{blockID(i, 0), blockID(i, 1)}
					if _, err = bb.StageBlock(ctx, ids[0], nopRSC{bytes.NewReader(data)},
						&blockblob.StageBlockOptions{TransactionalValidation: sdkblob.TransferValidationTypeCRC64(crc)}); err == nil {
						if _, err = bb.StageBlock(ctx, ids[1], nopRSC{bytes.NewReader(data)}, nil); err == nil {
							_, err = bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{Metadata: meta})
						}
					}
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("warm-up: %w", err):
					default:
					}
					cancel()
				}
			}
		})
	}
	for i := range *flagWarm {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func blockID(i, j int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%032x", i<<8|j))
}

type nopRSC struct{ *bytes.Reader }

func (nopRSC) Close() error { return nil }
