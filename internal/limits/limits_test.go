package limits_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcpmesh/mcpmesh/internal/limits"
)

func TestTruncate(t *testing.T) {
	m := limits.TruncatedMarker
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", strings.Repeat("a", 20), 20, strings.Repeat("a", 20)},
		{"ascii", strings.Repeat("a", 30), 20, strings.Repeat("a", 20-len(m)) + m},
		// "é" is 2 bytes: a cut through its middle keeps neither byte.
		{"rune boundary", "aaaaaa" + "é" + strings.Repeat("b", 20), 7 + len(m), "aaaaaa" + m},
		{"tiny n", "abcdef", 2, m},
		{"empty", "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := limits.Truncate(tc.in, tc.n)
			if got != tc.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("hello, world", 5)
	f.Add(strings.Repeat("日本語", 500), limits.MaxErrorText)
	f.Add("\xff\xfe\xfd"+strings.Repeat("x", 40), 20)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < len(limits.TruncatedMarker) || n > 1<<20 {
			return
		}
		got := limits.Truncate(s, n)
		if len(got) > n {
			t.Fatalf("len %d > %d", len(got), n)
		}
		if len(s) <= n {
			if got != s {
				t.Fatalf("short text changed: %q -> %q", s, got)
			}
			return
		}
		kept, ok := strings.CutSuffix(got, limits.TruncatedMarker)
		if !ok || !strings.HasPrefix(s, kept) {
			t.Fatalf("%q is not a prefix of the input plus the marker", got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("valid UTF-8 became invalid: %q", got)
		}
		if len(kept) < n-len(limits.TruncatedMarker)-(utf8.UTFMax-1) {
			t.Fatalf("kept %d bytes of a budget of %d", len(kept), n-len(limits.TruncatedMarker))
		}
	})
}
