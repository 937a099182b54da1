package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"--version"}, 0, "controlplane dev", ""},
		{[]string{"--help"}, 0, "-grpc-addr", ""},
		{[]string{"--bogus"}, 1, "", "controlplane: flag provided but not defined: -bogus (see controlplane --help)\n"},
		{[]string{"extra"}, 1, "", "unexpected argument \"extra\""},
		{[]string{"--log-level", "loud"}, 1, "", "log level \"loud\""},
		{[]string{"--log-format", "xml"}, 1, "", "log format \"xml\""},
		{[]string{"--grpc-max-message-size", "1000"}, 1, "", "--grpc-max-message-size 1000 is out of range: use 1048576 (1 MiB) to 16777216"},
		{[]string{"--grpc-max-message-size", "33554432"}, 1, "", "--grpc-max-message-size 33554432 is out of range"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("run(%v) = %d, out %q, err %q", tc.args, code, out.String(), errb.String())
		}
		if tc.code == 1 && strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("run(%v) error is not one line: %q", tc.args, errb.String())
		}
	}
}
