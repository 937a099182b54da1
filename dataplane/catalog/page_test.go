package catalog_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

func TestParsePage(t *testing.T) {
	tests := []struct {
		name    string
		kind    catalog.Kind
		in      string
		keys    []string
		next    string
		wantErr string
	}{
		{"tools", catalog.Tools, `{"tools":[{"name":"a","x":1},{"title":"B","name":"b\u00e9"}],"nextCursor":"n1"}`, []string{"a", "bé"}, "n1", ""},
		{"last page", catalog.Prompts, `{"prompts":[{"name":"p"}]}`, []string{"p"}, "", ""},
		{"null cursor", catalog.Resources, `{"resources":[{"uri":"u://1"}],"nextCursor":null}`, []string{"u://1"}, "", ""},
		{"templates", catalog.Templates, `{"resourceTemplates":[{"uriTemplate":"t://{x}"}],"_meta":{}}`, []string{"t://{x}"}, "", ""},
		{"no array", catalog.Tools, `{"nextCursor":"n"}`, nil, "n", ""},
		{"null array", catalog.Tools, `{"tools":null}`, nil, "", ""},
		{"empty array", catalog.Tools, `{"tools":[]}`, nil, "", ""},
		{"not an object", catalog.Tools, `[1]`, nil, "", "not a JSON object"},
		{"malformed", catalog.Tools, `{"tools":[{"name":"a"}`, nil, "", "tools/list result"},
		{"not an array", catalog.Tools, `{"tools":{"name":"a"}}`, nil, "", `"tools" is not an array`},
		{"bad item JSON", catalog.Tools, `{"tools":[{"name":"a",}]}`, nil, "", `"tools" is not an array`},
		{"item not an object", catalog.Tools, `{"tools":[{"name":"a"},3]}`, nil, "", "tools[1]: not a JSON object"},
		{"no key", catalog.Resources, `{"resources":[{"name":"a"}]}`, nil, "", `resources[0] has no "uri" string`},
		{"key not a string", catalog.Tools, `{"tools":[{"name":1}]}`, nil, "", `tools[0] has no "name" string`},
		{"empty key", catalog.Templates, `{"resourceTemplates":[{"uriTemplate":""}]}`, nil, "", `resourceTemplates[0] has an empty "uriTemplate"`},
		{"cursor not a string", catalog.Tools, `{"tools":[],"nextCursor":5}`, nil, "", `"nextCursor" is not a string`},
		{"unknown kind", catalog.Kind(4), `{}`, nil, "", "list kind 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := catalog.ParsePage(tt.kind, json.RawMessage(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, it := range p.Items {
				keys = append(keys, it.Key)
			}
			if strings.Join(keys, "|") != strings.Join(tt.keys, "|") || p.Next != tt.next {
				t.Fatalf("page = %v next %q, want %v next %q", keys, p.Next, tt.keys, tt.next)
			}
		})
	}
	// Items are the upstream bytes, within the result (no copy each).
	in := []byte(`{"tools":[ {"name":"a", "z":[1, 2]} ]}`)
	p, err := catalog.ParsePage(catalog.Tools, in)
	if err != nil || string(p.Items[0].Raw) != `{"name":"a", "z":[1, 2]}` {
		t.Fatalf("raw item = %s, %v", p.Items[0].Raw, err)
	}
	in[13] = 'X'
	if string(p.Items[0].Raw) == `{"name":"a", "z":[1, 2]}` {
		t.Fatal("the item is a copy: a cached list would hold its bytes twice")
	}
}

func FuzzParsePage(f *testing.F) {
	f.Add(uint8(0), `{"tools":[{"name":"a","x":1},{"name":"b\u00e9"}],"nextCursor":"n1"}`)
	f.Add(uint8(2), `{"resources":[{"uri":"u://1"}],"nextCursor":null}`)
	f.Add(uint8(3), `{"resourceTemplates":[{"uriTemplate":"t://{x}"}]}`)
	f.Add(uint8(1), `{"prompts":[{"name":1}]}`)
	f.Add(uint8(0), `{"tools":[{"name":"a"}`)
	f.Fuzz(func(t *testing.T, k uint8, in string) {
		kind := catalog.Kind(k % 4)
		p, err := catalog.ParsePage(kind, json.RawMessage(in))
		if err != nil {
			return
		}
		for _, it := range p.Items {
			if !json.Valid(it.Raw) {
				t.Fatalf("item %q is not valid JSON", it.Raw)
			}
			key, ok, err := jsonrpc.LookupString(it.Raw, kind.Desc().Key)
			if err != nil || !ok || key != it.Key || key == "" {
				t.Fatalf("item %s has key %q; its %s is %q, %v, %v", it.Raw, it.Key, kind.Desc().Key, key, ok, err)
			}
		}
		// Whatever a backend sends, the catalog built from it lists valid
		// JSON and routes every item it lists.
		srv := catalog.Server{Name: "s", Prefix: "s__"}
		srv.Lists[kind] = p.Items
		c := catalog.Build([]catalog.Server{srv})
		res, err := c.List(t.Context(), kind, catalog.ListRequest{}, nil)
		if err != nil || !json.Valid(res) {
			t.Fatalf("list of the page = %s, %v", res, err)
		}
		for _, it := range p.Items {
			var found bool
			switch kind {
			case catalog.Tools:
				_, found = c.Tool("s__" + it.Key)
			case catalog.Prompts:
				_, found = c.Prompt("s__" + it.Key)
			case catalog.Resources:
				_, found = c.Resource(it.Key)
			default:
				found = true
			}
			if !found && len(c.Problems()) == 0 {
				t.Fatalf("item %q neither routed nor reported", it.Key)
			}
		}
	})
}
