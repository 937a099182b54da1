// Package testbackend is a small, configurable MCP server used as the demo
// backend of `make run` and as a real upstream in tests: fixed tools, a resource,
// a template and a prompt, plus optional generated tools and server-side paging.
package testbackend
