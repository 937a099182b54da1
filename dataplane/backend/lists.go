package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// lists is what a backend offers, fetched after initialize and on
// list_changed. Items are the backend's raw JSON; slices are replaced, never
// mutated, so a copy of lists is a consistent snapshot.
type lists struct {
	// known is set once the lists were fetched. An endpoint keeps its last
	// known lists through an outage while it is retrying, so clients keep
	// seeing (and calling, held until it is back) its items; they leave when
	// it becomes unavailable.
	known        bool
	caps         json.RawMessage
	instructions string
	offered      [4]bool           // per catalog.Kind: announced in capabilities
	items        [4][]catalog.Item // complete, upstream order; nil when not offered
	paged        [4]bool           // the last fetch took more than one page
	cache        [4]catalog.Cache  // of the last fetch: the minimum over its pages
	// retryable holds the tools whose annotations say a repeat is harmless
	// (readOnlyHint or idempotentHint), read once per fetch.
	retryable map[string]bool
}

// kindSet is a bit set of list kinds, bit 1<<catalog.Kind.
type kindSet uint8

const allKinds kindSet = 1<<len(catalog.Kinds) - 1

func kindBit(k catalog.Kind) kindSet { return 1 << k }

// listChanged maps a list_changed notification to the lists it invalidates.
func listChanged(method string) (kindSet, bool) {
	switch method {
	case "notifications/tools/list_changed":
		return kindBit(catalog.Tools), true
	case "notifications/prompts/list_changed":
		return kindBit(catalog.Prompts), true
	case "notifications/resources/list_changed":
		return kindBit(catalog.Resources) | kindBit(catalog.Templates), true
	}
	return 0, false
}

// fetchLists refetches the lists of kinds that the server offers, following
// every nextCursor. Items past lim are left out, with a warning in c's log.
func fetchLists(ctx context.Context, c *conn, l *lists, kinds kindSet, lim catalog.Limits) error {
	for _, k := range catalog.Kinds {
		if kinds&kindBit(k) == 0 || !l.offered[k] {
			continue
		}
		var hint catalog.Cache
		var left leftOut
		items, paged, err := collect(ctx, k.Desc().Method, lim.MaxItems, &left.more, func(cur string) (catalog.Page, error) {
			p, err := fetchPage(ctx, c, k, cur)
			p.Items = left.admit(k, lim, p.Items)
			if cur == "" {
				hint = p.Cache
			} else {
				hint = hint.Min(p.Cache)
			}
			return p, err
		})
		var je *jsonrpc.Error
		if k == catalog.Templates && errors.As(err, &je) && je.Code == jsonrpc.CodeMethodNotFound {
			// The resources capability does not promise templates; some
			// servers only implement resources/list.
			items, paged, err = []catalog.Item{}, false, nil
		}
		if err != nil {
			return err
		}
		left.log(c.logger, k, lim)
		l.items[k], l.paged[k], l.cache[k] = items, paged, hint
		if k == catalog.Tools {
			l.retryable = retryableTools(items)
		}
	}
	return nil
}

// fetchPage makes one upstream list call on c.
func fetchPage(ctx context.Context, c *conn, k catalog.Kind, cursor string) (catalog.Page, error) {
	res, err := c.request(ctx, k.Desc().Method, cursorParams(cursor))
	if err != nil {
		return catalog.Page{}, err
	}
	// The page's items alias what they are parsed from, and the cached list
	// keeps them: res is a slice of the answer's read buffer, which holds the
	// envelope too and, for an answer of unknown length, grew in steps. Kept
	// as it is, that slack was a tenth of a cached tool's memory; a copy of
	// the result keeps its own bytes only.
	return catalog.ParsePage(k, bytes.Clone(res))
}

// cursorParams are the params of a list request: none for the first page.
func cursorParams(cursor string) json.RawMessage {
	if cursor == "" {
		return nil
	}
	q, _ := json.Marshal(cursor) // a string cannot fail
	return append(append([]byte(`{"cursor":`), q...), '}')
}

// leftOut counts the items of a list that Limits refused.
type leftOut struct {
	n     int
	first error // why the first was refused
	more  bool  // the list reached MaxItems (what came after was not read)
}

// admit returns the items within lim, in place.
func (lo *leftOut) admit(k catalog.Kind, lim catalog.Limits, items []catalog.Item) []catalog.Item {
	kept := items[:0]
	for _, it := range items {
		if err := lim.Check(k, it); err != nil {
			if lo.n++; lo.first == nil {
				lo.first = err
			}
			continue
		}
		kept = append(kept, it)
	}
	return kept
}

func (lo *leftOut) log(log *slog.Logger, k catalog.Kind, lim catalog.Limits) {
	if lo.n > 0 {
		log.Warn("list items left out: past the data plane's limits", "list", k.Desc().Method, "left_out", lo.n, "first", lo.first.Error())
	}
	if lo.more {
		log.Warn("list cut at the data plane's item limit (--max-list-items); the rest is left out", "list", k.Desc().Method, "limit", lim.MaxItems)
	}
}

// errCursorLoop is returned when a backend's pagination does not end.
var errCursorLoop = errors.New("backend pagination does not end")

// collect follows page cursors until the backend returns none or max items
// are read, and reports whether there was more than one page. The list is
// never nil, and holds at most max items (0: no bound); *cut is set when
// there were more.
func collect(ctx context.Context, what string, max int, cut *bool, page func(cursor string) (catalog.Page, error)) ([]catalog.Item, bool, error) {
	all := []catalog.Item{}
	seen := map[string]bool{}
	cur := ""
	for n := 0; ; n++ {
		if n >= maxListPages {
			return nil, false, fmt.Errorf("list %s: %w: more than %d pages", what, errCursorLoop, maxListPages)
		}
		p, err := page(cur)
		if err != nil {
			return nil, false, fmt.Errorf("list %s (page %d): %w", what, n+1, err)
		}
		all = append(all, p.Items...)
		if max > 0 && (len(all) > max || (len(all) == max && p.Next != "")) {
			*cut = true
			return all[:max:max], n > 0, nil
		}
		if p.Next == "" {
			return all, n > 0, nil
		}
		if seen[p.Next] {
			return nil, false, fmt.Errorf("list %s: %w: cursor %q repeated", what, errCursorLoop, p.Next)
		}
		seen[p.Next] = true
		cur = p.Next
		if err := ctx.Err(); err != nil {
			return nil, false, fmt.Errorf("list %s: %w", what, err)
		}
	}
}

// retryableTools reads the hints of every tool, without decoding the rest.
func retryableTools(tools []catalog.Item) map[string]bool {
	var out map[string]bool
	for _, t := range tools {
		st, en, ok, err := jsonrpc.Lookup(t.Raw, "annotations")
		if err != nil || !ok {
			continue
		}
		ann := t.Raw[st:en]
		if hint(ann, "readOnlyHint") || hint(ann, "idempotentHint") {
			if out == nil {
				out = map[string]bool{}
			}
			out[t.Key] = true
		}
	}
	return out
}

func hint(obj []byte, key string) bool {
	st, en, ok, err := jsonrpc.Lookup(obj, key)
	return err == nil && ok && bytes.Equal(obj[st:en], []byte("true"))
}

// ToolRetryable reports whether the cached tool of that upstream name
// declares itself read-only or idempotent: a repeat after a transport
// failure cannot repeat a side effect.
func (b *Backend) ToolRetryable(name string) bool {
	l, _ := b.readyLists()
	return l.retryable[name]
}

// Catalog returns the backend's cached lists as catalog items; ok is false
// when the backend is not ready (see Ready). Paged is reported only while an
// endpoint is connected: while retrying, a walk is served from the last
// known lists rather than wait for the reconnect. The item slices are
// shared: do not modify them.
func (b *Backend) Catalog() (catalog.Server, bool) {
	l, ok := b.readyLists()
	if !ok {
		return catalog.Server{}, false
	}
	s := catalog.Server{Name: b.name, Prefix: b.Prefix(), Lists: l.items, Cache: l.cache}
	if b.Connected() {
		s.Paged = l.paged
	}
	return s, true
}

// FetchPage makes one upstream list call of kind k with the upstream cursor
// ("" for the first page) through the request path of every request (server
// timeout, endpoint picker, breaker, one retry on a transport failure).
// Upstream cursors are opaque: they are passed back as received.
func (b *Backend) FetchPage(ctx context.Context, k catalog.Kind, cursor string) (catalog.Page, error) {
	if int(k) >= len(catalog.Kinds) {
		return catalog.Page{}, fmt.Errorf("backend %q: fetch page: unknown list kind %d", b.name, k)
	}
	method := k.Desc().Method
	res, err := b.Request(ctx, Request{Method: method, Params: cursorParams(cursor), Retry: true, What: "list page of " + method})
	if err != nil {
		return catalog.Page{}, err
	}
	p, err := catalog.ParsePage(k, res)
	if err != nil {
		return catalog.Page{}, fmt.Errorf("backend %q: %w", b.name, err)
	}
	var left leftOut
	p.Items = left.admit(k, b.params().lists, p.Items)
	left.log(b.logger, k, b.params().lists)
	return p, nil
}

// Capabilities returns the server capabilities object the backend sent at
// initialize, raw; nil when not ready.
func (b *Backend) Capabilities() json.RawMessage {
	l, _ := b.readyLists()
	return l.caps
}

// Instructions returns the backend's initialize instructions; "" when not ready.
func (b *Backend) Instructions() string {
	l, _ := b.readyLists()
	return l.instructions
}
