// Package tracing sets up OpenTelemetry tracing for the mcpmesh binaries: an
// OTLP/HTTP exporter behind a batching provider, or nothing at all (a nil
// Tracer) when no endpoint is configured, so that the request path of a
// binary without tracing never builds a span.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The standard variables that turn the exporter on (besides --otlp-endpoint).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL (http://host:4318) or
	// its traces URL (…/v1/traces); "" falls back to the OTEL_EXPORTER_OTLP_*
	// variables, and without those tracing is off.
	Endpoint string
	// Service is the service.name resource attribute ("mcpmesh-dataplane").
	Service, Version, Instance string
	// BatchTimeout bounds how long a span waits to be exported; 0 means the
	// SDK's default (5 s). Tests shorten it.
	BatchTimeout time.Duration
}

// Enabled reports whether cfg (or the environment) names an endpoint.
func (c Config) Enabled() bool {
	return c.Endpoint != "" || os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvTracesEndpoint) != ""
}

// Provider is a running exporter; Tracer is nil when tracing is off.
type Provider struct {
	Tracer trace.Tracer
	sdk    *sdktrace.TracerProvider
}

// Shutdown flushes the spans still queued and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// New starts the exporter cfg asks for; with tracing off it returns a
// Provider whose Tracer is nil. A malformed endpoint is an error naming it.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if !cfg.Enabled() {
		return &Provider{}, nil
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("otlp endpoint %q: want an http(s) URL such as http://127.0.0.1:4318", cfg.Endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.Service)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	if cfg.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.Instance))
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if cfg.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(cfg.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, bopts...),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Provider{Tracer: tp.Tracer("github.com/mcpmesh/mcpmesh"), sdk: tp}, nil
}

var propagator = propagation.TraceContext{}

// carrier is a propagation.TextMapCarrier of the two W3C fields, without a
// map: traceparent and tracestate are the only keys TraceContext uses.
type carrier struct{ parent, state string }

func (c *carrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.parent
	case "tracestate":
		return c.state
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.parent = value
	case "tracestate":
		c.state = value
	}
}

func (c *carrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// Extract returns ctx with the remote span context a W3C traceparent (and
// tracestate) names; a missing or malformed traceparent leaves ctx as it is
// (the span then starts a new trace).
func Extract(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, &carrier{parent: traceparent, state: tracestate})
}

// Inject returns the W3C traceparent and tracestate of the span in ctx ("" when
// it has none).
func Inject(ctx context.Context) (traceparent, tracestate string) {
	var c carrier
	propagator.Inject(ctx, &c)
	return c.parent, c.state
}

// CheckEndpoint vets a --otlp-endpoint value without starting anything.
func CheckEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(u.Host, " ") {
		return fmt.Errorf("--otlp-endpoint %q: want an http(s) URL such as http://127.0.0.1:4318", endpoint)
	}
	return nil
}
