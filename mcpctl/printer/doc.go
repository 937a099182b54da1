// Package printer renders mcpctl's views as a table, JSON or YAML. The view
// structs and their json tags are the machine-readable contract other tools
// parse (`server list -o json`, `status -o json`); secrets never reach them.
package printer
