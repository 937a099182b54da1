// Package ctltest runs the other programs' packages against the real control
// plane in-process (its store, registry, discovery and auth interceptors, over
// gRPC on loopback TCP): mcpctl's commands, and the data plane's config client
// where a test needs the real receiving side. It lives outside controlplane/,
// dataplane/ and mcpctl/ because only a package outside them may import them
// together (scripts/check-imports.sh); it has no code of its own, only tests.
package ctltest
