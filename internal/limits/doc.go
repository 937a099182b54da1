// Package limits holds the bounds the control plane, data planes and mcpctl
// must agree on (gRPC message sizes, resilience timing), so each side
// enforces the same numbers. Texts are cut by internal/textlimit.
package limits
