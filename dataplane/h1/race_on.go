//go:build race && linux

package h1

// rawIO is off under the race detector. The net package tells the detector
// that what a goroutine did before it wrote to a socket happens before what
// another does after it read from one (internal/poll: a release on every
// write and an acquire on every read of one address of its own). Raw calls
// bypass that, and net's address is not reachable from here, so a test with
// both ends in one process would report races that are not there. The raw
// path is tested under -race on its own (rawio_linux_test.go builds
// sockConns directly) and end to end without it.
const rawIO = false
