package names

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// ValidateURL reports whether raw is a backend endpoint URL mcpmesh can dial:
// absolute http or https with a host. mcpctl, the control plane and the data
// plane all check endpoints with it, so they agree on what is valid.
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL: only the masked one is named.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%q is not a URL: %w", redact.URL(raw), err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("%q must be an absolute http or https URL with a host", redact.URL(raw))
	}
	return nil
}
