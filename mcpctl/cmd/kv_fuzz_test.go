package cmd

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// flagSep separates the repeated flags packed into one fuzz string; it is a
// byte nobody types, so every other byte (newlines, '=', NUL) stays in play.
const flagSep = "\x1e"

var kvSeeds = []string{
	"TOKEN=s3cret",
	"TOKEN=a=b" + flagSep + "EMPTY=",
	"Authorization=Bearer xyz",
	"X-Api-Key=k==" + flagSep + "Accept=*/*",
	"NOEQ",
	"=v",
	"K=1" + flagSep + "K=2",
	"K\x00=v",
	"K=v\x00",
	"Bad Name=v",
	"X-H=line\r\nInjected: 1",
	"X-H=tab\tok",
	"\xff\xfe=\x00",
	"",
}

// checkKV holds for both flags: an accepted list parses back to exactly its
// pairs (KEY before the first '=', VALUE the rest, '=' included); a refused
// one is an error that starts with the flag's name.
func checkKV(t *testing.T, flag string, items []string, got map[string]string, err error, valid func(k, v string) bool) {
	t.Helper()
	// The rules, restated independently of parseKV.
	want, wantOK := map[string]string{}, true
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if _, dup := want[k]; !ok || k == "" || dup || !valid(k, v) {
			wantOK = false
			break
		}
		want[k] = v
	}
	if !wantOK {
		if err == nil {
			t.Fatalf("%s %q accepted as %q, want an error", flag, items, got)
		}
		if !strings.HasPrefix(err.Error(), flag) {
			t.Fatalf("%s %q: error %q does not name the flag", flag, items, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s %q refused: %v", flag, items, err)
	}
	if len(got) != len(items) {
		t.Fatalf("%s %q parsed to %d pairs %q", flag, items, len(got), got)
	}
	for _, it := range items {
		k, _, _ := strings.Cut(it, "=")
		if v, ok := got[k]; !ok || k+"="+v != it {
			t.Fatalf("%s %q: %q does not round-trip (got %q=%q)", flag, items, it, k, v)
		}
	}
}

func splitFlags(data string) []string {
	if data == "" {
		return nil
	}
	return strings.Split(data, flagSep)
}

// FuzzEnvFlag drives `server add NAME --env ... -- cmd` through the same
// request builder the command uses.
func FuzzEnvFlag(f *testing.F) {
	for _, s := range kvSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		items := splitFlags(data)
		req, err := buildCreateRequest("fz", []string{"cmd"}, addFlags{env: items})
		got := req.GetServer().GetStdio().GetEnv()
		checkKV(t, "--env", items, got, err, func(k, v string) bool {
			return !strings.ContainsRune(k, 0) && !strings.ContainsRune(v, 0)
		})
		if err == nil && len(items) > 0 && got == nil {
			t.Fatalf("--env %q accepted but the request carries no env", items)
		}
	})
}

// FuzzHeaderFlag drives `server add NAME --url U --header ...`. An accepted
// header must also be one Go's HTTP client sends: a request carrying it is
// given to a real transport with a cancelled context, which checks every
// header before it would dial.
func FuzzHeaderFlag(f *testing.F) {
	for _, s := range kvSeeds {
		f.Add(s)
	}
	tr := &http.Transport{}
	f.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, data string) {
		items := splitFlags(data)
		req, err := buildCreateRequest("fz", nil, addFlags{url: "http://127.0.0.1:1/mcp", headers: items})
		got := req.GetServer().GetHttp().GetHeaders()
		checkKV(t, "--header", items, got, err, func(k, v string) bool {
			// RFC 9110 tchar, written out here rather than asked of the
			// code under test.
			for i := 0; i < len(k); i++ {
				c := k[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
					return false
				}
			}
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
					return false
				}
			}
			return true
		})
		if err != nil {
			return
		}
		hr, herr := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:1/mcp", nil)
		if herr != nil {
			t.Fatal(herr)
		}
		for k, v := range got {
			hr.Header[k] = []string{v}
		}
		if _, rerr := tr.RoundTrip(hr); !errors.Is(rerr, context.Canceled) {
			t.Fatalf("--header %q accepted, but Go's HTTP client refuses it: %v", items, rerr)
		}
	})
}
