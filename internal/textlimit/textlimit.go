// Package textlimit bounds texts that come from outside (a backend's error,
// a client's input) before they are kept, reported or stored.
package textlimit

import "unicode/utf8"

// ErrorText is how long an error or event text may be where it is kept
// (last_error, events): 1 KB.
const ErrorText = 1024

// marker ends a text that was cut.
const marker = "…(truncated)"

// Truncate returns s if it is at most max bytes long, else its longest
// prefix that ends on a UTF-8 boundary and leaves room for a marker, plus
// the marker, so that the result is at most max bytes (for max >= the
// marker's length).
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max - len(marker)
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}
