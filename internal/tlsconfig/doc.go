// Package tlsconfig builds the TLS side of mcpmesh's listeners and clients
// from PEM files, re-reading them when they change so certificates rotate
// without a restart, and holds the rule "plaintext only on loopback".
package tlsconfig
