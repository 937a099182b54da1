//go:build !race && linux

package h1

// rawIO: wrapConn gives TCP connections raw reads and writes (see
// race_on.go for when it does not).
const rawIO = true
