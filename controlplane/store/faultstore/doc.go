// Package faultstore is the error-injecting store.Store for tests: it wraps a
// real store and, on demand, fails writes, reads stored values as undecodable
// protobuf, or reports a schema written by a newer binary.
package faultstore
