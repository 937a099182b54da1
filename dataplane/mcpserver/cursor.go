package mcpserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
)

// A cursor is the position of a paginated list walk, handed to the client as
// an opaque string. It is self-contained and signed with the cluster secret,
// so that any data plane of the cluster can continue a walk another one
// started, and none accepts a position a client made up.
//
// Wire form: base64url (no padding) of
//
//	version byte | kind byte | uvarint revision | uvarint page size |
//	uvarint len | server | uvarint index | uvarint len | last key |
//	flags byte | [uvarint pending | uvarint len | upstream cursor] |
//	HMAC-SHA256(secret, everything before it)[:16]
//
// The bracketed part is there when flags has flagUpstream: the walk is
// following server's own pagination (paginate.go). Version 1 cursors, issued
// before upstream pages were followed, are refused like any unknown version.
const (
	cursorVersion = 2
	flagUpstream  = 1
	cursorMACSize = 16
	// maxCursorLen bounds the work done on a client-supplied string before
	// its signature is even checked.
	maxCursorLen = 4096
	// maxCursorKey keeps cursors short: a longer last key (a very long URI)
	// is left out and the walk resumes by index instead.
	maxCursorKey = 1024
	// maxUpstreamCursor bounds the backend cursor a cursor carries; a walk
	// reaching a longer one finishes that server from the cache instead.
	maxUpstreamCursor = 1024
	// MaxPageSize and DefaultPageSize mirror the control plane's bounds for
	// pagination.page_size.
	MaxPageSize     = 1000
	DefaultPageSize = 100
)

// listKind is the list method a cursor belongs to; a cursor of one list is
// refused by the others.
type listKind uint8

const (
	kindTools listKind = iota + 1
	kindPrompts
	kindResources
	kindTemplates
)

// method is the MCP list method of kind, as backends are asked for it.
func (k listKind) method() mcp.MCPMethod {
	switch k {
	case kindTools:
		return mcp.MethodToolsList
	case kindPrompts:
		return mcp.MethodPromptsList
	case kindResources:
		return mcp.MethodResourcesList
	default:
		return mcp.MethodResourcesTemplatesList
	}
}

func (k listKind) String() string {
	switch k {
	case kindTools:
		return "tools/list"
	case kindPrompts:
		return "prompts/list"
	case kindResources:
		return "resources/list"
	case kindTemplates:
		return "resources/templates/list"
	default:
		return fmt.Sprintf("list kind %d", uint8(k))
	}
}

// cursor is a decoded position: the next page starts after the item last,
// which was item index-1 of server's items when the cursor was issued.
//
// With upstream set, the walk follows server's own pages: the next page
// first serves pending more items of server from the aggregate (the rest of
// the upstream page the last item came from), then fetches the upstream
// page upNext; when upNext is "" the upstream list has ended and the walk
// goes on with the next server.
type cursor struct {
	kind     listKind
	revision uint64
	pageSize int
	server   string
	index    int
	last     string
	upstream bool
	pending  int
	upNext   string
}

// errInvalidCursor is wrapped by every decoding failure; its text starts the
// message clients get with JSON-RPC -32602.
var errInvalidCursor = errors.New("invalid cursor")

func cursorError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalidCursor}, args...)...)
}

var cursorEncoding = base64.RawURLEncoding.Strict()

func cursorMAC(secret, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(payload)
	return m.Sum(nil)[:cursorMACSize]
}

// encodeCursor signs c with secret and returns its wire form.
func encodeCursor(secret []byte, c cursor) string {
	last := c.last
	if len(last) > maxCursorKey {
		last = ""
	}
	b := make([]byte, 0, 3+6*binary.MaxVarintLen64+len(c.server)+len(last)+len(c.upNext)+cursorMACSize)
	b = append(b, cursorVersion, byte(c.kind))
	b = binary.AppendUvarint(b, c.revision)
	b = binary.AppendUvarint(b, uint64(c.pageSize))
	b = binary.AppendUvarint(b, uint64(len(c.server)))
	b = append(b, c.server...)
	b = binary.AppendUvarint(b, uint64(c.index))
	b = binary.AppendUvarint(b, uint64(len(last)))
	b = append(b, last...)
	if c.upstream {
		b = append(b, flagUpstream)
		b = binary.AppendUvarint(b, uint64(c.pending))
		b = binary.AppendUvarint(b, uint64(len(c.upNext)))
		b = append(b, c.upNext...)
	} else {
		b = append(b, 0)
	}
	b = append(b, cursorMAC(secret, b)...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor checks s's signature against secret and that it belongs to
// kind, and returns the position it holds. Every error wraps
// errInvalidCursor and says what is wrong, for the client to read.
func decodeCursor(secret []byte, kind listKind, s string) (cursor, error) {
	if len(s) > maxCursorLen {
		return cursor{}, cursorError("longer than %d characters", maxCursorLen)
	}
	raw, err := cursorEncoding.DecodeString(s)
	// The decoder skips line breaks; one spelling per cursor keeps cursors
	// comparable.
	if err != nil || cursorEncoding.EncodedLen(len(raw)) != len(s) {
		return cursor{}, cursorError("not issued by this gateway (not base64url)")
	}
	if len(raw) < 2+cursorMACSize {
		return cursor{}, cursorError("too short")
	}
	if raw[0] != cursorVersion {
		return cursor{}, cursorError("unsupported version %d", raw[0])
	}
	payload, mac := raw[:len(raw)-cursorMACSize], raw[len(raw)-cursorMACSize:]
	if !hmac.Equal(mac, cursorMAC(secret, payload)) {
		return cursor{}, cursorError("signature mismatch (tampered, or issued by another cluster)")
	}
	c, err := parseCursorPayload(payload)
	if err != nil {
		return cursor{}, err
	}
	if c.kind != kind {
		return cursor{}, cursorError("issued for %s, not %s", c.kind, kind)
	}
	return c, nil
}

// parseCursorPayload reads a signed payload. Only this gateway signs, so a
// failure here means a bug or a secret shared with something else.
func parseCursorPayload(p []byte) (cursor, error) {
	r := cursorReader{b: p[1:]}
	c := cursor{kind: listKind(r.byte())}
	c.revision = r.uvarint()
	size := r.uvarint()
	c.server = r.string()
	index := r.uvarint()
	c.last = r.string()
	var pending uint64
	switch flags := r.byte(); flags {
	case 0:
	case flagUpstream:
		c.upstream = true
		pending = r.uvarint()
		c.upNext = r.string()
	default:
		r.err = errShortPayload
	}
	if r.err != nil || len(r.b) != 0 {
		return cursor{}, cursorError("malformed payload")
	}
	if c.kind < kindTools || c.kind > kindTemplates {
		return cursor{}, cursorError("unknown list kind %d", uint8(c.kind))
	}
	if size < 1 || size > MaxPageSize {
		return cursor{}, cursorError("page size %d out of range 1..%d", size, MaxPageSize)
	}
	if index > maxCursorLen*MaxPageSize {
		return cursor{}, cursorError("position %d out of range", index)
	}
	if pending > maxCursorLen*MaxPageSize {
		return cursor{}, cursorError("pending count %d out of range", pending)
	}
	c.pageSize, c.index, c.pending = int(size), int(index), int(pending)
	return c, nil
}

// cursorReader reads the payload fields; the first failure sticks.
type cursorReader struct {
	b   []byte
	err error
}

var errShortPayload = errors.New("short payload")

func (r *cursorReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errShortPayload
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *cursorReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortPayload
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *cursorReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errShortPayload
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
