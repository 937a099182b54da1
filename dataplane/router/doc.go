// Package router is the data plane's protocol router: it reads the JSON-RPC
// envelope of each client message, routes it by method and name or URI to the
// backend that serves it (through the catalog), forwards params and results
// as raw bytes, and relays what backends send (progress, logging, resource
// updates, sampling, elicitation, roots) to the client it belongs to.
package router
