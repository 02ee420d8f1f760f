//go:build race

package transform

// raceEnabled: the race detector slows decoding about tenfold, so the
// large-object test streams a smaller object.
const raceEnabled = true
