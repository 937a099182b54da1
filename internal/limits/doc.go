// Package limits holds the bounds the control plane, data planes and mcpctl
// must agree on (gRPC message sizes, error-text length, resilience timing),
// so each side enforces the same numbers, and the UTF-8-safe truncation.
package limits
