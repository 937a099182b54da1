// Package front is the data plane's client-facing MCP transports: streamable
// HTTP on /mcp and the legacy HTTP+SSE transport on /sse and /message. It owns
// the framing, the HTTP checks and the sealed session ids, and hands every
// JSON-RPC message, raw, to a Router.
package front
