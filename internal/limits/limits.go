package limits

import (
	"time"

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

// Bounds of the resilience timing, on the control plane (refused at write
// time) and on the data plane (clamped, for values stored before the bounds
// existed). A probe every nanosecond burns a CPU per down backend.
const (
	MinProbeInterval = 100 * time.Millisecond
	MinBackoffStep   = 10 * time.Millisecond
	MaxBackoffStep   = time.Hour
	MaxBackoffSteps  = 20
)
