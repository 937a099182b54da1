package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The data plane's metrics beyond HTTP and backend state (httpapi.go):
// every one of them is updated through a cached child (children.go), so
// the request path never hashes label values into a vector. Labels are
// bounded: server names come from the config, methods collapse to "other"
// when unknown, tool names are never a label.

// latencyBuckets suit a gateway: sub-millisecond local answers to
// minute-long tool calls.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

type metrics struct {
	mcpLatency  *prometheus.HistogramVec
	breaker     *prometheus.CounterVec
	retries     *prometheus.CounterVec
	connects    *prometheus.CounterVec
	applies     *prometheus.CounterVec
	applyTime   prometheus.Histogram
	notifs      *prometheus.CounterVec
	srvRequests *prometheus.CounterVec

	mcpLatencyC  *children[serverKey, prometheus.Observer]
	breakerC     *children[breakerKey, prometheus.Counter]
	retriesC     *children[string, prometheus.Counter]
	connectsC    *children[connectKey, prometheus.Counter]
	notifsC      *children[relayKey, prometheus.Counter]
	srvRequestsC *children[serverKey, prometheus.Counter]
}

type serverKey struct{ method, server, status string }

type breakerKey struct{ server, from, to string }

type connectKey struct{ server, result string }

type relayKey struct{ server, method string }

func newMetrics() *metrics {
	m := &metrics{
		mcpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "mcp_request_duration_seconds",
			Help:    "Time to answer an MCP request, by MCP method, server it was routed to (\"\" when the gateway answered it) and status (ok, tool_error, error).",
			Buckets: latencyBuckets,
		}, []string{"method", "server", "status"}),
		breaker: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "breaker_transitions_total",
			Help: "Circuit breaker transitions of backend endpoints, by server and states (closed, open, half-open).",
		}, []string{"server", "from", "to"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "backend_retries_total",
			Help: "Requests sent again to a backend after a transport failure or an ended upstream session, by server.",
		}, []string{"server"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "backend_connects_total",
			Help: "Connection attempts to backend endpoints (the first and every reconnect), by server and result (ok, error).",
		}, []string{"server", "result"}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "config_applies_total",
			Help: "Config snapshots applied (ok) or refused (error).",
		}, []string{"result"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "config_apply_duration_seconds",
			Help:    "Time to apply a config snapshot.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1},
		}),
		notifs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "relayed_notifications_total",
			Help: "Notifications backends sent towards clients, by server and method.",
		}, []string{"server", "method"}),
		srvRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mcpmesh", Subsystem: "dataplane", Name: "server_requests_total",
			Help: "Server-to-client requests (sampling, elicitation, roots) backends sent, by server, method and status (ok, error).",
		}, []string{"method", "server", "status"}),
	}
	m.mcpLatencyC = newChildren(func(k serverKey) prometheus.Observer {
		return m.mcpLatency.WithLabelValues(k.method, k.server, k.status)
	})
	m.breakerC = newChildren(func(k breakerKey) prometheus.Counter { return m.breaker.WithLabelValues(k.server, k.from, k.to) })
	m.retriesC = newChildren(func(s string) prometheus.Counter { return m.retries.WithLabelValues(s) })
	m.connectsC = newChildren(func(k connectKey) prometheus.Counter { return m.connects.WithLabelValues(k.server, k.result) })
	m.notifsC = newChildren(func(k relayKey) prometheus.Counter { return m.notifs.WithLabelValues(k.server, k.method) })
	m.srvRequestsC = newChildren(func(k serverKey) prometheus.Counter {
		return m.srvRequests.WithLabelValues(k.method, k.server, k.status)
	})
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.mcpLatency, m.breaker, m.retries, m.connects, m.applies, m.applyTime, m.notifs, m.srvRequests}
}

// ObserveMCP counts one MCP request by method and outcome (ok, tool_error:
// a tool result with isError, error: a JSON-RPC error) and records its
// latency by method, server and outcome. The router calls it for every
// client request (router.Options.Observe).
func (a *API) ObserveMCP(method, server, status string, d time.Duration) {
	method = methodLabel(method)
	a.mcpReqC.with(mcpKey{method, status}).Inc()
	a.m.mcpLatencyC.with(serverKey{method, server, status}).Observe(d.Seconds())
}

// BreakerTransition counts a circuit breaker transition of one of server's
// endpoints (backend.Observer).
func (a *API) BreakerTransition(server, from, to string) {
	a.m.breakerC.with(breakerKey{server, from, to}).Inc()
}

// Retried counts a request sent again to server (backend.Observer).
func (a *API) Retried(server string) { a.m.retriesC.with(server).Inc() }

// Connected counts a connection attempt to an endpoint of server
// (backend.Observer).
func (a *API) Connected(server string, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	a.m.connectsC.with(connectKey{server, result}).Inc()
}

// SetServers is told the servers of every config applied. It gives their
// per-server counters a zero series, so that rates and alerts see them
// before the first event, and deletes the series of servers no longer
// configured, so that the server label stays bounded by the config.
func (a *API) SetServers(names []string) {
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	now := make(map[string]bool, len(names))
	for _, n := range names {
		now[n] = true
		a.m.retriesC.with(n)
		a.m.connectsC.with(connectKey{n, "ok"})
		a.m.connectsC.with(connectKey{n, "error"})
	}
	for n := range a.servers {
		if now[n] {
			continue
		}
		// The vectors first, then the cache, so that a child cached
		// meanwhile is forgotten too. (A request of the removed server
		// observed in the same instant can still cache a deleted child;
		// should the server come back, that one counter is lost to
		// /metrics until it is removed again. Accepted: it needs a
		// request racing the removal of its own server.)
		match := prometheus.Labels{"server": n}
		for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
			a.m.mcpLatency, a.m.breaker, a.m.retries, a.m.connects, a.m.notifs, a.m.srvRequests,
		} {
			v.DeletePartialMatch(match)
		}
		gone := func(s string) bool { return s == n }
		a.m.mcpLatencyC.forget(func(k serverKey) bool { return gone(k.server) })
		a.m.breakerC.forget(func(k breakerKey) bool { return gone(k.server) })
		a.m.retriesC.forget(gone)
		a.m.connectsC.forget(func(k connectKey) bool { return gone(k.server) })
		a.m.notifsC.forget(func(k relayKey) bool { return gone(k.server) })
		a.m.srvRequestsC.forget(func(k serverKey) bool { return gone(k.server) })
	}
	a.servers = now
}

// ObserveApply records one config snapshot applied (err nil) or refused.
func (a *API) ObserveApply(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	a.m.applies.WithLabelValues(result).Inc() // once per snapshot: no cache needed
	a.m.applyTime.Observe(d.Seconds())
}

// ObserveNotification counts a notification server sent towards clients.
func (a *API) ObserveNotification(server, method string) {
	a.m.notifsC.with(relayKey{server, notificationLabel(method)}).Inc()
}

// ObserveServerRequest counts a server-to-client request of server and how
// its relay ended.
func (a *API) ObserveServerRequest(server, method string, err error) {
	status := "ok"
	if err != nil {
		status = "error"
	}
	a.m.srvRequestsC.with(serverKey{serverRequestLabel(method), server, status}).Inc()
}

func notificationLabel(m string) string {
	switch m {
	case "notifications/progress", "notifications/message", "notifications/cancelled",
		"notifications/resources/updated", "notifications/tasks/status",
		"notifications/tools/list_changed", "notifications/prompts/list_changed",
		"notifications/resources/list_changed", "notifications/elicitation/complete":
		return m
	}
	return "other"
}

func serverRequestLabel(m string) string {
	switch m {
	case "sampling/createMessage", "elicitation/create", "roots/list", "ping":
		return m
	}
	return "other"
}
