package settings

import (
	"errors"
	"strings"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestValuesDefaults(t *testing.T) {
	got := Values(nil)
	want := map[string]string{
		"pagination.enabled":         "false",
		"pagination.page_size":       "100",
		"resilience.backoff":         "1s,2s,4s,8s",
		"resilience.jitter":          "false",
		"resilience.probe_interval":  "500ms",
		"resilience.request_timeout": "1m0s",
		"resilience.hold":            "2s",
	}
	if len(got) != len(want) {
		t.Fatalf("Values = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		key, value string
		wantKey    string // value expected in Values afterwards
		wantErr    string
	}{
		{"pagination.enabled", "true", "true", ""},
		{"pagination.enabled", "yes", "", "pagination.enabled: \"yes\" is not a boolean"},
		{"pagination.page_size", "7", "7", ""},
		{"pagination.page_size", "0", "", "from 1 to 1000"},
		{"pagination.page_size", "1001", "", "from 1 to 1000"},
		{"pagination.page_size", "-1", "", "from 1 to 1000"},
		{"resilience.backoff", "100ms, 200ms", "100ms,200ms", ""},
		{"resilience.backoff", "1s,,2s", "", "resilience.backoff"},
		{"resilience.backoff", "", "", "resilience.backoff"},
		{"resilience.jitter", "true", "true", ""},
		{"resilience.probe_interval", "250ms", "250ms", ""},
		{"resilience.probe_interval", "0s", "", "must be more than 0"},
		// A probe every nanosecond burnt a CPU per down backend.
		{"resilience.probe_interval", "1ns", "", "resilience.probe_interval: \"1ns\" is too short: use at least 100ms"},
		{"resilience.probe_interval", "99ms", "", "at least 100ms"},
		{"resilience.probe_interval", "100ms", "100ms", ""},
		{"resilience.probe_interval", "61m", "", "at most 1h0m0s"},
		{"resilience.backoff", "10ms,1h", "10ms,1h0m0s", ""},
		{"resilience.backoff", "1s,1ns", "", "resilience.backoff: step 2: want comma-separated durations such as \"1s,2s,4s,8s\": \"1ns\" is too short: use at least 10ms"},
		{"resilience.backoff", "1s,2h", "", "at most 1h0m0s"},
		{"resilience.backoff", strings.Repeat("1s,", 20) + "1s", "", "resilience.backoff: 21 durations is too many: at most 20"},
		{"resilience.backoff", strings.TrimSuffix(strings.Repeat("1s,", 20), ","), strings.TrimSuffix(strings.Repeat("1s,", 20), ","), ""},
		{"resilience.request_timeout", "2h", "", "at most 1h0m0s"},
		{"resilience.request_timeout", "30s", "30s", ""},
		{"resilience.hold", "0s", "0s", ""},
		{"resilience.hold", "750ms", "750ms", ""},
		{"resilience.hold", "-1s", "", "resilience.hold: \"-1s\" is not a duration from 0s"},
		{"resilience.hold", "2h", "", "resilience.hold"},
		{"nope", "1", "", "unknown setting \"nope\": valid keys are pagination.enabled, pagination.page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			base := &mcpmeshv1.Settings{}
			got, err := Set(base, tc.key, tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := Values(got)[tc.key]; v != tc.wantKey {
				t.Fatalf("%s = %q, want %q", tc.key, v, tc.wantKey)
			}
			if base.Pagination != nil {
				t.Fatal("Set modified its input")
			}
		})
	}
	var unk *ErrUnknownKey
	if _, err := Set(nil, "x", "y"); !errors.As(err, &unk) {
		t.Fatalf("unknown key err type %T", err)
	}
}

func TestEffectiveClampsOldValues(t *testing.T) {
	var steps []*durationpb.Duration
	for range MaxBackoffLen + 5 {
		steps = append(steps, durationpb.New(time.Nanosecond))
	}
	steps[1] = durationpb.New(48 * time.Hour)
	old := &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{
		ProbeInterval: durationpb.New(time.Nanosecond), Backoff: steps,
	}}
	r := Effective(old).GetResilience()
	if got := r.GetProbeInterval().AsDuration(); got != MinProbeInterval {
		t.Errorf("probe_interval = %s, want %s", got, MinProbeInterval)
	}
	if len(r.GetBackoff()) != MaxBackoffLen {
		t.Fatalf("%d backoff steps, want %d", len(r.GetBackoff()), MaxBackoffLen)
	}
	if got := r.GetBackoff()[0].AsDuration(); got != MinBackoffStep {
		t.Errorf("backoff[0] = %s, want %s", got, MinBackoffStep)
	}
	if got := r.GetBackoff()[1].AsDuration(); got != MaxDuration {
		t.Errorf("backoff[1] = %s, want %s", got, MaxDuration)
	}
	if old.GetResilience().GetBackoff()[0].AsDuration() != time.Nanosecond {
		t.Error("Effective modified its input")
	}
}

func FuzzSet(f *testing.F) {
	f.Add("resilience.backoff", "1s,2s")
	f.Add("pagination.page_size", "10")
	f.Add("resilience.probe_interval", "1ns")
	f.Add("resilience.backoff", "10ms,1h")
	f.Fuzz(func(t *testing.T, key, value string) {
		s, err := Set(nil, key, value)
		if err != nil {
			return
		}
		_ = Values(s)
		r := Effective(s).GetResilience()
		if d := r.GetProbeInterval().AsDuration(); d < MinProbeInterval || d > MaxDuration {
			t.Fatalf("%s=%q: probe interval %s out of bounds", key, value, d)
		}
		if len(r.GetBackoff()) > MaxBackoffLen {
			t.Fatalf("%s=%q: %d backoff steps", key, value, len(r.GetBackoff()))
		}
		for _, d := range r.GetBackoff() {
			if d.AsDuration() < MinBackoffStep || d.AsDuration() > MaxDuration {
				t.Fatalf("%s=%q: backoff step %s out of bounds", key, value, d.AsDuration())
			}
		}
	})
}
