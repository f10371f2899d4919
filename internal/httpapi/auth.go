package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Option changes how Routes serves.
type Option func(*options)

type options struct {
	token string
	bw    BandwidthController
}

// WithToken makes the mutating endpoints require "Authorization: Bearer
// token"; an empty token leaves them open.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// requireToken answers 401 unless the request carries the token. Both sides
// are hashed first so the compare takes the same time whatever the length.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			msg := "missing bearer token (Authorization: Bearer <APP_API_TOKEN>)"
			if ok {
				msg = "wrong bearer token"
			}
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func bearer(header string) (string, bool) {
	scheme, tok, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
