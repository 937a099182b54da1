// Package backend holds the data plane's connections to backend MCP servers: per server,
// one supervised connection per endpoint that speaks raw JSON-RPC over an mcp-go transport
// (stdio, streamable HTTP, SSE), with retry schedule, recovery probe, circuit breaker and
// load balancing; a Manager reconciles them to snapshots. Per-client servers also give every
// client session its own upstream session (session.go, listen.go), continued from any replica.
package backend
