package registry

import (
	"fmt"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

// Bounds of a registration's fields. Every byte of a registration goes into
// the config snapshot each data plane receives, so they keep one server from
// taking the whole snapshot; the snapshot's own limit is checked at write
// time too (snapshotTooLarge).
const (
	MaxURLLen         = 2 << 10
	MaxEndpoints      = 64
	MaxCommandLen     = 4 << 10
	MaxArgLen         = 4 << 10
	MaxArgs           = 256
	MaxWorkingDirLen  = 4 << 10
	MaxMapEntries     = 256 // env and headers, each
	MaxMapKeyLen      = 256
	MaxMapValueLen    = 16 << 10
	MaxTags           = 64
	MaxDescriptionLen = 4 << 10
)

// validateSizes refuses a registration with a field over its bound. It runs
// before every other check so that nothing else works on a huge input.
func validateSizes(s *mcpmeshv1.Server) *fieldError {
	tooLong := func(field, v string, limit int) *fieldError {
		if len(v) > limit {
			return invalid(field, "is %d bytes long: at most %d are allowed", len(v), limit)
		}
		return nil
	}
	if err := tooLong("server.http.url", s.GetHttp().GetUrl(), MaxURLLen); err != nil {
		return err
	}
	if n := len(s.GetEndpoints()); n > MaxEndpoints {
		return invalid("server.endpoints", "%d endpoints is too many: at most %d are allowed", n, MaxEndpoints)
	}
	for i, ep := range s.GetEndpoints() {
		if err := tooLong(fmt.Sprintf("server.endpoints[%d]", i), ep, MaxURLLen); err != nil {
			return err
		}
	}
	if err := tooLong("server.stdio.command", s.GetStdio().GetCommand(), MaxCommandLen); err != nil {
		return err
	}
	if n := len(s.GetStdio().GetArgs()); n > MaxArgs {
		return invalid("server.stdio.args", "%d arguments is too many: at most %d are allowed", n, MaxArgs)
	}
	for i, a := range s.GetStdio().GetArgs() {
		if err := tooLong(fmt.Sprintf("server.stdio.args[%d]", i), a, MaxArgLen); err != nil {
			return err
		}
	}
	if err := tooLong("server.stdio.working_dir", s.GetStdio().GetWorkingDir(), MaxWorkingDirLen); err != nil {
		return err
	}
	if err := mapSizes("server.stdio.env", "variables", s.GetStdio().GetEnv()); err != nil {
		return err
	}
	if err := mapSizes("server.http.headers", "headers", s.GetHttp().GetHeaders()); err != nil {
		return err
	}
	if n := len(s.GetTags()); n > MaxTags {
		return invalid("server.tags", "%d tags is too many: at most %d are allowed", n, MaxTags)
	}
	return tooLong("server.description", s.GetDescription(), MaxDescriptionLen)
}

// mapSizes bounds the env or header map m. Keys are quoted shortened, since
// the key itself may be the oversized part.
func mapSizes(field, what string, m map[string]string) *fieldError {
	if len(m) > MaxMapEntries {
		return invalid(field, "%d %s is too many: at most %d are allowed", len(m), what, MaxMapEntries)
	}
	for k, v := range m {
		if len(k) > MaxMapKeyLen {
			return invalid(field, "name %q is %d bytes long: at most %d are allowed", textlimit.Truncate(k, 64), len(k), MaxMapKeyLen)
		}
		if len(v) > MaxMapValueLen {
			// Values are secrets: only the name is shown.
			return invalid(field, "value of %q is %d bytes long: at most %d are allowed", k, len(v), MaxMapValueLen)
		}
	}
	return nil
}
