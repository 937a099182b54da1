package catalog

import (
	"strings"
	"testing"
)

func TestMeshURIRoundTrip(t *testing.T) {
	for _, uri := range []string{"file:///shared.txt", "https://x/a b?c=d#e", "a/b%2Fc", "ünïcode://x"} {
		m := meshURI("beta", uri)
		srv, orig, ok := parseMeshURI(m)
		if !ok || srv != "beta" || orig != uri {
			t.Errorf("parseMeshURI(%q) = %q, %q, %v; want beta, %q", m, srv, orig, ok, uri)
		}
	}
	for _, bad := range []string{"", "mcpmesh://", "mcpmesh://beta", "mcpmesh://beta/", "mcpmesh:///x", "mcpmesh://beta/%zz", "file:///x"} {
		if _, _, ok := parseMeshURI(bad); ok {
			t.Errorf("parseMeshURI(%q) accepted a malformed URI", bad)
		}
	}
}

func TestMeshTemplate(t *testing.T) {
	mt, err := meshTemplate("beta", "file:///docs/{name}{?q}")
	if err != nil {
		t.Fatalf("meshTemplate: %v", err)
	}
	if want := "mcpmesh://beta/file:%2F%2F%2Fdocs%2F{name}{?q}"; mt != want {
		t.Errorf("template = %q, want %q", mt, want)
	}
	if _, err := meshTemplate("beta", "file:///{unclosed"); err == nil || !strings.Contains(err.Error(), "unclosed") {
		t.Errorf("unclosed expression: err = %v, want one saying so", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain": `"plain"`, `a"b\c`: `"a\"b\\c"`, "<&>": `"<&>"`, "é": `"é"`, "\n": `"\n"`,
		"\u2028": `"\u2028"`, "\xff": `"\ufffd"`,
	} {
		if got := string(quote(in)); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseMeshURI checks that client-supplied URIs never panic the parser
// and that every URI the gateway builds parses back to what it was built
// from.
func FuzzParseMeshURI(f *testing.F) {
	f.Add("file:///shared.txt")
	f.Add("mcpmesh://beta/file:%2F%2F%2Fshared.txt")
	f.Add("mcpmesh://a/%")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _ = parseMeshURI(s)
		srv, orig, ok := parseMeshURI(meshURI("srv", s))
		if s != "" && (!ok || srv != "srv" || orig != s) {
			t.Fatalf("round trip of %q = %q, %q, %v", s, srv, orig, ok)
		}
		_, _ = meshTemplate("srv", s)
	})
}
