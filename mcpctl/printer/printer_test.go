package printer

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func stdioServer() *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      "files",
		Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
		Stdio: &mcpmeshv1.StdioConfig{
			Command:    "npx",
			Args:       []string{"-y", "@mcp/files", "/srv"},
			Env:        map[string]string{"TOKEN": "s3cret", "B": "other-secret"},
			WorkingDir: "/srv",
		},
		Tags:           []string{"local", "fs"},
		CreateRevision: 3,
		ModRevision:    7,
		CreatedAt:      timestamppb.New(t0),
		UpdatedAt:      timestamppb.New(t0.Add(time.Hour)),
		Description:    "Files under /srv",
	}
}

func httpServer() *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:           "github",
		Transport:      mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:           &mcpmeshv1.HttpConfig{Url: "https://example.com/mcp?a=1&b=2", Headers: map[string]string{"Authorization": "Bearer xyz"}},
		Endpoints:      []string{"https://replica.example.com/mcp"},
		Timeout:        durationpb.New(30 * time.Second),
		Backoff:        []*durationpb.Duration{durationpb.New(500 * time.Millisecond), durationpb.New(2 * time.Second)},
		Enabled:        proto.Bool(false),
		CreateRevision: 9,
		ModRevision:    9,
	}
}

func dataplanes() []*mcpmeshv1.DataPlane {
	return []*mcpmeshv1.DataPlane{
		{Id: "dp-1", Version: "v0.1.0", ListenAddr: "127.0.0.1:8080", Peer: "127.0.0.1:50000", Connected: true,
			Revision: 9, ConnectedAt: timestamppb.New(t0), LastSeen: timestamppb.New(t0.Add(time.Minute))},
		{Id: "dp-2", Version: "v0.1.0", Connected: false, Revision: 7, NackedRevision: 8, LastError: "bad\tconfig\nline"},
	}
}

func serverStatus() *mcpmeshv1.ServerStatus {
	return &mcpmeshv1.ServerStatus{
		Name: "files", State: "degraded", HealthyDataplanes: 1, TotalDataplanes: 2,
		Backends: []*mcpmeshv1.BackendHealth{
			{Server: "files", DataplaneId: "dp-1", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY,
				Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED, Since: timestamppb.New(t0),
				Latency: durationpb.New(1500 * time.Microsecond), Tools: 4, Resources: 1, Prompts: 2},
			{Server: "files", DataplaneId: "dp-2", State: mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE,
				Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN, LastError: "connect: connection refused",
				ConsecutiveFailures: 4},
		},
	}
}

func TestGolden(t *testing.T) {
	created := ServerFromProto(stdioServer())
	upd := stdioServer()
	upd.Stdio.Env["NEW"] = "n3w"
	delete(upd.Stdio.Env, "B")
	upd.Tags = append(upd.Tags, "prod")
	upd.Timeout = durationpb.New(30 * time.Second)
	upd.ModRevision = 8
	updated := ServerFromProto(upd)
	views := map[string]View{
		"server-list":       ServerList{ServerFromProto(stdioServer()), ServerFromProto(httpServer())},
		"server-list-empty": ServerList{},
		"server-get":        ServerDetail{Server: ServerFromProto(stdioServer()), Status: ServerStatusFromProto(serverStatus())},
		"server-get-http":   ServerDetail{Server: ServerFromProto(httpServer()), Status: ServerStatusFromProto(&mcpmeshv1.ServerStatus{Name: "github"})},
		"dataplane-list":    DataPlaneList{DataPlaneFromProto(dataplanes()[0]), DataPlaneFromProto(dataplanes()[1])},
		"status": StatusFromProto(&mcpmeshv1.GetStatusResponse{
			Revision: 18446744073709551615, Dataplanes: dataplanes(),
			Servers: []*mcpmeshv1.ServerStatus{serverStatus(), {Name: "github", State: "disabled"}},
		}),
		"status-empty":   StatusFromProto(&mcpmeshv1.GetStatusResponse{}),
		"config":         Config{"pagination.enabled": "true", "pagination.page_size": "50", "resilience.jitter": ""},
		"result-created": Result{Action: "created", Name: "files", Revision: 7},
		"result-dry-run": DryRun{DryRun: true, Action: "create", Kind: "server", Name: "files", Revision: 6, Changes: ServerChanges(nil, &created), Server: &created},
		"result-updated": Result{Action: "updated", Name: "files", Revision: 8, Changes: ServerChanges(&created, &updated, "env.TOKEN")},
		"dry-run-update": DryRun{DryRun: true, Action: "update", Kind: "server", Name: "files", Revision: 7, Changes: ServerChanges(&created, &updated, "env.TOKEN"), Server: &updated},
		"dry-run-remove": DryRun{DryRun: true, Action: "remove", Kind: "server", Name: "files", Revision: 7, Changes: ServerChanges(&created, nil)},
		"dry-run-setting": DryRun{DryRun: true, Action: "set", Kind: "setting", Name: "pagination.page_size", Revision: 7,
			Changes: ValueChanges(map[string]string{"pagination.page_size": "100"}, map[string]string{"pagination.page_size": "50"})},
		"dry-run-nothing": DryRun{DryRun: true, Action: "disable", Kind: "server", Name: "files", Revision: 7, Changes: []Change{}},
		"import-plan": ImportPlan{File: "claude_desktop_config.json", Format: "mcpServers", Created: 2, Revision: 12,
			Servers: []ImportItem{
				{Action: "create", Name: "files", Source: "files", Transport: "stdio", Target: "npx -y fs"},
				{Action: "rename", Name: "github-2", Source: "GitHub", Transport: "streamable-http", Target: "https://gh.example/mcp", Reason: "github is already registered"},
				{Action: "skip", Name: "old", Source: "old", Transport: "sse", Target: "http://h/sse", Reason: "already registered"},
			},
			Warnings: []string{"files: env TOKEN holds a ${...} placeholder, which mcpmesh does not expand"}},
		"import-plan-dry-run": ImportPlan{DryRun: true, File: "mcp.json", Format: "servers", Created: 1, Revision: 3,
			Servers: []ImportItem{{Action: "create", Name: "a", Source: "A", Transport: "stdio", Target: "a"}}, Warnings: []string{}},
		"import-plan-nothing": ImportPlan{File: "mcp.json", Format: "servers", Revision: 3,
			Servers: []ImportItem{{Action: "skip", Name: "a", Source: "a", Transport: "stdio", Target: "a", Reason: "already registered"}}, Warnings: []string{}},
		"exported": Exported{File: "/tmp/mcp.json", Servers: 2, Warnings: []string{"gh: not in the file format, left out: tags"}},
		"context-list": ContextList{File: "/home/me/.config/mcpmesh/config.yaml", CurrentContext: "prod", Contexts: []Context{
			{Name: "local", Addr: "127.0.0.1:7070", TokenFile: "/srv/data/admin.token"},
			{Name: "prod", Current: true, Addr: "cp.example.com:7070", CA: "/etc/ca.crt", TokenEnv: "PROD_TOKEN"},
			{Name: "staging", Addr: "cp.staging:7070", CA: "/etc/ca.crt", ClientCert: "/etc/me.crt", ClientKey: "/etc/me.key", TokenFile: "/t"},
			{Name: "lab", Addr: "10.0.0.1:7070", Insecure: true},
		}},
		"context-list-empty": ContextList{File: "/home/me/.config/mcpmesh/config.yaml", Contexts: []Context{}},
		"context-set": ContextResult{Action: "created", Name: "prod", File: "/home/me/.config/mcpmesh/config.yaml", Current: true,
			Context: &Context{Name: "prod", Current: true, Addr: "cp.example.com:7070", CA: "/etc/ca.crt", TokenEnv: "PROD_TOKEN"}},
		"context-deleted": ContextResult{Action: "deleted", Name: "old", File: "/home/me/.config/mcpmesh/config.yaml"},
		"version":         Version{Client: "v1.2.0", Server: "v1.1.0", Addr: "127.0.0.1:7070"},
		"version-client":  Version{Client: "v1.2.0"},
		"token-list": TokenList{
			TokenFromProto(&mcpmeshv1.Token{Id: "0a1b2c3d4e5f6071", Role: mcpmeshv1.Role_ROLE_DATAPLANE, CreatedAt: timestamppb.New(t0), Description: "k8s data planes"}, t0),
			TokenFromProto(&mcpmeshv1.Token{Id: "1122334455667788", Role: mcpmeshv1.Role_ROLE_VIEWER, CreatedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(time.Hour))}, t0.Add(2*time.Hour)),
			TokenFromProto(&mcpmeshv1.Token{Id: "99aabbccddeeff00", Role: mcpmeshv1.Role_ROLE_ADMIN, CreatedAt: timestamppb.New(t0), RevokedAt: timestamppb.New(t0.Add(time.Minute))}, t0),
		},
		"token-list-empty": TokenList{},
		"backup-written": BackupWritten{File: "/backup/mcpmesh.json", Bytes: 4096, Revision: 42, SourceStore: "bolt", CreatedAt: "2026-03-01T12:00:00Z",
			Contents: Counts{Servers: 3, Tokens: 2, ClientKeys: 1, PreviousSecrets: 1}},
		"restored": Restored{File: "/backup/mcpmesh.json", Revision: 43, BackupRevision: 42, BackupStore: "bolt", BackupTaken: "2026-03-01T12:00:00Z",
			Restored: Counts{Servers: 3, Tokens: 2, ClientKeys: 1, PreviousSecrets: 1}},
		"restored-dry-run": Restored{File: "-", DryRun: true, Revision: 7, BackupRevision: 42, BackupStore: "etcd", BackupTaken: "2026-03-01T12:00:00Z",
			Replaced: Counts{Servers: 1}, Restored: Counts{Servers: 3, Tokens: 2}},
		"token-created": CreatedToken{
			Token:  TokenFromProto(&mcpmeshv1.Token{Id: "0a1b2c3d4e5f6071", Role: mcpmeshv1.Role_ROLE_DATAPLANE, CreatedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(24 * time.Hour))}, t0),
			Secret: "mcpm_0a1b2c3d4e5f6071_" + strings.Repeat("5e", 32),
		},
		"token-created-file": CreatedToken{
			Token:      TokenFromProto(&mcpmeshv1.Token{Id: "0a1b2c3d4e5f6071", Role: mcpmeshv1.Role_ROLE_DATAPLANE, CreatedAt: timestamppb.New(t0)}, t0),
			SecretFile: "/run/mcpmesh/dataplane.token",
		},
		"token-revoked": RevokedToken{Action: "revoked",
			Token: TokenFromProto(&mcpmeshv1.Token{Id: "99aabbccddeeff00", Role: mcpmeshv1.Role_ROLE_ADMIN, CreatedAt: timestamppb.New(t0), RevokedAt: timestamppb.New(t0.Add(time.Minute))}, t0)},
	}
	for name, v := range views {
		for _, f := range []Format{Table, JSON, YAML} {
			t.Run(name+"."+string(f), func(t *testing.T) {
				var buf bytes.Buffer
				if err := Print(&buf, f, v); err != nil {
					t.Fatalf("print: %v", err)
				}
				path := filepath.Join("testdata", name+"."+string(f)+".golden")
				if *update {
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("read golden (run go test -update): %v", err)
				}
				if got := buf.String(); got != string(want) {
					t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
				}
				if strings.Contains(buf.String(), "s3cret") || strings.Contains(buf.String(), "xyz") {
					t.Errorf("a secret value was printed:\n%s", buf.String())
				}
			})
		}
	}
}

// TestJSONContracts checks the shapes other tools parse, independently of
// the golden files (which -update could silently change).
func TestJSONContracts(t *testing.T) {
	var buf bytes.Buffer
	if err := Print(&buf, JSON, ServerList{ServerFromProto(httpServer())}); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &list); err != nil {
		t.Fatalf("server list is not a JSON array: %v\n%s", err, buf.String())
	}
	for _, key := range []string{"name", "transport", "url", "tags", "enabled", "timeout", "revision"} {
		if _, ok := list[0][key]; !ok {
			t.Errorf("server list item lacks %q: %v", key, list[0])
		}
	}

	buf.Reset()
	st := StatusFromProto(&mcpmeshv1.GetStatusResponse{Revision: 1 << 60, Dataplanes: dataplanes(), Servers: []*mcpmeshv1.ServerStatus{serverStatus()}})
	if err := Print(&buf, JSON, st); err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Revision   json.Number `json:"revision"`
		Dataplanes []struct {
			ID        *string      `json:"id"`
			Revision  *json.Number `json:"revision"`
			Connected *bool        `json:"connected"`
		} `json:"dataplanes"`
		Servers []struct {
			Name  *string `json:"name"`
			State *string `json:"state"`
		} `json:"servers"`
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("status is not a JSON object: %v", err)
	}
	if obj.Revision.String() != "1152921504606846976" {
		t.Errorf("revision = %q, want the exact number 2^60", obj.Revision)
	}
	if len(obj.Dataplanes) != 2 || obj.Dataplanes[0].ID == nil || obj.Dataplanes[0].Revision == nil || obj.Dataplanes[0].Connected == nil {
		t.Errorf("dataplanes = %+v, want id, revision (number), connected", obj.Dataplanes)
	}
	if len(obj.Servers) != 1 || obj.Servers[0].Name == nil || obj.Servers[0].State == nil {
		t.Errorf("servers = %+v, want name and state", obj.Servers)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"table": Table, "json": JSON, "YAML": YAML} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "xml", "wide"} {
		if _, err := ParseFormat(in); err == nil || !strings.Contains(err.Error(), "--output") {
			t.Errorf("ParseFormat(%q) error = %v, want one naming --output", in, err)
		}
	}
}

// TestNoSecretsPrinted prints servers and a status carrying every kind of
// secret in every format and checks that none of the values appears.
func TestNoSecretsPrinted(t *testing.T) {
	stdio := stdioServer()
	stdio.Stdio.Args = []string{"--api-token", "argsecret1"}
	stdio.Stdio.SecretArgs = []uint32{1}
	web := httpServer()
	web.Http.Url = "https://alice:urlpass1@example.com/mcp?api_key=qsecret1&page=2"
	web.Endpoints = []string{"https://tok3n1@replica.example.com/mcp"}
	st := serverStatus()
	st.Backends[1].LastError = `connect: Post "https://alice:errpass1@example.com/mcp?token=errtok1": refused`
	secrets := []string{"s3cret", "other-secret", "argsecret1", "urlpass1", "qsecret1", "tok3n1", "Bearer xyz", "errpass1", "errtok1"}
	views := []View{
		ServerList{ServerFromProto(stdio), ServerFromProto(web)},
		ServerDetail{Server: ServerFromProto(web)},
		ServerDetail{Server: ServerFromProto(stdio)},
		StatusFromProto(&mcpmeshv1.GetStatusResponse{Servers: []*mcpmeshv1.ServerStatus{st}}),
		ServerDetail{Server: ServerFromProto(web), Status: ServerStatusFromProto(st)},
	}
	for _, f := range []Format{Table, JSON, YAML} {
		for _, v := range views {
			var buf bytes.Buffer
			if err := Print(&buf, f, v); err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if strings.Contains(buf.String(), s) {
					t.Errorf("format %v, %T shows secret %q:\n%s", f, v, s, buf.String())
				}
			}
			if _, summary := v.(Status); !(summary && f == Table) && !strings.Contains(buf.String(), "***") {
				t.Errorf("format %v, %T shows no mask:\n%s", f, v, buf.String())
			}
		}
	}
}
