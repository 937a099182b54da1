//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPrefixes registers servers with the real binaries: an empty --prefix exposes
// a server's tools under their own names, a name two servers expose goes to
// the first by name (the other is reported in /health), and a server with
// its own prefix and one with the default keep theirs.
func TestPrefixes(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-prefix")
	demo := bin("demo-backend")
	mustCtl(t, cp, "server", "add", "alpha", "--prefix", "", "--", demo, "--name", "alpha")
	mustCtl(t, cp, "server", "add", "beta", "--prefix", "", "--", demo, "--name", "beta")
	mustCtl(t, cp, "server", "add", "gamma", "--prefix", "g.", "--", demo, "--name", "gamma")
	mustCtl(t, cp, "server", "add", "delta", "--", demo, "--name", "delta")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "every server's tools listed", func() error {
		return toolsListed(c, []string{"whoami", "g.whoami", "delta__whoami"}, "beta__whoami", "alpha__whoami")
	})
	for tool, want := range map[string]string{"whoami": "alpha pid=", "g.whoami": "gamma pid=", "delta__whoami": "delta pid="} {
		if got := callText(t, c, tool, nil); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q…", tool, got, want)
		}
	}
	eventually(t, waitTimeout, "beta's shadowed tools in /health", func() error {
		s, err := dp.server("beta")
		if err != nil {
			return err
		}
		if !slices.Contains(s.Shadowed, "whoami") || !slices.Contains(s.Shadowed, "echo") {
			return fmt.Errorf("beta shadowed = %v, want its tools (alpha keeps them)", s.Shadowed)
		}
		return nil
	})
	if logs := dp.logLines("msg", "*", "kept_by", "alpha", "server", "beta"); len(logs) == 0 {
		t.Error("no log line names the server that kept a shadowed name")
	}
	// alpha goes: beta's tools take the names.
	mustCtl(t, cp, "server", "remove", "alpha")
	eventually(t, waitTimeout, "beta serves whoami once alpha is gone", func() error {
		got, err := callErr(c, rpcTimeout, "whoami", nil)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got, "beta pid=") {
			return fmt.Errorf("whoami = %q, want beta's", got)
		}
		return nil
	})
}
