// Package ctlconfig is mcpctl's config file: named contexts (control plane
// address, TLS files, where the token comes from), like a kubeconfig, and
// which one is current. It only reads and writes the file; cmd applies it.
package ctlconfig
