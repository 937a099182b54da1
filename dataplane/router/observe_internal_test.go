package router

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzWithMetaTrace: whatever params a client sends, setting the trace
// context in _meta gives valid JSON that carries it and keeps every other
// member, or an error (never a panic, never broken JSON upstream).
func FuzzWithMetaTrace(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"x"}`, `{"_meta":{}}`, `{"_meta":{"progressToken":1,"traceparent":"old"}}`,
		`{"_meta":null}`, `{"_meta":"s"}`, `{"a":[1,{"_meta":2}]}`, ``, `null`, ` { "a" : 1 } `} {
		f.Add(s, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v")
	}
	f.Fuzz(func(t *testing.T, params, parent, state string) {
		// parent and state come from the tracer's propagator: ASCII.
		if parent == "" || !utf8.ValidString(parent) || !utf8.ValidString(state) || (params != "" && (!json.Valid([]byte(params)) || json.Unmarshal([]byte(params), new(map[string]json.RawMessage)) != nil)) {
			return // the front hands the router valid JSON-RPC params only (or none)
		}
		out, err := withMetaTrace(json.RawMessage(params), parent, state)
		if err != nil {
			return
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("withMetaTrace(%q) = %q: %v", params, out, err)
		}
		if p, _ := metaTrace(out); p != parent {
			t.Fatalf("withMetaTrace(%q) = %q: traceparent %q, want %q", params, out, p, parent)
		}
		var in map[string]json.RawMessage
		_ = json.Unmarshal([]byte(params), &in)
		for k := range in {
			if _, ok := got[k]; !ok {
				t.Fatalf("withMetaTrace(%q) = %q lost member %q", params, out, k)
			}
		}
	})
}
