package jsonrpc

import "errors"

// The strict scanner: the value skips of scan.go check only nesting and
// strings, for values that were validated already; these check the whole
// grammar (RFC 8259, as encoding/json's Valid does: numbers, literals,
// escapes, control characters, the nesting bound, but not UTF-8), so that
// Parse validates a message and finds its members in one pass rather than
// json.Valid's pass and then its own.

var errDepth = errors.New("JSON nested too deeply")

// validValue returns the index after the JSON value starting at b[i],
// checked strictly; ok is false when there is no valid value there.
func validValue(b []byte, i int) (end int, err error) {
	// stack holds the open containers, '{' or '['; expect is what may come
	// next within the innermost one.
	var small [32]byte
	stack := small[:0]
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return 0, errSyntax
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= maxDepth {
				return 0, errDepth
			}
			stack = append(stack, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i, err = validKey(b, i); err != nil {
					return 0, err
				}
			}
			continue // a value starts at i
		case '"':
			if i, err = validString(b, i); err != nil {
				return 0, err
			}
		case 't':
			if i, err = literal(b, i, "true"); err != nil {
				return 0, err
			}
		case 'f':
			if i, err = literal(b, i, "false"); err != nil {
				return 0, err
			}
		case 'n':
			if i, err = literal(b, i, "null"); err != nil {
				return 0, err
			}
		default:
			if i, err = validNumber(b, i); err != nil {
				return 0, err
			}
		}
		// A value ended at i: close containers, or go on to the next value.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i, err = validKey(b, i); err != nil {
					return 0, err
				}
			}
			break
		}
	}
}

// validKey checks a member's key and colon at b[i] and returns the index of
// its value.
func validKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errSyntax
	}
	i, err := validString(b, i)
	if err != nil {
		return 0, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, errSyntax
	}
	return skipSpace(b, i+1), nil
}

// validString returns the index after the string starting at b[i] == '"'.
func validString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, errSyntax
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, errSyntax
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, errSyntax
				}
				for _, h := range b[j+1 : j+5] {
					if !isHex(h) {
						return 0, errSyntax
					}
				}
				j += 4
			default:
				return 0, errSyntax
			}
		}
	}
	return 0, errSyntax
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validNumber returns the index after the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, errSyntax
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, errSyntax
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// valid reports whether b is one JSON value with optional surrounding
// whitespace, as json.Valid does.
func valid(b []byte) bool {
	end, err := validValue(b, skipSpace(b, 0))
	return err == nil && skipSpace(b, end) == len(b)
}

// validMembers is members for an obj not yet validated: it checks obj
// strictly as it goes (and to its end, with only whitespace after it, even
// once fn returned false), calling fn with each member until fn returns
// false. An error is errNotObject for a valid JSON value that is no object,
// and a syntax error otherwise.
func validMembers(obj []byte, fn func(key, val []byte) bool) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		if valid(obj) {
			return errNotObject
		}
		return errSyntax
	}
	i = skipSpace(obj, i+1)
	call := true
	if i < len(obj) && obj[i] == '}' {
		i++
	} else {
		for {
			if i >= len(obj) || obj[i] != '"' {
				return errSyntax
			}
			ke, err := validString(obj, i)
			if err != nil {
				return err
			}
			ks := i
			i = skipSpace(obj, ke)
			if i >= len(obj) || obj[i] != ':' {
				return errSyntax
			}
			vs := skipSpace(obj, i+1)
			ve, err := validValue(obj, vs)
			if err != nil {
				return err
			}
			if call {
				key, ok := unquoteKey(obj[ks:ke])
				if !ok {
					return errSyntax
				}
				call = fn(key, obj[vs:ve])
			}
			i = skipSpace(obj, ve)
			if i >= len(obj) {
				return errSyntax
			}
			if obj[i] == '}' {
				i++
				break
			}
			if obj[i] != ',' {
				return errSyntax
			}
			i = skipSpace(obj, i+1)
		}
	}
	if skipSpace(obj, i) != len(obj) {
		return errSyntax
	}
	return nil
}
