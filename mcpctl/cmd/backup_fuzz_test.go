package cmd

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

// A restore file is untrusted input: parseBackup never panics, refuses
// what it cannot read with an error naming the file, and what it accepts
// has a format version it knows and encodes again.
func FuzzParseBackup(f *testing.F) {
	for _, s := range []string{
		`{"format_version": 1, "revision": "7", "servers": [{"name": "a", "transport": "TRANSPORT_STDIO", "stdio": {"command": "/bin/a"}}], "cluster_secret": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"formatVersion": 1}`,
		`{"format_version": 2, "new_field": true}`,
		`{"format_version": 0}`,
		`{"format_version": -1}`,
		`{"format_version": 1, "unknown": 1}`,
		`{"format_version": 1, "servers": {}}`,
		`[]`, `null`, ``, `   `, `{`, "\xff\xfe",
		`{"format_version": 1, "format_version": 3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBackup("f.json", data)
		if err != nil {
			if !strings.Contains(err.Error(), "f.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if v := b.GetFormatVersion(); v == 0 || v > backupFormatVersion {
			t.Fatalf("accepted format_version %d", v)
		}
		if _, err := protojson.Marshal(b); err != nil {
			t.Fatalf("accepted backup does not encode: %v", err)
		}
	})
}
