//go:build !race

package vxlan

// raceEnabled: the race detector makes sync.Pool drop what is put in it
// at random, so allocations are not counted under it.
const raceEnabled = false
