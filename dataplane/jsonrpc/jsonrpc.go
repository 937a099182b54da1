package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// Standard and MCP error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeResourceNotFound is MCP's code for a resources/read of an unknown URI.
	CodeResourceNotFound = -32002
	// CodeRequestCancelled is what a request cancelled by its client answers
	// where an answer is still sent.
	CodeRequestCancelled = -32800
	// CodeUnavailable is the gateway's own: the backend that serves a request
	// cannot be reached (retrying, unavailable, breaker open).
	CodeUnavailable = -32001
)

// MaxMessage bounds one message a client or backend may send the data plane.
const MaxMessage = 16 << 20

// Error is a JSON-RPC error object. It is also a Go error, so that a handler
// can return one and have it reach the client as it is.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (JSON-RPC error %d)", e.Message, e.Code)
}

// Errorf builds an Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as a JSON-RPC error: itself when it is (or wraps) one,
// otherwise an internal error carrying err's text, URL credentials masked
// (transport errors repeat the backend's URL, and clients must not see them).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternalError, Message: redact.Text(err.Error())}
}

// Message is one JSON-RPC message with its payload left raw. Exactly one of
// these holds: a request (ID and Method), a notification (Method, no ID), a
// response (ID and Result or Error).
type Message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// IsRequest, IsNotification and IsResponse tell the kinds apart.
func (m *Message) IsRequest() bool      { return m.Method != "" && m.ID != nil }
func (m *Message) IsNotification() bool { return m.Method != "" && m.ID == nil }
func (m *Message) IsResponse() bool     { return m.Method == "" && m.ID != nil }

// Parse reads one message. The raw fields alias b. It checks the envelope
// only: "jsonrpc":"2.0", an id that is a string or a number, a method or a
// result or an error; what the params mean is the receiver's business.
//
// It validates b once and walks the top-level members with the scanner, so
// params and results are neither decoded nor copied. Member names are
// matched exactly (JSON-RPC names are case-sensitive); a repeated member
// counts by its last occurrence, as with encoding/json.
func Parse(b []byte) (Message, error) {
	var (
		m       Message
		version string
		bad     *Error
	)
	// One pass validates b and reads its members (validMembers).
	err := validMembers(b, func(key, val []byte) bool {
		switch string(key) {
		case "jsonrpc":
			if string(val) == `"2.0"` {
				version = "2.0"
				break
			}
			version, bad = envelopeString("jsonrpc", val)
		case "method":
			m.Method, bad = envelopeString("method", val)
		case "id":
			m.ID = nullIsAbsent(val)
		case "params":
			m.Params = nullIsAbsent(val)
		case "result":
			m.Result = val // null is a result (of a request answered with nothing)
		case "error":
			m.Error = nil
			if val[0] == 'n' {
				break
			}
			var e Error
			if err := json.Unmarshal(val, &e); err != nil {
				bad = &Error{Code: CodeInvalidRequest, Message: `invalid request: "error": ` + err.Error()}
				break
			}
			m.Error = &e
		}
		return bad == nil
	})
	switch {
	case errors.Is(err, errNotObject):
		return Message{}, &Error{Code: CodeInvalidRequest, Message: "invalid request: a message is a JSON object"}
	case err != nil:
		return Message{}, parseError(b)
	case bad != nil:
		return Message{}, bad
	case version != "2.0":
		return Message{}, &Error{Code: CodeInvalidRequest, Message: `invalid request: "jsonrpc" must be "2.0"`}
	}
	if m.ID != nil {
		if err := checkID(m.ID); err != nil {
			return Message{}, err
		}
	}
	switch {
	case m.Method != "":
		if m.Result != nil || m.Error != nil {
			return Message{}, &Error{Code: CodeInvalidRequest, Message: "invalid request: a request carries no result or error"}
		}
	case m.ID == nil:
		if m.Error != nil {
			// An error to a request whose id could not be read.
			return m, nil
		}
		return Message{}, &Error{Code: CodeInvalidRequest, Message: `invalid request: no "method" and no "id"`}
	case m.Result == nil && m.Error == nil:
		return Message{}, &Error{Code: CodeInvalidRequest, Message: `invalid request: no "method"`}
	}
	return m, nil
}

// envelopeString reads "jsonrpc" or "method": a string, or null for none.
func envelopeString(key string, val []byte) (string, *Error) {
	switch val[0] {
	case 'n':
		return "", nil
	case '"':
		if s, ok := methodNames[string(val[1:len(val)-1])]; ok {
			return s, nil // no copy of the names of MCP's methods
		}
		if s, ok := unquote(val); ok {
			return s, nil
		}
	}
	return "", &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid request: %q must be a string", key)}
}

// methodNames are MCP's method names, so that reading one allocates nothing.
var methodNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"initialize", "ping", "server/discover", "subscriptions/listen",
		"tools/list", "tools/call", "prompts/list", "prompts/get",
		"resources/list", "resources/read", "resources/templates/list",
		"resources/subscribe", "resources/unsubscribe",
		"logging/setLevel", "completion/complete",
		"tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
		"sampling/createMessage", "elicitation/create", "roots/list",
		"notifications/initialized", "notifications/cancelled", "notifications/progress",
		"notifications/message", "notifications/resources/updated",
		"notifications/resources/list_changed", "notifications/tools/list_changed",
		"notifications/prompts/list_changed", "notifications/roots/list_changed",
		"notifications/tasks/status", "notifications/elicitation/complete",
		"notifications/subscriptions/acknowledged",
	} {
		m[n] = n
	}
	return m
}()

func nullIsAbsent(r json.RawMessage) json.RawMessage {
	if len(r) == 0 || bytes.Equal(r, []byte("null")) {
		return nil
	}
	return r
}

func checkID(id json.RawMessage) error {
	switch id[0] {
	case '"':
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return nil
	}
	return &Error{Code: CodeInvalidRequest, Message: "invalid request: \"id\" must be a string or a number"}
}

// IDKey is a canonical map key for an id: numbers and strings never collide.
func IDKey(id json.RawMessage) string { return string(id) }

// IntID is the id of a request the data plane makes itself.
func IntID(n int64) json.RawMessage { return strconv.AppendInt(nil, n, 10) }

// Marshal encodes m with "jsonrpc":"2.0". Params and Result are written as
// they are (they must be valid JSON), not re-encoded.
func (m *Message) Marshal() []byte {
	return m.AppendTo(make([]byte, 0, 48+len(m.ID)+len(m.Method)+len(m.Params)+len(m.Result)))
}

// AppendTo appends Marshal's encoding of m to b.
func (m *Message) AppendTo(b []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0"`...)
	if m.ID != nil {
		b = append(b, `,"id":`...)
		b = append(b, m.ID...)
	}
	if m.Method != "" {
		b = append(b, `,"method":`...)
		b = appendString(b, m.Method)
	}
	if m.Params != nil {
		b = append(b, `,"params":`...)
		b = append(b, m.Params...)
	}
	switch {
	case m.Error != nil:
		e, _ := json.Marshal(m.Error) // strings, an int and raw JSON: cannot fail
		b = append(b, `,"error":`...)
		b = append(b, e...)
	case m.Result != nil:
		b = append(b, `,"result":`...)
		b = append(b, m.Result...)
	}
	return append(b, '}')
}

// Response encodes a result answer to id.
func Response(id, result json.RawMessage) []byte {
	return (&Message{ID: id, Result: result}).Marshal()
}

// AppendResponse appends Response's encoding to dst.
func AppendResponse(dst []byte, id, result json.RawMessage) []byte {
	return (&Message{ID: id, Result: result}).AppendTo(dst)
}

// ErrorResponse encodes an error answer to id (nil when the id is unknown).
func ErrorResponse(id json.RawMessage, e *Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	return (&Message{ID: id, Error: e}).Marshal()
}

// Request encodes a request.
func Request(id json.RawMessage, method string, params json.RawMessage) []byte {
	return (&Message{ID: id, Method: method, Params: params}).Marshal()
}

// Notification encodes a notification.
func Notification(method string, params json.RawMessage) []byte {
	return (&Message{Method: method, Params: params}).Marshal()
}

func appendString(b []byte, s string) []byte { return AppendString(b, s) }

// parseError is the error of a b that is no valid JSON, with the position and
// the reason encoding/json gives.
func parseError(b []byte) *Error {
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		err = errSyntax // cannot happen: valid and json.Valid agree (FuzzValid)
	}
	return &Error{Code: CodeParseError, Message: "parse error: " + err.Error()}
}
