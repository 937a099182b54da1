package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

var testKey = []byte("cursor-key-for-tests-0123456789ab")

// TestResumeRule pins the position rule on a list directly.
func TestResumeRule(t *testing.T) {
	var srvs []Server
	for _, s := range []struct {
		name string
		keys []string
	}{{"a", []string{"a1", "a2"}}, {"c", []string{"c1", "c2", "c3"}}, {"e", []string{"e1"}}} {
		srv := Server{Name: s.name}
		for _, k := range s.keys {
			srv.Lists[Resources] = append(srv.Lists[Resources], Item{Key: k, Raw: []byte(`{"uri":"` + k + `"}`)})
		}
		srvs = append(srvs, srv)
	}
	l := &Build(srvs).lists[Resources]
	tests := []struct {
		name string
		c    cursor
		want int
	}{
		{"unchanged", cursor{server: "c", index: 2, last: "c2"}, 4},
		{"last item moved", cursor{server: "c", index: 1, last: "c2"}, 4},
		{"last item gone: saved index", cursor{server: "c", index: 2, last: "cX"}, 4},
		{"saved index past the server's end", cursor{server: "c", index: 9, last: "cX"}, 5},
		{"server gone: next server by name", cursor{server: "b", index: 1, last: "b1"}, 2},
		{"server gone, none after it", cursor{server: "f", index: 1, last: "f1"}, 6},
		{"end of a server", cursor{server: "a", index: 2, last: "a2"}, 2},
		{"no last key", cursor{server: "c", index: 1}, 3},
	}
	for _, tt := range tests {
		if got := l.resume(tt.c); got != tt.want {
			t.Errorf("%s: resume(%+v) = %d, want %d", tt.name, tt.c, got, tt.want)
		}
	}
	for next := 1; next < len(l.items); next++ {
		c := l.cursorAfter(next)
		if got := l.resume(c); got != next {
			t.Errorf("resume(cursorAfter(%d) = %+v) = %d", next, c, got)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{kind: Resources, revision: 1 << 40, pageSize: 1000, server: "github", index: 12345, last: "file:///x y"}
	got, err := decodeCursor(testKey, Resources, encodeCursor(testKey, c))
	if err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
	long := c
	long.last = strings.Repeat("x", maxCursorKey+1)
	got, err = decodeCursor(testKey, Resources, encodeCursor(testKey, long))
	if err != nil || got.last != "" || got.index != c.index {
		t.Fatalf("an over-long key is left out: got %+v, %v", got, err)
	}
	for _, size := range []int{0, MaxPageSize + 1} {
		bad := c
		bad.pageSize = size
		if _, err := decodeCursor(testKey, Resources, encodeCursor(testKey, bad)); !errors.Is(err, errInvalidCursor) || !strings.Contains(err.Error(), "page size") {
			t.Errorf("page size %d: err = %v, want an invalid cursor error about the page size", size, err)
		}
	}
	bad := c
	bad.kind = 7
	if _, err := decodeCursor(testKey, 7, encodeCursor(testKey, bad)); err == nil || !strings.Contains(err.Error(), "unknown list kind 7") {
		t.Errorf("kind 7: err = %v", err)
	}
}

func TestUpstreamCursorRoundTrip(t *testing.T) {
	c := cursor{kind: Tools, revision: 7, pageSize: 5, server: "github", index: 3, last: "github__t0002",
		upstream: true, pending: 4, upNext: "dDAwMDY="}
	got, err := decodeCursor(testKey, Tools, encodeCursor(testKey, c))
	if err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
	// The upstream list ended: no next upstream cursor, pending items only.
	c.upNext = ""
	if got, err := decodeCursor(testKey, Tools, encodeCursor(testKey, c)); err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
}

// TestOldCursorVersionsRefused: cursors of the mcp-go based server (version
// 1 and 2), even signed with the right key, are refused by their version.
func TestOldCursorVersionsRefused(t *testing.T) {
	raw, err := cursorEncoding.DecodeString(encodeCursor(testKey, cursor{kind: Tools, pageSize: 4, server: "a", index: 4, last: "a__t0003"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{1, 2, 4} {
		payload := slices.Clone(raw[:len(raw)-cursorMACSize])
		payload[0] = v
		s := cursorEncoding.EncodeToString(append(payload, cursorMAC(testKey, payload)...))
		if _, err := decodeCursor(testKey, Tools, s); err == nil || !strings.Contains(err.Error(), "unsupported version") {
			t.Errorf("version %d: err = %v, want unsupported version", v, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, c := range []cursor{
		{kind: Tools, pageSize: 1, server: "a", index: 1, last: "a__x"},
		{kind: Templates, revision: 99, pageSize: 1000, server: "srv-1", index: 0},
		{kind: Resources, pageSize: 100, server: "s", index: 7, last: "mcpmesh://s/file:%2F%2Fx"},
		{kind: Tools, pageSize: 5, server: "a", index: 3, last: "a__t0002", upstream: true, pending: 2, upNext: "dDAwMDY="},
		{kind: Prompts, pageSize: 1, server: "b", index: 9, last: "b__p", upstream: true},
	} {
		f.Add(encodeCursor(testKey, c), uint8(c.kind))
	}
	f.Add("", uint8(1))
	f.Add("AwE", uint8(1))
	f.Add("YV9fdDAwMDM=", uint8(2))
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		kind := Kind(k % 4)
		c, err := decodeCursor(testKey, kind, s)
		if err != nil {
			if !errors.Is(err, errInvalidCursor) {
				t.Fatalf("error %v does not wrap errInvalidCursor", err)
			}
			return
		}
		// Only a cursor the gateway signed decodes, and it is exactly what
		// the gateway would issue for that position.
		if c.kind != kind || c.pageSize < 1 || c.pageSize > MaxPageSize {
			t.Fatalf("decoded %+v for kind %s", c, kind)
		}
		if again := encodeCursor(testKey, c); again != s {
			t.Fatalf("decoded %q to %+v, which encodes to %q", s, c, again)
		}
		if _, err := decodeCursor([]byte("other"), kind, s); err == nil {
			t.Fatalf("%q verified with another key", s)
		}
	})
}
