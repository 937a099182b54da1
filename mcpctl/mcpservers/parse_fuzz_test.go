package mcpservers_test

import (
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/mcpservers"
)

// FuzzParse: an imported file is untrusted. Parse never panics; what it
// accepts has valid names and a transport with its config; and exporting
// the result and parsing it again gives the same names and transports.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"mcpServers": {"a": {"command": "npx", "args": ["-y", "x"], "env": {"K": "v"}}}}`,
		`{"mcpServers": {"r": {"url": "https://h/mcp", "headers": {"A": "b"}}, "s": {"url": "http://h/sse"}}}`,
		`{"servers": {"v": {"type": "sse", "url": "http://h/e"},}} // jsonc`,
		`{"mcp": {"servers": {"x": {"type": "stdio", "command": "c", "cwd": "/"}}}}`,
		`{"mcpServers": {"W S": {"serverUrl": "https://ws/mcp", "disabled": true}}}`,
		`{"mcpServers": {"a": {"command": 1}}}`,
		`{"mcpServers": {"": {"command": "c"}, "-": {"command": "d"}}}`,
		`/* c */ {"servers": {"\u0000": {"httpUrl": "x"}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := mcpservers.Parse(data)
		if err != nil {
			return
		}
		var servers []*mcpmeshv1.Server
		for _, e := range file.Entries {
			s := e.Server
			if err := names.ValidateServer(s.GetName()); err != nil {
				t.Fatalf("entry %q got an invalid name: %v", e.Key, err)
			}
			switch s.GetTransport() {
			case mcpmeshv1.Transport_TRANSPORT_STDIO:
				if s.GetStdio().GetCommand() == "" || s.GetHttp() != nil {
					t.Fatalf("stdio entry %q = %v", e.Key, s)
				}
			case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, mcpmeshv1.Transport_TRANSPORT_SSE:
				if s.GetHttp().GetUrl() == "" || s.GetStdio() != nil {
					t.Fatalf("URL entry %q = %v", e.Key, s)
				}
			default:
				t.Fatalf("entry %q has transport %v", e.Key, s.GetTransport())
			}
			servers = append(servers, s)
		}
		// Keys that normalise to the same name collapse in an export; the
		// import side handles that with --on-conflict, so compare sets.
		want := map[string]mcpmeshv1.Transport{}
		for _, s := range servers {
			want[s.GetName()] = s.GetTransport()
		}
		out, _, err := mcpservers.Export(servers)
		if err != nil {
			t.Fatalf("Export: %v", err)
		}
		back, err := mcpservers.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Export()) failed: %v\n%s", err, out)
		}
		if len(back.Entries) != len(want) {
			t.Fatalf("round trip: %d entries, want %d\n%s", len(back.Entries), len(want), out)
		}
		for _, e := range back.Entries {
			if tr, ok := want[e.Server.GetName()]; !ok || tr != e.Server.GetTransport() {
				t.Fatalf("round trip: %q came back as %v, want %v", e.Server.GetName(), e.Server.GetTransport(), tr)
			}
		}
	})
}
