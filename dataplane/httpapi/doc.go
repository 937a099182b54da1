// Package httpapi serves the data plane's operational HTTP endpoints: /health
// (JSON state of every backend as this data plane sees it), /livez, /readyz
// and /metrics (Prometheus), plus request counting for the MCP endpoints.
package httpapi
