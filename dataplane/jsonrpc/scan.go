package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Lookup finds the value of key among the members of the JSON object obj
// without decoding the other members: it is how the router reads the name,
// URI, cursor and progress token of a request whose arguments it forwards
// untouched. start and end delimit the value within obj (obj[start:end]).
// ok is false when obj is not an object or has no such member; a malformed
// obj is reported as an error.
func Lookup(obj []byte, key string) (start, end int, ok bool, err error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return 0, 0, false, errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return 0, 0, false, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return 0, 0, false, errSyntax
		}
		ks := i
		ke, err := skipString(obj, i)
		if err != nil {
			return 0, 0, false, err
		}
		match := keyEquals(obj[ks:ke], key)
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return 0, 0, false, errSyntax
		}
		i = skipSpace(obj, i+1)
		vs := i
		ve, err := skipValue(obj, i)
		if err != nil {
			return 0, 0, false, err
		}
		if match {
			return vs, ve, true, nil
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) {
			return 0, 0, false, errSyntax
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return 0, 0, false, nil
		default:
			return 0, 0, false, errSyntax
		}
	}
}

// LookupString returns the string value of key in obj; ok is false when the
// member is absent or not a string.
func LookupString(obj []byte, key string) (s string, ok bool, err error) {
	st, en, found, err := Lookup(obj, key)
	if err != nil || !found || obj[st] != '"' {
		return "", false, err
	}
	s, ok = unquote(obj[st:en])
	if !ok {
		return "", false, errSyntax
	}
	return s, true, nil
}

// unquote returns the string a quoted JSON string holds, decoding escapes
// (and replacing invalid UTF-8, as encoding/json does) only when it has any.
func unquote(quoted []byte) (string, bool) {
	if inner := quoted[1 : len(quoted)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return "", false
	}
	return s, true
}

// unquoteKey is the unescaped content of a quoted JSON key: a subslice of
// quoted unless it has escapes or invalid UTF-8 (then a copy, as unquote
// decodes it).
func unquoteKey(quoted []byte) ([]byte, bool) {
	if inner := quoted[1 : len(quoted)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner, true
	}
	s, ok := unquote(quoted)
	return []byte(s), ok
}

// Splice returns a copy of b with b[start:end] replaced by val.
func Splice(b []byte, start, end int, val []byte) []byte {
	out := make([]byte, 0, len(b)-(end-start)+len(val))
	out = append(out, b[:start]...)
	out = append(out, val...)
	return append(out, b[end:]...)
}

// Set returns a copy of the object obj with member key set to val (added
// at the end when absent).
func Set(obj []byte, key string, val []byte) ([]byte, error) {
	st, en, ok, err := Lookup(obj, key)
	if err != nil {
		return nil, err
	}
	if ok {
		return Splice(obj, st, en, val), nil
	}
	end := bytes.LastIndexByte(obj, '}')
	comma := bytes.IndexByte(bytes.TrimSpace(obj[skipSpace(obj, 0)+1:end]), '"') >= 0
	out := make([]byte, 0, len(obj)+len(key)+len(val)+4)
	out = append(out, obj[:end]...)
	if comma {
		out = append(out, ',')
	}
	out = AppendString(out, key)
	out = append(out, ':')
	out = append(out, val...)
	return append(out, obj[end:]...), nil
}

var (
	errNotObject = errors.New("not a JSON object")
	errSyntax    = errors.New("malformed JSON")
)

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errSyntax
}

// skipValue returns the index after the JSON value starting at b[i]. It
// checks nesting and strings, not the spelling of numbers and literals:
// the receiver of the value validates it.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
				if depth > maxDepth {
					return 0, errors.New("JSON nested too deeply")
				}
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return 0, errSyntax
				}
				return j, nil
			}
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// maxDepth bounds nesting, as encoding/json does (10000).
const maxDepth = 10000

// keyEquals compares a quoted JSON key with key, decoding escapes only when
// the key has any.
func keyEquals(quoted []byte, key string) bool {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	s, ok := unquote(quoted)
	return ok && s == key
}

// Elements returns the elements of the JSON array arr as subslices of it
// (no copies), checking nesting and strings as Lookup does.
func Elements(arr []byte) ([][]byte, error) {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return nil, errors.New("not a JSON array")
	}
	i = skipSpace(arr, i+1)
	var out [][]byte
	if i < len(arr) && arr[i] == ']' {
		return out, nil
	}
	for {
		e, err := skipValue(arr, i)
		if err != nil {
			return nil, err
		}
		out = append(out, arr[i:e])
		i = skipSpace(arr, e)
		if i >= len(arr) {
			return nil, errSyntax
		}
		switch arr[i] {
		case ',':
			i = skipSpace(arr, i+1)
		case ']':
			if skipSpace(arr, i+1) != len(arr) {
				return nil, errSyntax
			}
			return out, nil
		default:
			return nil, errSyntax
		}
	}
}

// DeleteMembers returns obj without the members whose (unescaped) key drop
// reports true, and whether any went; obj itself when none did. The other
// members keep their bytes and order. The key drop is given may alias obj:
// drop must not keep it.
func DeleteMembers(obj []byte, drop func(key []byte) bool) ([]byte, bool, error) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, errNotObject
	}
	var spans [16][2]int
	keep := spans[:0] // spans of kept members
	dropped := false
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return obj, false, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return nil, false, errSyntax
		}
		ks := i
		ke, err := skipString(obj, i)
		if err != nil {
			return nil, false, err
		}
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false, errSyntax
		}
		ve, err := skipValue(obj, skipSpace(obj, i+1))
		if err != nil {
			return nil, false, err
		}
		key := obj[ks+1 : ke-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[ks:ke], &k) != nil {
				return nil, false, errSyntax
			}
			key = []byte(k)
		}
		if drop(key) {
			dropped = true
		} else {
			keep = append(keep, [2]int{ks, ve})
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) {
			return nil, false, errSyntax
		}
		if obj[i] == '}' {
			break
		}
		if obj[i] != ',' {
			return nil, false, errSyntax
		}
		i = skipSpace(obj, i+1)
	}
	if !dropped {
		return obj, false, nil
	}
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	for j, k := range keep {
		if j > 0 {
			out = append(out, ',')
		}
		out = append(out, obj[k[0]:k[1]]...)
	}
	return append(out, '}'), true, nil
}
