package app

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
)

// grpcpromMetrics is go-grpc-middleware's Prometheus provider. It needs
// github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus in go.mod;
// once it is there, delete grpcmetrics_fallback.go and this build tag.
type grpcpromMetrics struct{ *grpcprom.ServerMetrics }

func newGRPCServerMetrics() grpcServerMetrics {
	return grpcpromMetrics{grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())}
}

func (m grpcpromMetrics) unary() grpc.UnaryServerInterceptor   { return m.UnaryServerInterceptor() }
func (m grpcpromMetrics) stream() grpc.StreamServerInterceptor { return m.StreamServerInterceptor() }
func (m grpcpromMetrics) initialize(s *grpc.Server)            { m.InitializeMetrics(s) }
