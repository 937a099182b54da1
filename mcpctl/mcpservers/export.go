package mcpservers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// exported is one entry of the file Export writes; field order is the
// order Claude Desktop's own examples use.
type exported struct {
	Type     string            `json:"type,omitempty"`
	Command  string            `json:"command,omitempty"`
	Args     []string          `json:"args,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Cwd      string            `json:"cwd,omitempty"`
	URL      string            `json:"url,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Disabled bool              `json:"disabled,omitempty"`
}

// Export writes servers in Claude Desktop's format ({"mcpServers": {…}}),
// which Cursor, Windsurf and Claude Code read too. URL servers carry "type"
// ("http" or "sse"), disabled servers "disabled": true.
//
// Secrets are never exported, because the control plane never answers them
// back: every env and header value and every secret arg is written as "***"
// (the key stays, so the file says what has to be filled in), and URL
// credentials are masked as everywhere in mcpctl. Parse warns about each
// "***" it reads. What the format cannot hold (tags, timeouts, prefixes,
// session modes, extra endpoints, descriptions) is left out; the returned
// warnings say which server lost what.
func Export(servers []*mcpmeshv1.Server) ([]byte, []string, error) {
	out := map[string]exported{}
	var warnings []string
	for _, s := range servers {
		e := exported{Disabled: s.Enabled != nil && !*s.Enabled}
		switch s.GetTransport() {
		case mcpmeshv1.Transport_TRANSPORT_STDIO:
			st := s.GetStdio()
			e.Command, e.Cwd = st.GetCommand(), st.GetWorkingDir()
			e.Args = redact.Args(st.GetArgs(), st.GetSecretArgs())
			e.Env = redact.Values(st.GetEnv())
		case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, mcpmeshv1.Transport_TRANSPORT_SSE:
			e.Type = "http"
			if s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_SSE {
				e.Type = "sse"
			}
			e.URL = redact.URL(s.GetHttp().GetUrl())
			e.Headers = redact.Values(s.GetHttp().GetHeaders())
			if e.URL != s.GetHttp().GetUrl() {
				warnings = append(warnings, fmt.Sprintf("%s: the URL's credentials are masked", s.GetName()))
			}
		default:
			warnings = append(warnings, fmt.Sprintf("%s: transport %s cannot be exported; left out", s.GetName(), s.GetTransport()))
			continue
		}
		if lost := dropped(s); len(lost) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s: not in the file format, left out: %s", s.GetName(), strings.Join(lost, ", ")))
		}
		out[s.GetName()] = e
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	// encoding/json sorts map keys, so the file is stable.
	if err := enc.Encode(map[string]any{KeyMCPServers: out}); err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	return buf.Bytes(), warnings, nil
}

// dropped names the fields of s that the file format has no place for.
func dropped(s *mcpmeshv1.Server) []string {
	var out []string
	for name, set := range map[string]bool{
		"tags":        len(s.GetTags()) > 0,
		"timeout":     s.GetTimeout().AsDuration() > 0,
		"backoff":     len(s.GetBackoff()) > 0,
		"prefix":      s.Prefix != nil,
		"session":     s.GetSession() != mcpmeshv1.SessionMode_SESSION_MODE_UNSPECIFIED,
		"endpoints":   len(s.GetEndpoints()) > 0,
		"description": s.GetDescription() != "",
	} {
		if set {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
