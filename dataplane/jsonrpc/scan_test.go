package jsonrpc

import (
	"bytes"
	"encoding/json"
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
	drop := func(k []byte) bool { return bytes.HasPrefix(k, []byte("io.")) }
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
		out, _, err := DeleteMembers(obj, func(k []byte) bool { return bytes.HasPrefix(k, []byte("io.")) })
		if err != nil {
			return
		}
		if json.Valid(obj) && !json.Valid(out) {
			t.Fatalf("valid %q became invalid %q", obj, out)
		}
	})
}

// refParse is Parse's rules written with encoding/json, member names exact:
// what Parse must agree with.
func refParse(b []byte) (Message, bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(b, &members) != nil || members == nil {
		return Message{}, false
	}
	str := func(key string) (string, bool) {
		v, ok := members[key]
		if !ok || string(v) == "null" {
			return "", true
		}
		var s string
		return s, json.Unmarshal(v, &s) == nil
	}
	raw := func(key string) json.RawMessage {
		if v, ok := members[key]; ok && string(v) != "null" {
			return v
		}
		return nil
	}
	version, ok1 := str("jsonrpc")
	method, ok2 := str("method")
	if !ok1 || !ok2 || version != "2.0" {
		return Message{}, false
	}
	m := Message{Method: method, ID: raw("id"), Params: raw("params"), Result: members["result"]}
	if e := raw("error"); e != nil {
		m.Error = &Error{}
		if json.Unmarshal(e, m.Error) != nil {
			return Message{}, false
		}
	}
	if m.ID != nil && m.ID[0] != '"' && m.ID[0] != '-' && (m.ID[0] < '0' || m.ID[0] > '9') {
		return Message{}, false
	}
	switch {
	case m.Method != "":
		return m, m.Result == nil && m.Error == nil
	case m.ID == nil:
		return m, m.Error != nil
	}
	return m, m.Result != nil || m.Error != nil
}

func compactEq(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","id":"a","result":{"content":[]}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
		`{"jsonrpc":"2.0","id":1,"meth\u006fd":"a"}`,
		`{"jsonrpc":"2.0","id":{},"method":"x"}`,
		`{"jsonrpc":"2.0","id":1,"method":5}`,
		`{"jsonrpc":"2.0","id":1,"result":null}`,
		`[1]`, `"x"`, `{`, ` {"jsonrpc" : "2.0" , "id" : -1 , "result" : null , "error" : {"code":1,"message":""} } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		ref, ok := refParse(b)
		if (err == nil) != ok {
			t.Fatalf("Parse(%q): err %v, reference accepts: %v", b, err, ok)
		}
		if err != nil {
			if AsError(err).Code == 0 {
				t.Fatalf("Parse(%q): error without a code: %v", b, err)
			}
			return
		}
		if m.Method != ref.Method || !compactEq(m.ID, ref.ID) || !compactEq(m.Params, ref.Params) || !compactEq(m.Result, ref.Result) || (m.Error == nil) != (ref.Error == nil) {
			t.Fatalf("Parse(%q) = %+v, reference %+v", b, m, ref)
		}
		again, err := Parse(m.Marshal())
		if err != nil || again.Method != m.Method || !compactEq(again.ID, m.ID) || !compactEq(again.Params, m.Params) {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %+v, %v", b, again, err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"bench__echo","arguments":{"text":"hello"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	m := Message{ID: json.RawMessage(`7`), Method: "tools/call", Params: json.RawMessage(`{"name":"echo"}`)}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Marshal()
	}
}

func BenchmarkSet(b *testing.B) {
	obj := []byte(`{"name":"bench__echo","arguments":{"text":"hello"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Set(obj, "name", []byte(`"echo"`)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzValid: the strict scanner accepts exactly what json.Valid accepts, and
// Parse's one pass agrees with it.
func FuzzValid(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `""`, `0`, `-0.5e+10`, `01`, `1.`, `.5`, `1e`, `-`, `true`, `tru`, `nul`, `null `,
		`{"a":[1,{"b":"\u00e9\n"}],"c":{}}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{1:2}`, `"\x"`, "\"\x01\"",
		`"\u12G4"`, `[[[[]]]]`, `{"a":1}}`, ` [ 1 , 2 ] `, `{"jsonrpc":"2.0","id":1,"method":"x","params":[tru]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if got := valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid %v", b, got, want)
		}
		err := validMembers(b, func(key, val []byte) bool { return len(key)%2 == 0 })
		isObj := want && bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{"))
		switch {
		case isObj && err != nil:
			t.Fatalf("validMembers(%q): %v for a valid object", b, err)
		case want && !isObj && err != errNotObject:
			t.Fatalf("validMembers(%q): %v, want errNotObject", b, err)
		case !want && (err == nil || err == errNotObject):
			t.Fatalf("validMembers(%q): %v for invalid JSON", b, err)
		}
	})
}

func TestValidDepth(t *testing.T) {
	deep := bytes.Repeat([]byte("["), maxDepth)
	deep = append(deep, bytes.Repeat([]byte("]"), maxDepth)...)
	if !valid(deep) || !json.Valid(deep) {
		t.Fatalf("nesting of %d: valid %v, json.Valid %v", maxDepth, valid(deep), json.Valid(deep))
	}
	deeper := append([]byte("["), append(deep, ']')...)
	if valid(deeper) || json.Valid(deeper) {
		t.Fatalf("nesting of %d: valid %v, json.Valid %v", maxDepth+1, valid(deeper), json.Valid(deeper))
	}
}
