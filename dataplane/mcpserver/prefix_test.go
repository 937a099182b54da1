package mcpserver

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// TestPrefixes: a server may expose its tools and prompts under a prefix of
// its own, or under their own names (prefix ""). A name two servers expose
// goes to the first server by name; the other's item is reported as
// shadowed, and calls reach the server that kept the name.
func TestPrefixes(t *testing.T) {
	none, custom := "", "gh."
	alpha := newAlpha(t, "alpha", nil, nil)
	alpha.prefix = &none
	beta := newAlpha(t, "beta", nil, nil)
	beta.prefix = &none
	gamma := newAlpha(t, "gamma", nil, nil)
	gamma.prefix = &custom
	delta := newAlpha(t, "delta", nil, nil) // the default prefix
	g := startGateway(t, newLiveSource(alpha, beta, gamma, delta))
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			cli, _ := g.connect(t, kind)
			want := []string{"block", "delta__block", "delta__echo", "echo", "gh.block", "gh.echo"}
			if got := toolNames(t, cli); !slices.Equal(got, want) {
				t.Fatalf("tools = %v, want %v", got, want)
			}
			for tool, wantText := range map[string]string{"echo": "alpha:{}", "gh.echo": "gamma:{}", "delta__echo": "delta:{}"} {
				res := callTool(t, cli, tool, `{}`)
				if got := resultText(t, res); res.IsError || got != wantText {
					t.Errorf("call %s = %q (error %v), want %q", tool, got, res.IsError, wantText)
				}
			}
			for prompt, wantText := range map[string]string{"greet": "alpha greets you", "gh.greet": "gamma greets you"} {
				var req mcp.GetPromptRequest
				req.Params.Name = prompt
				req.Params.Arguments = map[string]string{"who": "you"}
				res, err := cli.GetPrompt(context.Background(), req)
				if err != nil {
					t.Fatalf("prompts/get %s: %v", prompt, err)
				}
				if tc, ok := res.Messages[0].Content.(mcp.TextContent); !ok || tc.Text != wantText {
					t.Errorf("prompt %s = %#v, want %q", prompt, res.Messages[0].Content, wantText)
				}
			}
		})
	}
	sh := g.srv.Shadowed()
	if got := sh["beta"]; !slices.Equal(got, []string{"block", "echo", "greet"}) {
		t.Errorf("shadowed of beta = %v, want its tools and prompt, kept by alpha", got)
	}
	for _, srv := range []string{"alpha", "gamma", "delta"} {
		if len(sh[srv]) != 0 {
			t.Errorf("shadowed of %s = %v, want none", srv, sh[srv])
		}
	}
	// beta is removed: its names were shadowed, nothing changes for
	// clients, and nothing is reported any more.
	g.src.remove("beta")
	g.srv.Refresh()
	if sh := g.srv.Shadowed(); len(sh) != 0 {
		t.Errorf("shadowed after beta left = %v, want none", sh)
	}
	cli, _ := g.connect(t, streamableLegacy)
	if res := callTool(t, cli, "echo", `{}`); !strings.HasPrefix(resultText(t, res), "alpha:") {
		t.Errorf("echo after beta left = %q, want alpha's", resultText(t, res))
	}
}
