package front

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

var secretA = []byte("0123456789abcdef0123456789abcdef")

func testCodec(now func() time.Time) *codec {
	k := keys.New()
	k.SetSecret(secretA)
	if now == nil {
		now = func() time.Time { return time.Unix(1_790_000_000, 0) }
	}
	return newCodec(k, DefaultSessionMaxAge, 0, now)
}

func TestSessionRoundTrip(t *testing.T) {
	c, other := testCodec(nil), testCodec(nil) // two replicas of one cluster
	tests := []struct {
		name string
		in   Session
		want Session // ID, issued and nonce are not compared
	}{
		{name: "empty", in: Session{}, want: Session{Transport: TransportStreamableHTTP}},
		{
			name: "everything",
			in: Session{Protocol: "2025-11-25", ClientName: "claude-code", ClientVersion: "2.1.0",
				Capabilities: []byte(`{"roots":{"listChanged":true}}`), Upstream: []byte{0, 1, 2, 255}, Transport: TransportSSE, Paginate: true},
			want: Session{Protocol: "2025-11-25", ClientName: "claude-code", ClientVersion: "2.1.0",
				Capabilities: []byte(`{"roots":{"listChanged":true}}`), Upstream: []byte{0, 1, 2, 255}, Transport: TransportSSE},
		},
		{
			name: "at the bounds",
			in: Session{Protocol: strings.Repeat("p", 40), ClientName: "x" + strings.Repeat("é", 40), ClientVersion: strings.Repeat("9", 70),
				Capabilities: bytes.Repeat([]byte("c"), MaxCapabilities), Upstream: bytes.Repeat([]byte("u"), MaxUpstream)},
			want: Session{Protocol: strings.Repeat("p", maxProtocol), ClientName: "x" + strings.Repeat("é", 31), ClientVersion: strings.Repeat("9", 64),
				Capabilities: bytes.Repeat([]byte("c"), MaxCapabilities), Upstream: bytes.Repeat([]byte("u"), MaxUpstream), Transport: TransportStreamableHTTP},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			id := c.seal(&in)
			if len(id) > maxEncoded {
				t.Fatalf("id is %d characters, more than the %d open accepts", len(id), maxEncoded)
			}
			for _, ch := range id {
				if ch < 0x21 || ch > 0x7e {
					t.Fatalf("id has %q, outside visible ASCII (MCP requires 0x21-0x7E)", ch)
				}
			}
			got, err := other.open(id)
			if err != nil {
				t.Fatalf("open on another replica: %v", err)
			}
			if got.ID != id || got.issued != in.issued || got.nonce != in.nonce {
				t.Fatalf("id fields: %+v vs %+v", got, in)
			}
			got.ID, got.issued, got.nonce = "", 0, nonce{}
			if !equal(*got, tt.want) {
				t.Fatalf("open = %+v\nwant   %+v", *got, tt.want)
			}
			t.Logf("id length %d", len(id))
		})
	}
	a, b := Session{}, Session{}
	if c.seal(&a) == c.seal(&b) {
		t.Fatal("two ids are equal")
	}
}

func equal(a, b Session) bool {
	return a.Protocol == b.Protocol && a.ClientName == b.ClientName && a.ClientVersion == b.ClientVersion &&
		bytes.Equal(a.Capabilities, b.Capabilities) && bytes.Equal(a.Upstream, b.Upstream) &&
		a.Paginate == b.Paginate && a.Transport == b.Transport
}

func TestSessionNonCanonicalSpellings(t *testing.T) {
	c := testCodec(nil)
	id := c.seal(&Session{})
	for _, alt := range []string{id[:10] + "\r\n" + id[10:], id[:10] + "\n" + id[10:], id + "="} {
		if _, err := c.open(alt); err == nil {
			t.Fatalf("%q accepted as a second spelling", alt)
		}
	}
	// The last character of unpadded base64 may carry unused low bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		if alt := id[:len(id)-1] + alphabet[i:i+1]; alt != id {
			if _, err := c.open(alt); err == nil {
				t.Fatalf("%q accepted as a second spelling", alt)
			}
		}
	}
}

func TestDenyListBound(t *testing.T) {
	var d denyList
	d.m = map[nonce]int64{}
	now := int64(1000)
	for i := range denyListSize {
		var n nonce
		n[0], n[1], n[2] = byte(i), byte(i>>8), byte(i>>16)
		d.add(n, now+int64(10+i), now)
	}
	// Full: the entry closest to expiry goes.
	d.add(nonce{0xff, 0xff, 0xff}, now+1_000_000, now)
	if len(d.m) != denyListSize || d.has(nonce{}) || !d.has(nonce{1}) {
		t.Fatalf("deny-list %d entries; first kept %v", len(d.m), d.has(nonce{}))
	}
	// Expired entries go first.
	d.add(nonce{0xfe}, now+2_000_000, now+1_000_000-1)
	if len(d.m) != 2 {
		t.Fatalf("deny-list holds %d entries after expiry, want 2", len(d.m))
	}
}

// FuzzSessionID feeds arbitrary strings to the decoder: it must never panic,
// must refuse with a *sessionError, and can accept only ids it sealed (an
// AEAD cannot be forged by mutation).
func FuzzSessionID(f *testing.F) {
	c := testCodec(nil)
	// The fuzzing engine runs this function in several processes: the ids
	// must be the same in each. The secret already is.
	var counter byte
	c.random = func(b []byte) {
		counter++
		for i := range b {
			b[i] = counter
		}
	}
	issued := map[string]bool{}
	for _, s := range []Session{
		{},
		{Protocol: "2025-11-25", ClientName: "c", ClientVersion: "1", Capabilities: []byte(`{}`), Upstream: []byte("u")},
		{Transport: TransportSSE},
	} {
		id := c.seal(&s)
		issued[id] = true
		f.Add(id)
		f.Add(id[:10] + "\r" + id[10:])
	}
	f.Add("")
	f.Add("mcp-session-0b5e8c2e-9a3b-4a0e-8f7e-0c4f5e6d7a8b")
	f.Add(strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, id string) {
		s, err := c.open(id)
		if err == nil {
			if !issued[id] || s.ID != id {
				t.Fatalf("accepted an id that was never issued: %q", id)
			}
			return
		}
		var se *sessionError
		if !errors.As(err, &se) {
			t.Fatalf("refusal %v is not a *sessionError", err)
		}
	})
}

func benchSession() Session {
	return Session{Protocol: "2025-11-25", ClientName: "claude-code", ClientVersion: "2.1.0",
		Capabilities: []byte(`{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}`),
		Upstream:     []byte(`{"github":"8c1f0a2e-5d1b-4c77-9a51-3f0e2b6d7c10","jira":"mcp-session-42"}`)}
}

func BenchmarkSessionOpen(b *testing.B) {
	c := testCodec(time.Now)
	s := benchSession()
	id := c.seal(&s)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.open(id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(id)), "id-chars")
}

func BenchmarkSessionSeal(b *testing.B) {
	c := testCodec(time.Now)
	s := benchSession()
	b.ReportAllocs()
	for b.Loop() {
		_ = c.seal(&s)
	}
}
