// Package e2e holds end-to-end tests that build and run the real mcpmesh
// binaries (control plane, data planes, mcpctl, demo backends) as separate
// processes on loopback ports and inject faults from outside (kill, restart).
// Run with `make e2e-test` (build tag e2e).
package e2e
