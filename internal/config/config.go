// Package config turns the APP_* environment into a validated Config.
package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/edge/nfs-watcher-uploader/internal/bandwidth"
)

// Prefix is put in front of every variable name below.
const Prefix = "APP_"

// Auth modes for APP_AZURE_AUTH.
const (
	AuthAuto             = "auto"
	AuthDefault          = "default"
	AuthConnectionString = "connection-string"
	AuthSharedKey        = "shared-key"
)

// DefaultStagingMaxBytes (80 GiB) keeps staging well under the default
// manifest's 100Gi emptyDir sizeLimit, past which the kubelet evicts the pod.
const DefaultStagingMaxBytes = 80 << 30

// StagingCopy and StagingDirect are the values of APP_STAGING_MODE.
const (
	StagingCopy   = "copy"
	StagingDirect = "direct"
)

// Config is the whole service configuration. Durations given in seconds
// accept decimals, so they are kept as float64 and exposed as time.Duration.
type Config struct {
	AzureAccountURL       string   `env:"AZURE_ACCOUNT_URL"`
	AzureContainer        string   `env:"AZURE_CONTAINER"`
	AzureConnectionString string   `env:"AZURE_CONNECTION_STRING"`
	AzureAccountName      string   `env:"AZURE_ACCOUNT_NAME"`
	AzureAccountKey       string   `env:"AZURE_ACCOUNT_KEY"`
	AzureAuth             string   `env:"AZURE_AUTH" envDefault:"auto"`
	AzureMaxBlockSize     int64    `env:"AZURE_MAX_BLOCK_SIZE"`
	AzureMaxSinglePutSize int64    `env:"AZURE_MAX_SINGLE_PUT_SIZE"`
	AzureMaxConcurrency   int      `env:"AZURE_MAX_CONCURRENCY"`
	AzureTryTimeoutS      float64  `env:"AZURE_TRY_TIMEOUT_S" envDefault:"60"`
	AzureAuthTimeoutS     float64  `env:"AZURE_AUTH_TIMEOUT_S" envDefault:"30"`
	AzureAccessTier       string   `env:"AZURE_ACCESS_TIER"`
	AzureBlobTags         string   `env:"AZURE_BLOB_TAGS"`
	AzureCAFile           string   `env:"AZURE_CA_FILE"`
	BandwidthLimit        string   `env:"BANDWIDTH_LIMIT"`
	NFSIncomingDir        string   `env:"NFS_INCOMING_DIR" envDefault:"/mnt/nfs/incoming"`
	NFSProcessingRoot     string   `env:"NFS_PROCESSING_ROOT" envDefault:"/mnt/nfs/.processing"`
	LocalStagingRoot      string   `env:"LOCAL_STAGING_ROOT" envDefault:"/mnt/staging"`
	LocalStagingMaxBytes  int64    `env:"LOCAL_STAGING_MAX_BYTES" envDefault:"85899345920"`
	StagingMode           string   `env:"STAGING_MODE" envDefault:"copy"`
	PollIntervalS         float64  `env:"POLL_INTERVAL_S" envDefault:"2"`
	MinFileAgeS           float64  `env:"MIN_FILE_AGE_S" envDefault:"5"`
	FileExtensions        []string `env:"FILE_EXTENSIONS" envSeparator:","`
	FileExcludePatterns   []string `env:"FILE_EXCLUDE" envSeparator:","`
	MaxQueueSize          int      `env:"MAX_QUEUE_SIZE" envDefault:"2000"`
	WorkerConcurrency     int      `env:"WORKER_CONCURRENCY" envDefault:"32"`
	MaxInflightBytes      int64    `env:"MAX_INFLIGHT_BYTES" envDefault:"1073741824"`
	GCIntervalS           float64  `env:"GC_INTERVAL_S" envDefault:"30"`
	RetryBaseS            float64  `env:"RETRY_BASE_S" envDefault:"1"`
	RetryMaxS             float64  `env:"RETRY_MAX_S" envDefault:"300"`
	SessionLeaseS         float64  `env:"SESSION_LEASE_S" envDefault:"30"`
	HTTPAddr              string   `env:"HTTP_ADDR" envDefault:":8000"`
	MetricsAddr           string   `env:"METRICS_ADDR"`
	// APIToken guards start and stop when set. Load fills it from
	// APITokenFile (a mounted Secret) when that is given instead.
	APIToken     string `env:"API_TOKEN"`
	APITokenFile string `env:"API_TOKEN_FILE"`

	rootCAs *x509.CertPool // the system pool plus APP_AZURE_CA_FILE
}

// Error lists every offending variable at once, so an operator fixes the
// manifest in one go instead of one restart per mistake.
type Error struct {
	Problems map[string]string // variable name -> what is wrong
}

func (e *Error) Error() string {
	names := make([]string, 0, len(e.Problems))
	for n := range e.Problems {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + e.Problems[n]
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// Load reads the configuration from getenv-backed environment.
func Load(environ map[string]string) (Config, error) {
	var c Config
	problems := map[string]string{}
	err := env.ParseWithOptions(&c, env.Options{Prefix: Prefix, Environment: environ})
	if err != nil {
		keys := fieldKeys()
		var agg env.AggregateError
		if errors.As(err, &agg) {
			for _, e := range agg.Errors {
				var pe env.ParseError
				if errors.As(e, &pe) {
					problems[keys[pe.Name]] = fmt.Sprintf("cannot parse as %s: %v", pe.Type, unwrapAll(pe.Err))
					continue
				}
				problems[Prefix+"?"] = e.Error()
			}
		} else {
			problems[Prefix+"?"] = err.Error()
		}
	}
	c.validate(problems)
	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return c, nil
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

func fieldKeys() map[string]string {
	t := reflect.TypeOf(Config{})
	keys := make(map[string]string, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := f.Tag.Get("env"); tag != "" {
			keys[f.Name] = Prefix + tag
		}
	}
	return keys
}

func (c *Config) validate(p map[string]string) {
	set := func(name, msg string) {
		if _, ok := p[Prefix+name]; !ok {
			p[Prefix+name] = msg
		}
	}
	if c.AzureContainer == "" {
		set("AZURE_CONTAINER", "required")
	} else if n := len(c.AzureContainer); n < 3 || n > 63 || !validContainer(c.AzureContainer) {
		set("AZURE_CONTAINER", "must be 3-63 characters of lowercase letters, digits and single hyphens")
	}
	switch c.AzureAuth {
	case AuthAuto:
		if c.AzureAccountURL == "" && c.AzureConnectionString == "" {
			set("AZURE_ACCOUNT_URL", "required unless APP_AZURE_CONNECTION_STRING is set")
		}
		if (c.AzureAccountName == "") != (c.AzureAccountKey == "") {
			set("AZURE_ACCOUNT_KEY", "APP_AZURE_ACCOUNT_NAME and APP_AZURE_ACCOUNT_KEY go together")
		}
	case AuthDefault:
		if c.AzureAccountURL == "" {
			set("AZURE_ACCOUNT_URL", "required with APP_AZURE_AUTH=default")
		} else if u, err := url.Parse(c.AzureAccountURL); err == nil && u.Query().Get("sig") != "" {
			set("AZURE_ACCOUNT_URL", "carries a SAS token, which APP_AZURE_AUTH=default would not use: set APP_AZURE_AUTH=auto or drop the token")
		}
	case AuthConnectionString:
		if c.AzureConnectionString == "" {
			set("AZURE_CONNECTION_STRING", "required with APP_AZURE_AUTH=connection-string")
		}
	case AuthSharedKey:
		if c.AzureAccountURL == "" {
			set("AZURE_ACCOUNT_URL", "required with APP_AZURE_AUTH=shared-key")
		}
		if c.AzureAccountName == "" {
			set("AZURE_ACCOUNT_NAME", "required with APP_AZURE_AUTH=shared-key")
		}
		if c.AzureAccountKey == "" {
			set("AZURE_ACCOUNT_KEY", "required with APP_AZURE_AUTH=shared-key")
		}
	default:
		set("AZURE_AUTH", fmt.Sprintf("unknown mode %q (want auto, default, connection-string or shared-key)", c.AzureAuth))
	}
	if c.StagingMode != StagingCopy && c.StagingMode != StagingDirect {
		set("STAGING_MODE", fmt.Sprintf("unknown mode %q (want copy or direct)", c.StagingMode))
	}
	positive := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			set(name, "must be greater than 0")
		}
	}
	positive("POLL_INTERVAL_S", c.PollIntervalS)
	positive("GC_INTERVAL_S", c.GCIntervalS)
	positive("AZURE_TRY_TIMEOUT_S", c.AzureTryTimeoutS)
	positive("AZURE_AUTH_TIMEOUT_S", c.AzureAuthTimeoutS)
	positive("RETRY_BASE_S", c.RetryBaseS)
	positive("RETRY_MAX_S", c.RetryMaxS)
	positive("SESSION_LEASE_S", c.SessionLeaseS)
	if math.IsNaN(c.MinFileAgeS) || math.IsInf(c.MinFileAgeS, 0) || c.MinFileAgeS < 0 {
		set("MIN_FILE_AGE_S", "must be 0 or more")
	}
	if c.RetryMaxS < c.RetryBaseS {
		set("RETRY_MAX_S", "must not be below APP_RETRY_BASE_S")
	}
	if c.LocalStagingMaxBytes < 1 {
		set("LOCAL_STAGING_MAX_BYTES", "must be at least 1 byte")
	}
	if c.MaxQueueSize < 1 {
		set("MAX_QUEUE_SIZE", "must be at least 1")
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 256 {
		set("WORKER_CONCURRENCY", "must be between 1 and 256")
	}
	if c.MaxInflightBytes < 1 {
		set("MAX_INFLIGHT_BYTES", "must be at least 1 byte")
	}
	const maxBlock = 4000 * 1024 * 1024 // Azure's Put Block limit
	if c.AzureMaxBlockSize < 0 || c.AzureMaxBlockSize > maxBlock {
		set("AZURE_MAX_BLOCK_SIZE", fmt.Sprintf("must be between 1 and %d bytes (unset for the SDK default)", int64(maxBlock)))
	}
	const maxPut = 5000 * 1024 * 1024 // Azure's Put Blob limit
	if c.AzureMaxSinglePutSize < 0 || c.AzureMaxSinglePutSize > maxPut {
		set("AZURE_MAX_SINGLE_PUT_SIZE", fmt.Sprintf("must be between 1 and %d bytes (unset for the SDK default)", int64(maxPut)))
	}
	if c.AzureMaxConcurrency < 0 || c.AzureMaxConcurrency > 256 {
		set("AZURE_MAX_CONCURRENCY", "must be between 1 and 256 (unset for the SDK default)")
	}
	for _, d := range []struct{ name, v string }{
		{"NFS_INCOMING_DIR", c.NFSIncomingDir},
		{"NFS_PROCESSING_ROOT", c.NFSProcessingRoot},
		{"LOCAL_STAGING_ROOT", c.LocalStagingRoot},
	} {
		if !strings.HasPrefix(d.v, "/") {
			set(d.name, "must be an absolute path")
		}
	}
	if c.HTTPAddr == "" {
		set("HTTP_ADDR", "must not be empty")
	}
	if c.AzureCAFile != "" {
		pool, err := loadCAs(c.AzureCAFile)
		if err != nil {
			set("AZURE_CA_FILE", err.Error())
		}
		c.rootCAs = pool
	}
	if _, ok := accessTiers[strings.ToLower(c.AzureAccessTier)]; !ok {
		set("AZURE_ACCESS_TIER", fmt.Sprintf("unknown tier %q (want Hot, Cool, Cold or Archive, or empty for the account default)", c.AzureAccessTier))
	}
	if _, err := parseBlobTags(c.AzureBlobTags); err != nil {
		set("AZURE_BLOB_TAGS", err.Error())
	}
	if _, err := bandwidth.Parse(c.BandwidthLimit); err != nil {
		set("BANDWIDTH_LIMIT", err.Error()+" (rclone --bwlimit syntax, e.g. 10M or \"08:00,512k 18:00,off\")")
	}
	for _, pat := range c.FileExclude() {
		if strings.Contains(pat, "/") {
			set("FILE_EXCLUDE", fmt.Sprintf("pattern %q contains '/': patterns match a file's base name", pat))
		} else if _, err := path.Match(pat, ""); err != nil {
			set("FILE_EXCLUDE", fmt.Sprintf("pattern %q: %v", pat, err))
		}
	}
	c.loadToken(set)
	for i, e := range c.FileExtensions {
		e = strings.TrimSpace(e)
		if e != "" && !strings.HasPrefix(e, ".") {
			e = "." + e
		}
		c.FileExtensions[i] = e
	}
}

// loadCAs is the system pool with the PEM certificates of file added: a
// private CA is trusted without dropping the public ones, unlike
// SSL_CERT_FILE, which replaces them.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// RootCAs is the pool to trust for Azure and the token authority; nil means
// the system's (which SSL_CERT_FILE and SSL_CERT_DIR set).
func (c Config) RootCAs() *x509.CertPool { return c.rootCAs }

func validContainer(s string) bool {
	prevHyphen := false
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			prevHyphen = false
		case r == '-' && i > 0 && i < len(s)-1 && !prevHyphen:
			prevHyphen = true
		default:
			return false
		}
	}
	return true
}

func seconds(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }

// PollInterval is APP_POLL_INTERVAL_S.
func (c Config) PollInterval() time.Duration { return seconds(c.PollIntervalS) }

// MinFileAge is APP_MIN_FILE_AGE_S.
func (c Config) MinFileAge() time.Duration { return seconds(c.MinFileAgeS) }

// GCInterval is APP_GC_INTERVAL_S.
func (c Config) GCInterval() time.Duration { return seconds(c.GCIntervalS) }

// RetryBase is APP_RETRY_BASE_S.
func (c Config) RetryBase() time.Duration { return seconds(c.RetryBaseS) }

// RetryMax is APP_RETRY_MAX_S.
func (c Config) RetryMax() time.Duration { return seconds(c.RetryMaxS) }

// SessionLease is APP_SESSION_LEASE_S.
func (c Config) SessionLease() time.Duration { return seconds(c.SessionLeaseS) }

// AzureTryTimeout is APP_AZURE_TRY_TIMEOUT_S: a try to Azure that moves no
// byte for this long is abandoned (and retried); a long but moving one is not.
func (c Config) AzureTryTimeout() time.Duration { return seconds(c.AzureTryTimeoutS) }

// AzureAuthTimeout is APP_AZURE_AUTH_TIMEOUT_S.
func (c Config) AzureAuthTimeout() time.Duration { return seconds(c.AzureAuthTimeoutS) }

// Extensions is the set of accepted suffixes; nil accepts everything.
func (c Config) Extensions() map[string]bool {
	var m map[string]bool
	for _, e := range c.FileExtensions {
		if e == "" {
			continue
		}
		if m == nil {
			m = map[string]bool{}
		}
		m[e] = true
	}
	return m
}

// FileExclude is APP_FILE_EXCLUDE: glob patterns (path.Match syntax) for
// base names that are never taken, trimmed, empty entries dropped.
func (c Config) FileExclude() []string {
	var out []string
	for _, p := range c.FileExcludePatterns {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Bandwidth is APP_BANDWIDTH_LIMIT parsed; the zero Schedule limits nothing.
func (c Config) Bandwidth() bandwidth.Schedule {
	s, _ := bandwidth.Parse(c.BandwidthLimit)
	return s
}

// accessTiers maps APP_AZURE_ACCESS_TIER, lowercased, to Azure's spelling;
// empty keeps the account's default tier.
var accessTiers = map[string]string{"": "", "hot": "Hot", "cool": "Cool", "cold": "Cold", "archive": "Archive"}

// AccessTier is APP_AZURE_ACCESS_TIER as Azure spells it, or "" for the
// account default.
func (c Config) AccessTier() string { return accessTiers[strings.ToLower(c.AzureAccessTier)] }

// BlobTags is APP_AZURE_BLOB_TAGS: index tag key -> value template, where
// {session} and {date} are expanded per blob. Nil when unset.
func (c Config) BlobTags() map[string]string {
	tags, _ := parseBlobTags(c.AzureBlobTags)
	return tags
}

// Azure's blob index tag limits.
const (
	maxTags        = 10
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// Longest expansions of the tag placeholders: a session name has at most 63
// characters of [A-Za-z0-9_.-] and a date prefix is YYYYMMDD, all characters
// Azure allows in a tag.
var tagPlaceholders = map[string]int{"{session}": 63, "{date}": 8}

// parseBlobTags checks the list against Azure's tag rules, values as they
// can be after expansion, so a bad list stops start-up instead of failing
// every upload.
func parseBlobTags(s string) (map[string]string, error) {
	var tags map[string]string
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", entry)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, fmt.Errorf("%q has an empty key", entry)
		}
		if len(k) > maxTagKeyLen {
			return nil, fmt.Errorf("key %q is longer than %d characters", k, maxTagKeyLen)
		}
		if bad := badTagChars(k); bad != "" {
			return nil, fmt.Errorf("key %q has characters Azure refuses in a tag: %s (allowed: letters, digits, space and + - . / : = _)", k, bad)
		}
		bare, longest := v, len(v)
		for ph, n := range tagPlaceholders {
			c := strings.Count(v, ph)
			bare = strings.ReplaceAll(bare, ph, "")
			longest += c * (n - len(ph))
		}
		if bad := badTagChars(bare); bad != "" {
			return nil, fmt.Errorf("value of %q has characters Azure refuses in a tag: %s (allowed: letters, digits, space and + - . / : = _; placeholders {session} and {date})", k, bad)
		}
		if longest > maxTagValueLen {
			return nil, fmt.Errorf("value of %q can be %d characters once expanded; Azure allows %d", k, longest, maxTagValueLen)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("key %q is given twice", k)
		}
		if tags == nil {
			tags = map[string]string{}
		}
		tags[k] = v
		if len(tags) > maxTags {
			return nil, fmt.Errorf("more than %d tags; Azure allows %d per blob", maxTags, maxTags)
		}
	}
	return tags, nil
}

// badTagChars lists, quoted, the characters of s outside Azure's tag set.
func badTagChars(s string) string {
	var bad []string
	seen := map[rune]bool{}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" +-./:=_", r)
		if !ok && !seen[r] {
			seen[r] = true
			bad = append(bad, fmt.Sprintf("%q", r))
		}
	}
	return strings.Join(bad, " ")
}

// Names returns every variable the service reads, with its prefix.
func Names() []string {
	keys := fieldKeys()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
