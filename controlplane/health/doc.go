// Package health takes in the backend health reports data planes send on
// their config streams, persists the latest per data plane × server (plus
// state transitions) in the store, and aggregates them per server.
package health
