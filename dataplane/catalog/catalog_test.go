package catalog_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
)

func TestKinds(t *testing.T) {
	want := []catalog.Desc{
		{Method: "tools/list", Field: "tools", Key: "name", Prefixed: true},
		{Method: "prompts/list", Field: "prompts", Key: "name", Prefixed: true},
		{Method: "resources/list", Field: "resources", Key: "uri"},
		{Method: "resources/templates/list", Field: "resourceTemplates", Key: "uriTemplate"},
	}
	for i, k := range catalog.Kinds {
		if int(k) != i || k.Desc() != want[i] || k.String() != want[i].Method {
			t.Errorf("kind %d: %v %+v", i, k, k.Desc())
		}
		if got, ok := catalog.KindOfMethod(want[i].Method); !ok || got != k {
			t.Errorf("KindOfMethod(%q) = %v, %v", want[i].Method, got, ok)
		}
	}
	if _, ok := catalog.KindOfMethod("tools/call"); ok {
		t.Error("KindOfMethod(tools/call) found a list kind")
	}
}

// alpha is a server with two tools and a prompt, the way TestPrefixes of
// the mcp-go based server had them.
func alpha(name, prefix string) catalog.Server {
	return catalog.Server{Name: name, Prefix: prefix, Lists: [4][]catalog.Item{
		catalog.Tools:   {toolItem("echo"), toolItem("block")},
		catalog.Prompts: {promptItem("greet")},
	}}
}

// TestPrefixes: a server may expose its tools and prompts under a prefix of
// its own, or under their own names (prefix ""). A name two servers expose
// goes to the first server by name; the other's item is reported as
// shadowed, and routes reach the server that kept the name.
func TestPrefixes(t *testing.T) {
	servers := []catalog.Server{alpha("gamma", "gh."), alpha("beta", ""), alpha("delta", "delta__"), alpha("alpha", "")}
	c := catalog.Build(servers)
	if got, want := c.Servers(), []string{"alpha", "beta", "delta", "gamma"}; !slices.Equal(got, want) {
		t.Fatalf("servers = %v, want %v", got, want)
	}
	want := []string{"echo", "block", "delta__echo", "delta__block", "gh.echo", "gh.block"}
	if got := walk(t, catalog.Tools, 0, nil, c); !slices.Equal(got, want) {
		t.Fatalf("tools = %v, want %v (servers by name, then upstream order)", got, want)
	}
	if got := walk(t, catalog.Prompts, 0, nil, c); !slices.Equal(got, []string{"greet", "delta__greet", "gh.greet"}) {
		t.Fatalf("prompts = %v", got)
	}
	for _, tt := range []struct {
		kind    catalog.Kind
		exposed string
		want    catalog.Route
		ok      bool
	}{
		{catalog.Tools, "echo", catalog.Route{Server: "alpha", Name: "echo"}, true},
		{catalog.Tools, "gh.echo", catalog.Route{Server: "gamma", Name: "echo"}, true},
		{catalog.Tools, "delta__block", catalog.Route{Server: "delta", Name: "block"}, true},
		{catalog.Tools, "beta__echo", catalog.Route{}, false},
		{catalog.Tools, "greet", catalog.Route{}, false},
		{catalog.Prompts, "greet", catalog.Route{Server: "alpha", Name: "greet"}, true},
		{catalog.Prompts, "gh.greet", catalog.Route{Server: "gamma", Name: "greet"}, true},
		{catalog.Prompts, "echo", catalog.Route{}, false},
	} {
		route := c.Tool
		if tt.kind == catalog.Prompts {
			route = c.Prompt
		}
		if got, ok := route(tt.exposed); got != tt.want || ok != tt.ok {
			t.Errorf("%s %q routes to %+v, %v; want %+v, %v", tt.kind, tt.exposed, got, ok, tt.want, tt.ok)
		}
	}
	sh := c.Shadowed()
	if got := sh["beta"]; !slices.Equal(got, []string{"echo", "block", "greet"}) {
		t.Errorf("shadowed of beta = %v, want its tools and prompt, kept by alpha", got)
	}
	if len(sh) != 1 {
		t.Errorf("shadowed = %v, want beta's only", sh)
	}
	for _, p := range c.Problems() {
		if p.Server != "beta" || p.KeptBy != "alpha" {
			t.Errorf("problem %+v, want only beta's names kept by alpha", p)
		}
	}
	if len(c.Problems()) != 3 {
		t.Errorf("problems = %v, want beta's three shadowed names", c.Problems())
	}
	// beta is removed: its names were shadowed, nothing changes for
	// clients, and nothing is reported any more.
	c = catalog.Build(slices.DeleteFunc(servers, func(s catalog.Server) bool { return s.Name == "beta" }))
	if sh := c.Shadowed(); len(sh) != 0 {
		t.Errorf("shadowed after beta left = %v, want none", sh)
	}
	if r, _ := c.Tool("echo"); r.Server != "alpha" {
		t.Errorf("echo after beta left routes to %q, want alpha", r.Server)
	}
}

// TestExposedJSON: the exposed item is the upstream JSON with the key
// replaced, every other byte as the backend sent it.
func TestExposedJSON(t *testing.T) {
	tool := `{ "title":"Echo <it>", "name" : "echo", "annotations":{"readOnlyHint":true},` +
		`"icons":[{"src":"data:x"}], "_meta":{"k":1e400}, "outputSchema":{"type":"object"},` +
		`"inputSchema":{"type":"object","properties":{"n":{"type":"integer","default":12345678901234567890}}}, "x":"\u00e9" }`
	res := `{"uri":"file:///shared.txt","name":"s","annotations":{"priority":0.5},"size":1}`
	tpl := `{"name":"docs","uriTemplate":"file:///docs/{name}","mimeType":"text/plain"}`
	srv := func(name, prefix string) catalog.Server {
		return catalog.Server{Name: name, Prefix: prefix, Lists: [4][]catalog.Item{
			catalog.Tools:     {{Key: "echo", Raw: json.RawMessage(tool)}},
			catalog.Resources: {{Key: "file:///shared.txt", Raw: json.RawMessage(res)}},
			catalog.Templates: {{Key: "file:///docs/{name}", Raw: json.RawMessage(tpl)}},
		}}
	}
	c := catalog.Build([]catalog.Server{srv("b", "b\"<"), srv("a", "")})
	tools := decode(t, catalog.Tools, mustList(t, c, catalog.Tools))
	if got := string(tools.raws[0]); got != tool {
		t.Errorf("unprefixed tool = %s, want the upstream bytes %s", got, tool)
	}
	if got, want := string(tools.raws[1]), strings.Replace(tool, `"echo"`, `"b\"<echo"`, 1); got != want {
		t.Errorf("prefixed tool = %s, want %s", got, want)
	}
	if r, ok := c.Tool(`b"<echo`); !ok || r != (catalog.Route{Server: "b", Name: "echo"}) {
		t.Errorf("route of the escaped prefix = %+v, %v", r, ok)
	}
	rs := decode(t, catalog.Resources, mustList(t, c, catalog.Resources))
	if string(rs.raws[0]) != res || string(rs.raws[1]) != strings.Replace(res, "file:///shared.txt", "mcpmesh://b/file:%2F%2F%2Fshared.txt", 1) {
		t.Errorf("resources = %s", rs.raws)
	}
	ts := decode(t, catalog.Templates, mustList(t, c, catalog.Templates))
	if string(ts.raws[0]) != tpl || string(ts.raws[1]) != strings.Replace(tpl, "file:///docs/{name}", "mcpmesh://b/file:%2F%2F%2Fdocs%2F{name}", 1) {
		t.Errorf("templates = %s", ts.raws)
	}
}

func mustList(t *testing.T, c *catalog.Catalog, k catalog.Kind) json.RawMessage {
	t.Helper()
	res, err := c.List(t.Context(), k, catalog.ListRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// uriServers are two servers that both offer file:///shared.txt and the
// template file:///docs/{name}, each with a resource of its own.
func uriServers() []catalog.Server {
	srv := func(name string) catalog.Server {
		return catalog.Server{Name: name, Prefix: name + "__", Lists: [4][]catalog.Item{
			catalog.Resources: {resourceItem("file:///shared.txt", "shared"), resourceItem(name+"://only", "only")},
			catalog.Templates: {templateItem("file:///docs/{name}", "docs"), templateItem(name+"://t/{id}", "t")},
		}}
	}
	return []catalog.Server{srv("beta"), srv("alpha")}
}

func TestResourceURIs(t *testing.T) {
	c := catalog.Build(uriServers())
	wantURIs := []string{"file:///shared.txt", "alpha://only", "mcpmesh://beta/file:%2F%2F%2Fshared.txt", "beta://only"}
	if got := walk(t, catalog.Resources, 0, nil, c); !slices.Equal(got, wantURIs) {
		t.Errorf("resources = %v, want %v", got, wantURIs)
	}
	wantTemplates := []string{"file:///docs/{name}", "alpha://t/{id}", "mcpmesh://beta/file:%2F%2F%2Fdocs%2F{name}", "beta://t/{id}"}
	if got := walk(t, catalog.Templates, 0, nil, c); !slices.Equal(got, wantTemplates) {
		t.Errorf("templates = %v, want %v", got, wantTemplates)
	}
	for _, tt := range []struct {
		uri  string
		want catalog.Route
		ok   bool
	}{
		{"file:///shared.txt", catalog.Route{Server: "alpha", Name: "file:///shared.txt"}, true},
		{"mcpmesh://beta/file:%2F%2F%2Fshared.txt", catalog.Route{Server: "beta", Name: "file:///shared.txt"}, true},
		{"beta://only", catalog.Route{Server: "beta", Name: "beta://only"}, true},
		// The first server by name keeps a contested template.
		{"file:///docs/readme", catalog.Route{Server: "alpha", Name: "file:///docs/readme"}, true},
		// The other copy is reachable through its mcpmesh:// template,
		// expanded by the client.
		{"mcpmesh://beta/file:%2F%2F%2Fdocs%2Freadme", catalog.Route{Server: "beta", Name: "file:///docs/readme"}, true},
		{"beta://t/42", catalog.Route{Server: "beta", Name: "beta://t/42"}, true},
		{"alpha://t/7", catalog.Route{Server: "alpha", Name: "alpha://t/7"}, true},
		{"mcpmesh://gone/file:%2F%2Fx", catalog.Route{}, false},
		{"mcpmesh://beta/%zz", catalog.Route{}, false},
		{"gamma://x", catalog.Route{}, false},
	} {
		if got, ok := c.Resource(tt.uri); got != tt.want || ok != tt.ok {
			t.Errorf("Resource(%q) = %+v, %v; want %+v, %v", tt.uri, got, ok, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct {
		tmpl string
		want catalog.Route
		ok   bool
	}{
		{"file:///docs/{name}", catalog.Route{Server: "alpha", Name: "file:///docs/{name}"}, true},
		{"mcpmesh://beta/file:%2F%2F%2Fdocs%2F{name}", catalog.Route{Server: "beta", Name: "file:///docs/{name}"}, true},
		{"beta://t/{id}", catalog.Route{Server: "beta", Name: "beta://t/{id}"}, true},
		{"beta://t/42", catalog.Route{}, false},
	} {
		if got, ok := c.Template(tt.tmpl); got != tt.want || ok != tt.ok {
			t.Errorf("Template(%q) = %+v, %v; want %+v, %v", tt.tmpl, got, ok, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct{ server, upstream, want string }{
		{"alpha", "file:///shared.txt", "file:///shared.txt"},
		{"beta", "file:///shared.txt", "mcpmesh://beta/file:%2F%2F%2Fshared.txt"},
		{"beta", "beta://only", "beta://only"},
		{"alpha", "file:///docs/x", "file:///docs/x"},
		{"beta", "file:///docs/x", "mcpmesh://beta/file:%2F%2F%2Fdocs%2Fx"},
		{"beta", "beta://t/1", "beta://t/1"},
		{"beta", "unlisted://y", "mcpmesh://beta/unlisted:%2F%2Fy"},
	} {
		got := c.ExposedURI(tt.server, tt.upstream)
		if got != tt.want {
			t.Errorf("ExposedURI(%s, %q) = %q, want %q", tt.server, tt.upstream, got, tt.want)
		}
		// Whatever is exposed routes back.
		if r, ok := c.Resource(got); !ok || r != (catalog.Route{Server: tt.server, Name: tt.upstream}) {
			t.Errorf("Resource(ExposedURI(%s, %q) = %q) = %+v, %v", tt.server, tt.upstream, got, r, ok)
		}
	}
}

func TestRewriteReadResult(t *testing.T) {
	up, ex := "file:///shared.txt", "mcpmesh://beta/file:%2F%2F%2Fshared.txt"
	for _, tt := range []struct{ name, in, want string }{
		{"text and blob", `{"contents":[{"uri":"file:///shared.txt","text":"x"}, {"blob":"AA==","uri":"file:///shared.txt"}],"_meta":{"a":1}}`,
			`{"contents":[{"uri":"mcpmesh://beta/file:%2F%2F%2Fshared.txt","text":"x"},{"blob":"AA==","uri":"mcpmesh://beta/file:%2F%2F%2Fshared.txt"}],"_meta":{"a":1}}`},
		{"other URIs kept", `{"contents":[{"uri":"file:///other","text":"x"}]}`, `{"contents":[{"uri":"file:///other","text":"x"}]}`},
		{"no contents", `{"x":1}`, `{"x":1}`},
		{"malformed", `{"contents":[{"uri":}]}`, `{"contents":[{"uri":}]}`},
	} {
		if got := string(catalog.RewriteReadResult(json.RawMessage(tt.in), up, ex)); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	same := `{"contents":[{"uri":"a://x"}]}`
	if got := string(catalog.RewriteReadResult(json.RawMessage(same), "a://x", "a://x")); got != same {
		t.Errorf("unchanged URI: got %s", got)
	}
}

func TestProblems(t *testing.T) {
	c := catalog.Build([]catalog.Server{
		{Name: "a", Prefix: "a__", Lists: [4][]catalog.Item{
			catalog.Tools: {
				toolItem("x"), toolItem("x"),
				{Key: "", Raw: json.RawMessage(`{"name":""}`)},
				{Key: "nokey", Raw: json.RawMessage(`{"title":"nokey"}`)},
				{Key: "bad", Raw: json.RawMessage(`{"name":"bad",`)},
				{Key: "num", Raw: json.RawMessage(`{"name":7}`)},
				{Key: "other", Raw: json.RawMessage(`{"name":"another"}`)},
				{Key: "é", Raw: json.RawMessage(`{"name":"\u00e9"}`)},
			},
			catalog.Resources: {resourceItem("r://1", "1"), resourceItem("r://1", "again")},
			catalog.Templates: {templateItem("t://{unclosed", "t")},
		}},
		{Name: "a", Prefix: "dup__", Lists: [4][]catalog.Item{catalog.Tools: {toolItem("y")}}},
		{Name: "a", Prefix: "dup2__", Lists: [4][]catalog.Item{catalog.Tools: {toolItem("z")}}},
	})
	if got := walk(t, catalog.Tools, 0, nil, c); !slices.Equal(got, []string{"a__x", "a__é"}) {
		t.Errorf("tools = %v, want a__x and a__é only", got)
	}
	if c.Count(catalog.Resources) != 1 || c.Count(catalog.Templates) != 0 {
		t.Errorf("resources %d, templates %d; want 1 and 0", c.Count(catalog.Resources), c.Count(catalog.Templates))
	}
	if got := len(c.Problems()); got != 10 {
		t.Errorf("%d problems, want 10 (2 servers, 6 tools, resource, template): %+v", got, c.Problems())
	}
	for _, p := range c.Problems() {
		if p.Server != "a" || p.Reason == "" {
			t.Errorf("problem %+v", p)
		}
	}
	if len(c.Shadowed()) != 0 {
		t.Errorf("shadowed = %v: a server's own duplicates are problems, not shadowing", c.Shadowed())
	}
}

// TestConcurrentUse reads one catalog from many goroutines, as the router
// does; -race checks the lazily compiled templates.
func TestConcurrentUse(t *testing.T) {
	f := bigFleet()
	c := f.catalog()
	want := walk(t, catalog.Resources, 0, nil, c)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if r, ok := c.Resource("tpl://s05/0000/x"); !ok || r.Server != "s05" {
				t.Errorf("template route = %+v, %v", r, ok)
			}
			if got := walk(t, catalog.Resources, 3+i, f, c); !slices.Equal(got, want) {
				t.Errorf("concurrent walk of %d items, want %d", len(got), len(want))
			}
		})
	}
	wg.Wait()
}
