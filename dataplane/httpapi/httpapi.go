package httpapi

import (
	"encoding/json"
	"fmt"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// Options wire the API to the rest of the data plane. Every func must be safe
// for concurrent use; nil funcs read as zero values.
type Options struct {
	DataPlaneID string
	// Health returns this data plane's view of every configured backend.
	Health func() []*mcpmeshv1.BackendHealth
	// Revision is the config revision being served (0 before the first).
	Revision func() uint64
	// Connected reports whether the config stream to the control plane is up.
	Connected func() bool
	// Shadowed returns, per server, the exposed names of its items that
	// another server (first by name) already exposes; nil reads as none.
	Shadowed func() map[string][]string
	// Protocols returns, per server, the MCP revision it is reached with.
	Protocols func() map[string]string
	// Sessions returns, per server, the clients' upstream sessions this
	// replica holds (per-client servers); nil reads as none.
	Sessions func() map[string]int
	// Ready says whether the data plane should get traffic, and why (or why
	// not); Readiness.Ready is the one the data plane uses. nil reads as
	// "not ready".
	Ready func() (bool, string)
	// Registry receives the metrics; nil means a fresh registry with the Go
	// and process collectors.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// API serves the operational endpoints.
type API struct {
	opts     Options
	log      *slog.Logger
	registry *prometheus.Registry
	httpReqs *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	mcpReqs  *prometheus.CounterVec
	// The vectors' children by label values (children.go).
	httpReqC  *children[httpKey, prometheus.Counter]
	inFlightC *children[string, prometheus.Gauge]
	mcpReqC   *children[mcpKey, prometheus.Counter]
	m         *metrics // metrics.go
	// servers are the configured servers SetServers last saw.
	serversMu sync.Mutex
	servers   map[string]bool
}

// New builds the API and registers its metrics.
func New(opts Options) (*API, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("register go collector: %w", err)
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("register process collector: %w", err)
		}
	}
	a := &API{
		opts:     opts,
		log:      log,
		registry: reg,
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "http_requests_total",
			Help: "HTTP requests served, by route, HTTP method and status code.",
		}, []string{"route", "method", "code"}),
		// By method only: the route is known once the mux matched, after
		// the request started.
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "http_requests_in_flight",
			Help: "HTTP requests being served, by HTTP method (a long-lived stream counts while it is open).",
		}, []string{"method"}),
		mcpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "mcp_requests_total",
			Help: "MCP requests handled, by MCP method and status (ok, tool_error, error).",
		}, []string{"method", "status"}),
	}
	a.httpReqC = newChildren(func(k httpKey) prometheus.Counter {
		return a.httpReqs.WithLabelValues(k.route, k.method, strconv.Itoa(k.code))
	})
	a.inFlightC = newChildren(func(m string) prometheus.Gauge { return a.inFlight.WithLabelValues(m) })
	a.mcpReqC = newChildren(func(k mcpKey) prometheus.Counter { return a.mcpReqs.WithLabelValues(k.method, k.status) })
	a.m = newMetrics()
	for _, c := range append([]prometheus.Collector{a.httpReqs, a.inFlight, a.mcpReqs, &stateCollector{a}}, a.m.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register data plane metrics: %w", err)
		}
	}
	return a, nil
}

// Register mounts /health, /livez, /readyz and /metrics on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", a.handleHealth)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", a.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
}

// ServerHealth is one backend in the /health document.
type ServerHealth struct {
	Name                string `json:"name"`
	State               string `json:"state"`
	Breaker             string `json:"breaker"`
	LastError           string `json:"last_error"`
	Since               string `json:"since,omitempty"`
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	// LatencyMS is the latency of the last successful upstream request.
	LatencyMS float64 `json:"latency_ms"`
	Tools     uint32  `json:"tools"`
	Resources uint32  `json:"resources"`
	Prompts   uint32  `json:"prompts"`
	// Shadowed are exposed names of this server's items that are not served
	// because a server earlier by name exposes the same name.
	Shadowed []string `json:"shadowed,omitempty"`
	// Protocol is the MCP revision the server is reached with
	// (2026-07-28 or a session-era one); absent while it is not connected.
	Protocol string `json:"protocol,omitempty"`
}

// Health is the /health document.
type Health struct {
	Status         string         `json:"status"`
	ConfigRevision uint64         `json:"config_revision"`
	ControlPlane   string         `json:"control_plane"`
	DataPlaneID    string         `json:"dataplane_id"`
	Servers        []ServerHealth `json:"servers"`
}

// Status values of the /health document.
const (
	StatusOK          = "ok"
	StatusDegraded    = "degraded"
	StatusUnavailable = "unavailable"
)

// Snapshot computes the /health document.
func (a *API) Snapshot() Health {
	h := Health{
		ConfigRevision: call(a.opts.Revision),
		ControlPlane:   "disconnected",
		DataPlaneID:    a.opts.DataPlaneID,
		Servers:        []ServerHealth{},
	}
	if call(a.opts.Connected) {
		h.ControlPlane = "connected"
	}
	var backends []*mcpmeshv1.BackendHealth
	if a.opts.Health != nil {
		backends = a.opts.Health()
	}
	var shadowed map[string][]string
	if a.opts.Shadowed != nil {
		shadowed = a.opts.Shadowed()
	}
	var protocols map[string]string
	if a.opts.Protocols != nil {
		protocols = a.opts.Protocols()
	}
	healthy := 0
	for _, b := range backends {
		if b == nil {
			continue
		}
		s := ServerHealth{
			Name:                b.GetServer(),
			State:               states.Backend(b.GetState()),
			Breaker:             states.Breaker(b.GetBreaker()),
			LastError:           redact.Text(b.GetLastError()),
			ConsecutiveFailures: b.GetConsecutiveFailures(),
			LatencyMS:           float64(b.GetLatency().AsDuration().Microseconds()) / 1000,
			Tools:               b.GetTools(),
			Resources:           b.GetResources(),
			Prompts:             b.GetPrompts(),
			Shadowed:            shadowed[b.GetServer()],
			Protocol:            protocols[b.GetServer()],
		}
		if b.GetSince() != nil {
			s.Since = b.GetSince().AsTime().UTC().Format(time.RFC3339Nano)
		}
		if b.GetState() == mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
			healthy++
		}
		h.Servers = append(h.Servers, s)
	}
	switch {
	case healthy == len(h.Servers):
		h.Status = StatusOK // includes "nothing configured"
	case healthy == 0:
		h.Status = StatusUnavailable
	default:
		h.Status = StatusDegraded
	}
	return h
}

func (a *API) handleHealth(w http.ResponseWriter, _ *http.Request) {
	h := a.Snapshot()
	code := http.StatusOK
	if h.Status == StatusUnavailable {
		// A load balancer should send clients elsewhere: nothing here works.
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(h); err != nil {
		a.log.Debug("write /health response", "err", err)
	}
}

func (a *API) handleReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if a.opts.Ready == nil {
		writeText(w, http.StatusServiceUnavailable, "readiness is not wired")
		return
	}
	ready, why := a.opts.Ready()
	if !ready {
		writeText(w, http.StatusServiceUnavailable, why)
		return
	}
	writeText(w, http.StatusOK, why)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

func call[T any](f func() T) T {
	var zero T
	if f == nil {
		return zero
	}
	return f()
}

// allStates are the label values of the backend state gauge, so that every
// state has a series (0 or 1) and alerts can rely on it.
var allStates = []mcpmeshv1.BackendState{
	mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING,
	mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY,
	mcpmeshv1.BackendState_BACKEND_STATE_RETRYING,
	mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE,
	mcpmeshv1.BackendState_BACKEND_STATE_DISABLED,
	mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION,
}

var (
	stateDesc = prometheus.NewDesc("mcpmesh_dataplane_backend_state",
		"1 for the state each backend is in, 0 for the others.", []string{"server", "state"}, nil)
	revisionDesc = prometheus.NewDesc("mcpmesh_dataplane_config_revision",
		"Config revision being served.", nil, nil)
	connectedDesc = prometheus.NewDesc("mcpmesh_dataplane_control_plane_connected",
		"1 while the config stream to the control plane is up.", nil, nil)
	breakerDesc = prometheus.NewDesc("mcpmesh_dataplane_backend_breaker_open",
		"1 while a circuit breaker of the backend's endpoints is open or half-open (the backend's worst breaker), 0 while closed.", []string{"server"}, nil)
	sessionsDesc = prometheus.NewDesc("mcpmesh_dataplane_upstream_sessions",
		"Clients' own upstream sessions this replica holds, by server (per-client servers).", []string{"server"}, nil)
)

// stateCollector reads backend state at scrape time, so the gauges are never
// stale and no goroutine keeps them up to date.
type stateCollector struct{ a *API }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- revisionDesc
	ch <- connectedDesc
	ch <- sessionsDesc
	ch <- breakerDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.opts.Health != nil {
		for _, b := range c.a.opts.Health() {
			if b == nil {
				continue
			}
			for _, s := range allStates {
				v := 0.0
				if b.GetState() == s {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, b.GetServer(), states.Backend(s))
			}
			open := 0.0
			if b.GetBreaker() != mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED && b.GetBreaker() != mcpmeshv1.BreakerState_BREAKER_STATE_UNSPECIFIED {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, open, b.GetServer())
		}
	}
	ch <- prometheus.MustNewConstMetric(revisionDesc, prometheus.GaugeValue, float64(call(c.a.opts.Revision)))
	connected := 0.0
	if call(c.a.opts.Connected) {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, connected)
	if c.a.opts.Sessions != nil {
		for server, n := range c.a.opts.Sessions() {
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), server)
		}
	}
}

// routeLabel keeps the route label bounded: the mux pattern when one matched.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" {
		return "other"
	}
	// "GET /health" → "/health"
	if _, path, ok := strings.Cut(r.Pattern, " "); ok {
		return path
	}
	return r.Pattern
}
