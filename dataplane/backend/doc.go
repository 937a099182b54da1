// Package backend holds the data plane's connections to backend MCP servers:
// one supervised, shared mcp-go client per server (stdio, streamable HTTP, SSE),
// reconnected on failure, and a Manager that reconciles them to config snapshots.
package backend
