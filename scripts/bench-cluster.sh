#!/usr/bin/env bash
# The cost of the peer path: GET hits on a 3-node cluster, sent
#   direct   - by the ring-aware generator (--peers) straight to each key's owner,
#   via-one  - all to one node, which fetches the 2/3 of keys it does not own from
#              their owners (hot cache off: every such GET crosses the peer path),
#   via-hot  - all to one node with groupcache's hot cache (1 in 10 peer fetches
#              promoted), after a warm-up.
# The three servers share CPU 0 (--threads 1 each), the generator runs on CPU 1.
# Prints one JSON summary line per run into $OUT and a table at the end.
# Usage: scripts/bench-cluster.sh [runs] [seconds]     (defaults: 3 runs of 5 s)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-5}
out=${OUT:-target/bench-cluster/$(date +%Y%m%d-%H%M%S)}
ports=(17501 17502 17503)
members=$(printf '127.0.0.1:%s,' "${ports[@]}"); members=${members%,}
cargo build -q --release --bin groupcached
cargo build -q --release -p groupcached-bench
mkdir -p "$out"
for p in "${ports[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use; stop whatever listens there first" >&2; exit 1
  fi
done
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap cleanup EXIT
start_cluster() { # $1 = hot promote ratio
  for p in "${ports[@]}"; do
    taskset -c 0 target/release/groupcached --listen 127.0.0.1:$p --peers "$members" \
      --threads 1 --cache-size 1GiB --origin none --hot-promote-ratio "$1" 2>/dev/null &
    pids+=($!)
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
  done
}
common=(--threads 1 --connections 50 --pipeline 16 --keys 100000 --value-size 100
        --ratio 1:0 --duration "${secs}s" --quiet --max-error-rate 0)
for run in $(seq "$runs"); do
  for mode in direct via-one via-hot; do
    ratio=0; [ "$mode" = via-hot ] && ratio=0.1
    start_cluster "$ratio"
    # Every key written once, straight to its owner.
    taskset -c 1 target/release/groupcached-bench --peers "$members" --threads 1 --connections 8 \
      --pipeline 16 --keys 100000 --value-size 100 --prefill --requests 1 --quiet >/dev/null
    if [ "$mode" = direct ]; then target=(--peers "$members"); else target=(--server "127.0.0.1:${ports[0]}"); fi
    warm=1s; [ "$mode" = via-hot ] && warm=5s
    taskset -c 1 target/release/groupcached-bench "${target[@]}" "${common[@]}" --warmup $warm \
      --json "$out/$mode-$run.json" >/dev/null
    cleanup
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, statistics as st
out = sys.argv[1]
print(f"| path | GET/s (runs) | median GET/s | median p50 µs | median p99 µs |")
print("|---|---|---:|---:|---:|")
base = None
for mode in ["direct", "via-one", "via-hot"]:
    rs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{mode}-*.json"))]
    ops = [r["ops_per_sec"] for r in rs]
    p50 = st.median(r["latency_us"]["p50"] for r in rs)
    p99 = st.median(r["latency_us"]["p99"] for r in rs)
    print(f"| {mode} | {' / '.join(f'{o:,.0f}' for o in ops)} | {st.median(ops):,.0f} | {p50:.0f} | {p99:.0f} |")
PY
