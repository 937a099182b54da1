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
	Cache Cache  // the page's ttlMs / cacheScope (MCP 2026-07-28)
}

// Cache is a list result's caching hint of MCP 2026-07-28: for how many
// milliseconds a client may reuse it (ttlMs) and whether shared caches may
// keep it (cacheScope "public"). The zero value, 0 ms and private, is what a
// result without hints counts as, as every result of an earlier revision is.
type Cache struct {
	TTLms  int64
	Public bool
}

// Min combines the hints of two parts of one list: the shorter TTL, and
// private when either is.
func (c Cache) Min(o Cache) Cache {
	return Cache{TTLms: min(c.TTLms, o.TTLms), Public: c.Public && o.Public}
}

// parseCache reads ttlMs and cacheScope from a result; absent, malformed or
// negative values count as 0 and private.
func parseCache(result []byte) Cache {
	var c Cache
	if st, en, ok, err := jsonrpc.Lookup(result, "ttlMs"); err == nil && ok {
		var ms int64
		if json.Unmarshal(result[st:en], &ms) == nil && ms > 0 {
			c.TTLms = ms
		}
	}
	scope, _, _ := jsonrpc.LookupString(result, "cacheScope")
	c.Public = scope == "public"
	return c
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
	p.Cache = parseCache(result)
	return p, nil
}
