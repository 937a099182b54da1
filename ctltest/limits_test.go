package ctltest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Bounds reach the operator as one line naming the field or key.
func TestLimitsNameTheField(t *testing.T) {
	cp := startControlPlane(t)
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"server", "add", "a", "--env", "K=" + strings.Repeat("v", 17<<10), "--", "cmd"}, `server.stdio.env: value of "K" is 17408 bytes long: at most 16384 are allowed`},
		{[]string{"server", "add", "a", "--url", "http://h/" + strings.Repeat("p", 2<<10)}, "server.http.url: is 2057 bytes long: at most 2048 are allowed"},
		{append([]string{"server", "add", "a", "--"}, strings.Fields(strings.Repeat("x ", 258))...), "server.stdio.args: 257 arguments is too many: at most 256 are allowed"},
		{[]string{"server", "add", "a", "--backoff", "1s,1ms", "--", "cmd"}, "server.backoff[1]: 1ms is out of range: use 10ms up to 10m0s"},
		{[]string{"config", "set", "resilience.probe_interval", "1ns"}, `resilience.probe_interval: "1ns" is too short: use at least 100ms`},
		{[]string{"config", "set", "resilience.backoff", "1s,5ms"}, `"5ms" is too short: use at least 10ms`},
	} {
		cp.wantFail(t, tc.wantErr, tc.args...)
	}
	if out := cp.mustRun(t, "server", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused adds stored something: %s", out)
	}
}

// mcpctl reads answers past gRPC's 4 MiB default: six servers with 1 MB
// descriptions make a 6 MB list.
func TestListPastGRPCDefault(t *testing.T) {
	cp := startControlPlane(t)
	reg := mcpmeshv1.NewRegistryServiceClient(cp.cc)
	for i := range 6 {
		s := &mcpmeshv1.Server{Name: fmt.Sprintf("s%d", i), Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
			Stdio: &mcpmeshv1.StdioConfig{Command: "cmd", Args: make([]string, 250)}, Description: strings.Repeat("d", 4<<10)}
		for j := range s.Stdio.Args {
			s.Stdio.Args[j] = strings.Repeat("a", 4<<10)
		}
		if _, err := reg.CreateServer(context.Background(), &mcpmeshv1.CreateServerRequest{Server: s}); err != nil {
			t.Fatal(err)
		}
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(cp.mustRun(t, "server", "list", "-o", "json")), &list); err != nil || len(list) != 6 {
		t.Fatalf("server list: %d servers, %v; want 6", len(list), err)
	}
}
