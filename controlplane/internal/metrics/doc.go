// Package metrics is a minimal Prometheus text-format registry (counters,
// gauges, gRPC server interceptors) for the control plane; it exists because
// client_golang's dependencies are not in this module's go.sum yet.
package metrics
