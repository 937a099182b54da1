package router

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
)

func TestUpstreamPayload(t *testing.T) {
	key := bytes.Repeat([]byte{7}, clientKeyLen)
	refs := map[string]backend.Upstream{"a": {Endpoint: 0, ID: "s-1"}, "b": {Endpoint: 2, ID: strings.Repeat("x", 36)}}
	b := encodeUpstreams(key, "10.0.0.1:8080", refs, []string{"a", "b", "missing"})
	u, err := decodeUpstreams(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.refs) != 2 || u.refs["a"] != refs["a"] || u.refs["b"] != refs["b"] || len(u.key) != 2*clientKeyLen || u.home != "10.0.0.1:8080" {
		t.Fatalf("decoded %+v", u)
	}
	// Too many servers for the bound: the payload stays within it, and the
	// rest get their sessions on first use.
	many := map[string]backend.Upstream{}
	var order []string
	for i := range 200 {
		name := strings.Repeat("s", 20) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		many[name] = backend.Upstream{ID: strings.Repeat("i", 36)}
		order = append(order, name)
	}
	b = encodeUpstreams(key, "", many, order)
	if len(b) > maxUpstreamPayload {
		t.Errorf("payload of %d bytes, bound %d", len(b), maxUpstreamPayload)
	}
	if u, err := decodeUpstreams(b); err != nil || len(u.refs) == 0 || len(u.refs) == 200 {
		t.Errorf("decoded %d refs, %v", len(u.refs), err)
	}
	// A replica of the release before homes reads version 1 and stops
	// after the entries: it still reads an id minted with a home.
	withHome := encodeUpstreams(key, "10.0.0.1:8080", refs, []string{"a"})
	if withHome[0] != 1 || !bytes.HasSuffix(withHome, append([]byte{13}, "10.0.0.1:8080"...)) {
		t.Errorf("the home is not a trailer of a version-1 payload: %x", withHome)
	}
	// A version-1 payload (before homes) still decodes, with no home.
	v1 := append(append([]byte{1}, key...), 1, 1, 'a', 0, 1, 'x')
	if u, err := decodeUpstreams(v1); err != nil || u.home != "" || u.refs["a"].ID != "x" {
		t.Errorf("version 1 payload: %+v, %v", u, err)
	}
	for _, bad := range [][]byte{nil, {2}, append([]byte{1}, key...), append(append([]byte{1}, key...), 5, 1), append(append([]byte{2}, key...), 9, 'h', 0)} {
		if _, err := decodeUpstreams(bad); err == nil {
			t.Errorf("decodeUpstreams(%x) accepted", bad)
		}
	}
}

func FuzzDecodeUpstreams(f *testing.F) {
	f.Add(encodeUpstreams(bytes.Repeat([]byte{1}, clientKeyLen), "h:1", map[string]backend.Upstream{"a": {ID: "x"}}, []string{"a"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUpstreams(b)
		if err != nil {
			return
		}
		if len(u.refs) > 1000 {
			t.Fatalf("%d refs", len(u.refs))
		}
	})
}
