// Package secrets is the control plane's SecretService (mcpctl secret
// rotate): it rotates the cluster secret with a grace period, and drops each
// replaced secret from the store, and so from the snapshots, at its expiry.
package secrets
