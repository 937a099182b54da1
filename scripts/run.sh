#!/usr/bin/env bash
# The embedded default behind `make run`: one control plane (state in ./data),
# one data plane on 127.0.0.1:8080 and, on first start, a demo backend.
# Ctrl-C stops everything. Override with CP_GRPC, CP_HTTP, DP_LISTEN, DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-./data}
CP_GRPC=${CP_GRPC:-127.0.0.1:7070}
CP_HTTP=${CP_HTTP:-127.0.0.1:7071}
DP_LISTEN=${DP_LISTEN:-127.0.0.1:8080}
export MCPMESH_ADDR=$CP_GRPC
export MCPMESH_TOKEN_FILE=$DATA_DIR/admin.token

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

wait_tcp() { # host:port, what — uses bash's /dev/tcp so nothing needs installing
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run: $2 did not start listening on $1 (see its log above)" >&2
  exit 1
}

bin/controlplane --data-dir "$DATA_DIR" --grpc-addr "$CP_GRPC" --http-addr "$CP_HTTP" &
pids+=($!)
wait_tcp "$CP_GRPC" "control plane"

if [ ! -e "$DATA_DIR/.demo-registered" ]; then
  # First start: register the demo backend (a stdio MCP server built from this repo).
  if bin/mcpctl server get demo >/dev/null 2>&1 || \
     bin/mcpctl server add demo --description "mcpmesh demo backend" -- "$PWD/bin/demo-backend" --name demo; then
    touch "$DATA_DIR/.demo-registered"
  fi
fi

# The data plane holds a dataplane token (the config stream only), never the
# admin one; it is issued on first start and kept in the data dir.
DP_TOKEN=$DATA_DIR/dataplane.token
if [ ! -s "$DP_TOKEN" ]; then
  rm -f "$DP_TOKEN"
  bin/mcpctl token create --role dataplane --description "make run data plane" --secret-file "$DP_TOKEN" >/dev/null
fi
MCPMESH_TOKEN_FILE=$DP_TOKEN bin/dataplane --control-plane "$CP_GRPC" --listen "$DP_LISTEN" --id "$(hostname)-1" &
pids+=($!)
wait_tcp "$DP_LISTEN" "data plane"

cat <<MSG

  mcpmesh is running.
    MCP endpoint (streamable HTTP): http://$DP_LISTEN/mcp
    MCP endpoint (legacy SSE):      http://$DP_LISTEN/sse
    data plane health:              http://$DP_LISTEN/health
    control plane status page:      http://$CP_HTTP/

  Try, in another shell:
    export MCPMESH_ADDR=$CP_GRPC MCPMESH_TOKEN_FILE=$DATA_DIR/admin.token
    bin/mcpctl status
    bin/mcpctl server list
    bin/mcpctl server add everything -- npx -y @modelcontextprotocol/server-everything
    bin/mcpctl token list

  Ctrl-C stops the control plane and the data plane.

MSG
wait -n "${pids[@]}" || true
echo "run: a process exited; stopping the others" >&2
