// Package names validates the names operators give to servers, so the control
// plane, the data plane and mcpctl agree on what a valid name is.
package names

import (
	"fmt"
	"regexp"
)

// Separator joins a server name and a tool or prompt name: "<server>__<tool>".
const Separator = "__"

// MaxServerName is the longest server name, chosen so that prefixed names stay
// within the 64 characters many MCP clients accept.
const MaxServerName = 32

var serverRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidateServer reports whether name is a valid server name.
func ValidateServer(name string) error {
	if name == "" {
		return fmt.Errorf("server name is empty")
	}
	if !serverRE.MatchString(name) {
		return fmt.Errorf("server name %q is invalid: use 1-%d characters of a-z, 0-9 and '-', starting with a letter or digit", name, MaxServerName)
	}
	return nil
}
