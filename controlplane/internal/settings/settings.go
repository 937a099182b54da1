package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Keys understood by Set, in the order they are listed to operators.
const (
	KeyPaginationEnabled        = "pagination.enabled"
	KeyPaginationPageSize       = "pagination.page_size"
	KeyResilienceBackoff        = "resilience.backoff"
	KeyResilienceJitter         = "resilience.jitter"
	KeyResilienceProbeInterval  = "resilience.probe_interval"
	KeyResilienceRequestTimeout = "resilience.request_timeout"
	KeyResilienceHold           = "resilience.hold"
)

// Keys lists every valid key.
var Keys = []string{
	KeyPaginationEnabled,
	KeyPaginationPageSize,
	KeyResilienceBackoff,
	KeyResilienceJitter,
	KeyResilienceProbeInterval,
	KeyResilienceRequestTimeout,
	KeyResilienceHold,
}

// Defaults of the settings whose zero value means "default" (see types.proto).
var (
	DefaultPageSize       uint32 = 100
	DefaultBackoff               = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	DefaultProbeInterval         = 500 * time.Millisecond
	DefaultRequestTimeout        = 60 * time.Second
	DefaultHold                  = 2 * time.Second
)

// Limits on values, so a typo cannot make a data plane spin or wait forever
// (a probe every nanosecond burns a CPU per down backend). The resilience
// bounds are shared with the data plane, which clamps to them.
const (
	MaxPageSize      = 1000
	MaxDuration      = time.Hour
	MaxBackoffLen    = limits.MaxBackoffSteps
	MinBackoffStep   = limits.MinBackoffStep
	MinProbeInterval = limits.MinProbeInterval
)

// ErrUnknownKey is wrapped by Set for a key not in Keys.
type ErrUnknownKey struct{ Key string }

func (e *ErrUnknownKey) Error() string {
	return fmt.Sprintf("unknown setting %q: valid keys are %s", e.Key, strings.Join(Keys, ", "))
}

// Effective returns a copy of s with every defaulted field filled in.
func Effective(s *mcpmeshv1.Settings) *mcpmeshv1.Settings {
	out := cloneWithSections(s)
	p, r := out.Pagination, out.Resilience
	if p.PageSize == 0 {
		p.PageSize = DefaultPageSize
	}
	if len(r.Backoff) == 0 {
		for _, d := range DefaultBackoff {
			r.Backoff = append(r.Backoff, durationpb.New(d))
		}
	}
	if r.ProbeInterval.AsDuration() <= 0 {
		r.ProbeInterval = durationpb.New(DefaultProbeInterval)
	}
	// Values stored before the bounds existed are clamped to them, so no
	// snapshot carries a probe or retry loop that spins.
	r.ProbeInterval = durationpb.New(min(max(r.ProbeInterval.AsDuration(), MinProbeInterval), MaxDuration))
	if len(r.Backoff) > MaxBackoffLen {
		r.Backoff = r.Backoff[:MaxBackoffLen]
	}
	for i, d := range r.Backoff {
		r.Backoff[i] = durationpb.New(min(max(d.AsDuration(), MinBackoffStep), MaxDuration))
	}
	if r.RequestTimeout.AsDuration() <= 0 {
		r.RequestTimeout = durationpb.New(DefaultRequestTimeout)
	}
	if r.Hold == nil { // unlike the others, 0s is a value: fail at once
		r.Hold = durationpb.New(DefaultHold)
	}
	return out
}

// Values flattens the effective settings to KEY -> VALUE.
func Values(s *mcpmeshv1.Settings) map[string]string {
	e := Effective(s)
	var backoff []string
	for _, d := range e.Resilience.Backoff {
		backoff = append(backoff, d.AsDuration().String())
	}
	return map[string]string{
		KeyPaginationEnabled:        strconv.FormatBool(e.Pagination.Enabled),
		KeyPaginationPageSize:       strconv.FormatUint(uint64(e.Pagination.PageSize), 10),
		KeyResilienceBackoff:        strings.Join(backoff, ","),
		KeyResilienceJitter:         strconv.FormatBool(e.Resilience.Jitter),
		KeyResilienceProbeInterval:  e.Resilience.ProbeInterval.AsDuration().String(),
		KeyResilienceRequestTimeout: e.Resilience.RequestTimeout.AsDuration().String(),
		KeyResilienceHold:           e.Resilience.Hold.AsDuration().String(),
	}
}

// Set returns a copy of s with key set to the parsed value. Errors name the
// key and say what a valid value looks like; an unknown key is *ErrUnknownKey.
func Set(s *mcpmeshv1.Settings, key, value string) (*mcpmeshv1.Settings, error) {
	out := cloneWithSections(s)
	value = strings.TrimSpace(value)
	switch key {
	case KeyPaginationEnabled:
		b, err := parseBool(key, value)
		if err != nil {
			return nil, err
		}
		out.Pagination.Enabled = b
	case KeyPaginationPageSize:
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n < 1 || n > MaxPageSize {
			return nil, fmt.Errorf("%s: %q is not a whole number from 1 to %d", key, value, MaxPageSize)
		}
		out.Pagination.PageSize = uint32(n)
	case KeyResilienceBackoff:
		var ds []*durationpb.Duration
		parts := strings.Split(value, ",")
		if len(parts) > MaxBackoffLen {
			return nil, fmt.Errorf("%s: %d durations is too many: at most %d", key, len(parts), MaxBackoffLen)
		}
		for i, p := range parts {
			d, err := parseDurationMin(strings.TrimSpace(p), MinBackoffStep)
			if err != nil {
				return nil, fmt.Errorf("%s: step %d: want comma-separated durations such as \"1s,2s,4s,8s\": %w", key, i+1, err)
			}
			ds = append(ds, durationpb.New(d))
		}
		out.Resilience.Backoff = ds
	case KeyResilienceJitter:
		b, err := parseBool(key, value)
		if err != nil {
			return nil, err
		}
		out.Resilience.Jitter = b
	case KeyResilienceProbeInterval:
		d, err := parseDurationMin(value, MinProbeInterval)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out.Resilience.ProbeInterval = durationpb.New(d)
	case KeyResilienceRequestTimeout:
		d, err := parseDurationMin(value, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out.Resilience.RequestTimeout = durationpb.New(d)
	case KeyResilienceHold:
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 || d > MaxDuration {
			return nil, fmt.Errorf("%s: %q is not a duration from 0s (fail at once) to %s (use e.g. 2s)", key, value, MaxDuration)
		}
		out.Resilience.Hold = durationpb.New(d)
	default:
		return nil, &ErrUnknownKey{Key: key}
	}
	return out, nil
}

func parseBool(key, value string) (bool, error) {
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not a boolean (use true or false)", key, value)
	}
	return b, nil
}

// parseDurationMin parses a duration of more than 0, at least least (when
// non-zero) and at most MaxDuration.
func parseDurationMin(value string, least time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 500ms, 2s, 1m)", value)
	}
	if d <= 0 || d > MaxDuration {
		return 0, fmt.Errorf("%q must be more than 0 and at most %s", value, MaxDuration)
	}
	if d < least {
		return 0, fmt.Errorf("%q is too short: use at least %s", value, least)
	}
	return d, nil
}

// cloneWithSections copies s (nil is empty) with every section present, so
// callers can set fields without nil checks and never change the caller's s.
func cloneWithSections(s *mcpmeshv1.Settings) *mcpmeshv1.Settings {
	out := &mcpmeshv1.Settings{}
	if s != nil {
		out = proto.Clone(s).(*mcpmeshv1.Settings)
	}
	if out.Pagination == nil {
		out.Pagination = &mcpmeshv1.PaginationSettings{}
	}
	if out.Resilience == nil {
		out.Resilience = &mcpmeshv1.ResilienceSettings{}
	}
	return out
}
