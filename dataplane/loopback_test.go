package main

import "testing"

func TestAllLoopback(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"127.0.0.1:7070", true},
		{"localhost:7070", true},
		{"127.0.0.1:7070,[::1]:7071,localhost:7072", true},
		{"127.0.0.1:7070,10.0.0.2:7070", false}, // one off loopback: TLS for all
		{"cp.example:7070", false},
		{"127.0.0.1:7070,,127.0.0.1:7071", false}, // does not parse
		{"dns:///localhost:7070", true},
	} {
		if got := allLoopback(c.in); got != c.want {
			t.Errorf("allLoopback(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
