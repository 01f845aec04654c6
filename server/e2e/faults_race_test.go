//go:build race

package e2e

// fltRace reports a build with the race detector, which makes each
// connect/close cycle of TestFaultConnectCycles several times slower.
const fltRace = true
