package httpapi

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// DataPlanes lists the known data planes (the discovery component).
type DataPlanes interface {
	ListDataPlanes() []*mcpmeshv1.DataPlane
}

// Health aggregates server health (the health component).
type Health interface {
	Statuses(ctx context.Context, servers []*mcpmeshv1.Server) ([]*mcpmeshv1.ServerStatus, error)
	Events(ctx context.Context, limit int) ([]store.Event, error)
}

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

type pageServer struct {
	Name, Transport, Target, State string
	Healthy, Total                 uint32
	Enabled                        bool
	Tags                           []string
}

type pageDataPlane struct {
	ID, Version, ListenAddr, Peer, LastError, LastSeen string
	Connected                                          bool
	Revision, Nacked                                   uint64
}

type pageEvent struct {
	At, DataPlane, Server, State, Error string
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
			ps.Target = s.GetHttp().GetUrl()
		}
		if i < len(sts) {
			ps.State, ps.Healthy, ps.Total = sts[i].GetState(), sts[i].GetHealthyDataplanes(), sts[i].GetTotalDataplanes()
		}
		data.Servers = append(data.Servers, ps)
	}
	for _, dp := range h.d.DataPlanes.ListDataPlanes() {
		p := pageDataPlane{ID: dp.GetId(), Version: dp.GetVersion(), ListenAddr: dp.GetListenAddr(), Peer: dp.GetPeer(),
			LastError: dp.GetLastError(), Connected: dp.GetConnected(), Revision: dp.GetRevision(), Nacked: dp.GetNackedRevision()}
		if dp.GetLastSeen() != nil {
			p.LastSeen = dp.GetLastSeen().AsTime().UTC().Format(time.RFC3339)
		}
		data.DataPlanes = append(data.DataPlanes, p)
	}
	if evs, err := h.d.Health.Events(ctx, 20); err == nil {
		for i := len(evs) - 1; i >= 0; i-- { // newest first
			e := evs[i].Health
			data.Events = append(data.Events, pageEvent{
				At: e.GetReportedAt().AsTime().UTC().Format(time.RFC3339), DataPlane: e.GetDataplaneId(),
				Server: e.GetServer(), State: stateLabel(e.GetState()), Error: e.GetLastError(),
			})
		}
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

func stateLabel(s mcpmeshv1.BackendState) string {
	switch s {
	case mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING:
		return "connecting"
	case mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY:
		return "healthy"
	case mcpmeshv1.BackendState_BACKEND_STATE_RETRYING:
		return "retrying"
	case mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE:
		return "unavailable"
	case mcpmeshv1.BackendState_BACKEND_STATE_DISABLED:
		return "disabled"
	}
	return "unknown"
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
.unavailable,.error{color:#b91c1c}.unknown,.disabled,.no{color:#777}
</style></head><body>
<h1>mcpmesh control plane</h1>
<p>Config revision <b>{{.Revision}}</b> · {{.Now}}</p>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<h2>Servers</h2>
{{if .Servers}}<table><tr><th>Name</th><th>Transport</th><th>Target</th><th>Tags</th><th>State</th><th>Healthy on</th></tr>
{{range .Servers}}<tr><td>{{.Name}}</td><td>{{.Transport}}</td><td>{{.Target}}</td><td>{{range $i, $t := .Tags}}{{if $i}}, {{end}}{{$t}}{{end}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Healthy}}/{{.Total}}</td></tr>
{{end}}</table>{{else}}<p>No servers registered. Add one with <code>mcpctl server add</code>.</p>{{end}}
<h2>Data planes</h2>
{{if .DataPlanes}}<table><tr><th>ID</th><th>Version</th><th>Listen</th><th>Peer</th><th>Connected</th><th>Revision</th><th>Rejected</th><th>Last seen</th></tr>
{{range .DataPlanes}}<tr><td>{{.ID}}</td><td>{{.Version}}</td><td>{{.ListenAddr}}</td><td>{{.Peer}}</td><td class="{{if .Connected}}healthy{{else}}no{{end}}">{{if .Connected}}yes{{else}}no{{end}}</td><td>{{.Revision}}</td><td>{{if .Nacked}}{{.Nacked}}: {{.LastError}}{{end}}</td><td>{{.LastSeen}}</td></tr>
{{end}}</table>{{else}}<p>No data plane has connected yet.</p>{{end}}
<h2>Recent backend transitions</h2>
{{if .Events}}<table><tr><th>At</th><th>Data plane</th><th>Server</th><th>State</th><th>Error</th></tr>
{{range .Events}}<tr><td>{{.At}}</td><td>{{.DataPlane}}</td><td>{{.Server}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{else}}<p>None yet.</p>{{end}}
</body></html>
`))
