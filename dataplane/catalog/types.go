// Package catalog aggregates the backends' lists into the one catalog a
// client sees. THIS FILE IS A STUB on branch r-backend: only the types the
// backend package needs, with the plan's API; the real package replaces it.
package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Kind is one of the four MCP list kinds.
type Kind uint8

const (
	Tools Kind = iota
	Prompts
	Resources
	Templates
)

// Kinds is every kind.
var Kinds = [4]Kind{Tools, Prompts, Resources, Templates}

// Desc describes how a kind appears on the wire.
type Desc struct {
	Method   string // "tools/list", "prompts/list", "resources/list", "resources/templates/list"
	Field    string // "tools", "prompts", "resources", "resourceTemplates"
	Key      string // member read as the item's key: "name", "name", "uri", "uriTemplate"
	Prefixed bool   // tools, prompts: exposed as <prefix><name>
}

var descs = [4]Desc{
	Tools:     {Method: "tools/list", Field: "tools", Key: "name", Prefixed: true},
	Prompts:   {Method: "prompts/list", Field: "prompts", Key: "name", Prefixed: true},
	Resources: {Method: "resources/list", Field: "resources", Key: "uri"},
	Templates: {Method: "resources/templates/list", Field: "resourceTemplates", Key: "uriTemplate"},
}

// Desc returns k's descriptor. k must be one of Kinds.
func (k Kind) Desc() Desc { return descs[k] }

// Item is one item of a list: its upstream key and upstream JSON.
type Item struct {
	Key string
	Raw json.RawMessage
}

// Page is one upstream page.
type Page struct {
	Items []Item
	Next  string
}

// Server is one backend as the catalog sees it.
type Server struct {
	Name, Prefix string
	Lists        [4][]Item // complete cached lists, upstream order (nil: kind not offered)
	Paged        [4]bool   // the backend paginates this kind upstream
}

// ParsePage reads a backend's list result for kind: items stay raw, keys
// are read with jsonrpc.LookupString; bad input is an error naming what is wrong.
func ParsePage(kind Kind, result json.RawMessage) (Page, error) {
	if int(kind) >= len(descs) {
		return Page{}, fmt.Errorf("parse list page: unknown list kind %d", kind)
	}
	d := kind.Desc()
	var p Page
	st, en, ok, err := jsonrpc.Lookup(result, d.Field)
	if err != nil {
		return Page{}, fmt.Errorf("parse %s result: %w", d.Method, err)
	}
	if ok && !bytes.Equal(result[st:en], []byte("null")) {
		var raws []json.RawMessage
		if err := json.Unmarshal(result[st:en], &raws); err != nil {
			return Page{}, fmt.Errorf("parse %s result: %q is not an array of JSON values: %w", d.Method, d.Field, err)
		}
		p.Items = make([]Item, len(raws))
		for i, raw := range raws {
			key, ok, err := jsonrpc.LookupString(raw, d.Key)
			switch {
			case err != nil:
				return Page{}, fmt.Errorf("parse %s result: %s[%d]: %w", d.Method, d.Field, i, err)
			case !ok:
				return Page{}, fmt.Errorf("parse %s result: %s[%d] has no %q string", d.Method, d.Field, i, d.Key)
			case key == "":
				return Page{}, fmt.Errorf("parse %s result: %s[%d] has an empty %q", d.Method, d.Field, i, d.Key)
			}
			p.Items[i] = Item{Key: key, Raw: raw}
		}
	}
	st, en, ok, err = jsonrpc.Lookup(result, "nextCursor")
	if err != nil {
		return Page{}, fmt.Errorf("parse %s result: %w", d.Method, err)
	}
	if ok && !bytes.Equal(result[st:en], []byte("null")) {
		if err := json.Unmarshal(result[st:en], &p.Next); err != nil {
			return Page{}, fmt.Errorf("parse %s result: \"nextCursor\" is not a string", d.Method)
		}
	}
	return p, nil
}
