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
		{[]string{"--store", "zk"}, 1, "", "--store \"zk\": use bolt or etcd"},
		{[]string{"--etcd-endpoints", "http://a:2379"}, 1, "", "--etcd-endpoints need --store etcd"},
		{[]string{"--secrets-key-file", "k"}, 1, "", "--secrets-key-file need --store etcd"},
		{[]string{"--store", "etcd", "--secrets-key-file", "k"}, 1, "", "--store etcd needs --etcd-endpoints"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379"}, 1, "", "--store etcd needs --secrets-key-file"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379,,http://b:2379"}, 1, "", "empty endpoint"},
		{[]string{"--store", "etcd", "--etcd-endpoints", "http://a:2379", "--secrets-key-file", "k", "--etcd-cert", "c"}, 1, "", "--etcd-cert and --etcd-key go together"},
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
