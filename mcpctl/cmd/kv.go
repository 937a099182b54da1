package cmd

import (
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// parseEnv parses repeated --env KEY=VALUE flags of a stdio server.
func parseEnv(kvs []string) (map[string]string, error) {
	return parseKV("--env", kvs, func(k, v string) string {
		// The control plane refuses these keys too; a NUL cannot reach a
		// child's environment at all.
		if strings.ContainsRune(k, 0) {
			return "KEY contains a NUL byte"
		}
		if strings.ContainsRune(v, 0) {
			return "VALUE contains a NUL byte"
		}
		return ""
	})
}

// parseHeaders parses repeated --header KEY=VALUE flags of an HTTP server.
func parseHeaders(kvs []string) (map[string]string, error) {
	return parseKV("--header", kvs, func(k, v string) string {
		// Go's HTTP client refuses such names and values on every request, so
		// the server would register but never connect.
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Sprintf("KEY %q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~ only)", k)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return "VALUE contains a control character (line break, NUL, ...)"
		}
		return ""
	})
}

// parseKV parses repeated KEY=VALUE flags; VALUE may itself contain '=', KEY
// is everything before the first one. check returns why a pair is refused, or "".
func parseKV(flag string, kvs []string, check func(k, v string) string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
		}
		if k == "" {
			return nil, fmt.Errorf("%s %q: KEY is empty", flag, kv)
		}
		if why := check(k, v); why != "" {
			// The value is a secret: name the key only.
			return nil, fmt.Errorf("%s %q: %s", flag, k+"=…", why)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s: KEY %q given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}
