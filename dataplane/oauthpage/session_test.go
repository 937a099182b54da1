package oauthpage

import (
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// FuzzOpenSession feeds arbitrary cookie values to open: it must never
// panic, and only a value seal made opens.
func FuzzOpenSession(f *testing.F) {
	ks := keys.New()
	ks.SetSecret([]byte("fuzz cluster secret, 32 bytes long"))
	now := time.Unix(1_800_000_000, 0)
	good, err := seal(ks, session{token: "tok", expires: now.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, v string) {
		s, err := open(ks, v, now)
		// Only values seal made open, and seal only ever sealed "tok" (the
		// nonce differs per process, so the exact value may too).
		if err == nil && s.token != "tok" {
			t.Fatalf("open(%q) = %+v: a value seal did not make opened", v, s)
		}
	})
}
