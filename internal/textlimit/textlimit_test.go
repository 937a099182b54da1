package textlimit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	if got := Truncate("short", 1024); got != "short" {
		t.Errorf("a short text changed: %q", got)
	}
	for _, s := range []string{strings.Repeat("a", 5000), strings.Repeat("é", 3000), strings.Repeat("日本", 1000)} {
		got := Truncate(s, ErrorText)
		if len(got) > ErrorText || !utf8.ValidString(got) || !strings.HasSuffix(got, marker) {
			t.Errorf("Truncate of %d bytes = %d bytes, valid %v, %q…", len(s), len(got), utf8.ValidString(got), got[:20])
		}
		if len(got) < ErrorText-utf8.UTFMax-len(marker) {
			t.Errorf("Truncate cut more than needed: %d bytes", len(got))
		}
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 8)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < len(marker) || max > 1<<20 {
			return
		}
		got := Truncate(s, max)
		if len(got) > max {
			t.Fatalf("Truncate(%q, %d) = %d bytes", s, max, len(got))
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q, not valid UTF-8", s, max, got)
		}
	})
}
