package cmd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func readStdio() *mcpmeshv1.Server {
	return &mcpmeshv1.Server{Name: "files", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Redacted: true,
		Stdio: &mcpmeshv1.StdioConfig{Command: "npx", Args: []string{"--token", "***"}, SecretArgs: []uint32{1}, Env: map[string]string{"A": "***", "B": "***"}},
		Tags:  []string{"x"}, Prefix: proto.String("f."), ModRevision: 4}
}

func TestApplyUpdate(t *testing.T) {
	changedOf := func(names ...string) func(string) bool {
		return func(n string) bool { return slices.Contains(names, n) }
	}
	s := readStdio()
	renewed, err := applyUpdate(s, nil, updateFlags{env: []string{"A=new", "C=c"}, unsetEnv: []string{"B"}, tags: []string{"y"},
		untags: []string{"x"}, timeout: 3 * time.Second, defaultPrefix: true, session: "per-client"},
		changedOf("env", "unset-env", "tag", "untag", "timeout", "default-prefix", "session"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(renewed, []string{"env.A"}) {
		t.Errorf("renewed = %q, want env.A", renewed)
	}
	env := s.GetStdio().GetEnv()
	if env["A"] != "new" || env["C"] != "c" || len(env) != 2 || !slices.Equal(s.GetTags(), []string{"y"}) ||
		s.GetTimeout().AsDuration() != 3*time.Second || s.Prefix != nil || s.GetSession() != mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT {
		t.Errorf("updated = %v", s)
	}
	if !slices.Equal(s.GetStdio().GetArgs(), []string{"--token", "***"}) || !slices.Equal(s.GetStdio().GetSecretArgs(), []uint32{1}) {
		t.Errorf("args changed without a new command: %v", s.GetStdio())
	}

	s = readStdio()
	if _, err := applyUpdate(s, []string{"uvx", "srv", "--key", "k"}, updateFlags{secretArgs: []uint{3}}, changedOf("secret-arg")); err != nil {
		t.Fatal(err)
	}
	if s.GetStdio().GetCommand() != "uvx" || !slices.Equal(s.GetStdio().GetArgs(), []string{"srv", "--key", "k"}) || !slices.Equal(s.GetStdio().GetSecretArgs(), []uint32{2}) {
		t.Errorf("new command = %v", s.GetStdio())
	}

	for _, tc := range []struct {
		f       updateFlags
		changed []string
		command []string
		want    string
	}{
		{updateFlags{url: "http://h/mcp"}, []string{"url"}, nil, `--url does not apply: server "files" is a stdio server`},
		{updateFlags{headers: []string{"A=b"}}, []string{"header"}, nil, "--header does not apply"},
		{updateFlags{secretArgs: []uint{1}}, []string{"secret-arg"}, nil, "--secret-arg goes with a new command after --"},
		{updateFlags{unsetEnv: []string{"Z"}}, []string{"unset-env"}, nil, "--unset-env Z: the server has no such key"},
		{updateFlags{env: []string{"A=1"}, unsetEnv: []string{"A"}}, []string{"env", "unset-env"}, nil, "--unset-env A: the same key is also set"},
		{updateFlags{untags: []string{"nope"}}, []string{"untag"}, nil, "--untag nope: the server has no such tag"},
		{updateFlags{tags: []string{"x"}, untags: []string{"x"}}, []string{"tag", "untag"}, nil, "--untag x: the same tag is also added"},
		{updateFlags{timeout: -time.Second}, []string{"timeout"}, nil, "--timeout must not be negative"},
		{updateFlags{backoff: "1s,x"}, []string{"backoff"}, nil, "--backoff"},
		{updateFlags{prefix: "bad prefix!"}, []string{"prefix"}, nil, "--prefix"},
		{updateFlags{session: "sometimes"}, []string{"session"}, nil, "--session"},
		{updateFlags{env: []string{"NOEQUALS"}}, []string{"env"}, nil, "want KEY=VALUE"},
	} {
		_, err := applyUpdate(readStdio(), tc.command, tc.f, changedOf(tc.changed...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.changed, err, tc.want)
		}
	}

	web := &mcpmeshv1.Server{Name: "web", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: "http://a/mcp"}}
	if _, err := applyUpdate(web, []string{"cmd"}, updateFlags{}, changedOf()); err == nil || !strings.Contains(err.Error(), "a command after -- does not apply") {
		t.Errorf("command on a URL server: %v", err)
	}
	if _, err := applyUpdate(web, nil, updateFlags{transport: "websocket"}, changedOf("transport")); err == nil || !strings.Contains(err.Error(), `--transport "websocket"`) {
		t.Errorf("bad transport: %v", err)
	}
	if _, err := applyUpdate(web, nil, updateFlags{endpoints: []string{"http://b/mcp"}, url: "http://c/mcp"}, changedOf("endpoint", "url")); err != nil {
		t.Fatal(err)
	}
	if web.GetHttp().GetUrl() != "http://c/mcp" || !slices.Equal(web.GetEndpoints(), []string{"http://b/mcp"}) {
		t.Errorf("web = %v", web)
	}
}

func TestFreeName(t *testing.T) {
	long := strings.Repeat("a", 32)
	taken := map[string]string{"x": "", "x-2": "", long: ""}
	if n, _ := freeName("x", taken); n != "x-3" {
		t.Errorf("freeName(x) = %q, want x-3", n)
	}
	if n, _ := freeName(long, taken); n != strings.Repeat("a", 30)+"-2" {
		t.Errorf("freeName(32 a) = %q, want 30 a and -2", n)
	}
}
