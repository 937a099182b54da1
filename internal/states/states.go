// Package states spells backend and breaker states the one way every
// mcpmesh surface shows them (/health, the status page, events, metrics):
// lower case, "half_open" with an underscore.
package states

import (
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Backend is the label of a backend state: connecting, healthy, retrying,
// unavailable, disabled, or unknown when unset.
func Backend(s mcpmeshv1.BackendState) string {
	if s == mcpmeshv1.BackendState_BACKEND_STATE_UNSPECIFIED {
		return "unknown"
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
