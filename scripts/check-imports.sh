#!/usr/bin/env bash
# Fails when one of the three programs imports another: they meet only in gen/.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=github.com/mcpmesh/mcpmesh
rooms=(controlplane dataplane mcpctl)
fail=0
for room in "${rooms[@]}"; do
  pkgs=$(go list -tags e2e -f '{{.ImportPath}}' "./$room/..." 2>/dev/null || true)
  [ -n "$pkgs" ] || continue
  deps=$(go list -f '{{join .Imports "\n"}}{{"\n"}}{{join .TestImports "\n"}}{{"\n"}}{{join .XTestImports "\n"}}' "./$room/..." | sort -u)
  for other in "${rooms[@]}"; do
    [ "$other" = "$room" ] && continue
    bad=$(grep -E "^$mod/$other(/|$)" <<<"$deps" || true)
    if [ -n "$bad" ]; then
      echo "check-imports: $room imports $other:"; echo "$bad" | sed 's/^/  /'
      fail=1
    fi
  done
done
# internal/ is shared by all three, so it must not import any of them either.
deps=$(go list -f '{{join .Imports "\n"}}' ./internal/... | sort -u)
bad=$(grep -E "^$mod/(controlplane|dataplane|mcpctl)(/|$)" <<<"$deps" || true)
if [ -n "$bad" ]; then echo "check-imports: internal imports a program:"; echo "$bad"; fail=1; fi
[ $fail -eq 0 ] && echo "check-imports: ok"
exit $fail
