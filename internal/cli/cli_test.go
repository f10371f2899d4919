package cli

import "testing"

// A listener on every interface is dialled on loopback, where kubectl exec
// runs the command; a named host is kept.
func TestDefaultAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":               "127.0.0.1:8000",
		":8000":          "127.0.0.1:8000",
		"0.0.0.0:9000":   "127.0.0.1:9000",
		"[::]:8000":      "127.0.0.1:8000",
		"10.0.0.5:8000":  "10.0.0.5:8000",
		"localhost:8080": "localhost:8080",
	} {
		if got := defaultAddr(in); got != want {
			t.Errorf("defaultAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
