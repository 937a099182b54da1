package catalog

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLimitsCheck(t *testing.T) {
	l := Limits{MaxKey: 10, MaxDescription: 12}.WithDefaults()
	if l.MaxItems != DefaultMaxItems {
		t.Errorf("MaxItems = %d, want the default", l.MaxItems)
	}
	for _, tc := range []struct {
		key, raw string
		ok       bool
	}{
		{"echo", `{"name":"echo","description":"0123456789"}`, true}, // 12 bytes with quotes
		{"echo", `{"name":"echo","description":"01234567890"}`, false},
		{"echo", `{"name":"echo"}`, true},
		{"0123456789", `{"name":"0123456789"}`, true},
		{"0123456789a", `{"name":"0123456789a"}`, false},
	} {
		err := l.Check(Tools, Item{Key: tc.key, Raw: json.RawMessage(tc.raw)})
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok %v", tc.raw, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "limit") {
			t.Errorf("error %q does not name the limit", err)
		}
	}
}
