package names

import (
	"strings"
	"testing"
)

func TestValidateServer(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "github": true, "my-server-2": true, strings.Repeat("a", 32): true,
		"": false, "-a": false, "A": false, "a_b": false, "a.b": false, strings.Repeat("a", 33): false,
	} {
		if err := ValidateServer(name); (err == nil) != ok {
			t.Errorf("ValidateServer(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestValidateURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://h/mcp": true, "https://h:8443/x?a=1": true, "http://127.0.0.1:1/mcp": true,
		"": false, "/mcp": false, "ftp://h/": false, "localhost:8080": false, "http://:80/": false,
		"http://[::1": false,
	} {
		if err := ValidateURL(raw); (err == nil) != ok {
			t.Errorf("ValidateURL(%q) = %v, want ok=%v", raw, err, ok)
		}
	}
}
