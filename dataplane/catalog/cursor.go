package catalog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// A cursor is the position of a paginated list walk, handed to the client as
// an opaque string. It is self-contained and signed with the cursor key, so
// that any data plane of the cluster can continue a walk another one started,
// and none accepts a position a client made up.
//
// Wire form: base64url (no padding) of
//
//	version byte | kind byte | uvarint revision | uvarint page size |
//	uvarint len | server | uvarint index | uvarint len | last key |
//	flags byte | [uvarint pending | uvarint len | upstream cursor] |
//	HMAC-SHA256(key, everything before it)[:16]
//
// The bracketed part is there when flags has flagUpstream: the walk is
// following server's own pagination (walk.go). Version 3 came with the
// catalog (kinds counted from 0, a key of its own); versions 1 and 2, issued
// by the mcp-go based server, are refused like any unknown version.
const (
	cursorVersion = 3
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
)

// MaxPageSize and DefaultPageSize mirror the control plane's bounds for
// pagination.page_size; List clamps ListRequest.PageSize to them.
const (
	MaxPageSize     = 1000
	DefaultPageSize = 100
)

// cursor is a decoded position: the next page starts after the item last,
// which was item index-1 of server's items when the cursor was issued.
//
// With upstream set, the walk follows server's own pages: the next page
// first serves pending more items of server from the catalog (the rest of
// the upstream page the last item came from), then fetches the upstream page
// upNext; when upNext is "" the upstream list has ended and the walk goes on
// with the next server.
type cursor struct {
	kind     Kind
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

// errBadSignature: no key held verifies the cursor.
var errBadSignature = cursorError("signature mismatch (tampered, issued by another cluster, or signed with a cluster secret rotated out whose grace period ended: list again without a cursor)")

func cursorError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalidCursor}, args...)...)
}

// invalidParams is err as the JSON-RPC error a client gets.
func invalidParams(err error) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
}

var cursorEncoding = base64.RawURLEncoding.Strict()

func cursorMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)[:cursorMACSize]
}

// encodeCursor signs c with key and returns its wire form.
func encodeCursor(key []byte, c cursor) string {
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
	b = append(b, cursorMAC(key, b)...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor checks s's signature against key and that it belongs to kind,
// and returns the position it holds. Every error wraps errInvalidCursor and
// says what is wrong, for the client to read.
func decodeCursor(key []byte, kind Kind, s string) (cursor, error) {
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
	if !hmac.Equal(mac, cursorMAC(key, payload)) {
		return cursor{}, errBadSignature
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

// parseCursorPayload reads a signed payload. Only the gateway signs, so a
// failure here means a bug or a key shared with something else.
func parseCursorPayload(p []byte) (cursor, error) {
	r := cursorReader{b: p[1:]}
	c := cursor{kind: Kind(r.byte())}
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
	if !c.kind.Valid() {
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
