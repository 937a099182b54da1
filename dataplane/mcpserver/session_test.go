package mcpserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// testClock is a settable clock for session expiry and secret grace.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func newTestIDs(clock *testClock, secret []byte) *SessionIDManager {
	m := NewSessionIDManager(SessionIDOptions{Now: clock.Now})
	if secret != nil {
		m.SetSecret(secret)
	}
	return m
}

// rejection asserts err is a *SessionIDError with the given status whose
// message contains want.
func rejection(t *testing.T, err error, status int, want string) {
	t.Helper()
	var se *SessionIDError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *SessionIDError", err, err)
	}
	if se.Status != status || !strings.Contains(se.Error(), want) {
		t.Fatalf("err = %d %q, want %d containing %q", se.Status, se.Error(), status, want)
	}
}

func TestSessionIDRoundTrip(t *testing.T) {
	clock := newTestClock()
	m := newTestIDs(clock, secretA)
	other := newTestIDs(clock, secretA) // another replica of the same cluster
	tests := []struct {
		name string
		in   SessionFacts
		want *SessionFacts // nil: the same as in
	}{
		{name: "empty", in: SessionFacts{}},
		{
			name: "everything carried",
			in: SessionFacts{
				ProtocolVersion: mcp.ProtocolVersion20251125,
				ClientInfo:      mcp.Implementation{Name: "claude-code", Version: "2.1.0"},
				Capabilities: mcp.ClientCapabilities{
					Roots: &struct {
						ListChanged bool `json:"listChanged,omitempty"`
					}{ListChanged: true},
					Sampling:    &mcp.SamplingCapability{Context: &struct{}{}, Tools: &struct{}{}},
					Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}},
				},
			},
		},
		{
			name: "bare capabilities",
			in: SessionFacts{
				ProtocolVersion: "2025-03-26",
				Capabilities: mcp.ClientCapabilities{
					Roots: &struct {
						ListChanged bool `json:"listChanged,omitempty"`
					}{},
					Sampling:    &mcp.SamplingCapability{},
					Elicitation: &mcp.ElicitationCapability{},
				},
			},
		},
		{
			name: "not carried: experimental, extensions, tasks",
			in: SessionFacts{Capabilities: mcp.ClientCapabilities{
				Experimental: map[string]any{"x": true},
				Extensions:   map[string]any{"y": true},
				Tasks:        &mcp.TasksCapability{},
			}},
			want: &SessionFacts{},
		},
		{
			name: "long client info cut at a rune boundary",
			// "é" is 2 bytes and "x" shifts it so that 32 bytes would split one.
			in:   SessionFacts{ClientInfo: mcp.Implementation{Name: "x" + strings.Repeat("é", 20), Version: strings.Repeat("9", 40)}},
			want: &SessionFacts{ClientInfo: mcp.Implementation{Name: "x" + strings.Repeat("é", 15), Version: strings.Repeat("9", 32)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			if tt.want != nil {
				want = *tt.want
			}
			want.IssuedAt = clock.Now().Truncate(time.Second)
			id := m.Issue(tt.in)
			if len(id) > sessionMaxEncoded {
				t.Fatalf("id is %d characters, longer than the %d Validate accepts", len(id), sessionMaxEncoded)
			}
			for _, c := range id {
				if c < 0x21 || c > 0x7e {
					t.Fatalf("id %q has %q, outside visible ASCII (MCP requires 0x21-0x7E)", id, c)
				}
			}
			got, err := other.Decode(id)
			if err != nil {
				t.Fatalf("Decode on another replica: %v", err)
			}
			if !got.IssuedAt.Equal(want.IssuedAt) {
				t.Errorf("IssuedAt = %v, want %v", got.IssuedAt, want.IssuedAt)
			}
			got.IssuedAt, want.IssuedAt = time.Time{}, time.Time{}
			if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
				t.Errorf("facts = %s, want %s", gj, wj)
			}
		})
	}
	if a, b := m.Generate(), m.Generate(); a == b {
		t.Errorf("two ids are equal: %q", a)
	}
}

func TestSessionIDRejections(t *testing.T) {
	clock := newTestClock()
	m := newTestIDs(clock, secretA)
	valid := m.Issue(SessionFacts{ProtocolVersion: mcp.ProtocolVersion20251125})
	raw, err := base64.RawURLEncoding.DecodeString(valid)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return enc(b)
	}
	foreign := newTestIDs(clock, secretB).Issue(SessionFacts{})
	unsigned := NewSessionIDManager(SessionIDOptions{Now: clock.Now}).Issue(SessionFacts{}) // random boot key
	wrongVersion := append([]byte(nil), raw...)
	wrongVersion[0] = 2

	tests := []struct {
		name   string
		id     string
		status int
		want   string
	}{
		{"empty", "", http.StatusBadRequest, "empty"},
		{"garbage", "hello", http.StatusBadRequest, "not base64url"},
		{"short", "AAAA", http.StatusBadRequest, "too short"},
		{"not base64", strings.Repeat("!", 80), http.StatusBadRequest, "not base64url"},
		{"mcp-go default id", "mcp-session-0b5e8c2e-9a3b-4a0e-8f7e-0c4f5e6d7a8b", http.StatusBadRequest, "too short"},
		{"too long", strings.Repeat("A", sessionMaxEncoded+1), http.StatusBadRequest, "too long"},
		{"unknown version", enc(wrongVersion), http.StatusBadRequest, "unknown version 2"},
		{"truncated", valid[:len(valid)-4], http.StatusNotFound, "signature does not match"},
		{"tampered random", flip(1 + sessionKeyIDLen), http.StatusNotFound, "signature does not match"},
		{"tampered issued-at", flip(1 + sessionKeyIDLen + sessionRandLen + 7), http.StatusNotFound, "signature does not match"},
		{"tampered capabilities", flip(sessionHeaderLen - 1), http.StatusNotFound, "signature does not match"},
		{"tampered mac", flip(len(raw) - 1), http.StatusNotFound, "signature does not match"},
		{"tampered key id", flip(1), http.StatusNotFound, "unknown key"},
		{"foreign cluster", foreign, http.StatusNotFound, "unknown key"},
		{"before the first snapshot, on another replica", unsigned, http.StatusNotFound, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Decode(tt.id)
			rejection(t, err, tt.status, tt.want)
			if term, err := m.Validate(tt.id); term || err == nil {
				t.Errorf("Validate = %v, %v; want an error", term, err)
			}
		})
	}
	if _, err := m.Decode(valid); err != nil {
		t.Fatalf("the untouched id is refused: %v", err)
	}
}

func TestSessionIDNonCanonicalEncodingRefused(t *testing.T) {
	m := newTestIDs(newTestClock(), secretA)
	id := m.Issue(SessionFacts{})
	// The last character of an unpadded base64 string may carry unused low
	// bits; an id that differs only there must not pass as another string
	// for the same session.
	last := id[len(id)-1]
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		c := alphabet[i]
		if c == last {
			continue
		}
		alt := id[:len(id)-1] + string(c)
		if _, err := m.Decode(alt); err == nil {
			t.Fatalf("id with last character %q instead of %q accepted", c, last)
		}
	}
}

func TestSessionIDExpiry(t *testing.T) {
	clock := newTestClock()
	m := newTestIDs(clock, secretA)
	id := m.Issue(SessionFacts{})

	clock.Advance(DefaultSessionMaxAge - time.Second)
	if _, err := m.Decode(id); err != nil {
		t.Fatalf("id refused a second before its max age: %v", err)
	}
	clock.Advance(time.Second)
	_, err := m.Decode(id)
	rejection(t, err, http.StatusNotFound, "expired: issued 168h0m0s ago, maximum session age is 168h0m0s")

	// An id from a replica whose clock runs ahead is fine within the skew
	// allowance, not beyond.
	ahead := newTestClock()
	ahead.Advance(sessionClockSkew)
	mAhead := newTestIDs(ahead, secretA)
	local := newTestIDs(newTestClock(), secretA)
	if _, err := local.Decode(mAhead.Issue(SessionFacts{})); err != nil {
		t.Fatalf("id issued %s ahead refused: %v", sessionClockSkew, err)
	}
	ahead.Advance(time.Second)
	_, err = local.Decode(mAhead.Issue(SessionFacts{}))
	rejection(t, err, http.StatusNotFound, "issued in the future")
}

func TestSessionIDSecretRotation(t *testing.T) {
	clock := newTestClock()
	m := NewSessionIDManager(SessionIDOptions{Now: clock.Now, SecretGrace: 10 * time.Minute})
	boot := m.Issue(SessionFacts{})

	if !m.SetSecret(secretA) {
		t.Fatal("first SetSecret reported no change")
	}
	if m.SetSecret(secretA) || m.SetSecret(nil) {
		t.Fatal("SetSecret with the same or an empty secret reported a change")
	}
	// Ids minted with the boot key survive the first snapshot for the grace.
	if _, err := m.Decode(boot); err != nil {
		t.Fatalf("boot-key id refused right after the first secret: %v", err)
	}
	idA := m.Issue(SessionFacts{})

	clock.Advance(time.Minute)
	m.SetSecret(secretB)
	idB := m.Issue(SessionFacts{})
	if _, err := m.Decode(idA); err != nil {
		t.Fatalf("id of the previous secret refused within the grace: %v", err)
	}
	// Only one previous key is kept: the boot key is gone.
	_, err := m.Decode(boot)
	rejection(t, err, http.StatusNotFound, "unknown key")

	// A replica that already rotated and one that has not: the rotated one
	// accepts both; the other one does not know the new key yet.
	lagging := newTestIDs(clock, secretA)
	if _, err := lagging.Decode(idA); err != nil {
		t.Fatalf("lagging replica refuses its own key: %v", err)
	}
	_, err = lagging.Decode(idB)
	rejection(t, err, http.StatusNotFound, "unknown key")

	clock.Advance(10*time.Minute - time.Nanosecond)
	if _, err := m.Decode(idA); err != nil {
		t.Fatalf("id of the previous secret refused just before the grace ended: %v", err)
	}
	clock.Advance(time.Nanosecond)
	_, err = m.Decode(idA)
	rejection(t, err, http.StatusNotFound, "grace period ended")
	if _, err := m.Decode(idB); err != nil {
		t.Fatalf("id of the current secret refused: %v", err)
	}
}

func TestSessionIDRevoke(t *testing.T) {
	clock := newTestClock()
	m := NewSessionIDManager(SessionIDOptions{Now: clock.Now, DenyListSize: 2})
	m.SetSecret(secretA)
	other := newTestIDs(clock, secretA)

	id1 := m.Issue(SessionFacts{})
	if err := m.Revoke(id1); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	term, err := m.Validate(id1)
	if !term || err != nil {
		t.Fatalf("Validate after Revoke = %v, %v; want terminated", term, err)
	}
	_, err = m.Decode(id1)
	rejection(t, err, http.StatusNotFound, "terminated (DELETE) on this data plane")
	// Stateless ids cannot be revoked everywhere: another replica still
	// accepts it until it expires.
	if _, err := other.Decode(id1); err != nil {
		t.Fatalf("another replica refuses a session ended elsewhere: %v", err)
	}
	rejection(t, m.Revoke("garbage"), http.StatusBadRequest, "malformed")
	// Terminate is mcp-go's idle-sweeper path and must not revoke.
	id2 := m.Issue(SessionFacts{})
	if _, err := m.Terminate(id2); err != nil {
		t.Fatal(err)
	}
	if term, err := m.Validate(id2); term || err != nil {
		t.Fatalf("Terminate revoked the id: %v, %v", term, err)
	}

	// The deny-list is bounded: expired entries go first, then the oldest.
	clock.Advance(time.Hour)
	id3 := m.Issue(SessionFacts{})
	clock.Advance(time.Hour)
	id4 := m.Issue(SessionFacts{})
	_ = m.Revoke(id3)
	_ = m.Revoke(id4) // full: evicts id1, the oldest
	if len(m.denied) != 2 {
		t.Fatalf("deny-list holds %d entries, want 2", len(m.denied))
	}
	if term, _ := m.Validate(id1); term {
		t.Error("oldest revocation kept past the bound")
	}
	for _, id := range []string{id3, id4} {
		if term, _ := m.Validate(id); !term {
			t.Error("recent revocation forgotten")
		}
	}
	clock.Advance(DefaultSessionMaxAge)
	fresh := m.Issue(SessionFacts{})
	_ = m.Revoke(fresh) // id3 and id4 have expired: both dropped
	if len(m.denied) != 1 {
		t.Fatalf("deny-list holds %d entries after expiry, want 1", len(m.denied))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzSessionID feeds arbitrary strings to Decode: it must never panic,
// refuse with a *SessionIDError carrying a 4xx, and accept only ids this
// cluster issued (an HMAC cannot be forged by mutation).
func FuzzSessionID(f *testing.F) {
	clock := newTestClock()
	m := newTestIDs(clock, secretA)
	// The fuzzing engine runs this function in several processes: the ids
	// must be the same in each.
	var counter byte
	m.random = func(b []byte) {
		counter++
		for i := range b {
			b[i] = counter
		}
	}
	issued := map[string]bool{}
	for _, facts := range []SessionFacts{
		{},
		{ProtocolVersion: mcp.ProtocolVersion20251125, ClientInfo: mcp.Implementation{Name: "c", Version: "1"}},
		{ProtocolVersion: "2025-06-18", Capabilities: mcp.ClientCapabilities{Sampling: &mcp.SamplingCapability{}}},
	} {
		id := m.Issue(facts)
		issued[id] = true
		f.Add(id)
		// Found by the fuzzer: base64 decoding skips line breaks.
		f.Add(id[:10] + "\r" + id[10:])
	}
	f.Add("")
	f.Add("mcp-session-0b5e8c2e-9a3b-4a0e-8f7e-0c4f5e6d7a8b")
	f.Add(newTestIDs(clock, secretB).Issue(SessionFacts{}))
	f.Add(strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, id string) {
		_, err := m.Decode(id)
		if err == nil {
			if !issued[id] {
				t.Fatalf("accepted an id that was never issued: %q", id)
			}
			return
		}
		var se *SessionIDError
		if !errors.As(err, &se) || se.Status < 400 || se.Status > 499 {
			t.Fatalf("refusal %v is not a 4xx *SessionIDError", err)
		}
	})
}

func BenchmarkSessionIDValidate(b *testing.B) {
	m := NewSessionIDManager(SessionIDOptions{})
	m.SetSecret(secretA)
	id := m.Issue(SessionFacts{ProtocolVersion: mcp.ProtocolVersion20251125, ClientInfo: mcp.Implementation{Name: "bench-client", Version: "1.0.0"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Validate(id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionIDIssue(b *testing.B) {
	m := NewSessionIDManager(SessionIDOptions{})
	m.SetSecret(secretA)
	f := SessionFacts{ProtocolVersion: mcp.ProtocolVersion20251125, ClientInfo: mcp.Implementation{Name: "bench-client", Version: "1.0.0"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Issue(f)
	}
}
