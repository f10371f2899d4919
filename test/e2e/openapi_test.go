package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The API document the binary embeds and serves.
const openAPIFile = "../../internal/httpapi/assets/openapi.json"

var apiDoc struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// loadAPIDoc loads the document for checking responses. Objects are closed
// here (additionalProperties false), although the document leaves Status
// open for clients: a field the service sends but the document does not
// describe fails every test that sees it, so the two cannot drift.
func loadAPIDoc() (*openapi3.T, routers.Router, error) {
	apiDoc.once.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(openAPIFile)
		if err != nil {
			apiDoc.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			apiDoc.err = fmt.Errorf("openapi.json: %w", err)
			return
		}
		for _, s := range doc.Components.Schemas {
			closeObjects(s.Value, map[*openapi3.Schema]bool{})
		}
		doc.Servers = nil // match any host: each test's service has its own port
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
		apiDoc.router, apiDoc.err = legacy.NewRouter(doc)
		apiDoc.doc = doc
	})
	return apiDoc.doc, apiDoc.router, apiDoc.err
}

func closeObjects(s *openapi3.Schema, seen map[*openapi3.Schema]bool) {
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if len(s.Properties) > 0 {
		no := false
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
	}
	for _, p := range s.Properties {
		closeObjects(p.Value, seen)
	}
	if s.Items != nil {
		closeObjects(s.Items.Value, seen)
	}
}

// checkResponse fails t unless the response (status, headers, body) is one
// the API document describes for the request.
func checkResponse(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if err := responseError(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("%s %s -> %d: response does not match openapi.json: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func responseError(req *http.Request, code int, header http.Header, body []byte) error {
	doc, router, err := loadAPIDoc()
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// Paths outside the document answer 404 with an Error body.
		if code != http.StatusNotFound {
			return fmt.Errorf("%s %s is not in the document and answered %d, not 404", req.Method, req.URL.Path, code)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return doc.Components.Schemas["Error"].Value.VisitJSON(v)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: code,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status is an error
			MultiError:            true,
		},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// The checker can fail: a body that breaks the document is caught.
func TestOpenAPICheckerRejectsDrift(t *testing.T) {
	get, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/v1/status", nil)
	post, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/v1/watch/stop", nil)
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	var good map[string]any
	b, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &good); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	if err := responseError(get, 200, jsonHdr, b); err != nil {
		t.Fatalf("a real status body is refused: %v", err)
	}
	for name, c := range map[string]struct {
		req  *http.Request
		code int
		body []byte
	}{
		"undocumented field":  {get, 200, mutate(func(m map[string]any) { m["new_counter"] = 1 })},
		"missing field":       {get, 200, mutate(func(m map[string]any) { delete(m, "in_flight") })},
		"wrong type":          {get, 200, mutate(func(m map[string]any) { m["active"] = "yes" })},
		"undocumented status": {get, 500, []byte(`{"error":"x"}`)},
		"stop without field":  {post, 200, []byte(`{"stopped":false}`)},
		"error without error": {post, 401, []byte(`{"message":"no"}`)},
	} {
		if err := responseError(c.req, c.code, jsonHdr, c.body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The served document is the one the tests check against, and /docs
// renders it with nothing from outside.
func TestOpenAPIServedAndDocs(t *testing.T) {
	s := newSvc(t).start()
	want, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	code, hdr, got := s.raw("GET", "/openapi.json", "", "")
	if code != 200 || !bytes.Equal(got, want) || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s, %d bytes, want the embedded document", code, hdr.Get("Content-Type"), len(got))
	}
	for _, p := range []string{"/docs", "/"} {
		code, hdr, body := s.raw("GET", p, "", "")
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", p, code, hdr.Get("Content-Type"))
		}
		if bytes.Contains(body, []byte("https://")) || bytes.Contains(body, []byte("http://")) {
			t.Errorf("%s loads something from outside the service", p)
		}
	}
	// Every documented GET answers as documented, through the harness.
	for _, p := range []string{"/healthz", "/readyz", "/v1/status"} {
		if code, _ := s.get(p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

// raw sends one request with an optional Authorization header and returns
// the status, headers and body, checked against the API document.
func (s *svc) raw(method, path, body, auth string) (int, http.Header, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkResponse(s.t, req, resp, b)
	return resp.StatusCode, resp.Header, b
}
