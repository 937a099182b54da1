package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// DataPlanes lists the known data planes (the discovery component).
type DataPlanes interface {
	ListDataPlanes() []*mcpmeshv1.DataPlane
}

// Health aggregates server health (the health component).
type Health interface {
	Statuses(ctx context.Context, servers []*mcpmeshv1.Server) ([]*mcpmeshv1.ServerStatus, error)
	// Transitions returns up to limit of the newest backend state
	// transitions, newest first.
	Transitions(ctx context.Context, limit int) ([]health.Transition, error)
}

// Limits of GET /api/events?limit=N, and how many transitions the status
// page shows.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = store.MaxEvents
	PageEvents         = 50
)

// Deps are what the handlers read from.
type Deps struct {
	Store      store.Store
	DataPlanes DataPlanes
	Health     Health
	// Metrics serves /metrics; nil means 404.
	Metrics http.Handler
	Logger  *slog.Logger
}

// HealthResponse is the body of GET /health.
type HealthResponse struct {
	Status              string `json:"status"`
	Revision            uint64 `json:"revision"`
	DataplanesConnected int    `json:"dataplanes_connected"`
	Servers             int    `json:"servers"`
	Error               string `json:"error,omitempty"`
}

// New returns the HTTP handler.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{d: d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", h.health)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	mux.HandleFunc("GET /api/events", h.events)
	mux.HandleFunc("GET /{$}", h.page)
	return mux
}

type handler struct{ d Deps }

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	servers, rev, err := h.d.Store.ListServers(r.Context())
	resp := HealthResponse{Status: "ok", Revision: rev, Servers: len(servers)}
	code := http.StatusOK
	if err != nil {
		h.d.Logger.Warn("health check: store unavailable", "err", err)
		resp = HealthResponse{Status: "error", Error: "store unavailable"}
		code = http.StatusServiceUnavailable
	}
	for _, dp := range h.d.DataPlanes.ListDataPlanes() {
		if dp.GetConnected() {
			resp.DataplanesConnected++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

// events serves GET /api/events?limit=N: a JSON array of the newest backend
// state transitions, newest first.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	limit := DefaultEventsLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventsLimit {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d, got %q", MaxEventsLimit, v))
			return
		}
		limit = n
	}
	trs, err := h.d.Health.Transitions(r.Context(), limit)
	if err != nil {
		h.d.Logger.Warn("events: cannot read transitions", "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "cannot read the event log; see the control plane's log")
		return
	}
	if trs == nil {
		trs = []health.Transition{} // an empty log is [], not null
	}
	for i := range trs {
		trs[i].Error = redact.Text(trs[i].Error)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(trs)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

type pageServer struct {
	Name, Transport, Target, State string
	Healthy, Total                 uint32
	Enabled                        bool
	Tags                           []string
}

type pageDataPlane struct {
	ID, Version, ListenAddr, Peer, LastError, LastSeen string
	// OAuthURL is the data plane's /oauth page (where backends are
	// authorized), when it reported a public URL.
	OAuthURL         string
	Connected        bool
	Revision, Nacked uint64
}

type pageEvent struct {
	At, DataPlane, Server, From, To, Error string
}

type pageData struct {
	Revision   uint64
	Now        string
	Servers    []pageServer
	DataPlanes []pageDataPlane
	Events     []pageEvent
	Error      string
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	data := pageData{Now: time.Now().UTC().Format(time.RFC3339)}
	servers, rev, err := h.d.Store.ListServers(ctx)
	data.Revision = rev
	var sts []*mcpmeshv1.ServerStatus
	if err == nil {
		sts, err = h.d.Health.Statuses(ctx, servers)
	}
	if err != nil {
		h.d.Logger.Warn("status page: cannot read state", "err", err)
		data.Error = "cannot read the control plane's state; see its log"
	}
	for i, s := range servers {
		ps := pageServer{Name: s.GetName(), Transport: transport(s), Enabled: s.Enabled == nil || s.GetEnabled(), Tags: s.GetTags()}
		if s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO {
			ps.Target = s.GetStdio().GetCommand() // args and env may hold secrets: not shown
		} else {
			ps.Target = redact.URL(s.GetHttp().GetUrl())
		}
		if i < len(sts) {
			ps.State, ps.Healthy, ps.Total = sts[i].GetState(), sts[i].GetHealthyDataplanes(), sts[i].GetTotalDataplanes()
		}
		data.Servers = append(data.Servers, ps)
	}
	for _, dp := range h.d.DataPlanes.ListDataPlanes() {
		p := pageDataPlane{ID: dp.GetId(), Version: dp.GetVersion(), ListenAddr: dp.GetListenAddr(), Peer: dp.GetPeer(),
			LastError: redact.Text(dp.GetLastError()), Connected: dp.GetConnected(), Revision: dp.GetRevision(), Nacked: dp.GetNackedRevision()}
		if u := dp.GetPublicUrl(); u != "" {
			p.OAuthURL = strings.TrimRight(u, "/") + "/oauth"
		}
		if dp.GetLastSeen() != nil {
			p.LastSeen = dp.GetLastSeen().AsTime().UTC().Format(time.RFC3339)
		}
		data.DataPlanes = append(data.DataPlanes, p)
	}
	trs, err := h.d.Health.Transitions(ctx, PageEvents)
	if err != nil {
		h.d.Logger.Warn("status page: cannot read transitions", "err", err)
	}
	for _, tr := range trs {
		data.Events = append(data.Events, pageEvent{At: tr.Time.Format(time.RFC3339), DataPlane: tr.DataPlane,
			Server: tr.Server, From: tr.From, To: tr.To, Error: redact.Text(tr.Error)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTmpl.Execute(w, data); err != nil {
		h.d.Logger.Warn("status page: render", "err", err)
	}
}

func transport(s *mcpmeshv1.Server) string {
	switch s.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		return "stdio"
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		return "http"
	case mcpmeshv1.Transport_TRANSPORT_SSE:
		return "sse"
	}
	return "?"
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcpmesh control plane</title>
<meta http-equiv="refresh" content="5">
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}
th{background:#f3f3f3}
.healthy{color:#17803d}.degraded,.retrying,.connecting{color:#b45309}
.unavailable,.error{color:#b91c1c}.unknown,.disabled,.none,.no{color:#777}
</style></head><body>
<h1>mcpmesh control plane</h1>
<p>Config revision <b>{{.Revision}}</b> · {{.Now}}</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<h2>Servers</h2>
{{if .Servers}}<table><tr><th>Name</th><th>Transport</th><th>Target</th><th>Tags</th><th>State</th><th>Healthy on</th></tr>
{{range .Servers}}<tr><td>{{.Name}}</td><td>{{.Transport}}</td><td>{{.Target}}</td><td>{{range $i, $t := .Tags}}{{if $i}}, {{end}}{{$t}}{{end}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Healthy}}/{{.Total}}</td></tr>
{{end}}</table>{{else}}<p>No servers registered. Add one with <code>mcpctl server add</code>.</p>{{end}}
<h2>Data planes</h2>
{{if .DataPlanes}}<table><tr><th>ID</th><th>Version</th><th>Listen</th><th>Peer</th><th>Connected</th><th>Revision</th><th>Rejected</th><th>Last seen</th><th>OAuth</th></tr>
{{range .DataPlanes}}<tr><td>{{.ID}}</td><td>{{.Version}}</td><td>{{.ListenAddr}}</td><td>{{.Peer}}</td><td class="{{if .Connected}}healthy{{else}}no{{end}}">{{if .Connected}}yes{{else}}no{{end}}</td><td>{{.Revision}}</td><td>{{if .Nacked}}{{.Nacked}}: {{.LastError}}{{end}}</td><td>{{.LastSeen}}</td><td>{{if .OAuthURL}}<a href="{{.OAuthURL}}">authorize backends</a>{{end}}</td></tr>
{{end}}</table>{{else}}<p>No data plane has connected yet.</p>{{end}}
<h2>Recent backend transitions</h2>
{{if .Events}}<p>The newest {{len .Events}}, newest first; more at <a href="/api/events?limit=1000">/api/events</a>.</p>
<table><tr><th>At</th><th>Data plane</th><th>Server</th><th>From</th><th>To</th><th>Error</th></tr>
{{range .Events}}<tr><td>{{.At}}</td><td>{{.DataPlane}}</td><td>{{.Server}}</td><td class="{{.From}}">{{.From}}</td><td class="{{.To}}">{{.To}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{else}}<p>None yet.</p>{{end}}
</body></html>
`))
