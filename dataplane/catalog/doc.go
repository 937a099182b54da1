// Package catalog aggregates the tools, prompts, resources and resource
// templates of the backend servers into the one catalog a client sees, routes
// exposed names and URIs back to their servers, and serves the list methods,
// whole or paginated with signed cursors. Items stay raw JSON throughout.
package catalog
