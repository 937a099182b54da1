// Package oauthpaths names the paths, under a data plane's public URL, that
// the control plane's OAuth client and the data plane's /oauth page must
// agree on.
package oauthpaths

const (
	// Callback is where an authorization server sends the browser back:
	// the redirect URI is <public URL>Callback.
	Callback = "/oauth/callback"
	// ClientMetadata is where the client ID metadata document is served:
	// <public URL>ClientMetadata, path prefix included, is the client_id
	// mcpmesh uses with authorization servers that fetch such documents.
	ClientMetadata = "/oauth/client-metadata.json"
)
