package mcpservers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/tailscale/hujson"
	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// Limits on an imported file: it is untrusted input.
const (
	// MaxFileSize is the largest file Parse reads.
	MaxFileSize = 4 << 20
	// MaxEntries is the most servers one file may list (the registry takes
	// at most that many in one CreateServers call).
	MaxEntries = 1000
)

// The top-level keys Parse understands.
const (
	// KeyMCPServers is Claude Desktop's, Cursor's, Windsurf's and Claude Code's.
	KeyMCPServers = "mcpServers"
	// KeyServers is VS Code's (.vscode/mcp.json; "mcp": {"servers": …} in settings.json).
	KeyServers = "servers"
)

// File is a parsed client config file.
type File struct {
	// Format is the top-level key the servers were found under: "mcpServers",
	// "servers" or "mcp.servers".
	Format string
	// Entries are the servers, in the order of the file.
	Entries []Entry
}

// Entry is one server of the file.
type Entry struct {
	// Key is the entry's name in the file, as written.
	Key string
	// Server is what it registers as; Server.Name is Name(Key).
	Server *mcpmeshv1.Server
	// Warnings say what of the entry was not imported or may not work.
	Warnings []string
}

// rawEntry holds every key of an entry that Parse reads.
type rawEntry struct {
	Type      string            `json:"type"`
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"`
	Cwd       string            `json:"cwd"`
	URL       string            `json:"url"`
	ServerURL string            `json:"serverUrl"` // Windsurf
	HTTPURL   string            `json:"httpUrl"`   // Gemini CLI
	Headers   map[string]string `json:"headers"`
	Disabled  bool              `json:"disabled"` // Cline, Windsurf
}

// known are the entry keys Parse reads; others get a warning.
var known = []string{"type", "command", "args", "env", "cwd", "url", "serverUrl", "httpUrl", "headers", "disabled"}

// Parse reads a client config file. JSON with comments and trailing commas
// (VS Code's JSONC) is accepted. Servers are found under "mcpServers",
// "servers" or "mcp" → "servers"; an entry is a stdio server (command,
// args, env, cwd) or a URL server (url, serverUrl or httpUrl; headers),
// with "type" stdio, http, streamable-http, streamableHttp or sse. A URL
// without a type is SSE if its path ends in /sse, else streamable HTTP.
// Errors name the entry and the key that is wrong.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes, over the limit of %d", len(data), MaxFileSize)
	}
	std, err := hujson.Standardize(slices.Clone(data))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	var top map[string]json.RawMessage
	if err := strictUnmarshal(std, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	format, raw, err := findServers(top)
	if err != nil {
		return nil, err
	}
	keys, values, err := orderedObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%q must be an object of name → server: %w", format, err)
	}
	if len(keys) > MaxEntries {
		return nil, fmt.Errorf("%q lists %d servers, over the limit of %d", format, len(keys), MaxEntries)
	}
	f := &File{Format: format}
	for i, key := range keys {
		e, err := parseEntry(key, values[i])
		if err != nil {
			return nil, fmt.Errorf("server %q: %w", key, err)
		}
		f.Entries = append(f.Entries, e)
	}
	return f, nil
}

// orderedObject splits a JSON object into its keys, in file order, and
// their values; a key given twice is an error (encoding/json would keep
// the last one silently).
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("got %s", strings.TrimSpace(firstBytes(raw)))
	}
	var keys []string
	var values []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, nil, fmt.Errorf("server %q is listed twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("server %q: %w", key, err)
		}
		if len(keys) == MaxEntries {
			return nil, nil, fmt.Errorf("more than %d servers, over the limit", MaxEntries)
		}
		keys, values = append(keys, key), append(values, v)
	}
	return keys, values, nil
}

// firstBytes is the start of raw, for an error message.
func firstBytes(raw []byte) string {
	if len(raw) > 20 {
		return string(raw[:20]) + "…"
	}
	return string(raw)
}

// strictUnmarshal is json.Unmarshal that refuses a JSON null for the whole value.
func strictUnmarshal(data []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return errors.New("got null")
	}
	return json.Unmarshal(data, v)
}

func findServers(top map[string]json.RawMessage) (string, json.RawMessage, error) {
	mcpServers, hasA := top[KeyMCPServers]
	servers, hasB := top[KeyServers]
	var nested json.RawMessage
	hasC := false
	if m, ok := top["mcp"]; ok && !hasB {
		var inner map[string]json.RawMessage
		if json.Unmarshal(m, &inner) == nil {
			nested, hasC = inner[KeyServers]
		}
	}
	switch {
	case hasA && (hasB || hasC):
		return "", nil, fmt.Errorf("the file has both %q and %q: import one at a time", KeyMCPServers, KeyServers)
	case hasA:
		return KeyMCPServers, mcpServers, nil
	case hasB:
		return KeyServers, servers, nil
	case hasC:
		return "mcp.servers", nested, nil
	}
	return "", nil, fmt.Errorf("no %q object (Claude Desktop, Cursor, Windsurf) or %q object (VS Code) at the top level", KeyMCPServers, KeyServers)
}

func parseEntry(key string, raw json.RawMessage) (Entry, error) {
	e := Entry{Key: key}
	var keys map[string]json.RawMessage
	if err := strictUnmarshal(raw, &keys); err != nil {
		return e, fmt.Errorf("must be an object: %w", err)
	}
	var r rawEntry
	for _, k := range known {
		v, ok := keys[k]
		if !ok {
			continue
		}
		// One key at a time, so an error names the key.
		one, _ := json.Marshal(map[string]json.RawMessage{k: v})
		if err := json.Unmarshal(one, &r); err != nil {
			return e, typeError(k, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		switch {
		case slices.Contains(known, k):
		case k == "envFile":
			e.Warnings = append(e.Warnings, fmt.Sprintf("%s: envFile is not read: put the variables in env, or set them with 'mcpctl server update %s --env KEY=VALUE'", key, Name(key)))
		default:
			e.Warnings = append(e.Warnings, fmt.Sprintf("%s: key %q is not imported", key, k))
		}
	}

	name := Name(key)
	s := &mcpmeshv1.Server{Name: name, Enabled: proto.Bool(!r.Disabled)}
	urls := nonEmpty(r.URL, r.ServerURL, r.HTTPURL)
	if len(urls) > 1 {
		return e, errors.New("give one of url, serverUrl and httpUrl")
	}
	transport, err := parseType(r.Type)
	if err != nil {
		return e, err
	}
	switch {
	case r.Command != "" && len(urls) > 0:
		return e, errors.New("has both command and a URL: give one")
	case r.Command != "":
		if transport != mcpmeshv1.Transport_TRANSPORT_UNSPECIFIED && transport != mcpmeshv1.Transport_TRANSPORT_STDIO {
			return e, fmt.Errorf("type %q needs a url, not a command", r.Type)
		}
		if len(r.Headers) > 0 {
			return e, errors.New("headers are only for URL servers, not for a command")
		}
		s.Transport = mcpmeshv1.Transport_TRANSPORT_STDIO
		s.Stdio = &mcpmeshv1.StdioConfig{Command: r.Command, Args: r.Args, Env: r.Env, WorkingDir: r.Cwd}
	case len(urls) == 1:
		if transport == mcpmeshv1.Transport_TRANSPORT_STDIO {
			return e, errors.New(`type "stdio" needs a command, not a url`)
		}
		if len(r.Env) > 0 || len(r.Args) > 0 || r.Cwd != "" {
			return e, errors.New("env, args and cwd are only for command servers, not for a URL")
		}
		if transport == mcpmeshv1.Transport_TRANSPORT_UNSPECIFIED {
			transport = mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP
			if u, err := url.Parse(urls[0]); err == nil && strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/sse") {
				transport = mcpmeshv1.Transport_TRANSPORT_SSE
			}
		}
		s.Transport = transport
		s.Http = &mcpmeshv1.HttpConfig{Url: urls[0], Headers: r.Headers}
	default:
		return e, errors.New("has neither command nor url (serverUrl)")
	}
	e.Warnings = append(e.Warnings, valueWarnings(key, s)...)
	e.Server = s
	return e, nil
}

func nonEmpty(vs ...string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// typeError shortens encoding/json's messages on key to what a user can
// act on, naming the key (and the map key, as "env.K", where there is one).
func typeError(key string, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%q: %w", key, err)
	}
	want := te.Type.String()
	switch want {
	case "[]string":
		want = "an array of strings"
	case "map[string]string":
		want = "an object of string values"
	case "string":
		want = "a string"
	case "bool":
		want = "true or false"
	}
	if (key == "env" || key == "headers") && te.Type.Kind() == reflect.String {
		return fmt.Errorf("the values of %q must be strings, got a JSON %s", key, te.Value)
	}
	return fmt.Errorf("%q must be %s, got a JSON %s", key, want, te.Value)
}

// parseType reads "type"; unspecified when absent.
func parseType(t string) (mcpmeshv1.Transport, error) {
	switch strings.ToLower(t) {
	case "":
		return mcpmeshv1.Transport_TRANSPORT_UNSPECIFIED, nil
	case "stdio":
		return mcpmeshv1.Transport_TRANSPORT_STDIO, nil
	case "http", "streamable-http", "streamablehttp", "streamable_http":
		return mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, nil
	case "sse":
		return mcpmeshv1.Transport_TRANSPORT_SSE, nil
	}
	return 0, fmt.Errorf("type %q is not supported: use stdio, http (streamable-http) or sse", t)
}

// valueWarnings flags values that will not work as written: placeholders
// the client would have expanded, and values mcpctl export masked.
func valueWarnings(key string, s *mcpmeshv1.Server) []string {
	var out []string
	check := func(what string, m map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			switch v := m[k]; {
			case v == redact.Mask:
				out = append(out, fmt.Sprintf("%s: %s %s is %q (masked by mcpctl server export): set it with 'mcpctl server update %s --%s %s=VALUE'",
					key, what, k, redact.Mask, s.GetName(), flagOf(what), k))
			case strings.Contains(v, "${"):
				out = append(out, fmt.Sprintf("%s: %s %s holds a ${...} placeholder, which mcpmesh does not expand", key, what, k))
			}
		}
	}
	check("env", s.GetStdio().GetEnv())
	check("header", s.GetHttp().GetHeaders())
	for i, a := range s.GetStdio().GetArgs() {
		if strings.Contains(a, "${") {
			out = append(out, fmt.Sprintf("%s: arg %d holds a ${...} placeholder, which mcpmesh does not expand", key, i+1))
		}
	}
	return out
}

func flagOf(what string) string {
	if what == "header" {
		return "header"
	}
	return "env"
}

// Name turns an entry's key into a valid server name
// ([a-z0-9][a-z0-9-]{0,31}): lower case, every run of other characters
// becomes one '-', cut to 32 characters; "server" if nothing is left.
func Name(key string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(key) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	n := b.String()
	if len(n) > names.MaxServerName {
		n = strings.TrimRight(n[:names.MaxServerName], "-")
	}
	if n == "" {
		return "server"
	}
	return n
}
