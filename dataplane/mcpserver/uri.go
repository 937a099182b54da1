package mcpserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
)

// meshScheme prefixes the URIs of resources whose original URI is already
// taken by a server that sorts earlier: mcpmesh://<server>/<escaped URI>.
const meshScheme = "mcpmesh://"

// meshURI is the URI under which server's copy of a colliding resource is
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

// meshTemplate is the URI template under which server's copy of a colliding
// template is exposed. Literal parts are escaped like meshURI does, but the
// {expressions} are kept so that the result is still a template; a client
// expanding it percent-encodes the values, so parseMeshURI recovers a URI the
// original template matches.
func meshTemplate(server, raw string) (*mcp.URITemplate, error) {
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
			return nil, fmt.Errorf("uri template %q: unclosed expression", raw)
		}
		b.WriteString(url.PathEscape(raw[:open]))
		b.WriteString(raw[open : open+closing+1])
		raw = raw[open+closing+1:]
	}
	return parseTemplate(b.String())
}

// parseTemplate builds an mcp.URITemplate through its JSON decoder, which
// returns an error for a bad template where the constructor would panic.
func parseTemplate(raw string) (*mcp.URITemplate, error) {
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encode uri template %q: %w", raw, err)
	}
	t := new(mcp.URITemplate)
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("parse uri template %q: %w", raw, err)
	}
	return t, nil
}
