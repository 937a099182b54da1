// Package mcpserver is the data plane's aggregated MCP server: it merges the
// tools, prompts and resources of every ready backend under namespaced names,
// routes client requests to the owning backend, and serves it over /mcp and /sse.
package mcpserver
