#!/usr/bin/env bash
# Single-node GET-hit throughput, groupcached vs memcached, same load generator,
# server pinned to CPU 0 and generator to CPU 1. Prints one line per run.
# Usage: scripts/bench-single-node.sh [runs] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-8}
command -v memcached >/dev/null || { apt-get update -qq && apt-get install -y -qq memcached; }
cargo build -q --release --bin groupcached
cargo build -q --release -p groupcached-client --example pipelined_load
load=target/release/examples/pipelined_load
gc_port=17400 mc_port=17401
# SO_REUSEPORT would let a leftover server on the same port take a share of the
# connections and skew every figure: refuse to start if anything listens there.
for p in $gc_port $mc_port; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use; stop whatever listens there first" >&2; exit 1
  fi
done
for pipeline in 1 16; do
  for run in $(seq "$runs"); do
    taskset -c 0 target/release/groupcached --listen 127.0.0.1:$gc_port --threads 1 \
      --cache-size 1GiB --origin none 2>/dev/null & gc=$!
    taskset -c 0 memcached -u nobody -U 0 -t 1 -m 1024 -p $mc_port -l 127.0.0.1 & mc=$!
    for p in $gc_port $mc_port; do
      for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
    done
    common="--threads 1 --conns 50 --pipeline $pipeline --keys 100000 --value-size 100 --seconds $secs"
    g=$(taskset -c 1 $load --server 127.0.0.1:$gc_port --protocol groupcached $common)
    m=$(taskset -c 1 $load --server 127.0.0.1:$mc_port --protocol memcache $common)
    echo "pipeline=$pipeline run=$run groupcached: $g"
    echo "pipeline=$pipeline run=$run memcached:   $m"
    kill $gc $mc; wait $gc $mc 2>/dev/null || true
  done
done
