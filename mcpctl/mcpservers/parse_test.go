package mcpservers_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/mcpservers"
)

const (
	stdioT = mcpmeshv1.Transport_TRANSPORT_STDIO
	httpT  = mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP
	sseT   = mcpmeshv1.Transport_TRANSPORT_SSE
)

func stdio(name, cmd string, args []string, env map[string]string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{Name: name, Enabled: proto.Bool(true), Transport: stdioT,
		Stdio: &mcpmeshv1.StdioConfig{Command: cmd, Args: args, Env: env}}
}

func remote(name string, t mcpmeshv1.Transport, u string, headers map[string]string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{Name: name, Enabled: proto.Bool(true), Transport: t,
		Http: &mcpmeshv1.HttpConfig{Url: u, Headers: headers}}
}

// TestParseFormats reads each client's format as its documentation spells it.
func TestParseFormats(t *testing.T) {
	cases := []struct {
		client, format, file string
		want                 []*mcpmeshv1.Server
	}{
		{"Claude Desktop", "mcpServers", `{
  "mcpServers": {
    "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]},
    "github": {"command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}}
  },
  "globalShortcut": "Ctrl+Space"
}`, []*mcpmeshv1.Server{
			stdio("filesystem", "npx", []string{"-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"}, nil),
			stdio("github", "docker", []string{"run", "-i", "--rm", "ghcr.io/github/github-mcp-server"}, map[string]string{"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x"}),
		}},
		{"Cursor", "mcpServers", `{"mcpServers": {
  "web-search": {"command": "npx", "args": ["-y", "web-search"], "env": {"API_KEY": "k"}},
  "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer t"}},
  "old-remote": {"url": "http://localhost:3001/sse"}
}}`, []*mcpmeshv1.Server{
			stdio("web-search", "npx", []string{"-y", "web-search"}, map[string]string{"API_KEY": "k"}),
			remote("remote", httpT, "https://mcp.example.com/mcp", map[string]string{"Authorization": "Bearer t"}),
			remote("old-remote", sseT, "http://localhost:3001/sse", nil),
		}},
		{"VS Code", "servers", `// .vscode/mcp.json
{
  "inputs": [{"type": "promptString", "id": "key", "description": "API key", "password": true}],
  "servers": {
    "Perplexity": {"type": "stdio", "command": "npx", "args": ["-y", "server-perplexity-ask"], "env": {"PERPLEXITY_API_KEY": "${input:key}"},},
    "fetch": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"X-Key": "v"}},
    "events": {"type": "sse", "url": "https://api.example.com/events"}, // no /sse suffix, type says it
  },
}`, []*mcpmeshv1.Server{
			stdio("perplexity", "npx", []string{"-y", "server-perplexity-ask"}, map[string]string{"PERPLEXITY_API_KEY": "${input:key}"}),
			remote("fetch", httpT, "https://api.example.com/mcp", map[string]string{"X-Key": "v"}),
			remote("events", sseT, "https://api.example.com/events", nil),
		}},
		{"VS Code settings.json", "mcp.servers", `{"editor.fontSize": 14, "mcp": {"servers": {"a": {"command": "a"}}}}`,
			[]*mcpmeshv1.Server{stdio("a", "a", nil, nil)}},
		{"Windsurf", "mcpServers", `{"mcpServers": {
  "remote": {"serverUrl": "https://ws.example.com/mcp", "headers": {"Authorization": "Bearer w"}},
  "off": {"command": "x", "disabled": true}
}}`, []*mcpmeshv1.Server{
			remote("remote", httpT, "https://ws.example.com/mcp", map[string]string{"Authorization": "Bearer w"}),
			{Name: "off", Enabled: proto.Bool(false), Transport: stdioT, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}},
		}},
		{"Claude Code", "mcpServers", `{"mcpServers": {
  "a": {"type": "streamable-http", "url": "https://a/mcp"},
  "b": {"type": "streamableHttp", "url": "https://b/mcp"},
  "c": {"type": "http", "url": "https://c/sse"}
}}`, []*mcpmeshv1.Server{
			remote("a", httpT, "https://a/mcp", nil), remote("b", httpT, "https://b/mcp", nil), remote("c", httpT, "https://c/sse", nil),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.client, func(t *testing.T) {
			f, err := mcpservers.Parse([]byte(tc.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if f.Format != tc.format {
				t.Errorf("format = %q, want %q", f.Format, tc.format)
			}
			if len(f.Entries) != len(tc.want) {
				t.Fatalf("%d entries, want %d", len(f.Entries), len(tc.want))
			}
			for i, e := range f.Entries {
				if !proto.Equal(e.Server, tc.want[i]) {
					t.Errorf("entry %q =\n %v\nwant\n %v", e.Key, e.Server, tc.want[i])
				}
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	f, err := mcpservers.Parse([]byte(`{"servers": {"x": {"command": "c", "envFile": "${workspaceFolder}/.env", "alwaysAllow": ["t"], "args": ["--key=${env:KEY}"], "env": {"A": "***", "B": "${input:b}"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(f.Entries[0].Warnings, "\n")
	for _, want := range []string{"envFile is not read", `key "alwaysAllow" is not imported`, "arg 1 holds a ${...} placeholder",
		`env A is "***" (masked by mcpctl server export): set it with 'mcpctl server update x --env A=VALUE'`, "env B holds a ${...} placeholder"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
}

// TestParseErrors: each malformed file is refused with a message naming
// what is wrong and where.
func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		``:                                      "not JSON",
		`[1]`:                                   "not a JSON object",
		`null`:                                  "not a JSON object",
		`{"mcpServers": [1]}`:                   `"mcpServers" must be an object`,
		`{"mcpServers": null}`:                  `"mcpServers" must be an object`,
		`{"other": {}}`:                         `no "mcpServers" object`,
		`{"mcpServers": {}, "servers": {}}`:     "both",
		`{"mcpServers": {"a": 1}}`:              `server "a": must be an object`,
		`{"mcpServers": {"a": {}}}`:             `server "a": has neither command nor url`,
		`{"mcpServers": {"a": {"command": 7}}}`: `server "a": "command" must be a string, got a JSON number`,
		`{"mcpServers": {"a": {"command": "c", "args": "x"}}}`:                        `server "a": "args" must be an array of strings`,
		`{"mcpServers": {"a": {"command": "c", "env": {"K": 1}}}}`:                    `server "a": the values of "env" must be strings, got a JSON number`,
		`{"mcpServers": {"a": {"command": "c", "url": "http://h/mcp"}}}`:              "both command and a URL",
		`{"mcpServers": {"a": {"url": "http://h/mcp", "serverUrl": "http://h/mcp"}}}`: "one of url, serverUrl and httpUrl",
		`{"mcpServers": {"a": {"type": "websocket", "url": "ws://h"}}}`:               `type "websocket" is not supported`,
		`{"mcpServers": {"a": {"type": "sse", "command": "c"}}}`:                      `type "sse" needs a url`,
		`{"mcpServers": {"a": {"type": "stdio", "url": "http://h/mcp"}}}`:             `type "stdio" needs a command`,
		`{"mcpServers": {"a": {"command": "c", "headers": {"A": "b"}}}}`:              "headers are only for URL servers",
		`{"mcpServers": {"a": {"url": "http://h/mcp", "env": {"A": "b"}}}}`:           "env, args and cwd are only for command servers",
	}
	for in, want := range cases {
		_, err := mcpservers.Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", in, err, want)
		}
	}
	big := `{"mcpServers": {` + strings.Repeat(" ", mcpservers.MaxFileSize) + `}}`
	if _, err := mcpservers.Parse([]byte(big)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("oversized file: %v", err)
	}
	var many strings.Builder
	many.WriteString(`{"mcpServers": {`)
	for i := range mcpservers.MaxEntries + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"s-` + itoa(i) + `": {"command": "c"}`)
	}
	many.WriteString("}}")
	if _, err := mcpservers.Parse([]byte(many.String())); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("too many entries: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestName(t *testing.T) {
	cases := map[string]string{
		"github":                  "github",
		"GitHub Server":           "github-server",
		"  @scope/pkg.name  ":     "scope-pkg-name",
		"a__b--c":                 "a-b-c",
		"日本語":                     "server",
		"":                        "server",
		"-x-":                     "x",
		strings.Repeat("ab-", 20): "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab",
	}
	for in, want := range cases {
		if got := mcpservers.Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
		if err := names.ValidateServer(mcpservers.Name(in)); err != nil {
			t.Errorf("Name(%q) = %q is not a valid name: %v", in, mcpservers.Name(in), err)
		}
	}
}

// TestExportRoundTrip: what Export writes, Parse reads back as the same
// servers, with secrets masked and a warning for each masked value.
func TestExportRoundTrip(t *testing.T) {
	in := []*mcpmeshv1.Server{
		stdio("files", "npx", []string{"-y", "fs", "--token", "argsecret"}, map[string]string{"TOKEN": "s3cret"}),
		remote("gh", httpT, "https://user:pw@gh.example/mcp", map[string]string{"Authorization": "Bearer xyz"}),
		remote("legacy", sseT, "http://h:9/sse", nil),
	}
	in[0].Stdio.SecretArgs = []uint32{3}
	in[0].Stdio.WorkingDir = "/srv"
	in[1].Tags, in[1].Enabled = []string{"t"}, proto.Bool(false)
	out, warnings, err := mcpservers.Export(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret", "argsecret", "pw@", "xyz"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("export shows secret %q:\n%s", secret, out)
		}
	}
	if w := strings.Join(warnings, "\n"); !strings.Contains(w, "gh: not in the file format, left out: tags") || !strings.Contains(w, "gh: the URL's credentials are masked") {
		t.Errorf("warnings = %q", warnings)
	}
	f, err := mcpservers.Parse(out)
	if err != nil {
		t.Fatalf("Parse(Export()): %v\n%s", err, out)
	}
	if len(f.Entries) != 3 {
		t.Fatalf("%d entries back, want 3", len(f.Entries))
	}
	got := f.Entries
	if s := got[0].Server; s.GetName() != "files" || s.GetStdio().GetCommand() != "npx" || !slices.Equal(s.GetStdio().GetArgs(), []string{"-y", "fs", "--token", "***"}) ||
		s.GetStdio().GetEnv()["TOKEN"] != "***" || s.GetStdio().GetWorkingDir() != "/srv" || !s.GetEnabled() {
		t.Errorf("files back as %v", s)
	}
	if s := got[1].Server; s.GetName() != "gh" || s.GetTransport() != httpT || s.GetHttp().GetHeaders()["Authorization"] != "***" || s.GetEnabled() {
		t.Errorf("gh back as %v", s)
	}
	if s := got[2].Server; s.GetTransport() != sseT || s.GetHttp().GetUrl() != "http://h:9/sse" {
		t.Errorf("legacy back as %v", s)
	}
	if len(got[0].Warnings) == 0 || len(got[1].Warnings) == 0 {
		t.Errorf("masked values came back without warnings: %q %q", got[0].Warnings, got[1].Warnings)
	}
}
