//go:build race

package engine

// raceEnabled: the race detector multiplies the memory of every touched page and goroutine, so
// memory-bound tests either skip or widen their bounds under it.
const raceEnabled = true
