package oauth

import "testing"

// The client_id of a client ID metadata document is the document's URL
// under the data plane's public URL, path prefix included, and only a
// public https callback of a data plane gets one (dataplane/oauthpage
// serves it at the same URL: TestClientMetadataDocument).
func TestMetadataClientID(t *testing.T) {
	for _, c := range []struct {
		redirect, want string
		ok             bool
	}{
		{"https://mcp.example.com/oauth/callback", "https://mcp.example.com/oauth/client-metadata.json", true},
		{"https://mcp.example.com/gw/oauth/callback", "https://mcp.example.com/gw/oauth/client-metadata.json", true},
		{"https://mcp.example.com:8443/a/b/oauth/callback", "https://mcp.example.com:8443/a/b/oauth/client-metadata.json", true},
		{"http://mcp.example.com/oauth/callback", "", false}, // plain http
		{"https://127.0.0.1/oauth/callback", "", false},      // loopback
		{"https://10.1.2.3/oauth/callback", "", false},       // private
		{"https://localhost/oauth/callback", "", false},      // local name
		{"https://mcp.example.com/elsewhere", "", false},     // not a data plane's callback
		{"https://mcp.example.com/x?y=/oauth/callback", "", false},
	} {
		got, ok := metadataClientID(c.redirect)
		if got != c.want || ok != c.ok {
			t.Errorf("metadataClientID(%q) = %q, %v; want %q, %v", c.redirect, got, ok, c.want, c.ok)
		}
	}
}
