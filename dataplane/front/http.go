package front

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Header names.
const (
	headerSession  = "Mcp-Session-Id"
	headerProtocol = "Mcp-Protocol-Version"
	// headerLastEventID is mcp.HeaderLastEventID in canonical form, which
	// Header.Get finds without making it canonical (an allocation) each time.
	headerLastEventID = "Last-Event-Id"
	// HeaderPeer marks a GET or DELETE another replica sends (Session.Peer).
	HeaderPeer = "Mcpmesh-Peer"
	// HeaderRelayed marks a POST another replica relays (Session.Relayed).
	HeaderRelayed = "Mcpmesh-Relayed"
)

// httpError answers status with a JSON-RPC error body (id null) saying what
// was wrong: clients show the message, and mcp-go's client decodes it.
func httpError(w http.ResponseWriter, status, code int, format string, args ...any) {
	writeJSON(w, status, jsonrpc.ErrorResponse(nil, &jsonrpc.Error{Code: code, Message: fmt.Sprintf(format, args...)}))
}

// jsonType is shared by every answer: Header.Set would allocate it each time
// (net/http only reads header values).
var jsonType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// admit runs the checks every request passes: Host and Origin (answering a
// CORS preflight of an allowed origin), client authentication and the
// protocol version header.
func (f *Front) admit(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	origin, err := f.browsers.Check(r)
	if err != nil {
		httpError(w, http.StatusForbidden, jsonrpc.CodeInvalidRequest, "request refused: %v", err)
		return r, false
	}
	if origin != "" {
		if isPreflight(r) {
			preflight(w, r, origin)
			return r, false
		}
		allowCORS(w.Header(), origin)
	}
	if f.auth != nil {
		g, status, challenge, msg := f.auth(r)
		if status != 0 {
			if challenge != "" {
				w.Header().Set("WWW-Authenticate", challenge)
			}
			httpError(w, status, jsonrpc.CodeInvalidRequest, "%s", msg)
			return r, false
		}
		r = r.WithContext(context.WithValue(r.Context(), grantKey{}, &g))
	}
	if v := r.Header.Get(headerProtocol); v != "" && !mcp.IsValidProtocolVersion(v) && !mcp.IsModernProtocol(v) {
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
			"unsupported %s header %q: this data plane speaks %s", headerProtocol, v, strings.Join(mcp.ValidProtocolVersions, ", "))
		return r, false
	}
	return r, true
}

// checkPost checks the headers of a POST carrying JSON-RPC.
func checkPost(w http.ResponseWriter, r *http.Request, needAccept bool) bool {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		httpError(w, http.StatusUnsupportedMediaType, jsonrpc.CodeInvalidRequest,
			"Content-Type must be application/json, not %q", ct)
		return false
	}
	if !needAccept {
		return true
	}
	json, sse := accepts(r.Header.Values("Accept"))
	var missing []string
	if !json {
		missing = append(missing, "application/json")
	}
	if !sse {
		missing = append(missing, "text/event-stream")
	}
	if missing != nil {
		httpError(w, http.StatusNotAcceptable, jsonrpc.CodeInvalidRequest,
			"Accept must allow application/json and text/event-stream; it does not allow %s", strings.Join(missing, " or "))
		return false
	}
	return true
}

// checkStreamAccept checks that a GET may be answered with an event stream.
func checkStreamAccept(w http.ResponseWriter, r *http.Request) bool {
	if _, sse := accepts(r.Header.Values("Accept")); !sse {
		httpError(w, http.StatusNotAcceptable, jsonrpc.CodeInvalidRequest,
			"Accept must allow text/event-stream: this is an event stream")
		return false
	}
	return true
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// accepts reports whether the Accept header allows JSON and event-stream
// answers. No header allows anything (RFC 9110 12.5.1); a range with q=0
// allows nothing.
func accepts(values []string) (json, sse bool) {
	if len(values) == 0 {
		return true, true
	}
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			mr, params, _ := strings.Cut(item, ";")
			if refused(params) {
				continue
			}
			switch mr = strings.TrimSpace(mr); {
			case mr == "*/*":
				json, sse = true, true
			case strings.EqualFold(mr, "application/json"), strings.EqualFold(mr, "application/*"):
				json = true
			case strings.EqualFold(mr, "text/event-stream"), strings.EqualFold(mr, "text/*"):
				sse = true
			}
		}
	}
	return json, sse
}

// refused reports whether media range parameters carry q=0.
func refused(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			return err == nil && q == 0
		}
	}
	return false
}

// readBody reads the whole body, at most f.maxBody bytes: once, into a
// buffer of its announced length when there is one.
func (f *Front) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > f.maxBody {
		httpError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest,
			"request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, f.maxBody)
		return nil, false
	}
	var (
		body []byte
		err  error
	)
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, f.maxBody+1))
		if err == nil && int64(len(body)) > f.maxBody {
			httpError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest,
				"request body exceeds the limit of %d bytes", f.maxBody)
			return nil, false
		}
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The server's body timeout (dataplane --body-timeout).
			httpError(w, http.StatusRequestTimeout, jsonrpc.CodeInvalidRequest,
				"request body not received in time: the client sent it too slowly")
			return nil, false
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("body shorter than its Content-Length")
		}
		httpError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "read request body: %v", err)
		return nil, false
	}
	return body, true
}

// paginate reads ?pagination=true.
func paginate(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	on, err := strconv.ParseBool(r.URL.Query().Get("pagination"))
	return err == nil && on
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	httpError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest,
		"method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
}
