package backend

import (
	"slices"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// TestStdioChildEnvironment starts a real stdio child that answers with its
// environment: it holds the allow-listed part of the data plane's, the names
// ChildEnv adds and the registration's env, never MCPMESH_* nor anything else.
func TestStdioChildEnvironment(t *testing.T) {
	t.Setenv("MCPMESH_TOKEN_FILE", "/real/env/admin.token")
	for _, tc := range []struct {
		name    string
		environ []string // nil: the process's own
		want    []string // besides the registration's env
	}{
		{
			name: "injected",
			environ: []string{"PATH=/usr/bin:/bin", "HOME=/home/dp", "LC_ALL=C", "LC_TIME=de_DE", "EXTRA_ONE=1",
				"MCPMESH_TOKEN_FILE=/data/admin.token", "MCPMESH_EXTRA_X=1", "AWS_SECRET_ACCESS_KEY=leak", "GITHUB_TOKEN=leak", "EXTRAX=no"},
			want: []string{"EXTRA_ONE=1", "HOME=/home/dp", "LC_ALL=C", "LC_TIME=de_DE", "PATH=/usr/bin:/bin"},
		},
		{name: "process environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *ManagerOptions) {
				o.Environ = tc.environ
				o.ChildEnv = []string{"EXTRA_*"}
			})
			srv := stdioServer("envs", t.TempDir())
			srv.Stdio.Env[envStdioServer] = "env"
			srv.Stdio.Env["REG_SECRET"] = "from-registration"
			e.apply(srv)
			b := e.backend("envs")
			e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)
			got := strings.Split(callText(t, b, "environ", nil), "\n")
			slices.Sort(got)
			for _, kv := range got {
				if strings.HasPrefix(kv, "MCPMESH_") && kv != envStdioServer+"=env" {
					t.Errorf("child inherited %s", kv)
				}
			}
			if !slices.Contains(got, "REG_SECRET=from-registration") || !slices.Contains(got, envStdioServer+"=env") {
				t.Errorf("child lacks the registration's env: %q", got)
			}
			if tc.environ == nil {
				for _, kv := range got {
					k, _, _ := strings.Cut(kv, "=")
					if k != "REG_SECRET" && k != envStdioServer && !slices.ContainsFunc(DefaultChildEnv, func(a string) bool {
						p, pre := strings.CutSuffix(a, "*")
						return k == a || pre && strings.HasPrefix(k, p)
					}) && !strings.HasPrefix(k, "EXTRA_") {
						t.Errorf("child inherited %s, which is not allow-listed", kv)
					}
				}
				return
			}
			want := slices.Sorted(slices.Values(append(tc.want, "REG_SECRET=from-registration", envStdioServer+"=env")))
			if !slices.Equal(got, want) {
				t.Errorf("child environment\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestCheckChildEnv(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"NODE_OPTIONS", "PYTHON*", "http_proxy"}, true},
		{[]string{"MCPMESH_TOKEN_FILE"}, false},
		{[]string{"mcpmesh_x"}, false},
		{[]string{"MCP*"}, false}, // would match MCPMESH_*
		{[]string{"*"}, false},
		{[]string{""}, false},
		{[]string{"A=B"}, false},
		{[]string{"A*B"}, false},
	} {
		if err := CheckChildEnv(tc.names); (err == nil) != tc.ok {
			t.Errorf("CheckChildEnv(%q) = %v, want ok=%v", tc.names, err, tc.ok)
		}
	}
}
