package printer

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/states"
)

// Redacted replaces every secret value mcpctl could print.
const Redacted = redact.Mask

// Server is one registered server as mcpctl prints it.
type Server struct {
	Name        string            `json:"name"`
	Transport   string            `json:"transport"`
	URL         string            `json:"url,omitempty"`
	Command     string            `json:"command,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	WorkingDir  string            `json:"working_dir,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Endpoints   []string          `json:"endpoints,omitempty"`
	Tags        []string          `json:"tags"`
	Enabled     bool              `json:"enabled"`
	Timeout     string            `json:"timeout"`
	Backoff     []string          `json:"backoff,omitempty"`
	Description string            `json:"description,omitempty"`
	// Prefix is the registration's tool and prompt name prefix; nil when it
	// sets none (the data planes use NAME__).
	Prefix *string `json:"prefix,omitempty"`
	// Session is the upstream session mode in effect: per-client or shared.
	Session        string `json:"session"`
	SessionDefault bool   `json:"-"`
	Revision       uint64 `json:"revision"`
	CreateRevision uint64 `json:"create_revision"`
	CreatedAt      string `json:"created_at,omitempty"`
	UpdatedAt      string `json:"updated_at,omitempty"`
}

// TransportName is the CLI spelling of a transport (what --transport takes).
func TransportName(t mcpmeshv1.Transport) string {
	switch t {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		return "stdio"
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		return "streamable-http"
	case mcpmeshv1.Transport_TRANSPORT_SSE:
		return "sse"
	default:
		return "unspecified"
	}
}

// ServerFromProto converts a server, replacing every env and header value and
// every secret arg by "***" whether or not the control plane already did, and
// masking URL credentials (see internal/redact).
func ServerFromProto(s *mcpmeshv1.Server) Server {
	v := Server{
		Name:           s.GetName(),
		Transport:      TransportName(s.GetTransport()),
		URL:            redact.URL(s.GetHttp().GetUrl()),
		Command:        s.GetStdio().GetCommand(),
		Args:           redact.Args(s.GetStdio().GetArgs(), s.GetStdio().GetSecretArgs()),
		Env:            redact.Values(s.GetStdio().GetEnv()),
		WorkingDir:     s.GetStdio().GetWorkingDir(),
		Headers:        redact.Values(s.GetHttp().GetHeaders()),
		Endpoints:      redact.URLs(s.GetEndpoints()),
		Tags:           s.GetTags(),
		Enabled:        s.Enabled == nil || *s.Enabled,
		Description:    s.GetDescription(),
		Prefix:         s.Prefix,
		Session:        states.Session(states.EffectiveSession(s)),
		SessionDefault: s.GetSession() == mcpmeshv1.SessionMode_SESSION_MODE_UNSPECIFIED,
		Revision:       s.GetModRevision(),
		CreateRevision: s.GetCreateRevision(),
		CreatedAt:      formatTime(s.GetCreatedAt()),
		UpdatedAt:      formatTime(s.GetUpdatedAt()),
	}
	if v.Tags == nil {
		v.Tags = []string{} // "tags": [] rather than null, for scripts
	}
	if d := s.GetTimeout(); d != nil && d.AsDuration() > 0 {
		v.Timeout = d.AsDuration().String()
	}
	for _, d := range s.GetBackoff() {
		v.Backoff = append(v.Backoff, d.AsDuration().String())
	}
	return v
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// Target is the one-column summary of where a server lives.
func (s Server) Target() string {
	if s.URL != "" {
		if n := len(s.Endpoints); n > 0 {
			return fmt.Sprintf("%s (+%d)", s.URL, n)
		}
		return s.URL
	}
	return strings.TrimSpace(s.Command + " " + strings.Join(s.Args, " "))
}

func (s Server) timeoutCell() string {
	if s.Timeout == "" {
		return "default"
	}
	return s.Timeout
}

func keysWithValues(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// WriteTable prints the server's configuration as KEY: VALUE lines.
func (s Server) WriteTable(w io.Writer) error {
	t := newTable(w)
	s.rows(t)
	return t.flush()
}

func (s Server) rows(t *table) {
	t.row("NAME:", s.Name)
	t.row("TRANSPORT:", s.Transport)
	if s.URL != "" {
		t.row("URL:", s.URL)
		if len(s.Endpoints) > 0 {
			t.row("ENDPOINTS:", strings.Join(s.Endpoints, ", "))
		}
		if len(s.Headers) > 0 {
			t.row("HEADERS:", keysWithValues(s.Headers))
		}
	} else {
		t.row("COMMAND:", s.Target())
		if s.WorkingDir != "" {
			t.row("WORKING DIR:", s.WorkingDir)
		}
		if len(s.Env) > 0 {
			t.row("ENV:", keysWithValues(s.Env))
		}
	}
	t.row("TAGS:", strings.Join(s.Tags, ", "))
	t.row("ENABLED:", strconv.FormatBool(s.Enabled))
	t.row("TIMEOUT:", s.timeoutCell())
	if len(s.Backoff) > 0 {
		t.row("BACKOFF:", strings.Join(s.Backoff, ","))
	}
	if s.Description != "" {
		t.row("DESCRIPTION:", s.Description)
	}
	if s.Prefix != nil {
		p := *s.Prefix
		if p == "" {
			p = "(none: tools and prompts keep their own names)"
		}
		t.row("PREFIX:", p)
	}
	session := s.Session
	if s.SessionDefault {
		session += " (default)"
	}
	t.row("SESSION:", session)
	t.row("REVISION:", strconv.FormatUint(s.Revision, 10))
}

// ServerList is the output of `server list`: a JSON array.
type ServerList []Server

// WriteTable prints one server per row.
func (l ServerList) WriteTable(w io.Writer) error {
	t := newTable(w, "NAME", "TRANSPORT", "TARGET", "TAGS", "ENABLED", "TIMEOUT", "REVISION")
	for _, s := range l {
		t.row(s.Name, s.Transport, s.Target(), strings.Join(s.Tags, ","),
			strconv.FormatBool(s.Enabled), s.timeoutCell(), strconv.FormatUint(s.Revision, 10))
	}
	return t.flush()
}

// Backend is one data plane's view of one server.
type Backend struct {
	Dataplane           string `json:"dataplane"`
	State               string `json:"state"`
	Breaker             string `json:"breaker"`
	LastError           string `json:"last_error,omitempty"`
	Since               string `json:"since,omitempty"`
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	Latency             string `json:"latency,omitempty"`
	Tools               uint32 `json:"tools"`
	Resources           uint32 `json:"resources"`
	Prompts             uint32 `json:"prompts"`
	ReportedAt          string `json:"reported_at,omitempty"`
}

// ServerStatus aggregates one server's health over all data planes.
type ServerStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Healthy  uint32    `json:"healthy_dataplanes"`
	Total    uint32    `json:"total_dataplanes"`
	Backends []Backend `json:"backends"`
}

// HealthyOf is the "k/n healthy" summary.
func (s ServerStatus) HealthyOf() string { return fmt.Sprintf("%d/%d healthy", s.Healthy, s.Total) }

func enumName(full, prefix string) string {
	s := strings.ToLower(strings.TrimPrefix(full, prefix))
	if s == "unspecified" {
		return "unknown"
	}
	return strings.ReplaceAll(s, "_", "-")
}

// ServerStatusFromProto converts a server's aggregated status.
func ServerStatusFromProto(s *mcpmeshv1.ServerStatus) ServerStatus {
	v := ServerStatus{
		Name:     s.GetName(),
		State:    s.GetState(),
		Healthy:  s.GetHealthyDataplanes(),
		Total:    s.GetTotalDataplanes(),
		Backends: []Backend{},
	}
	if v.State == "" {
		v.State = "unknown"
	}
	for _, b := range s.GetBackends() {
		bv := Backend{
			Dataplane:           b.GetDataplaneId(),
			State:               enumName(b.GetState().String(), "BACKEND_STATE_"),
			Breaker:             enumName(b.GetBreaker().String(), "BREAKER_STATE_"),
			LastError:           redact.Text(b.GetLastError()),
			Since:               formatTime(b.GetSince()),
			ConsecutiveFailures: b.GetConsecutiveFailures(),
			Tools:               b.GetTools(),
			Resources:           b.GetResources(),
			Prompts:             b.GetPrompts(),
			ReportedAt:          formatTime(b.GetReportedAt()),
		}
		if l := b.GetLatency(); l != nil {
			bv.Latency = l.AsDuration().String()
		}
		v.Backends = append(v.Backends, bv)
	}
	return v
}

// ServerDetail is the output of `server get`: configuration plus status.
type ServerDetail struct {
	Server
	Status ServerStatus `json:"status"`
}

// WriteTable prints the configuration, then one row per data plane.
func (d ServerDetail) WriteTable(w io.Writer) error {
	t := newTable(w)
	d.Server.rows(t)
	t.row("STATUS:", d.Status.State+" ("+d.Status.HealthyOf()+")")
	if err := t.flush(); err != nil {
		return err
	}
	if len(d.Status.Backends) == 0 {
		_, err := fmt.Fprintln(w, "\nNo data plane has reported this server yet.")
		return err
	}
	fmt.Fprintln(w)
	bt := newTable(w, "DATAPLANE", "STATE", "BREAKER", "TOOLS", "RESOURCES", "PROMPTS", "SINCE", "LAST ERROR")
	for _, b := range d.Status.Backends {
		bt.row(b.Dataplane, b.State, b.Breaker, strconv.FormatUint(uint64(b.Tools), 10),
			strconv.FormatUint(uint64(b.Resources), 10), strconv.FormatUint(uint64(b.Prompts), 10),
			b.Since, b.LastError)
	}
	return bt.flush()
}

// DataPlane is one data plane known to the control plane.
type DataPlane struct {
	ID             string `json:"id"`
	Version        string `json:"version"`
	ListenAddr     string `json:"listen_addr,omitempty"`
	Peer           string `json:"peer,omitempty"`
	Connected      bool   `json:"connected"`
	Revision       uint64 `json:"revision"`
	NackedRevision uint64 `json:"nacked_revision,omitempty"`
	LastError      string `json:"last_error,omitempty"`
	ConnectedAt    string `json:"connected_at,omitempty"`
	LastSeen       string `json:"last_seen,omitempty"`
}

// DataPlaneFromProto converts a data plane.
func DataPlaneFromProto(d *mcpmeshv1.DataPlane) DataPlane {
	return DataPlane{
		ID:             d.GetId(),
		Version:        d.GetVersion(),
		ListenAddr:     d.GetListenAddr(),
		Peer:           d.GetPeer(),
		Connected:      d.GetConnected(),
		Revision:       d.GetRevision(),
		NackedRevision: d.GetNackedRevision(),
		LastError:      redact.Text(d.GetLastError()),
		ConnectedAt:    formatTime(d.GetConnectedAt()),
		LastSeen:       formatTime(d.GetLastSeen()),
	}
}

// DataPlaneList is the output of `dataplane list`: a JSON array.
type DataPlaneList []DataPlane

// WriteTable prints one data plane per row.
func (l DataPlaneList) WriteTable(w io.Writer) error {
	t := newTable(w, "ID", "CONNECTED", "REVISION", "VERSION", "LISTEN", "LAST SEEN", "LAST ERROR")
	for _, d := range l {
		t.row(d.ID, strconv.FormatBool(d.Connected), strconv.FormatUint(d.Revision, 10),
			d.Version, d.ListenAddr, d.LastSeen, d.LastError)
	}
	return t.flush()
}

// Status is the output of `status`: a JSON object.
type Status struct {
	Revision   uint64         `json:"revision"`
	Dataplanes []DataPlane    `json:"dataplanes"`
	Servers    []ServerStatus `json:"servers"`
}

// StatusFromProto converts the cluster status.
func StatusFromProto(s *mcpmeshv1.GetStatusResponse) Status {
	v := Status{Revision: s.GetRevision(), Dataplanes: []DataPlane{}, Servers: []ServerStatus{}}
	for _, d := range s.GetDataplanes() {
		v.Dataplanes = append(v.Dataplanes, DataPlaneFromProto(d))
	}
	for _, st := range s.GetServers() {
		v.Servers = append(v.Servers, ServerStatusFromProto(st))
	}
	return v
}

// WriteTable prints the revision, the data planes and the servers.
func (s Status) WriteTable(w io.Writer) error {
	connected := 0
	for _, d := range s.Dataplanes {
		if d.Connected {
			connected++
		}
	}
	fmt.Fprintf(w, "Config revision: %d\nData planes: %d connected of %d\n\n", s.Revision, connected, len(s.Dataplanes))
	if len(s.Dataplanes) > 0 {
		if err := DataPlaneList(s.Dataplanes).WriteTable(w); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if len(s.Servers) == 0 {
		_, err := fmt.Fprintln(w, "No servers registered.")
		return err
	}
	t := newTable(w, "SERVER", "STATE", "HEALTH")
	for _, st := range s.Servers {
		t.row(st.Name, st.State, st.HealthyOf())
	}
	return t.flush()
}

// Config is the output of `config get` and `config set`: KEY -> VALUE.
type Config map[string]string

// WriteTable prints one setting per row, sorted by key.
func (c Config) WriteTable(w io.Writer) error {
	t := newTable(w, "KEY", "VALUE")
	for _, k := range slices.Sorted(maps.Keys(c)) {
		t.row(k, c[k])
	}
	return t.flush()
}

// Result reports a change: a server created, updated, removed, enabled or
// disabled. A dry run prints a DryRun instead.
type Result struct {
	// Action is what happened: created, updated, removed, enabled, disabled.
	Action   string `json:"action"`
	Name     string `json:"name"`
	Revision uint64 `json:"revision"`
	// Changes are what an update changed.
	Changes []Change `json:"changes,omitempty"`
}

// WriteTable prints one sentence, then what changed.
func (r Result) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "server %q %s (revision %d)\n", r.Name, r.Action, r.Revision); err != nil {
		return err
	}
	if len(r.Changes) == 0 {
		return nil
	}
	return writeChanges(w, r.Changes)
}
