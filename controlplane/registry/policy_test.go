package registry_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func policyService(p registry.Policy) *registry.Service {
	s := registry.New(store.NewMemory(), nil, nil, discardLogger())
	s.SetPolicy(p)
	return s
}

// TestEgressPolicy: URL backends in link-local and metadata ranges are
// refused at registration (create, update, dry run, extra endpoints) with
// InvalidArgument naming the field and --allow-private-egress, unless the
// control plane allows them.
func TestEgressPolicy(t *testing.T) {
	ctx := context.Background()
	s := policyService(registry.Policy{})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/mcp", "http://[fe80::1]:8080/mcp",
		"http://metadata.google.internal/computeMetadata/v1/", "http://0xa9fea9fe/mcp", "http://2852039166/mcp",
		"https://[::ffff:169.254.169.254]/mcp",
	} {
		for _, validateOnly := range []bool{false, true} {
			_, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: httpSrv("meta", u), ValidateOnly: validateOnly})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "server.http.url:") || !strings.Contains(err.Error(), "--allow-private-egress") {
				t.Errorf("register %s (validate only %v) = %v, want InvalidArgument naming server.http.url and --allow-private-egress", u, validateOnly, err)
			}
		}
	}
	ok := httpSrv("ok", "http://127.0.0.1:9000/mcp")
	ok.Endpoints = []string{"http://10.0.0.5/mcp", "http://169.254.169.254/mcp"}
	_, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: ok})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "server.endpoints[1]:") {
		t.Errorf("an endpoint in the metadata range = %v, want InvalidArgument on server.endpoints[1]", err)
	}
	ok.Endpoints = ok.Endpoints[:1]
	if _, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: ok}); err != nil {
		t.Fatalf("a loopback URL with a private endpoint refused: %v", err)
	}
	ok.Http.Url = "http://169.254.169.254/mcp"
	if _, err := s.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: ok}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an update to the metadata address = %v, want InvalidArgument", err)
	}

	allow := policyService(registry.Policy{AllowPrivateEgress: true})
	if _, err := allow.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: httpSrv("meta", "http://169.254.169.254/mcp")}); err != nil {
		t.Errorf("with AllowPrivateEgress: %v", err)
	}
}

// TestCommandPolicy: with allowed commands, a stdio registration naming
// another executable is refused with InvalidArgument naming the allowed
// list; without, any command is accepted.
func TestCommandPolicy(t *testing.T) {
	ctx := context.Background()
	s := policyService(registry.Policy{AllowCommands: []string{"npx", "/usr/bin/uvx"}})
	for _, cmd := range []string{"npx", "/usr/bin/uvx"} {
		srv := stdio("ok-" + strings.Trim(strings.ReplaceAll(cmd, "/", "-"), "-"))
		srv.Stdio.Command = cmd
		if _, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: srv}); err != nil {
			t.Errorf("allowed command %q refused: %v", cmd, err)
		}
	}
	for _, cmd := range []string{"sh", "/tmp/npx", "./npx", "uvx", "npx "} {
		srv := stdio("bad")
		srv.Stdio.Command = cmd
		_, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: srv, ValidateOnly: true})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "server.stdio.command:") ||
			!strings.Contains(err.Error(), "allows only npx, /usr/bin/uvx (--allow-command)") {
			t.Errorf("command %q = %v, want InvalidArgument naming the allowed list", cmd, err)
		}
	}
	srv := stdio("ok-npx")
	srv.Stdio.Command = "bash"
	if _, err := s.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: srv}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an update to another command = %v, want InvalidArgument", err)
	}
	// URL backends are not commands.
	if _, err := s.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: httpSrv("web", "http://127.0.0.1:1/mcp")}); err != nil {
		t.Errorf("a URL backend under --allow-command: %v", err)
	}
	if _, err := policyService(registry.Policy{}).CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("any")}); err != nil {
		t.Errorf("no command list: %v", err)
	}
}
