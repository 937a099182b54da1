package settings

import (
	"errors"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
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

func FuzzSet(f *testing.F) {
	f.Add("resilience.backoff", "1s,2s")
	f.Add("pagination.page_size", "10")
	f.Fuzz(func(t *testing.T, key, value string) {
		s, err := Set(nil, key, value)
		if err == nil {
			_ = Values(s)
		}
	})
}
