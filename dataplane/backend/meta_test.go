package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// setMetaReference is setMeta as it was: each member set in turn with
// jsonrpc.Set, in a _meta made when absent. setMeta must give the same
// bytes.
func setMetaReference(params json.RawMessage, members []metaMember) (json.RawMessage, error) {
	if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		params = json.RawMessage(`{}`)
	}
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil {
		return nil, err
	}
	meta := []byte(`{}`)
	if ok {
		if params[ms] != '{' {
			return nil, errors.New(`"_meta" is not an object`)
		}
		meta = params[ms:me]
	}
	for _, mm := range members {
		if meta, err = jsonrpc.Set(meta, mm.key, mm.val); err != nil {
			return nil, err
		}
	}
	if ok {
		return jsonrpc.Splice(params, ms, me, meta), nil
	}
	return jsonrpc.Set(params, "_meta", meta)
}

var metaParams = []string{
	``, `null`, ` null `, `{}`, ` { } `, `{ }`, "{\n}\n",
	`{"name":"echo","arguments":{"text":"hi"}}`,
	` {"name":"echo"} `,
	`{"name":"echo","_meta":{}}`,
	`{"name":"echo","_meta":{ }}`,
	`{"_meta":{"progressToken":7},"name":"echo"}`,
	`{"name":"echo","_meta":{"progressToken":"a}b"}}`,
	`{"name":"echo","_meta":{"io.modelcontextprotocol/clientInfo":{"name":"x"},"progressToken":1}}`,
	`{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}`,
	`{"_meta":{"io.modelcontextprotocol/logLevel":"debug"}}`,
	`{"_meta":{"io.modelcontext\u0070rotocol/logLevel":"debug"}}`,
	`{"_meta":[]}`, `{"_meta":"x"}`, `{"_meta":null}`, `[]`, `"x"`, `{"a":}`, `{"_meta":{"a":}}`,
	`{"a":"}"}`, `{"a":{"b":"}"}}`, `{"a":1,"_meta":{"b":{"c":"}"}},"d":"}"}`,
}

var metaCallers = []Caller{
	{},
	{Capabilities: json.RawMessage(`{"sampling":{}}`), Name: "c", Version: "1"},
	{Capabilities: json.RawMessage(`{}`), Name: "c\"q", Version: "\u00e9", LogLevel: "debug"},
}

func TestSetMetaAsByEachSet(t *testing.T) {
	for _, c := range metaCallers {
		members, err := encodeMeta(c.Capabilities, c.Name, c.Version, c.LogLevel)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range metaParams {
			checkSetMeta(t, json.RawMessage(p), members)
		}
	}
}

func checkSetMeta(t *testing.T, params json.RawMessage, members []metaMember) {
	t.Helper()
	orig := bytes.Clone(params)
	want, werr := setMetaReference(bytes.Clone(params), members)
	got, gerr := setMeta(params, members)
	if !bytes.Equal(params, orig) {
		t.Fatalf("setMeta(%s) changed its params", orig)
	}
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("setMeta(%s): err %v, want %v", orig, gerr, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("setMeta(%s):\n got %s\nwant %s", orig, got, want)
	}
}

func FuzzSetMeta(f *testing.F) {
	for _, p := range metaParams {
		f.Add([]byte(p), "", "", "")
	}
	f.Add([]byte(`{"_meta":{"x":1}}`), `{"roots":{}}`, "n", "info")
	f.Fuzz(func(t *testing.T, params []byte, caps, name, level string) {
		var c json.RawMessage
		if json.Valid([]byte(caps)) {
			c = json.RawMessage(caps)
		}
		members, err := encodeMeta(c, name, "v", level)
		if err != nil {
			t.Skip()
		}
		checkSetMeta(t, params, members)
	})
}

// The _meta of a caller is cached per connection, and only reused for a
// caller equal in every field: one whose capabilities (or info, or level)
// differ gets its own.
func TestModernMetaCache(t *testing.T) {
	m := &modernConn{gw: Caller{Capabilities: json.RawMessage(`{"gw":{}}`), Name: "mcpmesh", Version: "v"}}
	params := json.RawMessage(`{"name":"echo"}`)
	metaOf := func(who *Caller) map[string]json.RawMessage {
		t.Helper()
		p, h, err := m.prepare("tools/call", params, who)
		if err != nil {
			t.Fatal(err)
		}
		if h.Get(mcp.HeaderMethod) != "tools/call" || h.Get(mcp.HeaderName) != "echo" {
			t.Fatalf("headers %v", h)
		}
		wp, _, err := ModernRequest("tools/call", params, func() Caller {
			c := m.gw
			if who != nil {
				c = *who
				if c.Name == "" {
					c.Name, c.Version = m.gw.Name, m.gw.Version
				}
			}
			return c
		}())
		if err != nil || !bytes.Equal(p, wp) {
			t.Fatalf("prepare gave %s, ModernRequest %s (%v)", p, wp, err)
		}
		var v struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		}
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatal(err)
		}
		return v.Meta
	}
	caps := []byte(`{"sampling":{}}`)
	a := &Caller{Capabilities: caps, Name: "a", Version: "1"}
	for range 2 {
		if got := string(metaOf(a)[mcp.MetaKeyClientCapabilities]); got != `{"sampling":{}}` {
			t.Fatalf("caps %s", got)
		}
	}
	copy(caps, `{"roots":{}}  `) // the caller's buffer changes: a different caller
	a.Capabilities = caps[:len(`{"roots":{}}`)]
	if got := string(metaOf(a)[mcp.MetaKeyClientCapabilities]); got != `{"roots":{}}` {
		t.Fatalf("caps after change %s", got)
	}
	b := &Caller{Capabilities: json.RawMessage(`{"roots":{}}`), Name: "b", Version: "1"}
	if got := string(metaOf(b)[mcp.MetaKeyClientInfo]); got != `{"name":"b","version":"1"}` {
		t.Fatalf("info %s", got)
	}
	b.LogLevel = "debug"
	if got := string(metaOf(b)[mcp.MetaKeyLogLevel]); got != `"debug"` {
		t.Fatalf("level %s", got)
	}
	b.LogLevel = ""
	if _, has := metaOf(b)[mcp.MetaKeyLogLevel]; has {
		t.Fatal("level kept from an earlier request")
	}
	if got := string(metaOf(nil)[mcp.MetaKeyClientCapabilities]); got != `{"gw":{}}` {
		t.Fatalf("gateway caps %s", got)
	}
	if got := string(metaOf(&Caller{})[mcp.MetaKeyClientInfo]); got != `{"name":"mcpmesh","version":"v"}` {
		t.Fatalf("anonymous caller's info %s", got)
	}
	for i := range metaCacheSize + 10 { // overflowing starts over
		metaOf(&Caller{Name: "n", Version: string(rune('a' + i%26)), LogLevel: string(rune('a' + i/26))})
	}
	if n := len(m.meta.entries); n > metaCacheSize {
		t.Fatalf("%d cached", n)
	}
}
