package backend

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultChildEnv names the variables of the data plane's environment a
// stdio child inherits: what a program needs to find binaries, a home, a
// locale and a temp dir, nothing that could carry a credential. A name ending
// in '*' is a prefix. ManagerOptions.ChildEnv adds names; the registration's
// env comes on top.
var DefaultChildEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "NO_COLOR",
	"LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TMP", "TEMP",
	"SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR", // what Windows programs need to start at all
}

// neverInherited is never passed from the data plane's environment, even when
// ChildEnv names it: MCPMESH_TOKEN_FILE and its kin point at credentials.
const neverInherited = "MCPMESH_"

// CheckChildEnv reports a name ChildEnv cannot hold.
func CheckChildEnv(names []string) error {
	for _, n := range names {
		switch {
		case n == "" || n == "*" || strings.ContainsAny(n, "=\x00") || strings.Contains(strings.TrimSuffix(n, "*"), "*"):
			return fmt.Errorf("%q is not an environment variable name (or NAME_PREFIX*)", n)
		case strings.HasPrefix(strings.ToUpper(n), neverInherited) || strings.HasPrefix(neverInherited, strings.ToUpper(strings.TrimSuffix(n, "*"))):
			return fmt.Errorf("%q: %s* variables are never passed to stdio backends", n, neverInherited)
		}
	}
	return nil
}

// scrubEnv returns the entries of environ (KEY=VALUE) whose key allow lists,
// never MCPMESH_*.
func scrubEnv(environ, allow []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.HasPrefix(strings.ToUpper(k), neverInherited) {
			continue
		}
		if slices.ContainsFunc(allow, func(a string) bool {
			if p, ok := strings.CutSuffix(a, "*"); ok {
				return strings.HasPrefix(k, p)
			}
			return k == a
		}) {
			out = append(out, kv)
		}
	}
	return out
}
