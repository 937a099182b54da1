// Package store keeps the control plane's state: registered servers, settings,
// the latest health reports and state-transition events, behind the Store
// interface (bbolt on disk, or in memory for tests and embedding).
package store
