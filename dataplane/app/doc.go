// Package app builds and runs a data plane: backends, catalog and router,
// the client-facing front, the config stream and the HTTP API, wired once
// here so that main only parses flags.
package app
