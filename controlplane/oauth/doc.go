// Package oauth is the control plane's OAuth client for OAuth-protected
// backends (the MCP authorization spec): it discovers a backend's
// authorization server, registers a client, runs the code flow the data
// plane's /oauth page starts, keeps the grants in the store and refreshes
// them before they expire (OAuthService, Run).
package oauth
