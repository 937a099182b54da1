package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Item is one item of a list as its backend sent it: Key is its upstream
// name, URI or URI template, Raw its JSON object.
type Item struct {
	Key string
	Raw json.RawMessage
}

// Page is one upstream page of a list.
type Page struct {
	Items []Item
	Next  string // the backend's nextCursor; "" on its last page
}

// ParsePage reads a backend's list result for kind, such as
// {"tools":[...],"nextCursor":"..."}. Items stay raw and alias result (no
// copy per item: a cached list holds its pages' bytes once); only their keys
// are read, and result must not be modified afterwards. A result
// without the array, or with a null one, is an empty page, as typed MCP
// clients read it; anything else malformed is an error naming what is wrong.
func ParsePage(kind Kind, result json.RawMessage) (Page, error) {
	if !kind.Valid() {
		return Page{}, fmt.Errorf("parse list page: %s", kind)
	}
	d := kind.Desc()
	var p Page
	st, en, ok, err := jsonrpc.Lookup(result, d.Field)
	if err != nil {
		return Page{}, fmt.Errorf("parse %s result: %w", d.Method, err)
	}
	if ok && !bytes.Equal(result[st:en], []byte("null")) {
		raws, err := jsonrpc.Elements(result[st:en])
		if err == nil && !json.Valid(result[st:en]) {
			err = errors.New("invalid JSON")
		}
		if err != nil {
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
