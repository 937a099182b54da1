package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/yosida95/uritemplate/v3"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// meshScheme prefixes the URIs of resources whose original URI is already
// taken by a server that sorts earlier: mcpmesh://<server>/<escaped URI>.
const meshScheme = "mcpmesh://"

// meshURI is the URI under which server's copy of a contested resource is
// exposed.
func meshURI(server, uri string) string {
	return meshScheme + server + "/" + url.PathEscape(uri)
}

// parseMeshURI splits a mcpmesh:// URI into the server and the original URI.
// ok is false when uri is not a well-formed mcpmesh:// URI.
func parseMeshURI(uri string) (server, original string, ok bool) {
	rest, found := strings.CutPrefix(uri, meshScheme)
	if !found {
		return "", "", false
	}
	server, enc, found := strings.Cut(rest, "/")
	if !found || server == "" || enc == "" {
		return "", "", false
	}
	original, err := url.PathUnescape(enc)
	if err != nil {
		return "", "", false
	}
	return server, original, true
}

// meshTemplate is the URI template under which server's copy of a contested
// template is exposed. Literal parts are escaped as meshURI does, but the
// {expressions} are kept so that the result is still a template; a client
// expanding it percent-encodes the values, so parseMeshURI recovers a URI the
// original template matches.
func meshTemplate(server, raw string) (string, error) {
	var b strings.Builder
	b.WriteString(meshScheme + server + "/")
	for raw != "" {
		open := strings.IndexByte(raw, '{')
		if open < 0 {
			b.WriteString(url.PathEscape(raw))
			break
		}
		closing := strings.IndexByte(raw[open:], '}')
		if closing < 0 {
			return "", fmt.Errorf("uri template %q: unclosed expression", raw)
		}
		b.WriteString(url.PathEscape(raw[:open]))
		b.WriteString(raw[open : open+closing+1])
		raw = raw[open+closing+1:]
	}
	t := b.String()
	if _, err := uritemplate.New(t); err != nil {
		return "", fmt.Errorf("parse uri template %q: %w", t, err)
	}
	return t, nil
}

// RewriteReadResult rewrites the "uri" members of a resources/read result's
// contents that name upstream to exposed, for a client that read a resource
// under its mcpmesh:// URI. Everything else is left byte for byte; a result
// that needs no change (or cannot be read) is returned as it is.
func RewriteReadResult(result json.RawMessage, upstream, exposed string) json.RawMessage {
	if upstream == exposed {
		return result
	}
	st, en, ok, err := jsonrpc.Lookup(result, "contents")
	if err != nil || !ok {
		return result
	}
	var contents []json.RawMessage
	if json.Unmarshal(result[st:en], &contents) != nil {
		return result
	}
	quoted := quote(exposed)
	changed := false
	for i, c := range contents {
		uri, ok, err := jsonrpc.LookupString(c, "uri")
		if err != nil || !ok || uri != upstream {
			continue
		}
		us, ue, _, _ := jsonrpc.Lookup(c, "uri")
		contents[i] = jsonrpc.Splice(c, us, ue, quoted)
		changed = true
	}
	if !changed {
		return result
	}
	arr := make([]byte, 0, en-st+len(contents)*len(quoted))
	arr = append(arr, '[')
	for i, c := range contents {
		if i > 0 {
			arr = append(arr, ',')
		}
		arr = append(arr, c...)
	}
	arr = append(arr, ']')
	return jsonrpc.Splice(result, st, en, arr)
}

// quote is s as a JSON string.
func quote(s string) []byte { return appendQuoted(nil, s) }

// appendQuoted appends s as a JSON string. Unlike json.Marshal it leaves <,
// > and & alone: names and URIs are data, not HTML.
func appendQuoted(b []byte, s string) []byte {
	plain := utf8.ValidString(s)
	for i := 0; plain && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			plain = false
		}
	}
	if plain && !strings.ContainsAny(s, "\u2028\u2029") {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string cannot fail
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
