#!/usr/bin/env bash
# Memory per item, measured from the outside: start the real server, read its VmRSS,
# SET N items of 12-byte keys and 100-byte values (groupcached-bench --prefill:
# keys "key:" + 8 digits, pipelined), read VmRSS again.
#
#   per item beyond key + value = (RSS after - RSS empty) / N - 112
#
# Two cases per server: a cache big enough for every item (4 GiB), and a small one
# (64 MiB, less than the items need) to see RSS against the budget when full. A
# third for groupcached (MIXED=1): the small cache churned by values of 10 to 5,000
# bytes (300,000 keys written, then 5 s of GET:SET 1:9), where per-item figures mean
# little but RSS growth / cache size does.
#
# Usage: bench/memory.sh [items]            (default 1,000,000)
# Env:   THREADS=2     server threads (memcached -t too)
#        SMALL=64      the small cache, in MiB
#        MEMCACHED=1   also measure memcached (installed by apt if missing); 0 skips it
#        MIXED=1       also the mixed-size churn case; 0 skips it
#        GC_BIN=...    the groupcached binary (default: a fresh release build)
# Items kept: the server's own count afterwards (group.default.main.items, or
# memcached's curr_items); with the small cache, fewer than were SET.
# Prints a markdown table (docs/benchmarks.md, "Memory per item").
set -euo pipefail
cd "$(dirname "$0")/.."

items=${1:-1000000}
threads=${THREADS:-2}
small=${SMALL:-64}
with_mc=${MEMCACHED:-1}
mixed=${MIXED:-1}
port=17420

if [ -z "${GC_BIN:-}" ]; then
  cargo build -q --release --bin groupcached
  GC_BIN=target/release/groupcached
fi
cargo build -q --release -p groupcached-bench
cargo build -q --release -p groupcached-client --bin groupcached-cli
gen=target/release/groupcached-bench
cli=target/release/groupcached-cli
if [ "$with_mc" = 1 ] && ! command -v memcached >/dev/null; then
  apt-get update -qq && apt-get install -y -qq memcached
fi
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  echo "port $port is already in use; stop whatever listens there first" >&2; exit 1
fi

pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; pid=; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $port" >&2; exit 1
}
rss() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; }

# measure NAME CACHE_MIB PROTOCOL COMMAND...
measure() {
  local name=$1 mib=$2 proto=$3; shift 3
  "$@" 2>/dev/null & pid=$!
  wait_port; sleep 0.5
  local before after
  before=$(rss "$pid")
  $gen --server 127.0.0.1:$port --protocol "$proto" --prefill "${load[@]}" \
    --connections 4 --threads 1 --quiet >/dev/null ||
    echo "$name, $mib MiB: some SETs failed (memcached answers SERVER_ERROR out of memory when a full small cache cannot free a chunk of the right slab class); measured anyway" >&2
  sleep 0.5
  after=$(rss "$pid")
  local kept
  if [ "$proto" = groupcached ]; then
    kept=$($cli --server 127.0.0.1:$port stats | awk '$1 == "group.default.main.items" { print $2 }')
  else
    exec 3<>/dev/tcp/127.0.0.1/$port
    printf 'stats\r\nquit\r\n' >&3
    kept=$(tr -d '\r' <&3 | awk '$2 == "curr_items" { print $3 }')
    exec 3>&-
  fi
  python3 - "$name" "$mib" "$kept" "$before" "$after" <<'PY'
import sys
name, mib, n, before, after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
grown = after - before
budget = mib << 20
print(f"| {name} | {mib:,} MiB | {n:,} | {before / 1e6:.1f} MB | {after / 1e6:.1f} MB | "
      f"{grown / n:.1f} B | {grown / n - 112:.1f} B | {grown / budget:.2f} |")
PY
  cleanup
}

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); cpus: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| server | cache size | items kept | RSS empty | RSS after | RSS growth per item kept | beyond key + value (112 B) | RSS growth / cache size |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
load=(--keys "$items" --value-size 100 --ratio 1:0 --requests 1)
for mib in 4096 "$small"; do
  measure groupcached "$mib" groupcached \
    "$GC_BIN" --listen 127.0.0.1:$port --threads "$threads" --cache-size "${mib}MiB" --origin none
  if [ "$with_mc" = 1 ]; then
    measure "memcached $(memcached -V | cut -d' ' -f2)" "$mib" memcache \
      memcached -u nobody -U 0 -t "$threads" -m "$mib" -p $port -l 127.0.0.1
  fi
done
if [ "$mixed" = 1 ]; then
  load=(--keys 300000 --value-size 10-5000 --ratio 1:9 --duration 5s)
  measure "groupcached, values of 10-5000 B churned" "$small" groupcached \
    "$GC_BIN" --listen 127.0.0.1:$port --threads "$threads" --cache-size "${small}MiB" --origin none
fi
