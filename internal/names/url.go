package names

import (
	"fmt"
	"net/url"
)

// ValidateURL reports whether raw is a backend endpoint URL mcpmesh can dial:
// absolute http or https with a host. mcpctl, the control plane and the data
// plane all check endpoints with it, so they agree on what is valid.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("%q must be an absolute http or https URL with a host", raw)
	}
	return nil
}
