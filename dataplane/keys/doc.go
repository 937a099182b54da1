// Package keys is the one owner of the cluster secret in a data plane: every
// key a data plane uses (session ids, cursors) is derived from it with HKDF
// and a label per use, and a rotation keeps the previous secret for a grace.
package keys
