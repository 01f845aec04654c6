//go:build !race

package e2e

// fltRace reports a build with the race detector (see faults_race_test.go).
const fltRace = false
