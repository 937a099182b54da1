// Package states spells backend and breaker states the one way every
// mcpmesh surface shows them (/health, the status page, events, metrics):
// lower case, "half_open" with an underscore.
package states

import (
	"fmt"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// NeedsAuthorization is the label of BACKEND_STATE_NEEDS_AUTHORIZATION, and
// the aggregated ServerStatus.state of a server no data plane can reach for
// want of an OAuth grant.
const NeedsAuthorization = "needs-authorization"

// Backend is the label of a backend state: connecting, healthy, retrying,
// unavailable, disabled, needs-authorization, or unknown when unset.
func Backend(s mcpmeshv1.BackendState) string {
	switch s {
	case mcpmeshv1.BackendState_BACKEND_STATE_UNSPECIFIED:
		return "unknown"
	case mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION:
		return NeedsAuthorization
	}
	if _, ok := mcpmeshv1.BackendState_name[int32(s)]; !ok {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "BACKEND_STATE_"))
}

// Breaker is the label of a breaker state: closed, open or half_open. A
// backend that reports none has a closed breaker.
func Breaker(s mcpmeshv1.BreakerState) string {
	switch s {
	case mcpmeshv1.BreakerState_BREAKER_STATE_OPEN:
		return "open"
	case mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN:
		return "half_open"
	default:
		return "closed"
	}
}

// Session is the spelling of a session mode: per-client or shared; ""
// when unset (the transport's default applies).
func Session(m mcpmeshv1.SessionMode) string {
	switch m {
	case mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT:
		return "per-client"
	case mcpmeshv1.SessionMode_SESSION_MODE_SHARED:
		return "shared"
	default:
		return ""
	}
}

// ParseSession reads a session mode as Session spells it.
func ParseSession(s string) (mcpmeshv1.SessionMode, error) {
	switch s {
	case "per-client":
		return mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT, nil
	case "shared":
		return mcpmeshv1.SessionMode_SESSION_MODE_SHARED, nil
	}
	return 0, fmt.Errorf("session mode %q is not one of per-client, shared", s)
}

// EffectiveSession is the mode a server runs in: its own, else the default
// of its transport (shared for stdio, whose child is one process; per-client
// for HTTP and SSE).
func EffectiveSession(s *mcpmeshv1.Server) mcpmeshv1.SessionMode {
	if m := s.GetSession(); m != mcpmeshv1.SessionMode_SESSION_MODE_UNSPECIFIED {
		return m
	}
	if s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO {
		return mcpmeshv1.SessionMode_SESSION_MODE_SHARED
	}
	return mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT
}
