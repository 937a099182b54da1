package keys_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

const label = "mcpmesh cursor v3"

func TestDeriveIsHKDF(t *testing.T) {
	k := keys.New()
	k.SetSecret(secretA)
	want, err := hkdf.Key(sha256.New, secretA, nil, label, keys.KeyLen)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Derive(label); !bytes.Equal(got, want) {
		t.Fatalf("Derive = %x, want HKDF-SHA256 %x", got, want)
	}
	if bytes.Equal(k.Derive(label), k.Derive("mcpmesh session v2")) {
		t.Fatal("two labels derive the same key")
	}
	other := keys.New()
	other.SetSecret(secretA)
	if a, b := k.Current(label), other.Current(label); a.ID != b.ID || !bytes.Equal(a.Bytes, b.Bytes) {
		t.Fatal("two Keys with the same secret disagree")
	}
}

func TestBootSecretsDiffer(t *testing.T) {
	a, b := keys.New(), keys.New()
	if a.Current(label).ID == b.Current(label).ID || bytes.Equal(a.Derive(label), b.Derive(label)) {
		t.Fatal("two processes share a boot secret")
	}
}

func TestRotation(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	k := keys.NewWithOptions(keys.Options{Grace: 10 * time.Minute, Now: c.Now})
	boot := k.Current(label)
	if _, ok := k.Previous(label); ok {
		t.Fatal("a previous key before any rotation")
	}
	gen := k.Generation()

	tests := []struct {
		name    string
		secret  []byte
		changed bool
	}{
		{"first snapshot", secretA, true},
		{"same secret", secretA, false},
		{"empty secret", nil, false},
	}
	for _, tt := range tests {
		if got := k.SetSecret(tt.secret); got != tt.changed {
			t.Errorf("%s: SetSecret = %v, want %v", tt.name, got, tt.changed)
		}
	}
	if k.Generation() != gen+1 {
		t.Fatalf("generation moved %d times, want once", k.Generation()-gen)
	}
	a := k.Current(label)
	if got, ok := k.Lookup(label, boot.ID); !ok || !bytes.Equal(got.Bytes, boot.Bytes) || !got.Retired.Equal(c.Now()) {
		t.Fatalf("boot key not accepted within the grace: %+v %v", got, ok)
	}

	c.Advance(time.Minute)
	k.SetSecret(secretB)
	if _, ok := k.Lookup(label, boot.ID); ok {
		t.Fatal("the key before the previous one is still accepted")
	}
	prev, ok := k.Previous(label)
	if !ok || prev.ID != a.ID || !prev.Until.Equal(c.Now().Add(10*time.Minute)) {
		t.Fatalf("Previous = %+v, %v", prev, ok)
	}
	c.Advance(10*time.Minute - time.Nanosecond)
	if _, ok := k.Lookup(label, a.ID); !ok {
		t.Fatal("previous key refused just before the grace ended")
	}
	c.Advance(time.Nanosecond)
	if _, ok := k.Lookup(label, a.ID); ok {
		t.Fatal("previous key accepted after the grace")
	}
	if cur, ok := k.Lookup(label, k.Current(label).ID); !ok || !cur.Retired.IsZero() {
		t.Fatal("current key not found by its id")
	}
}

func TestConcurrent(t *testing.T) {
	k := keys.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				if i == 0 && j%10 == 0 {
					k.SetSecret([]byte{byte(j), 1, 2, 3})
				}
				_ = k.Derive(label)
				_, _ = k.Lookup(label, k.Current("x").ID)
			}
		})
	}
	wg.Wait()
}

func BenchmarkCurrent(b *testing.B) {
	k := keys.New()
	k.SetSecret(secretA)
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Current(label)
	}
}

// The previous secrets a snapshot names are accepted until their own
// deadline, also by Keys that never held them as current (a data plane
// started after the rotation), and forgotten once a snapshot drops them.
func TestUpdateFromSnapshot(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	until := c.Now().Add(20 * time.Second)
	ref := keys.New()
	ref.SetSecret(secretA)
	oldID := ref.Current(label).ID

	for _, tc := range []struct {
		name  string
		setup func(k *keys.Keys)
	}{
		{"running through the rotation", func(k *keys.Keys) { k.Update(secretA, nil) }},
		{"started after the rotation", func(*keys.Keys) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{now: c.Now()}
			k := keys.NewWithOptions(keys.Options{Grace: time.Hour, Now: c.Now})
			tc.setup(k)
			gen := k.Generation()
			if !k.Update(secretB, []keys.Retired{{Secret: secretA, Until: until}}) || k.Generation() == gen {
				t.Fatal("Update reported no change")
			}
			if k.Update(secretB, []keys.Retired{{Secret: secretA, Until: until}}) {
				t.Fatal("the same snapshot again changed something")
			}
			got, ok := k.Lookup(label, oldID)
			if !ok || !bytes.Equal(got.Bytes, ref.Derive(label)) || !got.Until.Equal(until) {
				t.Fatalf("old key within the grace: %+v %v", got, ok)
			}
			c.Advance(20*time.Second - time.Nanosecond)
			if _, ok := k.Lookup(label, oldID); !ok {
				t.Fatal("old key refused before its deadline")
			}
			c.Advance(time.Nanosecond)
			if _, ok := k.Lookup(label, oldID); ok {
				t.Fatal("old key accepted at its deadline (the snapshot's, not the local grace)")
			}
			// The control plane drops it: forgotten, a new generation.
			gen = k.Generation()
			c.now = until.Add(-time.Second) // even if the clock were behind
			if !k.Update(secretB, nil) || k.Generation() == gen {
				t.Fatal("dropping the previous secret changed nothing")
			}
			if _, ok := k.Lookup(label, oldID); ok {
				t.Fatal("old key accepted after the snapshot dropped it")
			}
		})
	}
}
