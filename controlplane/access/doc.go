// Package access decides who may call what on the control plane's gRPC API:
// it authenticates bearer tokens (the bootstrap admin.token and the tokens
// issued by TokenService), authorises each RPC by the caller's role, and ends
// the open streams of a token the moment it is revoked or expires.
package access
