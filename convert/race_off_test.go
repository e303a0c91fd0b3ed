//go:build !race

package convert

// raceEnabled reports a -race build, which runs the linear-time tests several times slower.
const raceEnabled = false
