package catalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/yosida95/uritemplate/v3"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Server is one backend as the catalog sees it.
type Server struct {
	Name string
	// Prefix is what the server's tool and prompt names are exposed with;
	// it may be empty.
	Prefix string
	// Lists are the complete cached lists, in upstream order; nil when the
	// server does not offer the kind.
	Lists [4][]Item
	// Paged says the backend paginated the kind when its list was fetched,
	// so a paginated walk follows its own pages (see List).
	Paged [4]bool
	// Cache is each list's caching hint (zero: 0 ms, private).
	Cache [4]Cache
}

// Route names the backend that serves an exposed item and what the backend
// calls it: its own tool or prompt name, or its own resource URI.
type Route struct {
	Server, Name string
}

// Problem is a backend item left out of the catalog, for the caller to log.
// Contested names are not problems: Shadowed reports them.
type Problem struct {
	Server string
	Kind   Kind   // with Key, zero for a problem of the server itself
	Key    string // the upstream key, as far as it could be read
	Reason string
	// KeptBy is the server that keeps a contested exposed name.
	KeptBy string
}

// Catalog is the aggregated view of a set of servers, built by Build. It is
// immutable: a new set of servers builds a new Catalog, which the caller
// swaps in atomically. Its methods are safe for concurrent use.
type Catalog struct {
	servers  []string
	lists    [4]list
	shadowed map[string][]string
	problems []Problem

	// Routing by template compiles each kept template once, on first use:
	// most catalogs never see a read that falls through to templates.
	tmplOnce sync.Once
	tmplREs  []*regexp.Regexp
	tmpls    []int32 // the templates (their items) that route, in served order
}

// list is one kind's aggregated list in served order: servers by name, then
// upstream order.
type list struct {
	items []entry
	segs  []segment
	// index finds an item by its exposed key.
	index map[string]int32
	// size is the length of the exposed JSON of every item, commas
	// included, for sizing the lists List composes.
	size int
	// cache is the hint of the whole list: the minimum over its servers.
	cache Cache
}

// entry is one exposed item. Its JSON is the backend's own (raw, which
// aliases the backend's cached list page: the catalog copies no item),
// with the key string at raw[at:to] replaced by the exposed key when the
// two differ.
type entry struct {
	raw     []byte
	at, to  uint32
	renamed bool
	key     string // exposed name, URI or URI template
	up      string // upstream key; a substring of key where it can be
}

// appendTo appends the item's exposed JSON to w.
func (e *entry) appendTo(w []byte) []byte {
	if !e.renamed {
		return append(w, e.raw...)
	}
	w = append(w, e.raw[:e.at]...)
	w = appendQuoted(w, e.key)
	return append(w, e.raw[e.to:]...)
}

// segment is one server's run of items in a list.
type segment struct {
	server, prefix string
	start, end     int
	paged          bool
}

// Build aggregates servers (in any order; the catalog sorts them by name).
// An exposed name two servers offer goes to the first by name, and the
// others' items are reported by Shadowed; a contested resource URI or URI
// template is exposed under mcpmesh://<server>/… for the later servers. Items
// that cannot be exposed (a key missing from the JSON, a server listing one
// key twice) are left out and reported by Problems.
func Build(servers []Server) *Catalog {
	srvs := make([]*Server, len(servers))
	for i := range servers {
		srvs[i] = &servers[i]
	}
	slices.SortStableFunc(srvs, func(a, b *Server) int { return cmp.Compare(a.Name, b.Name) })
	c := &Catalog{shadowed: map[string][]string{}}
	srvs = slices.DeleteFunc(srvs, func(s *Server) bool {
		if n := len(c.servers); n > 0 && c.servers[n-1] == s.Name {
			c.problems = append(c.problems, Problem{Server: s.Name, Reason: "server listed twice; the first is kept"})
			return true
		}
		c.servers = append(c.servers, s.Name)
		return false
	})
	for _, k := range Kinds {
		c.build(k, srvs)
	}
	return c
}

func (c *Catalog) build(k Kind, srvs []*Server) {
	d := k.Desc()
	n := 0
	for _, s := range srvs {
		n += len(s.Lists[k])
	}
	l := &c.lists[k]
	l.items = make([]entry, 0, n)
	l.index = make(map[string]int32, n)
	first := true
	for _, s := range srvs {
		if s.Lists[k] == nil {
			continue
		}
		if first {
			l.cache, first = s.Cache[k], false
		} else {
			l.cache = l.cache.Min(s.Cache[k])
		}
		seg := segment{server: s.Name, start: len(l.items), paged: s.Paged[k]}
		if d.Prefixed {
			seg.prefix = s.Prefix
		}
		for _, it := range s.Lists[k] {
			c.add(k, l, &seg, it)
		}
		seg.end = len(l.items)
		if seg.end > seg.start {
			l.segs = append(l.segs, seg)
		}
	}
}

// add exposes item it of seg's server after the list's items, recording its
// entry and route, or records why it cannot.
func (c *Catalog) add(k Kind, l *list, seg *segment, it Item) {
	d := k.Desc()
	problem := func(reason string) {
		c.problems = append(c.problems, Problem{Server: seg.server, Kind: k, Key: it.Key, Reason: reason})
	}
	if it.Key == "" {
		problem("empty " + d.Key)
		return
	}
	// An item that is not valid JSON would spoil every list result it is
	// in. ParsePage has checked that much, but Build does not rely on it.
	if !json.Valid(it.Raw) {
		problem("malformed JSON")
		return
	}
	st, en, found, err := jsonrpc.Lookup(it.Raw, d.Key)
	if err != nil {
		problem("not a JSON object: " + err.Error())
		return
	}
	if !found || it.Raw[st] != '"' {
		problem("no " + d.Key + " string in its JSON")
		return
	}
	if !keyIs(it.Raw[st:en], it.Key) {
		problem("its JSON has another " + d.Key)
		return
	}
	key, up := it.Key, it.Key
	if d.Prefixed {
		key = seg.prefix + it.Key
		up = key[len(seg.prefix):]
	}
	if i, taken := l.index[key]; taken {
		keeper := seg.server // the segment being built is not in l.segs yet
		if int(i) < seg.start {
			keeper = c.serverOf(l, int(i))
		}
		if d.Prefixed {
			if keeper != seg.server {
				c.shadowed[seg.server] = append(c.shadowed[seg.server], key)
				c.problems = append(c.problems, Problem{Server: seg.server, Kind: k, Key: it.Key, KeptBy: keeper,
					Reason: "another server exposes the same name, and the first server by name keeps it"})
				return
			}
			problem("the server lists the name twice")
			return
		}
		if keeper == seg.server {
			problem("the server lists the " + d.Key + " twice")
			return
		}
		var err error
		if k == Templates {
			key, err = meshTemplate(seg.server, it.Key)
		} else {
			key = meshURI(seg.server, it.Key)
		}
		if err != nil {
			problem("cannot rewrite the contested " + d.Key + ": " + err.Error())
			return
		}
		if _, taken := l.index[key]; taken {
			problem("its rewritten " + d.Key + " " + key + " is taken")
			return
		}
	} else if k == Templates {
		if _, err := uritemplate.New(it.Key); err != nil {
			problem("invalid uri template: " + err.Error())
			return
		}
		c.tmpls = append(c.tmpls, int32(len(l.items)))
	}
	e := entry{raw: it.Raw[:len(it.Raw):len(it.Raw)], key: key, up: up}
	size := len(it.Raw)
	if key != it.Key {
		e.at, e.to, e.renamed = uint32(st), uint32(en), true
		size += len(key) + 2 - (en - st) // about: quoting may add escapes
	}
	l.size += size + 1
	l.index[key] = int32(len(l.items))
	l.items = append(l.items, e)
}

// keyIs reports whether the JSON string quoted holds key.
func keyIs(quoted []byte, key string) bool {
	if inner := quoted[1 : len(quoted)-1]; bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == key
}

// serverOf is the server of item i of l.
func (c *Catalog) serverOf(l *list, i int) string {
	if s := segOf(l.segs, i); s < len(l.segs) {
		return l.segs[s].server
	}
	return ""
}

// segOf is the index of the segment holding item i (len(segs) if none).
func segOf(segs []segment, i int) int {
	return sort.Search(len(segs), func(k int) bool { return segs[k].end > i })
}

// route returns the route of the item exposed as key.
func (c *Catalog) route(k Kind, key string) (Route, bool) {
	l := &c.lists[k]
	i, ok := l.index[key]
	if !ok {
		return Route{}, false
	}
	return Route{Server: c.serverOf(l, int(i)), Name: l.items[i].up}, true
}

// Tool routes an exposed tool name.
func (c *Catalog) Tool(exposed string) (Route, bool) { return c.route(Tools, exposed) }

// Prompt routes an exposed prompt name.
func (c *Catalog) Prompt(exposed string) (Route, bool) { return c.route(Prompts, exposed) }

// Resource routes a resource URI a client reads or subscribes to: an exact
// resource first, then a mcpmesh://<server>/… URI of a known server, then
// the templates in served order (servers by name), so a contested template
// goes to the server that kept it.
func (c *Catalog) Resource(uri string) (Route, bool) {
	if r, ok := c.route(Resources, uri); ok {
		return r, true
	}
	if srv, orig, ok := parseMeshURI(uri); ok {
		if _, known := slices.BinarySearch(c.servers, srv); known {
			return Route{Server: srv, Name: orig}, true
		}
	}
	c.tmplOnce.Do(c.compileTemplates)
	l := &c.lists[Templates]
	for j, re := range c.tmplREs {
		if re != nil && re.MatchString(uri) {
			return Route{Server: c.serverOf(l, int(c.tmpls[j])), Name: uri}, true
		}
	}
	return Route{}, false
}

// Template routes an exposed resource template (its uriTemplate string, as
// a completion/complete ref names it). A contested template of a later
// server is exposed under its mcpmesh:// form and routes back to it.
func (c *Catalog) Template(uriTemplate string) (Route, bool) {
	return c.route(Templates, uriTemplate)
}

func (c *Catalog) compileTemplates() {
	l := &c.lists[Templates]
	c.tmplREs = make([]*regexp.Regexp, len(c.tmpls))
	for j, i := range c.tmpls {
		// Build checked that it parses.
		if t, err := uritemplate.New(l.items[i].key); err == nil {
			c.tmplREs[j] = t.Regexp()
		}
	}
}

// ExposedURI is the URI under which the catalog exposes server's resource
// upstreamURI, for notifications/resources/updated and read results: the
// URI itself when it routes back to server, its mcpmesh:// form otherwise.
func (c *Catalog) ExposedURI(server, upstreamURI string) string {
	if r, ok := c.Resource(upstreamURI); ok && r == (Route{Server: server, Name: upstreamURI}) {
		return upstreamURI
	}
	return meshURI(server, upstreamURI)
}

// Shadowed returns, per server, the exposed names of its tools and prompts
// that are not served because an earlier server by name exposes the same
// name: with an empty prefix two servers can offer one name, and the first
// keeps it. (A contested resource URI is rewritten instead.) The map must not
// be modified.
func (c *Catalog) Shadowed() map[string][]string { return c.shadowed }

// Problems returns the items Build left out, and why. The slice must not be
// modified.
func (c *Catalog) Problems() []Problem { return c.problems }

// Count is the number of items of kind k the catalog exposes.
func (c *Catalog) Count(k Kind) int { return len(c.lists[k].items) }

// Servers returns the names of the catalog's servers, sorted. The slice must
// not be modified.
func (c *Catalog) Servers() []string { return c.servers }

// Cache returns the caching hint of the whole list of kind k: the shortest
// TTL of the servers that offer the kind, private if any of them is (0 ms
// and private when none does).
func (c *Catalog) Cache(k Kind) Cache { return c.lists[k].cache }
