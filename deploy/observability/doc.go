// Package observability holds the Grafana dashboard and Prometheus alert
// rules of mcpmesh (grafana-dashboard.json, prometheus-rules.yaml) and reads
// them for the tests that check every metric they use is exported.
package observability
