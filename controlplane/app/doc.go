// Package app assembles the control plane process: data dir, admin token,
// store, gRPC server (logging, recovery, metrics and auth interceptors) and
// HTTP server, and runs them until its context ends.
package app
