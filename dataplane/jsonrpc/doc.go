// Package jsonrpc is the data plane's JSON-RPC 2.0 envelope: it reads the
// fields a router routes on (id, method, error) and keeps params and results
// as raw bytes, and it frames messages without re-encoding what they carry.
package jsonrpc
