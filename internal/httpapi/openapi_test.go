package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/edge/nfs-watcher-uploader/internal/service"
)

type stub struct{}

func (stub) Ready() bool                           { return true }
func (stub) Start(string) (service.Started, error) { return service.Started{}, nil }
func (stub) Stop() (string, bool, error)           { return "", false, nil }
func (stub) Status() service.Status                { return service.Status{} }

// The served document is valid OpenAPI 3, and every operation it lists is
// routed (not the catch-all 404).
func TestOpenAPIDocumentIsValidAndRouted(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	mux := Routes(stub{}, nil)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("")))
			if rec.Code == http.StatusNotFound {
				t.Errorf("%s %s is documented but not routed", method, path)
			}
		}
	}
}

// The page and the docs reference nothing outside the service: an edge
// site has no internet.
func TestPagesLoadNothingFromOutside(t *testing.T) {
	for _, name := range []string{"index.html", "docs.html"} {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}
