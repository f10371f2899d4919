//go:build race

package e2e

// raceEnabled: this test binary runs under the race detector, so the
// service binary is built with it and every child is checked for races.
const raceEnabled = true
