package testbackend

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/internal/version"
)

// Options configure a test backend.
type Options struct {
	// Name identifies the backend (server info name and what `whoami` returns).
	// Empty means "demo".
	Name string
	// Tools is the number of extra generated tools (tool-0000, tool-0001, …).
	Tools int
	// WideEcho adds WideEchoTool: echo with an input schema of
	// WideEchoParams parameters, to measure what a large schema costs a
	// proxy per call (bench/).
	WideEcho bool
	// PageSize enables mcp-go's server-side pagination of list results with
	// this many items per page; 0 disables it.
	PageSize int
	// InputTools adds the tools of MCP 2026-07-28 features: AskTool, which
	// asks for a sampling with an input_required result, and GrowTool,
	// which adds a tool (a list_changed).
	InputTools bool
	// CacheTTLms and CacheScope, when CacheTTLms > 0, are the ttlMs and
	// cacheScope of list and read results (2026-07-28 clients see them).
	CacheTTLms int64
	CacheScope mcp.CacheScope
}

// Fixed names, exported so tests elsewhere (data plane, e2e) do not repeat literals.
const (
	ReadmeURI        = "demo://readme"
	ItemTemplate     = "demo://items/{id}"
	GreetPrompt      = "greet"
	ReadmeText       = "mcpmesh demo backend: tools echo, add, whoami, sleep, fail, big_int."
	generatedToolFmt = "tool-%04d"
	// WideEchoTool returns its text argument like echo; its schema has
	// WideEchoParams parameters: text (required) and p01… (optional).
	WideEchoTool   = "echo_wide"
	WideEchoParams = 60
	// AskTool asks the client for a sampling of its "prompt" argument and
	// returns "sampled: <text>" (state ok: requestState echoed).
	AskTool = "ask_sample"
	// GrowTool adds a tool named "grown-<n>" and returns its name.
	GrowTool = "grow"
)

// Readme is the text of demo://readme on the backend called name, so tests
// can tell which backend answered a read.
func Readme(name string) string { return ReadmeText + " This is backend " + strconv.Quote(name) + "." }

// FixedTools are the tools every backend has, in registration order.
var FixedTools = []string{"echo", "add", "whoami", "sleep", "fail", "big_int"}

// GeneratedToolName returns the name of the i-th generated tool.
func GeneratedToolName(i int) string { return fmt.Sprintf(generatedToolFmt, i) }

// New builds the MCP server described by opts. Negative counts are treated as 0.
func New(opts Options) *server.MCPServer {
	if opts.Name == "" {
		opts.Name = "demo"
	}
	serverOpts := []server.ServerOption{
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(false, true),
		server.WithPromptCapabilities(true),
		server.WithRecovery(),
	}
	if opts.PageSize > 0 {
		serverOpts = append(serverOpts, server.WithPaginationLimit(opts.PageSize))
	}
	if opts.CacheTTLms > 0 {
		serverOpts = append(serverOpts, server.WithCacheHints(opts.CacheTTLms, opts.CacheScope))
	}
	s := server.NewMCPServer(opts.Name, version.Version, serverOpts...)

	tools := fixedTools(opts.Name)
	if opts.WideEcho {
		tools = append(tools, wideEcho())
	}
	for i := 0; i < opts.Tools; i++ {
		tools = append(tools, generatedTool(i))
	}
	if opts.InputTools {
		tools = append(tools, inputTools(s)...)
	}
	// One AddTools call: one list_changed at most, not one per tool.
	s.AddTools(tools...)

	s.AddResource(
		mcp.NewResource(ReadmeURI, "readme",
			mcp.WithResourceDescription("What this backend is"),
			mcp.WithMIMEType("text/plain")),
		func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.TextResourceContents{
				URI: req.Params.URI, MIMEType: "text/plain", Text: Readme(opts.Name),
			}}, nil
		})
	s.AddResourceTemplate(
		mcp.NewResourceTemplate(ItemTemplate, "item",
			mcp.WithTemplateDescription("An item by id"),
			mcp.WithTemplateMIMEType("text/plain")),
		func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			id := strings.TrimPrefix(req.Params.URI, "demo://items/")
			if id == "" || strings.Contains(id, "/") {
				return nil, fmt.Errorf("read %q: item id must be one non-empty path segment", req.Params.URI)
			}
			return []mcp.ResourceContents{mcp.TextResourceContents{
				URI: req.Params.URI, MIMEType: "text/plain", Text: "item " + id + " from " + opts.Name,
			}}, nil
		})
	s.AddPrompt(
		mcp.NewPrompt(GreetPrompt,
			mcp.WithPromptDescription("Greets someone"),
			mcp.WithArgument("name", mcp.ArgumentDescription("Who to greet"), mcp.RequiredArgument())),
		func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			name := req.Params.Arguments["name"]
			if name == "" {
				return nil, fmt.Errorf("prompt %s: argument \"name\" is required", GreetPrompt)
			}
			return mcp.NewGetPromptResult("Greeting",
				[]mcp.PromptMessage{mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("Hello, "+name+"!"))}), nil
		})
	return s
}

func fixedTools(name string) []server.ServerTool {
	return []server.ServerTool{
		{
			Tool: mcp.NewTool("echo",
				mcp.WithDescription("Returns its text argument"),
				mcp.WithString("text", mcp.Required(), mcp.Description("Text to return"))),
			Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				text, err := req.RequireString("text")
				if err != nil {
					return mcp.NewToolResultError("echo: " + err.Error()), nil
				}
				return mcp.NewToolResultText(text), nil
			},
		},
		{
			Tool: mcp.NewTool("add",
				mcp.WithDescription("Adds two numbers"),
				mcp.WithNumber("a", mcp.Required()),
				mcp.WithNumber("b", mcp.Required()),
				mcp.WithReadOnlyHintAnnotation(true),
				mcp.WithIdempotentHintAnnotation(true),
				mcp.WithDestructiveHintAnnotation(false)),
			Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				a, err := req.RequireFloat("a")
				if err != nil {
					return mcp.NewToolResultError("add: " + err.Error()), nil
				}
				b, err := req.RequireFloat("b")
				if err != nil {
					return mcp.NewToolResultError("add: " + err.Error()), nil
				}
				return mcp.NewToolResultText(formatNumber(a + b)), nil
			},
		},
		{
			Tool: mcp.NewTool("whoami",
				mcp.WithDescription("Returns the backend's name and process id"),
				mcp.WithReadOnlyHintAnnotation(true)),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(fmt.Sprintf("%s pid=%d", name, os.Getpid())), nil
			},
		},
		{
			Tool: mcp.NewTool("sleep",
				mcp.WithDescription("Sleeps for ms milliseconds, or until cancelled"),
				mcp.WithNumber("ms", mcp.Required(), mcp.Min(0))),
			Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				ms, err := req.RequireFloat("ms")
				if err != nil || ms < 0 {
					return mcp.NewToolResultError("sleep: argument \"ms\" must be a number >= 0"), nil
				}
				t := time.NewTimer(time.Duration(ms * float64(time.Millisecond)))
				defer t.Stop()
				select {
				case <-t.C:
					return mcp.NewToolResultText(fmt.Sprintf("slept %s", formatNumber(ms))), nil
				case <-ctx.Done():
					return nil, fmt.Errorf("sleep: %w", ctx.Err())
				}
			},
		},
		{
			Tool: mcp.NewTool("fail",
				mcp.WithDescription("Always returns an error result")),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultError("fail: this tool always fails"), nil
			},
		},
		{
			Tool: mcp.NewTool("big_int",
				mcp.WithDescription("Returns the raw JSON text of its n argument, to check large integers survive"),
				mcp.WithNumber("n", mcp.Required())),
			Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				raw, err := rawArgument(req, "n")
				if err != nil {
					return mcp.NewToolResultError("big_int: " + err.Error()), nil
				}
				return mcp.NewToolResultText(raw), nil
			},
		},
	}
}

// rawArgument returns the JSON text of one argument exactly as the client
// sent it. The decoded map would turn integers above 2^53 into floats.
func rawArgument(req mcp.CallToolRequest, key string) (string, error) {
	raw := req.Params.RawArguments
	if len(raw) == 0 {
		// Not decoded from JSON (e.g. built in Go): fall back to re-encoding.
		b, err := json.Marshal(req.Params.Arguments)
		if err != nil {
			return "", fmt.Errorf("encode arguments: %w", err)
		}
		raw = b
	}
	var args map[string]json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil {
		return "", fmt.Errorf("arguments must be a JSON object: %w", err)
	}
	v, ok := args[key]
	if !ok {
		return "", fmt.Errorf("argument %q is required", key)
	}
	return string(v), nil
}

func wideEcho() server.ServerTool {
	props := []mcp.ToolOption{
		mcp.WithDescription(fmt.Sprintf("Returns its text argument; its input schema has %d parameters", WideEchoParams)),
		mcp.WithString("text", mcp.Required(), mcp.Description("Text to return")),
	}
	for i := 1; i < WideEchoParams; i++ {
		props = append(props, mcp.WithString(fmt.Sprintf("p%02d", i), mcp.Description(fmt.Sprintf("Optional parameter %d, ignored", i))))
	}
	return server.ServerTool{
		Tool: mcp.NewTool(WideEchoTool, props...),
		Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			text, err := req.RequireString("text")
			if err != nil {
				return mcp.NewToolResultError(WideEchoTool + ": " + err.Error()), nil
			}
			return mcp.NewToolResultText(text), nil
		},
	}
}

func generatedTool(i int) server.ServerTool {
	name := GeneratedToolName(i)
	return server.ServerTool{
		Tool: mcp.NewTool(name,
			mcp.WithDescription("Generated tool "+name),
			mcp.WithReadOnlyHintAnnotation(true)),
		Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(name), nil
		},
	}
}

func formatNumber(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.6f", f), "0"), ".")
}

// askState is the requestState AskTool hands out and expects back.
const askState = "ask-1"

// inputTools are AskTool and GrowTool (see Options.InputTools).
func inputTools(s *server.MCPServer) []server.ServerTool {
	var grown atomic.Int64
	return []server.ServerTool{
		{
			Tool: mcp.NewTool(AskTool,
				mcp.WithDescription("Asks the client to sample its prompt (an input_required result) and returns the answer"),
				mcp.WithString("prompt", mcp.Required())),
			Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				resp, ok := req.Params.InputResponses["sample"]
				if !ok {
					prompt := req.GetString("prompt", "")
					return server.NewInputRequestBuilder(askState).Sample("sample", mcp.CreateMessageParams{
						Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent(prompt)}},
						MaxTokens: 64,
					}).ToolResult(), nil
				}
				if err := resp.DecodeFor(mcp.MethodSamplingCreateMessage); err != nil || resp.Sampling == nil {
					return mcp.NewToolResultError(fmt.Sprintf("%s: the input response is no sampling result: %v", AskTool, err)), nil
				}
				raw, _ := json.Marshal(resp.Sampling)
				var r struct {
					Content struct{ Text string } `json:"content"`
				}
				_ = json.Unmarshal(raw, &r)
				state := "state ok"
				if req.Params.RequestState != askState {
					state = fmt.Sprintf("state %q", req.Params.RequestState)
				}
				return mcp.NewToolResultText("sampled: " + r.Content.Text + " (" + state + ")"), nil
			},
		},
		{
			Tool: mcp.NewTool(GrowTool, mcp.WithDescription("Adds a tool grown-<n> and returns its name")),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				name := fmt.Sprintf("grown-%d", grown.Add(1))
				s.AddTool(mcp.NewTool(name), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return mcp.NewToolResultText(name), nil
				})
				return mcp.NewToolResultText(name), nil
			},
		},
	}
}
