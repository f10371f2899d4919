package httpapi

import (
	"embed"
	"net/http"
)

// The page, the API document and its viewer are embedded: the binary is
// all an edge site without internet needs.
//
//go:embed assets/index.html assets/docs.html assets/openapi.json
var assets embed.FS

// OpenAPI returns the API document served at /openapi.json.
func OpenAPI() []byte {
	b, err := assets.ReadFile("assets/openapi.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

func asset(name, contentType string) http.Handler {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		// The page is rebuilt with the binary; a stale cached copy could
		// talk to an API that changed under it.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if contentType != "application/json" {
			// Nothing outside this origin, not even by mistake.
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		}
		_, _ = w.Write(b)
	})
}
