package app

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// Metrics is the control plane's Prometheus registry: Go runtime and process
// collectors, the gRPC server metrics (grpc_server_*, with the handling-time
// histogram) and, once RegisterState is called, the mcpmesh_* state.
type Metrics struct {
	reg  *prometheus.Registry
	grpc grpcServerMetrics
}

// grpcServerMetrics is the gRPC server metrics collector with its
// interceptors (see grpcmetrics*.go for why there are two builds of it).
type grpcServerMetrics interface {
	prometheus.Collector
	unary() grpc.UnaryServerInterceptor
	stream() grpc.StreamServerInterceptor
	// initialize creates the zero series of every registered method so that
	// rates exist before the first call.
	initialize(*grpc.Server)
}

// NewMetrics returns a registry that is not the global one, so tests and
// several control planes in one process never collide.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	g := newGRPCServerMetrics()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		g,
	)
	return &Metrics{reg: reg, grpc: g}
}

// Registerer is where further collectors go.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the registry for Prometheus scrapes. A collector that fails
// is logged and skipped, so one bad gauge does not blank the whole scrape.
func (m *Metrics) Handler(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // adds promhttp_metric_handler_errors_total
	})
}

// RegisterState adds the mcpmesh_* gauges and counters. They read the live
// values at scrape time, so nothing has to remember to update them.
func (m *Metrics) RegisterState(st store.Store, disc *discovery.Server) {
	// A scrape must not hang on a stuck store; NaN tells the reader the value
	// is unknown rather than zero.
	read := func(fn func(ctx context.Context) (float64, error)) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			v, err := fn(ctx)
			if err != nil {
				return math.NaN()
			}
			return v
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mcpmesh_config_revision", Help: "Current config revision of the control plane.",
		}, read(func(ctx context.Context) (float64, error) {
			rev, err := st.Revision(ctx)
			return float64(rev), err
		})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mcpmesh_dataplanes_connected", Help: "Data planes with an open config stream.",
		}, func() float64 { return float64(len(disc.ConnectedIDs())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mcpmesh_dataplanes_known", Help: "Data planes listed: connected, or disconnected for less than an hour.",
		}, func() float64 { return float64(len(disc.ListDataPlanes())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mcpmesh_servers", Help: "Registered backend servers (enabled or not).",
		}, read(func(ctx context.Context) (float64, error) {
			s, _, err := st.ListServers(ctx)
			return float64(len(s)), err
		})),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mcpmesh_snapshots_sent_total", Help: "Config snapshots sent to data planes.",
		}, func() float64 { return float64(disc.SnapshotsSent()) }),
	)
}
