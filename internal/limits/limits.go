package limits

import (
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
)

// MaxMessageSize is the largest gRPC message the control plane, data planes
// and mcpctl send or receive (gRPC's own default is 4 MiB). Every side sets it
// explicitly, so one side's default can never cut the other's stream.
const MaxMessageSize = 16 << 20

// SnapshotHeadroom is what a config snapshot leaves free of the message
// limit for the response around it (nonce, future fields).
const SnapshotHeadroom = 64 << 10

// MaxSnapshotSize is the largest config snapshot a write may produce when
// the message limit is maxMessage.
func MaxSnapshotSize(maxMessage int) int { return maxMessage - SnapshotHeadroom }

// CallOptions makes every call of a client connection send and receive
// messages up to MaxMessageSize.
func CallOptions() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize))
}

// MaxErrorText bounds a stored or served error text (a backend's
// last_error, an event, a NACK), whatever the backend answered.
const MaxErrorText = 1024

// TruncatedMarker ends a text that Truncate shortened.
const TruncatedMarker = "…(truncated)"

// Truncate returns s if it is at most n bytes, else its longest prefix that
// ends on a rune boundary and, with TruncatedMarker appended, is at most n
// bytes (n below len(TruncatedMarker) yields the marker alone). A rune is
// never cut in half; invalid UTF-8 in the kept prefix is left as it is.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	keep := n - len(TruncatedMarker)
	if keep <= 0 {
		return TruncatedMarker
	}
	// Back off at most utf8.UTFMax-1 bytes to the start of the rune that
	// straddles the cut.
	for i := keep; i > 0 && i > keep-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			keep = i
			break
		}
	}
	return s[:keep] + TruncatedMarker
}

// Bounds of the resilience timing, on the control plane (refused at write
// time) and on the data plane (clamped, for values stored before the bounds
// existed). A probe every nanosecond burns a CPU per down backend.
const (
	MinProbeInterval = 100 * time.Millisecond
	MinBackoffStep   = 10 * time.Millisecond
	MaxBackoffStep   = time.Hour
	MaxBackoffSteps  = 20
)
