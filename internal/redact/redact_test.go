package redact_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/redact"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"http://host:8080/mcp", "http://host:8080/mcp"},
		{"http://user:pw@host/mcp", "http://user:***@host/mcp"},
		{"https://ghp_token123@github.com/x", "https://***@github.com/x"},
		{"http://user:@host", "http://user:***@host"},
		{"http://a:b@c@host/p@q", "http://a:***@host/p@q"},
		{"http://host/mcp?api_key=abc&x=1", "http://host/mcp?api_key=***&x=1"},
		{"http://host/?API_KEY=abc", "http://host/?API_KEY=***"},
		{"http://host/?Token=abc;sig=zz#frag", "http://host/?Token=***;sig=***#frag"},
		{"http://host?access_token=a&apikey=b&key=c&secret=d&password=e&signature=f", "http://host?access_token=***&apikey=***&key=***&secret=***&password=***&signature=***"},
		{"http://host/?client_secret=a&X-Amz-Signature=b&private_token=c&auth=d", "http://host/?client_secret=***&X-Amz-Signature=***&private_token=***&auth=***"},
		{"http://host/?api%5Fkey=abc", "http://host/?api%5Fkey=***"},
		{"http://host/?token=&page=2&token", "http://host/?token=&page=2&token"},
		{"http://host/?q=search&limit=10", "http://host/?q=search&limit=10"},
		{"http://host/#?token=abc", "http://host/#?token=abc"},
		{"http://u:p@host?token=t", "http://u:***@host?token=***"},
		{"not a url ?token=x", "not a url ?token=***"},
		{"http://[::1]:80/?sig=1", "http://[::1]:80/?sig=***"},
		{"//tok@host/p", "//***@host/p"},
	} {
		if got := redact.URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := redact.URL(redact.URL(tc.in)); got != tc.want {
			t.Errorf("URL(URL(%q)) = %q, want %q (not idempotent)", tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no url here", "no url here"},
		{`connect: failed to send request: Post "http://user:pw@127.0.0.1:9/mcp?api_key=s3cr3t": dial tcp 127.0.0.1:9: connect: connection refused`,
			`connect: failed to send request: Post "http://user:***@127.0.0.1:9/mcp?api_key=***": dial tcp 127.0.0.1:9: connect: connection refused`},
		{"endpoint https://tok@h/x and http://a:b@h2/?token=t, done", "endpoint https://***@h/x and http://a:***@h2/?token=*** done"}, // the comma is part of the URL,
		{`{"url":"http://a:b@h"}`, `{"url":"http://a:***@h"}`},
		{`\"http://a:b@h\"`, `\"http://a:***@h\"`},
		{"http://h/?next=https://u:p@x/?token=t", "http://h/?next=https://u:***@x/?token=***"},
		{"://a:b@h", "://a:***@h"},
		{"line1\nhttp://a:b@h\tx", "line1\nhttp://a:***@h\tx"},
	} {
		if got := redact.Text(tc.in); got != tc.want {
			t.Errorf("Text(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestValuesAndArgs(t *testing.T) {
	if got := redact.Values(map[string]string{"A": "x", "B": ""}); len(got) != 2 || got["A"] != redact.Mask || got["B"] != redact.Mask {
		t.Errorf("Values = %v", got)
	}
	if redact.Values(nil) != nil {
		t.Error("Values(nil) != nil")
	}
	args := []string{"--token", "t0p", "--v"}
	if got := redact.Args(args, []uint32{1, 7}); !slices.Equal(got, []string{"--token", redact.Mask, "--v"}) {
		t.Errorf("Args = %q", got)
	}
	if args[1] != "t0p" {
		t.Error("Args changed its input")
	}
	if got := redact.Args(args, nil); !slices.Equal(got, args) {
		t.Errorf("Args without secrets = %q", got)
	}
}

// FuzzURL checks, for any input, that masking never panics, is idempotent,
// and that whatever Go's url.Parse sees as a password or a secret query value
// comes out masked.
func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"http://user:pw@host/mcp?api_key=abc&x=1", "https://tok@h", "http://h/?token=a;sig=b#f",
		"http://[::1]:80/p?q", "http://a@b@c/?%zz=1", "://@?&=#", "http://h/?next=http://u:p@x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := redact.URL(in)
		if again := redact.URL(out); again != out {
			t.Fatalf("URL not idempotent: %q -> %q -> %q", in, out, again)
		}
		if txt := redact.Text(in); !strings.Contains(in, "://") && txt != in {
			t.Fatalf("Text changed a text without URL: %q -> %q", in, txt)
		}
		_ = redact.Text(in)
		u, err := url.Parse(out)
		if err != nil {
			return
		}
		if pw, ok := u.User.Password(); ok && pw != redact.Mask {
			t.Fatalf("URL(%q) = %q keeps password %q", in, out, pw)
		}
		if u.User != nil && u.User.Username() != "" {
			if _, ok := u.User.Password(); !ok && u.User.Username() != redact.Mask {
				t.Fatalf("URL(%q) = %q keeps userinfo %q", in, out, u.User.Username())
			}
		}
		q, _ := url.ParseQuery(u.RawQuery)
		for k, vs := range q {
			if !redact.SecretParam(k) {
				continue
			}
			for _, v := range vs {
				if v != "" && v != redact.Mask {
					t.Fatalf("URL(%q) = %q keeps %s=%q", in, out, k, v)
				}
			}
		}
	})
}
