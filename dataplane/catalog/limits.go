package catalog

import (
	"fmt"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Defaults of Limits.
const (
	DefaultMaxItems       = 20_000
	DefaultMaxKey         = 1024
	DefaultMaxDescription = 64 << 10
)

// Limits bound what one backend's list may make the data plane cache: a
// hostile or broken server must not make it hold more than about
// MaxItems x (MaxKey + MaxDescription + the rest of an item) per list.
type Limits struct {
	// MaxItems is how many items of one list kind a server may offer; the
	// rest are left out (DefaultMaxItems).
	MaxItems int
	// MaxKey bounds an item's name or URI in bytes (DefaultMaxKey).
	MaxKey int
	// MaxDescription bounds an item's description, as JSON, in bytes
	// (DefaultMaxDescription).
	MaxDescription int
}

// WithDefaults fills the zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultMaxItems
	}
	if l.MaxKey <= 0 {
		l.MaxKey = DefaultMaxKey
	}
	if l.MaxDescription <= 0 {
		l.MaxDescription = DefaultMaxDescription
	}
	return l
}

// Check says why an item of kind k is refused, or nil when it is within l.
func (l Limits) Check(k Kind, it Item) error {
	d := k.Desc()
	if len(it.Key) > l.MaxKey {
		return fmt.Errorf("%s %.64q… is %d bytes long, more than the limit of %d", d.Key, it.Key, len(it.Key), l.MaxKey)
	}
	if s, e, ok, err := jsonrpc.Lookup(it.Raw, "description"); err == nil && ok && e-s > l.MaxDescription {
		return fmt.Errorf("%s %q: description of %d bytes, more than the limit of %d", d.Key, it.Key, e-s, l.MaxDescription)
	}
	return nil
}
