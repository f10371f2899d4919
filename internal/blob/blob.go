// Package blob is the only package that speaks to Azure: the credential
// chain checked at start-up, block blob uploads, and read-back verification.
package blob

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/edge/nfs-watcher-uploader/internal/contenttype"
	"github.com/edge/nfs-watcher-uploader/internal/failure"
	"github.com/edge/nfs-watcher-uploader/internal/object"
	"golang.org/x/sync/errgroup"
)

// SDK defaults, used where the configuration leaves a value unset.
const (
	DefaultSinglePutSize = blockblob.MaxUploadBlobBytes // 256 MiB: UploadFile's single-shot limit
	minDefaultBlockSize  = 4 * 1024 * 1024              // UploadFile's floor for large files
)

// DefaultConcurrency mirrors the SDK's CPU-based default: max(8, min(96, CPUs)).
func DefaultConcurrency() int { return max(8, min(96, runtime.NumCPU())) }

// Options tune the upload; zero values take SDK defaults.
type Options struct {
	Container     string
	BlockSize     int64
	SinglePutSize int64
	Concurrency   int
	// TryTimeout ends a try once no byte has moved for this long (a stall,
	// not a wall-clock bound); zero never ends one.
	TryTimeout time.Duration
	// AccessTier is set on every blob ("Hot", "Cool", "Cold", "Archive");
	// empty keeps the account default.
	AccessTier string
	// Tags are blob index tags put on every blob; {session} and {date} in a
	// value expand to the object's session and date prefix.
	Tags map[string]string
	// Bandwidth caps all request bodies together (see bwlimit.go); nil for none.
	Bandwidth *Bandwidth
	// Transport lets tests route through a fault-injecting proxy; nil uses a
	// private http.Transport that Close() can shut.
	Transport *http.Transport
	// RootCAs, when set, is trusted for Azure and the token authority
	// instead of the system pool (APP_AZURE_CA_FILE added to it).
	RootCAs *x509.CertPool
}

// Credentials to try, in order, for the chosen auth mode.
type Credentials struct {
	Mode             string // auto, default, connection-string, shared-key
	AccountURL       string
	ConnectionString string
	AccountName      string
	AccountKey       string
	AuthTimeout      time.Duration
}

// Store uploads files to one container.
type Store struct {
	c         *container.Client
	opts      Options
	transport *http.Transport
	Method    string    // the credential that worked
	Failed    []Failure // credentials tried before it, and why they failed
}

// ErrNotFound is returned by Stat for a missing blob.
var ErrNotFound = errors.New("blob not found")

// Info describes a stored blob.
type Info struct {
	Size int64
	MD5  []byte // Content-MD5; the service computes it on every single Put Blob
	// CRC64 is the CRC-64/NVME of the content from metadata "crc64", which
	// the service checked against the bytes when they were sent; HasCRC64 is
	// false for a blob this service did not write.
	CRC64    uint64
	HasCRC64 bool
}

// MetaCRC64 is the metadata key holding the content's CRC-64/NVME in hex:
// the checksum the service verified on upload, for blobs of any size.
const MetaCRC64 = "crc64"

// Open tries each configured credential against the container (creating it
// if missing) and returns a Store for the first that works. When none works
// the error names every credential tried and why it failed.
func Open(ctx context.Context, cr Credentials, o Options) (*Store, error) {
	tr := o.Transport
	if tr == nil {
		// The clone keeps Proxy: http.ProxyFromEnvironment, so HTTPS_PROXY
		// and NO_PROXY apply to Azure and the token authority alike.
		tr = http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.WriteBufferSize = writeBuffer
	}
	if o.RootCAs != nil {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.RootCAs = o.RootCAs
	}
	copts := &azblob.ClientOptions{}
	// The SDK's TryTimeout bounds a whole try, body included, which no large
	// file can meet on a slow link: only the stall rule ends a try.
	copts.Transport = &http.Client{Transport: failFastTLS{withStallLimit(wholeSmallBodies{withBandwidth(tr, o.Bandwidth)}, o.TryTimeout)}}
	copts.Retry = policy.RetryOptions{TryTimeout: 0}
	copts.Telemetry.Disabled = true

	type attempt struct {
		name string
		make func() (*container.Client, error)
	}
	var attempts []attempt
	defaultCred := attempt{"default-credential", func() (*container.Client, error) {
		cred, err := newDefaultCredential(failFastTLS{tr})
		if err != nil {
			return nil, err
		}
		svc, err := azblob.NewClient(cr.AccountURL, cred, copts)
		if err != nil {
			return nil, err
		}
		return svc.ServiceClient().NewContainerClient(o.Container), nil
	}}
	connStr := attempt{"connection-string", func() (*container.Client, error) {
		svc, err := azblob.NewClientFromConnectionString(cr.ConnectionString, copts)
		if err != nil {
			return nil, err
		}
		return svc.ServiceClient().NewContainerClient(o.Container), nil
	}}
	sharedKey := attempt{"shared-key", func() (*container.Client, error) {
		cred, err := azblob.NewSharedKeyCredential(cr.AccountName, cr.AccountKey)
		if err != nil {
			return nil, err
		}
		svc, err := azblob.NewClientWithSharedKeyCredential(withoutQuery(cr.AccountURL), cred, copts)
		if err != nil {
			return nil, err
		}
		return svc.ServiceClient().NewContainerClient(o.Container), nil
	}}
	sasURL := attempt{"sas", func() (*container.Client, error) {
		svc, err := azblob.NewClientWithNoCredential(cr.AccountURL, copts)
		if err != nil {
			return nil, err
		}
		return svc.ServiceClient().NewContainerClient(o.Container), nil
	}}
	switch cr.Mode {
	case "default":
		attempts = []attempt{defaultCred}
	case "connection-string":
		attempts = []attempt{connStr}
	case "shared-key":
		attempts = []attempt{sharedKey}
	default:
		// A SAS token in the account URL is the credential the operator chose.
		if hasSAS(cr.AccountURL) {
			attempts = append(attempts, sasURL)
		} else if cr.AccountURL != "" {
			attempts = append(attempts, defaultCred)
		}
		if cr.ConnectionString != "" {
			attempts = append(attempts, connStr)
		}
		if cr.AccountName != "" && cr.AccountKey != "" && cr.AccountURL != "" {
			attempts = append(attempts, sharedKey)
		}
	}
	var failures []string
	var failed []Failure
	for _, a := range attempts {
		actx, cancel := context.WithTimeout(ctx, cr.AuthTimeout)
		c, err := a.make()
		if err == nil {
			err = ensureContainer(actx, c)
		}
		if err == nil {
			cancel()
			return &Store{c: c, opts: o, transport: tr, Method: a.name, Failed: failed}, nil
		}
		why := explain(err, actx, cr.AuthTimeout)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		failed = append(failed, Failure{Credential: a.name, Error: why})
		failures = append(failures, fmt.Sprintf("%s: %s", a.name, why))
	}
	tr.CloseIdleConnections()
	if len(failures) == 0 {
		return nil, errors.New("no Azure credential is configured")
	}
	return nil, fmt.Errorf("no Azure credential works for container %q; tried %s", o.Container, strings.Join(failures, " | "))
}

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func ensureContainer(ctx context.Context, c *container.Client) error {
	_, err := c.GetProperties(ctx, nil)
	if err == nil {
		return nil
	}
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return err
	}
	_, err = c.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container: %w", err)
	}
	return nil
}

// Close drops pooled connections; the SDK clients hold no other resources.
func (s *Store) Close() { s.transport.CloseIdleConnections() }

// ContainerClient exposes the container for tests and tools.
func (s *Store) ContainerClient() *container.Client { return s.c }

// BlockSize is the block size Put uses for a file of size bytes; 0 means
// one Put Blob carries it.
func (s *Store) BlockSize(size int64) int64 {
	single := s.opts.SinglePutSize
	if single <= 0 {
		single = DefaultSinglePutSize
	}
	if size <= single {
		return 0
	}
	if s.opts.BlockSize > 0 {
		return s.opts.BlockSize
	}
	return max(minDefaultBlockSize, (size+blockblob.MaxBlocks-1)/blockblob.MaxBlocks)
}

// Put uploads size bytes of src as a block blob named name, replacing any
// blob of that name. Files up to the single-put size go in one Put Blob
// carrying the whole file's CRC64, for which the service computes and stores
// the Content-MD5; larger ones go as parallel blocks, each carrying its own
// CRC64. Every checksum was computed when the file was read, so bytes that
// differ from what was read (a source rewritten in place, damage on the
// way) are refused by the service. Metadata "crc64" records the whole
// file's, for Verify.
//
// confirmed is true when the answer itself proves the stored bytes: a Put
// Blob is stored only if its CRC64 matched, and the answer carries the
// Content-MD5 the service stored. A block list is not confirmed: Verify it.
//
// A container deleted while the service runs is created again.
func (s *Store) Put(ctx context.Context, o object.Object) (confirmed bool, err error) {
	confirmed, err = s.put(ctx, o)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if cerr := ensureContainer(ctx, s.c); cerr != nil {
			return false, classify(fmt.Errorf("container is gone and cannot be created again: %w", cerr))
		}
		confirmed, err = s.put(ctx, o)
	}
	return confirmed, classify(err)
}

func (s *Store) put(ctx context.Context, o object.Object) (bool, error) {
	name, src, size, blockCRC := o.Name, o.Src, o.Size, o.BlockCRC
	bb := s.c.NewBlockBlobClient(name)
	contentType := contenttype.ForName(name)
	headers := &blob.HTTPHeaders{BlobContentType: &contentType}
	meta, tier, tags := s.properties(o)
	blockSize := s.BlockSize(size)
	if blockSize == 0 {
		resp, err := bb.Upload(ctx, nopCloser{io.NewSectionReader(src, 0, size)}, &blockblob.UploadOptions{
			HTTPHeaders:             headers,
			Metadata:                meta,
			Tier:                    tier,
			Tags:                    tags,
			TransactionalValidation: blob.TransferValidationTypeCRC64(o.CRC64),
		})
		if err != nil {
			return false, err
		}
		return len(resp.ContentMD5) == md5.Size, nil
	}
	n := (size + blockSize - 1) / blockSize
	if n > blockblob.MaxBlocks {
		return false, failure.Permanentf("file of %d bytes needs %d blocks of %d bytes; Azure allows %d", size, n, blockSize, blockblob.MaxBlocks)
	}
	if int64(len(blockCRC)) != n {
		return false, fmt.Errorf("have %d block checksums for %d blocks", len(blockCRC), n)
	}
	conc := s.opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency()
	}
	// Blocks staged by an earlier attempt (before a failure or a crash) are
	// kept: their ids name the whole file's CRC64 and size, the block size
	// and the index, so an id present with the right size holds these bytes.
	staged := s.stagedBlocks(ctx, bb)
	ids := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		ids[i] = blockID(o.CRC64, size, blockSize, i)
		off := i * blockSize
		length := min(blockSize, size-off)
		if staged[ids[i]] == length {
			continue
		}
		g.Go(func() error {
			var err error
			// A block damaged on the way is sent again at once instead of
			// failing the whole file; a source that changed fails every try.
			for range blockTries {
				_, err = bb.StageBlock(gctx, ids[i], nopCloser{io.NewSectionReader(src, off, length)}, &blockblob.StageBlockOptions{
					TransactionalValidation: blob.TransferValidationTypeCRC64(blockCRC[i]),
				})
				if !bloberror.HasCode(err, bloberror.CRC64Mismatch, bloberror.MD5Mismatch) {
					break
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	_, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		HTTPHeaders: headers, Metadata: meta, Tier: tier, Tags: tags,
	})
	return false, err
}

// MtimeFormat is how metadata "mtime" holds the source's modification time:
// rclone's format (RFC 3339, nanoseconds, UTC), so rclone reads it back.
const MtimeFormat = "2006-01-02T15:04:05.999999999Z07:00"

// properties gives the metadata, tier and index tags every blob carries.
func (s *Store) properties(o object.Object) (map[string]*string, *blob.AccessTier, map[string]string) {
	mtime := o.Mtime.UTC().Format(MtimeFormat)
	session := o.Session
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], o.CRC64)
	crc := hex.EncodeToString(b[:])
	meta := map[string]*string{"mtime": &mtime, "session": &session, MetaCRC64: &crc}
	var tier *blob.AccessTier
	if s.opts.AccessTier != "" {
		t := blob.AccessTier(s.opts.AccessTier)
		tier = &t
	}
	var tags map[string]string
	if len(s.opts.Tags) > 0 {
		expand := strings.NewReplacer("{session}", o.Session, "{date}", o.Date)
		tags = make(map[string]string, len(s.opts.Tags))
		for k, v := range s.opts.Tags {
			tags[k] = expand.Replace(v)
		}
	}
	return meta, tier, tags
}

// blockTries bounds how often one block is sent after checksum mismatches.
const blockTries = 3

// blockID is the same length for every block of every file, as Azure
// requires (and as long as the MD5-based ids of earlier versions).
func blockID(crc uint64, size, blockSize, index int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%016x%016x-%016x-%010d", crc, size, blockSize, index))
}

// stagedBlocks lists uncommitted blocks (id -> size); none on any error,
// which only costs a re-send.
func (s *Store) stagedBlocks(ctx context.Context, bb *blockblob.Client) map[string]int64 {
	out := map[string]int64{}
	resp, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		return out
	}
	for _, b := range resp.UncommittedBlocks {
		if b != nil && b.Name != nil && b.Size != nil {
			out[*b.Name] = *b.Size
		}
	}
	return out
}

// Stat reads a blob's size, Content-MD5 and CRC64.
func (s *Store) Stat(ctx context.Context, name string) (Info, error) {
	p, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) || isStatus(err, http.StatusNotFound) && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return Info{}, ErrNotFound
		}
		return Info{}, classify(err)
	}
	var info Info
	if p.ContentLength != nil {
		info.Size = *p.ContentLength
	}
	info.MD5 = p.ContentMD5
	for k, v := range p.Metadata {
		// Metadata keys come back in whatever case the service keeps.
		if strings.EqualFold(k, MetaCRC64) && v != nil && len(*v) == 16 {
			if crc, err := strconv.ParseUint(*v, 16, 64); err == nil {
				info.CRC64, info.HasCRC64 = crc, true
			}
		}
	}
	return info, nil
}

// Verify confirms that the stored blob has the given size and CRC64.
func (s *Store) Verify(ctx context.Context, name string, size int64, crc uint64) error {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if info.Size != size {
		return fmt.Errorf("read back: blob has %d bytes, source has %d", info.Size, size)
	}
	if !info.HasCRC64 || info.CRC64 != crc {
		return fmt.Errorf("read back: blob CRC64 %016x (recorded: %v) differs from source %016x", info.CRC64, info.HasCRC64, crc)
	}
	return nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func isStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// classify marks authorisation and missing-container errors permanent;
// throttling, 5xx, timeouts and broken connections stay transient.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusForbidden, re.StatusCode == http.StatusUnauthorized,
			re.StatusCode == http.StatusNotFound,
			re.StatusCode == http.StatusBadRequest && !bloberror.HasCode(err, bloberror.MD5Mismatch, bloberror.CRC64Mismatch):
			return failure.Permanent(err)
		}
	}
	return err
}
