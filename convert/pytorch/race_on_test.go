//go:build race

package pytorch

// raceEnabled reports a -race build, which runs the linear-time tests several times slower.
const raceEnabled = true
