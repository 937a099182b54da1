// Package httpapi serves the control plane's HTTP side: GET /health (JSON for
// probes and scripts), GET /metrics (Prometheus), GET /api/events (backend
// state transitions, JSON) and GET / (a read-only status page for people).
package httpapi
