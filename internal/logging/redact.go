package logging

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mcpmesh/mcpmesh/internal/redact"
)

// redactHandler masks URL credentials (internal/redact.Text) in the message
// and in every string, error and Stringer attribute before the record is
// written, so no log line of the binaries (nor of mcp-go, which logs through
// them) shows http://user:pw@… or ?api_key=…, whoever formatted it.
type redactHandler struct{ next slog.Handler }

// Redacting wraps h so that every record it writes is masked.
func Redacting(h slog.Handler) slog.Handler { return redactHandler{next: h} }

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	// Most records hold nothing to mask (the access log's line per request
	// among them): those go through as they are, without a copy.
	clean := redact.Text(r.Message) == r.Message
	if clean {
		r.Attrs(func(a slog.Attr) bool {
			clean = !masks(a)
			return clean
		})
	}
	if clean {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, redact.Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redactHandler{next: h.next.WithAttrs(red)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redact.Text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			if s := x.Error(); s != redact.Text(s) {
				return slog.String(a.Key, redact.Text(s))
			}
		case fmt.Stringer:
			if s := x.String(); s != redact.Text(s) {
				return slog.String(a.Key, redact.Text(s))
			}
		case []byte:
			return slog.String(a.Key, redact.Text(string(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// masks reports whether redactAttr would change what a is written as.
func masks(a slog.Attr) bool {
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		return redact.Text(s) != s
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration, slog.KindTime:
		return false
	}
	return true // groups, LogValuers and any values: the careful path
}
