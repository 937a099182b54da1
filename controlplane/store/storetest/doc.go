// Package storetest is the conformance suite every store.Store implementation
// must pass; each implementation's tests call Run with its constructor, so the
// bbolt and in-memory stores are held to the same rules.
package storetest
