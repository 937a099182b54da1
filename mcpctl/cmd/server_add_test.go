package cmd

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestBuildCreateRequest(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		dash    int
		flags   addFlags
		want    *mcpmeshv1.Server
		dryRun  bool
		wantErr string
	}{
		{
			name: "stdio with env, cwd, tags and timeout",
			args: []string{"files", "npx", "-y", "pkg", "--flag=1"}, dash: 1,
			flags: addFlags{env: []string{"TOKEN=a=b", "EMPTY="}, cwd: "/srv", tags: []string{"x", "y", "x"}, timeout: 30 * time.Second, description: "d", backoff: "500ms, 1s"},
			want: &mcpmeshv1.Server{
				Name: "files", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
				Stdio:   &mcpmeshv1.StdioConfig{Command: "npx", Args: []string{"-y", "pkg", "--flag=1"}, Env: map[string]string{"TOKEN": "a=b", "EMPTY": ""}, WorkingDir: "/srv"},
				Tags:    []string{"x", "y"},
				Timeout: durationpb.New(30 * time.Second), Enabled: proto.Bool(true), Description: "d",
				Backoff: []*durationpb.Duration{durationpb.New(500 * time.Millisecond), durationpb.New(time.Second)},
			},
		},
		{
			name: "url defaults to streamable-http",
			args: []string{"gh"}, dash: -1,
			flags: addFlags{url: "https://h/mcp", headers: []string{"Authorization=Bearer x"}, endpoints: []string{"https://h2/mcp"}, disabled: true, dryRun: true},
			want: &mcpmeshv1.Server{
				Name: "gh", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
				Http:      &mcpmeshv1.HttpConfig{Url: "https://h/mcp", Headers: map[string]string{"Authorization": "Bearer x"}},
				Endpoints: []string{"https://h2/mcp"}, Enabled: proto.Bool(false),
			},
			dryRun: true,
		},
		{
			name: "sse", args: []string{"old"}, dash: -1,
			flags: addFlags{url: "http://127.0.0.1:9000/sse", transport: "sse"},
			want:  &mcpmeshv1.Server{Name: "old", Transport: mcpmeshv1.Transport_TRANSPORT_SSE, Http: &mcpmeshv1.HttpConfig{Url: "http://127.0.0.1:9000/sse"}, Enabled: proto.Bool(true)},
		},
		{
			name: "secret arg", args: []string{"a", "cmd", "--token", "t0k"}, dash: 1, flags: addFlags{secretArgs: []uint{2}},
			want: &mcpmeshv1.Server{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "cmd", Args: []string{"--token", "t0k"}, SecretArgs: []uint32{1}}, Enabled: proto.Bool(true)},
		},
		{name: "secret arg out of range", args: []string{"a", "cmd", "x"}, dash: 1, flags: addFlags{secretArgs: []uint{2}}, wantErr: "--secret-arg 2"},
		{name: "secret arg zero", args: []string{"a", "cmd", "x"}, dash: 1, flags: addFlags{secretArgs: []uint{0}}, wantErr: "count from 1"},
		{name: "secret arg for url", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", secretArgs: []uint{1}}, wantErr: "--secret-arg applies only"},
		{name: "both url and command", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{url: "http://h/"}, wantErr: "either --url"},
		{name: "neither", args: []string{"a"}, dash: -1, wantErr: "give a command after --"},
		{
			name: "empty prefix", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{prefixSet: true},
			want: &mcpmeshv1.Server{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "cmd"}, Enabled: proto.Bool(true), Prefix: proto.String("")},
		},
		{
			name: "own prefix", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{prefix: "gh.", prefixSet: true},
			want: &mcpmeshv1.Server{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "cmd"}, Enabled: proto.Bool(true), Prefix: proto.String("gh.")},
		},
		{name: "bad prefix", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{prefix: "a b", prefixSet: true}, wantErr: `--prefix: prefix "a b" is invalid`},
		{
			name: "shared session", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/mcp", session: "shared"},
			want: &mcpmeshv1.Server{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: "http://h/mcp"}, Enabled: proto.Bool(true), Session: mcpmeshv1.SessionMode_SESSION_MODE_SHARED},
		},
		{name: "bad session", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/mcp", session: "sticky"}, wantErr: `--session: session mode "sticky" is not one of per-client, shared`},
		{name: "long prefix", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{prefix: strings.Repeat("p", 33), prefixSet: true}, wantErr: "--prefix: prefix"},
		{name: "command without dash", args: []string{"a", "cmd"}, dash: -1, wantErr: "after --"},
		{name: "no name", args: []string{"cmd"}, dash: 0, wantErr: "NAME"},
		{name: "two names", args: []string{"a", "b", "cmd"}, dash: 2, wantErr: "one NAME"},
		{name: "bad name", args: []string{"Bad_Name", "cmd"}, dash: 1, wantErr: `server name "Bad_Name" is invalid`},
		{name: "env without =", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{env: []string{"TOKEN"}}, wantErr: `--env "TOKEN": want KEY=VALUE`},
		{name: "env empty key", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{env: []string{"=v"}}, wantErr: "--env"},
		{name: "env duplicate", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{env: []string{"K=1", "K=2"}}, wantErr: `--env: KEY "K" given twice`},
		{name: "header without =", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", headers: []string{"Auth"}}, wantErr: `--header "Auth": want KEY=VALUE`},
		{name: "header name with a space", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", headers: []string{"Bad Name=v"}}, wantErr: `--header "Bad Name=…": KEY "Bad Name" is not an HTTP header name`},
		{name: "header value with a line break, not printed", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", headers: []string{"X=s3cret\r\nY: 1"}}, wantErr: `--header "X=…": VALUE contains a control character`},
		{name: "env value with NUL", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{env: []string{"K=a\x00"}}, wantErr: `--env "K=…": VALUE contains a NUL byte`},
		{name: "header on stdio", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{headers: []string{"A=b"}}, wantErr: "--header applies only"},
		{name: "transport on stdio", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{transport: "sse"}, wantErr: "--transport applies only"},
		{name: "endpoint on stdio", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{endpoints: []string{"http://h/"}}, wantErr: "--endpoint applies only"},
		{name: "env on url", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", env: []string{"A=b"}}, wantErr: "--env applies only"},
		{name: "cwd on url", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", cwd: "/"}, wantErr: "--cwd applies only"},
		{name: "bad transport", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", transport: "stdio"}, wantErr: `--transport "stdio"`},
		{name: "bad url scheme", args: []string{"a"}, dash: -1, flags: addFlags{url: "ftp://h/"}, wantErr: `--url "ftp://h/"`},
		{name: "url without host", args: []string{"a"}, dash: -1, flags: addFlags{url: "localhost:8080"}, wantErr: "--url"},
		{name: "bad endpoint", args: []string{"a"}, dash: -1, flags: addFlags{url: "http://h/", endpoints: []string{"nope"}}, wantErr: `--endpoint "nope"`},
		{name: "negative timeout", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{timeout: -time.Second}, wantErr: "--timeout"},
		{name: "bad backoff", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{backoff: "1s,,2s"}, wantErr: "--backoff"},
		{name: "zero backoff", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{backoff: "0s"}, wantErr: "--backoff"},
		{name: "empty tag", args: []string{"a", "cmd"}, dash: 1, flags: addFlags{tags: []string{" "}}, wantErr: "--tag"},
		{name: "empty command", args: []string{"a", ""}, dash: 1, wantErr: "command after -- is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := func() (*mcpmeshv1.CreateServerRequest, error) {
				name, command, err := splitAddArgs(tt.args, tt.dash)
				if err != nil {
					return nil, err
				}
				return buildCreateRequest(name, command, tt.flags)
			}()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !proto.Equal(req.GetServer(), tt.want) {
				t.Errorf("server =\n%s\nwant\n%s", prototext.Format(req.GetServer()), prototext.Format(tt.want))
			}
			if req.GetValidateOnly() != tt.dryRun {
				t.Errorf("validate_only = %v, want %v", req.GetValidateOnly(), tt.dryRun)
			}
		})
	}
}
