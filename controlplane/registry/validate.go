package registry

import (
	"fmt"
	"strings"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxTimeout is the longest per-server request timeout accepted.
const MaxTimeout = time.Hour

// MaxBackoffSteps and MaxBackoffStep bound a server's own retry schedule.
// A step under MinBackoffStep would make a data plane spin on a backend that
// refuses connections.
const (
	MaxBackoffSteps = 16
	MinBackoffStep  = limits.MinBackoffStep
	MaxBackoffStep  = 10 * time.Minute
)

// fieldError is a validation failure of one request field.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func invalid(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// status converts a validation failure to InvalidArgument with the field in
// both the message and a BadRequest detail.
func (e *fieldError) status() error {
	st := status.New(codes.InvalidArgument, e.Error())
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: e.field, Description: e.msg,
	}}}); err == nil {
		st = d
	}
	return st.Err()
}

// validateServer checks everything an operator sets on a server.
func validateServer(s *mcpmeshv1.Server) *fieldError {
	if s == nil {
		return invalid("server", "is required")
	}
	if err := validateSizes(s); err != nil {
		return err
	}
	if err := names.ValidateServer(s.GetName()); err != nil {
		return invalid("server.name", "%v", err)
	}
	switch s.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		if strings.TrimSpace(s.GetStdio().GetCommand()) == "" {
			return invalid("server.stdio.command", "is required for the stdio transport")
		}
		if s.GetHttp() != nil && (s.GetHttp().GetUrl() != "" || len(s.GetHttp().GetHeaders()) > 0) {
			return invalid("server.http", "must not be set for the stdio transport")
		}
		if len(s.GetEndpoints()) > 0 {
			return invalid("server.endpoints", "extra endpoints are only for the streamable_http and sse transports")
		}
		if err := validateOAuth(s, false); err != nil {
			return err
		}
		for k, v := range s.GetStdio().GetEnv() {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return invalid("server.stdio.env", "key %q is invalid: keys must be non-empty and contain no '='", k)
			}
			// exec refuses a NUL in the environment: the child would never start.
			if strings.ContainsRune(v, 0) {
				return invalid("server.stdio.env", "value of %q contains a NUL byte", k)
			}
		}
		for i, a := range s.GetStdio().GetSecretArgs() {
			if int(a) >= len(s.GetStdio().GetArgs()) {
				return invalid(fmt.Sprintf("server.stdio.secret_args[%d]", i), "%d is not the index of an arg (there are %d)", a, len(s.GetStdio().GetArgs()))
			}
		}
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, mcpmeshv1.Transport_TRANSPORT_SSE:
		if s.GetStdio() != nil && (s.GetStdio().GetCommand() != "" || len(s.GetStdio().GetArgs()) > 0 || len(s.GetStdio().GetEnv()) > 0) {
			return invalid("server.stdio", "must not be set for the %s transport", transportName(s.GetTransport()))
		}
		if s.GetHttp().GetUrl() == "" {
			return invalid("server.http.url", "is required for the %s transport", transportName(s.GetTransport()))
		}
		if err := names.ValidateURL(s.GetHttp().GetUrl()); err != nil {
			return invalid("server.http.url", "%v", err)
		}
		for i, ep := range s.GetEndpoints() {
			if err := names.ValidateURL(ep); err != nil {
				return invalid(fmt.Sprintf("server.endpoints[%d]", i), "%v", err)
			}
		}
		// Go's HTTP client refuses such names and values on every request:
		// the server would register but never connect.
		for k, v := range s.GetHttp().GetHeaders() {
			if !httpguts.ValidHeaderFieldName(k) {
				return invalid("server.http.headers", "header name %q is invalid: use letters, digits and !#$%%&'*+-.^_`|~", k)
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				return invalid("server.http.headers", "value of %q contains a control character (line break, NUL, ...)", k)
			}
		}
		if err := validateOAuth(s, true); err != nil {
			return err
		}
	default:
		return invalid("server.transport", "must be stdio, streamable_http or sse")
	}
	if t := s.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return invalid("server.timeout", "%v", err)
		}
		if d := t.AsDuration(); d < 0 || d > MaxTimeout {
			return invalid("server.timeout", "%s is out of range: use 0 (the default) up to %s", d, MaxTimeout)
		}
	}
	if n := len(s.GetBackoff()); n > MaxBackoffSteps {
		return invalid("server.backoff", "%d steps is too many: use at most %d", n, MaxBackoffSteps)
	}
	for i, d := range s.GetBackoff() {
		field := fmt.Sprintf("server.backoff[%d]", i)
		if err := d.CheckValid(); err != nil {
			return invalid(field, "%v", err)
		}
		if v := d.AsDuration(); v < MinBackoffStep || v > MaxBackoffStep {
			return invalid(field, "%s is out of range: use %s up to %s", v, MinBackoffStep, MaxBackoffStep)
		}
	}
	if s.Prefix != nil {
		if err := names.ValidatePrefix(s.GetPrefix()); err != nil {
			return invalid("server.prefix", "%v", err)
		}
	}
	if _, ok := mcpmeshv1.SessionMode_name[int32(s.GetSession())]; !ok {
		return invalid("server.session", "session mode %d is unknown: use per-client or shared", s.GetSession())
	}
	if s.GetSession() == mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT && s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO {
		return invalid("server.session", "per-client sessions are not supported for stdio servers (their child process is one session per data plane): use shared")
	}
	for i, tag := range s.GetTags() {
		if err := names.ValidateTag(tag); err != nil {
			return invalid(fmt.Sprintf("server.tags[%d]", i), "%s", err)
		}
	}
	return nil
}

func transportName(t mcpmeshv1.Transport) string {
	switch t {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		return "stdio"
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		return "streamable_http"
	case mcpmeshv1.Transport_TRANSPORT_SSE:
		return "sse"
	}
	return t.String()
}
