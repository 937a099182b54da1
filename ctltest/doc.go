// Package ctltest runs mcpctl's commands against the real control plane: its
// store, registry, discovery and auth interceptors in-process, over gRPC on
// loopback TCP. It lives outside controlplane/ and mcpctl/ because only a
// package outside both may import both (scripts/check-imports.sh); it has no
// code of its own, only tests.
package ctltest
