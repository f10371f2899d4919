// Package faultproxy is a reverse proxy for tests that sits between the
// service and Azurite, injects failures into chosen requests and can cap
// the bandwidth of request bodies like a slow site uplink.
package faultproxy

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Action is what the proxy does with one request.
type Action int

const (
	Pass    Action = iota // forward to Azurite
	Fail500               // answer 500 InternalError
	Fail503               // answer 503 ServerBusy
	Fail429               // answer 429 throttling
	Fail403               // answer 403 AuthorizationFailure
	Reset                 // read part of the body, then drop the connection
	Hang                  // hold the request until Release, then forward it
	Down                  // drop the connection without a word (Azurite away)
	Slow                  // wait Latency, then forward
	Corrupt               // flip one byte of the request body, then forward
)

// Rule picks the action for a request.
type Rule func(r *http.Request) Action

// Proxy forwards to a target and applies the current rule.
type Proxy struct {
	srv    *http.Server
	ln     net.Listener
	target *url.URL
	rp     *httputil.ReverseProxy

	mu      sync.Mutex
	rule    Rule
	release chan struct{}
	link    link

	// Latency is how long Slow waits.
	Latency time.Duration

	Requests atomic.Int64 // every request seen
	Faults   atomic.Int64 // requests that got a fault
	Hanging  atomic.Int64 // requests held right now
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	u.Path = "" // requests keep their own path, account included
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: u, rp: httputil.NewSingleHostReverseProxy(u), release: make(chan struct{})}
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	direct := p.rp.Director
	p.rp.Director = func(r *http.Request) {
		direct(r)
		r.Host = u.Host
	}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base, e.g. http://127.0.0.1:port.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRule replaces the rule; nil passes everything.
func (p *Proxy) SetRule(r Rule) {
	p.mu.Lock()
	p.rule = r
	p.mu.Unlock()
}

// Always is a rule that applies a to every request.
func Always(a Action) Rule { return func(*http.Request) Action { return a } }

// Hold installs a rule behind a fresh gate, so Hang holds again after an
// earlier Release.
func (p *Proxy) Hold(r Rule) {
	p.mu.Lock()
	p.release = make(chan struct{})
	p.rule = r
	p.mu.Unlock()
}

// Release lets every held request through and passes later ones.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = nil
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

// Close stops the proxy and releases held requests.
func (p *Proxy) Close() {
	p.Release()
	_ = p.srv.Close()
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Requests.Add(1)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = pacedBody{ReadCloser: r.Body, l: &p.link}
	}
	p.mu.Lock()
	rule, release := p.rule, p.release
	p.mu.Unlock()
	a := Pass
	if rule != nil {
		a = rule(r)
	}
	if a != Pass {
		p.Faults.Add(1)
	}
	switch a {
	case Fail500:
		storageError(w, http.StatusInternalServerError, "InternalError")
	case Fail503:
		storageError(w, http.StatusServiceUnavailable, "ServerBusy")
	case Fail429:
		storageError(w, http.StatusTooManyRequests, "TooManyRequests")
	case Fail403:
		storageError(w, http.StatusForbidden, "AuthorizationFailure")
	case Reset:
		_, _ = io.CopyN(io.Discard, r.Body, 512)
		drop(w)
	case Down:
		drop(w)
	case Slow:
		select {
		case <-time.After(p.Latency):
			p.rp.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	case Corrupt:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			drop(w)
			return
		}
		if len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.rp.ServeHTTP(w, r)
	case Hang:
		p.Hanging.Add(1)
		select {
		case <-release:
			p.Hanging.Add(-1)
			p.rp.ServeHTTP(w, r)
		case <-r.Context().Done():
			p.Hanging.Add(-1)
		}
	default:
		p.rp.ServeHTTP(w, r)
	}
}

func storageError(w http.ResponseWriter, code int, errCode string) {
	w.Header().Set("x-ms-error-code", errCode)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>`+errCode+`</Code><Message>injected by faultproxy</Message></Error>`)
}

func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, as a crashed peer would
			}
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
