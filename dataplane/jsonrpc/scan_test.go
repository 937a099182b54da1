package jsonrpc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	obj := []byte(` {"a": {"x":[1,"}"]}, "name" : "echo", "n\u0061me2":"z","_meta":{"progressToken":7}} `)
	cases := []struct {
		key  string
		want string
		ok   bool
	}{
		{"a", `{"x":[1,"}"]}`, true},
		{"name", `"echo"`, true},
		{"name2", `"z"`, true},
		{"_meta", `{"progressToken":7}`, true},
		{"missing", "", false},
	}
	for _, c := range cases {
		s, e, ok, err := Lookup(obj, c.key)
		if err != nil || ok != c.ok || (ok && string(obj[s:e]) != c.want) {
			t.Errorf("Lookup(%q) = %q, %v, %v; want %q", c.key, obj[s:e], ok, err, c.want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":`, `{"a":"x`, `{"a":1 "b":2}`} {
		if _, _, ok, err := Lookup([]byte(bad), "b"); err == nil && ok {
			t.Errorf("Lookup(%q) found a value", bad)
		}
	}
}

func TestSet(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{}`, `{"k":1}`},
		{` { } `, ` { "k":1} `},
		{`{"a":2}`, `{"a":2,"k":1}`},
		{`{"k":"old","a":2}`, `{"k":1,"a":2}`},
	} {
		got, err := Set([]byte(c.in), "k", []byte("1"))
		if err != nil || string(got) != c.want {
			t.Errorf("Set(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestParseAndMarshal(t *testing.T) {
	in := `{"jsonrpc":"2.0","id":12345678901234567890,"method":"tools/call","params":{"name":"x","arguments":{"big":12345678901234567890}}}`
	m, err := Parse([]byte(in))
	if err != nil || !m.IsRequest() {
		t.Fatalf("Parse: %v %+v", err, m)
	}
	if got := string(m.Marshal()); got != in {
		t.Fatalf("Marshal = %s", got)
	}
	for _, bad := range []string{`{`, `{"jsonrpc":"1.0","method":"x"}`, `{"jsonrpc":"2.0"}`, `{"jsonrpc":"2.0","id":{},"method":"x"}`, `{"jsonrpc":"2.0","id":1}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) accepted", bad)
		}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"name":"a","_meta":{"progressToken":"t"}}`), "name")
	f.Add([]byte(`{"a":[{"b":"\"}"}],"c":1}`), "c")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		s, e, ok, err := Lookup(obj, key)
		if err != nil || !ok {
			return
		}
		if s < 0 || e > len(obj) || s > e {
			t.Fatalf("span %d:%d outside %d", s, e, len(obj))
		}
		if json.Valid(obj) && !json.Valid(obj[s:e]) {
			t.Fatalf("value %q of a valid object is not valid JSON", obj[s:e])
		}
	})
}

func TestElements(t *testing.T) {
	got, err := Elements([]byte(` [ {"a":[1,2]}, "x,]", 3 ,null] `))
	if err != nil || len(got) != 4 || string(got[0]) != `{"a":[1,2]}` || string(got[1]) != `"x,]"` || string(got[2]) != "3" {
		t.Fatalf("Elements = %q, %v", got, err)
	}
	if got, err := Elements([]byte(`[]`)); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q %v", got, err)
	}
	for _, bad := range []string{``, `{}`, `[1,`, `[1 2]`, `[1]x`, `["a]`} {
		if _, err := Elements([]byte(bad)); err == nil {
			t.Errorf("Elements(%q) accepted", bad)
		}
	}
}

func TestDeleteMembers(t *testing.T) {
	drop := func(k string) bool { return strings.HasPrefix(k, "io.") }
	for _, c := range []struct{ in, want string }{
		{`{}`, `{}`},
		{`{"a":1}`, `{"a":1}`},
		{`{"io.x":{"y":[1]}, "a" : 1,"io.z":"q","b":[2]}`, `{"a" : 1,"b":[2]}`},
		{`{"io\u002ex":1}`, `{}`},
	} {
		got, _, err := DeleteMembers([]byte(c.in), drop)
		if err != nil || string(got) != c.want {
			t.Errorf("DeleteMembers(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`[]`, `{"a"}`, `{"a":1,}`, `{"a":1 "b":2}`} {
		if _, _, err := DeleteMembers([]byte(bad), drop); err == nil {
			t.Errorf("DeleteMembers(%s) accepted", bad)
		}
	}
}

func FuzzDeleteMembers(f *testing.F) {
	f.Add([]byte(`{"io.a":1,"b":{"c":[1,"]"]}}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		out, _, err := DeleteMembers(obj, func(k string) bool { return strings.HasPrefix(k, "io.") })
		if err != nil {
			return
		}
		if json.Valid(obj) && !json.Valid(out) {
			t.Fatalf("valid %q became invalid %q", obj, out)
		}
	})
}
