#!/usr/bin/env bash
# A local 3-node groupcached cluster on 127.0.0.1, for trying things out, the docs
# and the benchmarks.
#
#   scripts/cluster.sh start    build the release binaries if needed, start 3 nodes
#   scripts/cluster.sh status   each node's pid, member count and metrics URL
#   scripts/cluster.sh stop     SIGTERM every node (graceful drain), wait for exit
#
# Nodes listen on 127.0.0.1:7001-7003 (metrics on 9101-9103, memcached protocol on
# 11211-11213: `printf 'get foo\r\n' | nc -q1 127.0.0.1 11211`) and share one peers
# file, so `kill -HUP` re-reads membership. Logs, pids and the peers file live in
# $GROUPCACHED_RUN_DIR (default: target/cluster). Extra server flags can be given
# after `start`, e.g.:  scripts/cluster.sh start --origin synthetic:size=100
# (default origin: synthetic:size=100,delay_ms=5, group `default`, 64MiB per node).
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=${GROUPCACHED_RUN_DIR:-target/cluster}
bin=target/release/groupcached
cli=target/release/groupcached-cli
nodes=(1 2 3)
port() { echo $((7000 + $1)); }
metrics_port() { echo $((9100 + $1)); }
memcache_port() { echo $((11210 + $1)); }
pid_of() { cat "$run_dir/node$1.pid" 2>/dev/null || true; }
alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

build() {
  if [[ ! -x $bin || ! -x $cli || -n "$(find src protocol/src client/src Cargo.toml -newer "$bin" -print -quit 2>/dev/null)" ]]; then
    echo "building release binaries..."
    cargo build -q --release --bin groupcached
    cargo build -q --release -p groupcached-client --bin groupcached-cli
  fi
}

start() {
  build
  mkdir -p "$run_dir"
  for n in "${nodes[@]}"; do
    if alive "$(pid_of "$n")"; then
      echo "node $n is already running (pid $(pid_of "$n")); run '$0 stop' first" >&2
      exit 1
    fi
    for p in "$(port "$n")" "$(metrics_port "$n")" "$(memcache_port "$n")"; do
      if port_open "$p"; then
        echo "port $p is already in use; stop whatever listens there first" >&2
        exit 1
      fi
    done
  done
  : >"$run_dir/peers.tmp"
  for n in "${nodes[@]}"; do echo "127.0.0.1:$(port "$n")" >>"$run_dir/peers.tmp"; done
  mv "$run_dir/peers.tmp" "$run_dir/peers"
  local extra=("$@")
  if [[ ${#extra[@]} -eq 0 ]]; then extra=(--origin synthetic:size=100,delay_ms=5); fi
  for n in "${nodes[@]}"; do
    RUST_LOG=${RUST_LOG:-info} nohup "$bin" \
      --listen "127.0.0.1:$(port "$n")" \
      --metrics-listen "127.0.0.1:$(metrics_port "$n")" \
      --memcache-listen "127.0.0.1:$(memcache_port "$n")" \
      --peers-file "$run_dir/peers" \
      "${extra[@]}" \
      >"$run_dir/node$n.log" 2>&1 </dev/null &
    echo $! >"$run_dir/node$n.pid"
  done
  # Wait (up to 10 s) until every node answers and sees every member.
  for n in "${nodes[@]}"; do
    local ok=
    for _ in $(seq 100); do
      if ! alive "$(pid_of "$n")"; then
        echo "node $n exited; its log ($run_dir/node$n.log):" >&2
        tail -n 20 "$run_dir/node$n.log" >&2
        exit 1
      fi
      if [[ "$(members "$n")" == "${#nodes[@]}" ]]; then ok=1; break; fi
      sleep 0.1
    done
    [[ -n $ok ]] || { echo "node $n did not see ${#nodes[@]} members in 10s" >&2; exit 1; }
  done
  status
}

# The node's member count as it reports it, or nothing if it does not answer.
members() {
  "$cli" --server "127.0.0.1:$(port "$1")" --timeout 1s stats 2>/dev/null |
    awk '$1 == "members" { print $2 }'
}

status() {
  local down=0
  for n in "${nodes[@]}"; do
    local pid
    pid=$(pid_of "$n")
    if alive "$pid"; then
      local m
      m=$(members "$n")
      printf 'node %s  127.0.0.1:%s  pid %-7s  members %-3s  memcached 127.0.0.1:%s  metrics http://127.0.0.1:%s/metrics\n' \
        "$n" "$(port "$n")" "$pid" "${m:-?}" "$(memcache_port "$n")" "$(metrics_port "$n")"
    else
      printf 'node %s  127.0.0.1:%s  not running\n' "$n" "$(port "$n")"
      down=1
    fi
  done
  echo "logs: $run_dir/node{1,2,3}.log"
  return $down
}

stop() {
  local pids=()
  for n in "${nodes[@]}"; do
    local pid
    pid=$(pid_of "$n")
    if alive "$pid"; then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
    rm -f "$run_dir/node$n.pid"
  done
  # Graceful shutdown answers in-flight loads first; give it up to 15 s.
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      echo "pid $pid did not exit after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  echo "stopped ${#pids[@]} node(s)"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start "$@" ;;
  *)
    echo "usage: $0 start [groupcached flags...] | stop | status | restart" >&2
    exit 2
    ;;
esac
