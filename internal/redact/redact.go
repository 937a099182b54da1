// Package redact masks secrets before they are shown: URL credentials
// (userinfo, secret-looking query values) in URLs and in free text such as
// error messages, env and header values, and stdio args marked secret.
// Every page, log line and CLI output that can show a registration goes
// through it, so there is one definition of what counts as a secret.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces every secret value.
const Mask = "***"

// secretParams are query parameter names whose values are always masked
// (compared in lower case).
var secretParams = map[string]bool{
	"api_key": true, "apikey": true, "key": true, "token": true, "access_token": true,
	"secret": true, "password": true, "sig": true, "signature": true,
}

// secretParts make any parameter whose lower-case name contains one of them
// secret too (client_secret, X-Amz-Signature, private_token, auth, …).
var secretParts = []string{"token", "secret", "passw", "signature", "apikey", "api_key", "api-key", "credential", "auth"}

// SecretParam reports whether values of the query parameter name are masked.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	if secretParams[n] || strings.HasSuffix(n, "key") || strings.HasSuffix(n, "sig") {
		return true
	}
	for _, p := range secretParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// URL returns raw with its credentials masked: the password of the userinfo
// (a userinfo without password, often a token, is masked whole) and the
// values of secret-looking query parameters. Everything else is kept byte
// for byte; raw need not parse.
func URL(raw string) string {
	start := 2 // a scheme-relative "//user@host/…"
	if i := strings.Index(raw, "://"); i == 0 || (i > 0 && isScheme(raw[:i])) {
		start = i + 3
	} else if !strings.HasPrefix(raw, "//") {
		return maskQuery(raw, strings.IndexByte(raw, '?'))
	}
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	var b strings.Builder
	b.Grow(len(raw) + 8)
	b.WriteString(raw[:start])
	auth := raw[start:end]
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		if user, _, ok := strings.Cut(auth[:at], ":"); ok {
			b.WriteString(user)
			b.WriteString(":" + Mask)
		} else {
			b.WriteString(Mask)
		}
		b.WriteString(auth[at:])
	} else {
		b.WriteString(auth)
	}
	rest := raw[end:]
	b.WriteString(maskQuery(rest, strings.IndexByte(rest, '?')))
	return b.String()
}

// maskQuery masks the secret values of the query that starts after s[q]
// (q < 0: no query) and ends at '#' or the end of s.
func maskQuery(s string, q int) string {
	if q < 0 {
		return s
	}
	if h := strings.IndexByte(s, '#'); h >= 0 && h < q {
		return s // the '?' is inside the fragment
	}
	query, frag := s[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:q+1])
	for len(query) > 0 {
		pair := query
		sep := strings.IndexAny(query, "&;")
		if sep >= 0 {
			pair, query = query[:sep], query[sep:]
		} else {
			query = ""
		}
		if k, v, ok := strings.Cut(pair, "="); ok && v != "" && SecretParam(unescape(k)) {
			b.WriteString(k + "=" + Mask)
		} else {
			b.WriteString(pair)
		}
		if sep >= 0 {
			b.WriteByte(query[0])
			query = query[1:]
		}
	}
	b.WriteString(frag)
	return b.String()
}

func unescape(k string) string {
	if u, err := url.QueryUnescape(k); err == nil {
		return u
	}
	return k
}

// URLs masks each of urls (see URL); nil stays nil.
func URLs(urls []string) []string {
	if urls == nil {
		return nil
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = URL(u)
	}
	return out
}

// Text masks the credentials of every URL in s (anything around "://" up to
// white space, a quote or an angle bracket), as found in error messages such
// as Go's `Post "http://user:pw@host/?token=t": dial tcp …`.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		start := i
		for start > 0 && schemeByte(s[start-1]) {
			start--
		}
		end := i + 3
		for end < len(s) && !delim(s[end]) {
			end++
		}
		// A URL inside this one (?redirect=https://u:p@host) is masked on
		// its own, so the chunk ends where the inner one's scheme begins.
		if j := strings.Index(s[i+3:end], "://"); j >= 0 {
			end = i + 3 + j
			for end > i+3 && schemeByte(s[end-1]) {
				end--
			}
		}
		b.WriteString(s[:start])
		b.WriteString(URL(s[start:end]))
		s = s[end:]
	}
}

func schemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

func delim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '<', '>', '\\':
		return true
	}
	return c < 0x20 || c == 0x7f
}

// Values returns m with every value masked; the keys are kept. nil and empty
// maps give nil.
func Values(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = Mask
	}
	return out
}

// Args returns args with the positions listed in secret masked; positions
// out of range are ignored. args itself is not changed.
func Args(args []string, secret []uint32) []string {
	if len(secret) == 0 || len(args) == 0 {
		return args
	}
	out := append([]string(nil), args...)
	for _, i := range secret {
		if int(i) < len(out) {
			out[i] = Mask
		}
	}
	return out
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.'), so that a "://" later in a URL (in its
// userinfo, path or query) is not taken for the end of its scheme.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
