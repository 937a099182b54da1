package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Registry holds metric families and writes them in the Prometheus text
// exposition format (version 0.0.4).
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

type family interface {
	write(w io.Writer, name string)
}

// NewRegistry returns a registry with the Go runtime gauges already added.
func NewRegistry() *Registry {
	r := &Registry{families: make(map[string]family)}
	r.GaugeFunc("go_goroutines", "Number of goroutines that currently exist.", func() float64 {
		return float64(runtime.NumGoroutine())
	})
	return r
}

func (r *Registry) add(name string, f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.families[name]; ok {
		panic(fmt.Sprintf("metrics: %s registered twice", name)) // a programming error, caught by any test
	}
	r.families[name] = f
}

// CounterVec is a counter with labels.
type CounterVec struct {
	help   string
	kind   string
	labels []string
	mu     sync.Mutex
	values map[string]float64 // key: label values joined by \xff
}

// Counter registers a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{help: help, kind: "counter", labels: labels, values: make(map[string]float64)}
	r.add(name, c)
	return c
}

// Add adds v (>= 0) to the series with the given label values.
func (c *CounterVec) Add(v float64, labelValues ...string) {
	if len(labelValues) != len(c.labels) {
		panic(fmt.Sprintf("metrics: %d label values for %d labels", len(labelValues), len(c.labels)))
	}
	key := strings.Join(labelValues, "\xff")
	c.mu.Lock()
	c.values[key] += v
	c.mu.Unlock()
}

// Inc adds one.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value returns the current value of one series (for tests).
func (c *CounterVec) Value(labelValues ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[strings.Join(labelValues, "\xff")]
}

func (c *CounterVec) write(w io.Writer, name string) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = c.values[k]
	}
	c.mu.Unlock()
	writeHeader(w, name, c.help, c.kind)
	for i, k := range keys {
		var lv []string
		if len(c.labels) > 0 {
			lv = strings.Split(k, "\xff")
		}
		fmt.Fprintf(w, "%s%s %s\n", name, labelString(c.labels, lv), formatFloat(vals[i]))
	}
}

type gaugeFunc struct {
	help string
	kind string
	fn   func() float64
}

// GaugeFunc registers a gauge whose value is read from fn at scrape time.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.add(name, &gaugeFunc{help: help, kind: "gauge", fn: fn})
}

// CounterFunc registers a counter whose (never decreasing) value is read from
// fn at scrape time.
func (r *Registry) CounterFunc(name, help string, fn func() float64) {
	r.add(name, &gaugeFunc{help: help, kind: "counter", fn: fn})
}

func (g *gaugeFunc) write(w io.Writer, name string) {
	writeHeader(w, name, g.help, g.kind)
	fmt.Fprintf(w, "%s %s\n", name, formatFloat(g.fn()))
}

// WriteText writes every family, sorted by name.
func (r *Registry) WriteText(w io.Writer) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := make(map[string]family, len(r.families))
	for n, f := range r.families {
		fams[n] = f
	}
	r.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		fams[n].write(w, n)
	}
}

// Handler serves the registry for Prometheus scrapes.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}

func writeHeader(w io.Writer, name, help, kind string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, kind)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func labelString(names, values []string) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(values[i]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// GRPC holds the standard grpc_server_* metrics (same names and labels as
// go-grpc-middleware's Prometheus provider, so dashboards carry over).
type GRPC struct {
	started  *CounterVec
	handled  *CounterVec
	seconds  *CounterVec
	observed *CounterVec
}

// NewGRPC registers the gRPC server metrics in r.
func NewGRPC(r *Registry) *GRPC {
	l := []string{"grpc_type", "grpc_service", "grpc_method"}
	return &GRPC{
		started:  r.Counter("grpc_server_started_total", "Total number of RPCs started on the server.", l...),
		handled:  r.Counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", append(l, "grpc_code")...),
		seconds:  r.Counter("grpc_server_handling_seconds_sum", "Total time spent handling RPCs, in seconds.", l...),
		observed: r.Counter("grpc_server_handling_seconds_count", "Number of RPCs whose handling time was recorded.", l...),
	}
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func (g *GRPC) record(typ, fullMethod string, start time.Time, err error) {
	svc, m := splitMethod(fullMethod)
	g.handled.Inc(typ, svc, m, status.Code(err).String())
	g.seconds.Add(time.Since(start).Seconds(), typ, svc, m)
	g.observed.Inc(typ, svc, m)
}

// UnaryServerInterceptor counts unary RPCs.
func (g *GRPC) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		svc, m := splitMethod(info.FullMethod)
		g.started.Inc("unary", svc, m)
		start := time.Now()
		resp, err := handler(ctx, req)
		g.record("unary", info.FullMethod, start, err)
		return resp, err
	}
}

// StreamServerInterceptor counts streaming RPCs.
func (g *GRPC) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		typ := "bidi_stream"
		switch {
		case info.IsClientStream && !info.IsServerStream:
			typ = "client_stream"
		case !info.IsClientStream && info.IsServerStream:
			typ = "server_stream"
		}
		svc, m := splitMethod(info.FullMethod)
		g.started.Inc(typ, svc, m)
		start := time.Now()
		err := handler(srv, ss)
		g.record(typ, info.FullMethod, start, err)
		return err
	}
}

// Handled returns grpc_server_handled_total for one series (for tests).
func (g *GRPC) Handled(typ, fullMethod, code string) float64 {
	svc, m := splitMethod(fullMethod)
	return g.handled.Value(typ, svc, m, code)
}
