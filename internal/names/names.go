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

// MaxPrefix is the longest tool and prompt name prefix: with a tool name of
// up to 32 characters the exposed name stays within 64.
const MaxPrefix = 32

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{0,32}$`)

// DefaultPrefix is the prefix of a server's tool and prompt names unless the
// registration sets one: "<server>__".
func DefaultPrefix(server string) string { return server + Separator }

// ValidatePrefix reports whether p may prefix tool and prompt names: it must
// keep them within the characters MCP allows in a tool name.
func ValidatePrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("prefix %q is invalid: use at most %d characters of A-Z, a-z, 0-9, '_', '-' and '.'", p, MaxPrefix)
	}
	return nil
}

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

var tagRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// ValidateTag checks a tag (of a server, or of a client key that limits a
// client to the servers with it): 1-63 characters of a-z, 0-9, '_', '.',
// '-', starting with a letter or digit.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("tag %q is invalid: use 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit", tag)
	}
	return nil
}
