#!/usr/bin/env bash
# groupcached vs memcached with the same generator (groupcached-bench), in the same
# run, interleaved, repeated; prints the markdown table of docs/benchmarks.md.
# With more than one server thread, groupcached is measured twice: with a plain
# client (--shard-aware off: a request for a key of another core hops inside the
# server) and a shard-aware one (connections moved with SHARD to their keys' cores).
# With one server thread, groupcached-echo (bench/src/bin/groupcached-echo: answers
# every frame at once from nothing, no cache) is measured too, as the ceiling for any
# server speaking groupcached's protocol here: same CPU, same generator arguments as
# groupcached's plain client, in the same interleaved runs; the summary gives its
# ops/s and the per-run ratios groupcached / echo and memcached / echo.
#
# Usage: bench/compare.sh [runs] [seconds]          (defaults: 3 runs of 5 s each)
# Env:   THREAD_SETS="1 2"   server threads to compare (1: server on CPU 0, generator
#                            on CPU 1, and the echo ceiling; 2: both on CPUs 0-1, the
#                            generator with 2 threads);
#                            THREAD_SETS="" skips the main table (e.g. to run only
#                            MCPORT's: THREAD_SETS="" COLD=0 MEMORY=0 bench/compare.sh)
#        PIPELINES="1 16"  DISTS="uniform zipf:0.99"  RATIOS="1:0 9:1"
#        COLD=1              also the cold-cache run (synthetic origin, 5 ms loads)
#        MCPORT=1            also the memcached-port table: groupcached's --memcache-listen
#                            port vs memcached itself vs groupcached's native port, 1
#                            server thread each, GET only, uniform keys, meta `mg` and
#                            classic `get`, at each of PIPELINES
#        MEMORY=1            also the memory row: bench/memory.sh (RSS per item of
#                            1,000,000 12+100-byte items, and RSS of a full 64 MiB cache)
#        OUT=DIR             where the JSON summaries go (default target/compare/<time>)
#
# The load: 100,000 keys of 100-byte values written first (not to the echo, which
# keeps nothing and answers every GET with a 100-byte value), 50 connections, closed
# loop, 1 s warm-up, then `seconds` measured. Any error in any run stops the script
# (figures from a run with errors are not comparable). Ports: 17410 groupcached,
# 17411 memcached, 17412 groupcached's memcached port, 17413 the echo.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
secs=${2:-5}
thread_sets=${THREAD_SETS-1 2}
pipelines=${PIPELINES:-1 16}
dists=${DISTS:-uniform zipf:0.99}
ratios=${RATIOS:-1:0 9:1}
cold=${COLD:-1}
mcport=${MCPORT:-1}
memory=${MEMORY:-1}
out=${OUT:-target/compare/$(date +%Y%m%d-%H%M%S)}
keys=100000
gc_port=17410 mc_port=17411 gcm_port=17412 ec_port=17413

command -v python3 >/dev/null || { echo "python3 is needed for the summary table" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed to pin processes" >&2; exit 1; }
if ! command -v memcached >/dev/null; then
  apt-get update -qq && apt-get install -y -qq memcached
fi
cargo build -q --release --bin groupcached
cargo build -q --release -p groupcached-client --bin groupcached-cli
cargo build -q --release -p groupcached-bench  # groupcached-bench and groupcached-echo
gc_bin=target/release/groupcached
echo_bin=target/release/groupcached-echo
cli=target/release/groupcached-cli
gen=target/release/groupcached-bench
mkdir -p "$out"

# SO_REUSEPORT would let a leftover server on the same port take a share of the
# connections and skew every figure: refuse to start if anything listens there.
for p in $gc_port $mc_port $gcm_port $ec_port; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use; stop whatever listens there first" >&2; exit 1
  fi
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; exit 1
}

{
  echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpus:        $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memcached:   $(memcached -V)"
  echo "rustc:       $(rustc --version)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "runs:        $runs x ${secs}s, threads: $thread_sets"
} | tee "$out/machine.txt"

for t in $thread_sets; do
  if [ "$t" = 1 ]; then srv_cpus=0 gen_cpus=1; else srv_cpus=0-$((t - 1)) gen_cpus=0-$((t - 1)); fi
  taskset -c "$srv_cpus" "$gc_bin" --listen 127.0.0.1:$gc_port --threads "$t" \
    --cache-size 1GiB --origin none 2>/dev/null & pids+=($!)
  taskset -c "$srv_cpus" memcached -u nobody -U 0 -t "$t" -m 1024 -p $mc_port -l 127.0.0.1 & pids+=($!)
  wait_port $gc_port; wait_port $mc_port
  if [ "$t" = 1 ]; then
    # The ceiling: same CPU as the servers. No prefill: it stores nothing.
    taskset -c "$srv_cpus" "$echo_bin" --listen 127.0.0.1:$ec_port --threads 1 \
      --value-size 100 >/dev/null & pids+=($!)
    wait_port $ec_port
  fi
  common=(--threads "$t" --connections 50 --keys $keys --value-size 100 --quiet)
  taskset -c "$gen_cpus" $gen --server 127.0.0.1:$gc_port --prefill --requests 1 "${common[@]}" >/dev/null
  taskset -c "$gen_cpus" $gen --server 127.0.0.1:$mc_port --protocol memcache --prefill --requests 1 "${common[@]}" >/dev/null
  common+=(--warmup 1s --duration "${secs}s")
  for run in $(seq "$runs"); do
    for pl in $pipelines; do
      for dist in $dists; do
        for ratio in $ratios; do
          # Alternate which server goes first, so a drift in the machine's load
          # does not always favour the same one.
          # gc: plain client; gcs: shard-aware (only with more than one core);
          # ec: the echo ceiling (only with one).
          if [ "$t" = 1 ]; then gcs="" ec="ec"; else gcs="gcs" ec=""; fi
          if [ $((run % 2)) = 1 ]; then order="gc $gcs mc $ec"; else order="$ec mc $gcs gc"; fi
          for s in $order; do
            case $s in
              gc) target=(--server 127.0.0.1:$gc_port --shard-aware off) ;;
              gcs) target=(--server 127.0.0.1:$gc_port --shard-aware on) ;;
              mc) target=(--server 127.0.0.1:$mc_port --protocol memcache) ;;
              ec) target=(--server 127.0.0.1:$ec_port --shard-aware off) ;;
            esac
            name="t$t-p$pl-${dist/:/}-${ratio/:/to}-$s-r$run"
            taskset -c "$gen_cpus" $gen "${target[@]}" "${common[@]}" --pipeline "$pl" \
              --key-dist "$dist" --ratio "$ratio" --json "$out/$name.json" >/dev/null
            printf '%-40s %s\n' "$name" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f ops/s  p50 %.0f us  p99 %.0f us  found %s  busy %s  core hops %s" % (d["ops_per_sec"], d["latency_us"]["p50"], d["latency_us"]["p99"], d["found_ratio"], d["generator"]["busy"], d.get("core_hops")))' "$out/$name.json")"
          done
        done
      done
    done
  done
  cleanup; pids=()
done

if [ "$cold" = 1 ]; then
  # Cold cache: 10,000 keys that only the origin has, 5 ms per load, 200,000 uniform
  # GETs (every key is asked for: the chance one is not is about 1e4 * e^-20).
  taskset -c 0 "$gc_bin" --listen 127.0.0.1:$gc_port --threads 1 --cache-size 1GiB \
    --origin synthetic:size=100,delay_ms=5 2>/dev/null & pids+=($!)
  wait_port $gc_port
  taskset -c 1 $gen --server 127.0.0.1:$gc_port --threads 1 --connections 50 --pipeline 16 \
    --keys 10000 --ratio 1:0 --requests 200000 --quiet --json "$out/cold.json" | tee "$out/cold.txt"
  $cli --server 127.0.0.1:$gc_port stats | grep -E '^group\.default\.(gets|cache_hits|loads|loads_deduped|local_loads|local_load_errs) ' \
    | tee -a "$out/cold.txt"
  cleanup; pids=()
fi

if [ "$mcport" = 1 ]; then
  # groupcached's memcached port (issue 12) against memcached, same generator and
  # protocol, and against groupcached's own port in the same process: 1 server thread
  # each (CPU 0), generator on CPU 1, GET only, uniform keys, every key prefilled.
  taskset -c 0 "$gc_bin" --listen 127.0.0.1:$gc_port --memcache-listen 127.0.0.1:$gcm_port \
    --threads 1 --cache-size 1GiB --origin none 2>/dev/null & pids+=($!)
  taskset -c 0 memcached -u nobody -U 0 -t 1 -m 1024 -p $mc_port -l 127.0.0.1 & pids+=($!)
  wait_port $gc_port; wait_port $gcm_port; wait_port $mc_port
  common=(--threads 1 --connections 50 --keys $keys --value-size 100 --quiet)
  # One prefill through the memcached port fills the group both groupcached ports read.
  taskset -c 1 $gen --server 127.0.0.1:$gcm_port --protocol memcache --prefill --requests 1 "${common[@]}" >/dev/null
  taskset -c 1 $gen --server 127.0.0.1:$mc_port --protocol memcache --prefill --requests 1 "${common[@]}" >/dev/null
  common+=(--warmup 1s --duration "${secs}s" --key-dist uniform --ratio 1:0)
  for run in $(seq "$runs"); do
    for pl in $pipelines; do
      # gcm: groupcached's memcached port; mc: memcached; gc: groupcached's native port.
      if [ $((run % 2)) = 1 ]; then order="gcm mc gc"; else order="gc mc gcm"; fi
      for proto in memcache memcache-text; do
        for s in $order; do
          case $s in
            gcm) target=(--server 127.0.0.1:$gcm_port --protocol "$proto") ;;
            mc) target=(--server 127.0.0.1:$mc_port --protocol "$proto") ;;
            gc) [ "$proto" = memcache ] || continue  # measured once per pipeline
                target=(--server 127.0.0.1:$gc_port --shard-aware off) ;;
          esac
          name="mcport-p$pl-$proto-$s-r$run"
          taskset -c 1 $gen "${target[@]}" "${common[@]}" --pipeline "$pl" --json "$out/$name.json" >/dev/null
          printf '%-40s %s\n' "$name" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f ops/s  p50 %.0f us  p99 %.0f us  found %s  busy %s" % (d["ops_per_sec"], d["latency_us"]["p50"], d["latency_us"]["p99"], d["found_ratio"], d["generator"]["busy"]))' "$out/$name.json")"
        done
      done
    done
  done
  cleanup; pids=()
fi

if [ "$memory" = 1 ]; then
  # Memory per item, both servers (ports 17420); its own table, after this one's.
  GC_BIN=$gc_bin THREADS=2 bench/memory.sh 1000000 > "$out/memory.md"
fi

echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
python3 - "$out" <<'EOF'
import glob, json, os, re, statistics as st, sys
out = sys.argv[1]
runs = {}
for f in glob.glob(os.path.join(out, "t*-r*.json")):
    m = re.match(r"t(\d+)-p(\d+)-(.+)-(\d+)to(\d+)-(gcs|gc|mc|ec)-r(\d+)\.json", os.path.basename(f))
    t, pl, dist, g, s, srv, run = m.groups()
    d = json.load(open(f))
    key = (int(t), int(pl), dist, f"{g}:{s}")
    runs.setdefault(key, {}).setdefault(int(run), {})[srv] = d
if not runs:
    sys.exit(0)  # THREAD_SETS=""
print()
print("| server threads | groupcached client | pipeline | keys | GET:SET | groupcached ops/s (runs) | memcached ops/s (runs) | median gc | median mc | median ratio gc/mc | gc p50 / p99 µs | mc p50 / p99 µs | gc core hops per request | median ratio gc/echo |")
print("|---:|---|---:|---|---|---|---|---:|---:|---:|---|---|---:|---:|")
def hops_per_request(d):
    h = d.get("core_hops")
    return None if h is None or not d["ops"] else h / d["ops"]
for key in sorted(runs):
    t, pl, dist, ratio = key
    r = runs[key]
    for gc, client in (("gc", "plain"), ("gcs", "shard-aware")):
        both = [n for n in sorted(r) if gc in r[n] and "mc" in r[n]]
        if not both:
            continue
        ops = {s: [r[n][s]["ops_per_sec"] for n in both] for s in (gc, "mc")}
        lat = {s: (st.median(r[n][s]["latency_us"]["p50"] for n in both), st.median(r[n][s]["latency_us"]["p99"] for n in both)) for s in (gc, "mc")}
        ratio_med = st.median(r[n][gc]["ops_per_sec"] / r[n]["mc"]["ops_per_sec"] for n in both)
        hops = [h for h in (hops_per_request(r[n][gc]) for n in both) if h is not None]
        hops_med = f"{st.median(hops):.2f}" if hops else "-"
        # The echo ceiling runs with one server thread, next to the plain client.
        with_ec = [n for n in both if "ec" in r[n]]
        vs_ec = f"{st.median(r[n][gc]['ops_per_sec'] / r[n]['ec']['ops_per_sec'] for n in with_ec):.2f}" if with_ec else "-"
        fmt = lambda xs: " / ".join(f"{x:,.0f}" for x in xs)
        print(f"| {t} | {client} | {pl} | {dist.replace('zipf', 'zipf:')} | {ratio} | {fmt(ops[gc])} | {fmt(ops['mc'])} | {st.median(ops[gc]):,.0f} | {st.median(ops['mc']):,.0f} | {ratio_med:.2f} | {lat[gc][0]:.0f} / {lat[gc][1]:.0f} | {lat['mc'][0]:.0f} / {lat['mc'][1]:.0f} | {hops_med} | {vs_ec} |")
ceiling = [k for k in sorted(runs) if any("ec" in x for x in runs[k].values())]
if ceiling:
    print()
    print("ceiling: loopback echo server (groupcached-echo --threads 1 on CPU 0, same generator arguments as groupcached's plain client, in the same runs)")
    print()
    print("| server threads | pipeline | keys | GET:SET | echo ops/s (runs) | median echo | median ratio gc/echo | median ratio mc/echo | echo p50 / p99 µs | generator busy, echo runs (median) |")
    print("|---:|---:|---|---|---|---:|---:|---:|---|---:|")
    for key in ceiling:
        t, pl, dist, ratio = key
        r = runs[key]
        ns = [n for n in sorted(r) if "ec" in r[n]]
        ec_ops = [r[n]["ec"]["ops_per_sec"] for n in ns]
        def vs(s):
            xs = [r[n][s]["ops_per_sec"] / r[n]["ec"]["ops_per_sec"] for n in ns if s in r[n]]
            return f"{st.median(xs):.2f}" if xs else "-"
        p50 = st.median(r[n]["ec"]["latency_us"]["p50"] for n in ns)
        p99 = st.median(r[n]["ec"]["latency_us"]["p99"] for n in ns)
        ec_busy = st.median(b for n in ns for b in r[n]["ec"]["generator"]["busy"])
        fmt = lambda xs: " / ".join(f"{x:,.0f}" for x in xs)
        print(f"| {t} | {pl} | {dist.replace('zipf', 'zipf:')} | {ratio} | {fmt(ec_ops)} | {st.median(ec_ops):,.0f} | {vs('gc')} | {vs('mc')} | {p50:.0f} / {p99:.0f} | {ec_busy:.0%} |")
# The servers' runs only (the echo's busy is in its own table; it stores nothing).
servers = [d for r in runs.values() for x in r.values() for s, d in x.items() if s != "ec"]
hits = [d["found_ratio"] for d in servers if d["found_ratio"] is not None]
busy = [b for d in servers for b in d["generator"]["busy"]]
if hits:
    print(f"\nfound ratio (GETs answered with a value; every key is prefilled): min {min(hits):.4f}; generator thread busy: median {st.median(busy):.0%}, max {max(busy):.0%}")
EOF
python3 - "$out" <<'EOF'
import glob, json, os, re, statistics as st, sys
out = sys.argv[1]
runs = {}
for f in glob.glob(os.path.join(out, "mcport-*.json")):
    pl, proto, srv, run = re.match(r"mcport-p(\d+)-(memcache|memcache-text)-(gcm|mc|gc)-r(\d+)\.json", os.path.basename(f)).groups()
    runs.setdefault((int(pl), proto), {}).setdefault(int(run), {})[srv] = json.load(open(f))
if not runs:
    sys.exit(0)
print()
print("| server threads | pipeline | memcached commands | groupcached memcached port ops/s (runs) | memcached ops/s (runs) | median gc port | median mc | median ratio gc port/mc | groupcached native ops/s (runs) | median ratio gc port/native | gc port p50 / p99 µs | mc p50 / p99 µs |")
print("|---:|---:|---|---|---|---:|---:|---:|---|---:|---|---|")
for pl, proto in sorted(runs, key=lambda k: (k[0], k[1] != "memcache")):
    r, native = runs[(pl, proto)], runs.get((pl, "memcache"), {})
    both = [n for n in sorted(r) if "gcm" in r[n] and "mc" in r[n]]
    if not both:
        continue
    ops = {s: [r[n][s]["ops_per_sec"] for n in both] for s in ("gcm", "mc")}
    lat = {s: (st.median(r[n][s]["latency_us"]["p50"] for n in both), st.median(r[n][s]["latency_us"]["p99"] for n in both)) for s in ("gcm", "mc")}
    ratio = st.median(r[n]["gcm"]["ops_per_sec"] / r[n]["mc"]["ops_per_sec"] for n in both)
    with_gc = [n for n in both if "gc" in native.get(n, {})]
    gc_ops = [native[n]["gc"]["ops_per_sec"] for n in with_gc]
    vs_gc = st.median(r[n]["gcm"]["ops_per_sec"] / native[n]["gc"]["ops_per_sec"] for n in with_gc) if with_gc else None
    fmt = lambda xs: " / ".join(f"{x:,.0f}" for x in xs)
    cmds = "meta `mg`" if proto == "memcache" else "classic `get`"
    print(f"| 1 | {pl} | {cmds} | {fmt(ops['gcm'])} | {fmt(ops['mc'])} | {st.median(ops['gcm']):,.0f} | {st.median(ops['mc']):,.0f} | {ratio:.2f} | {fmt(gc_ops) or '-'} | {'-' if vs_gc is None else f'{vs_gc:.2f}'} | {lat['gcm'][0]:.0f} / {lat['gcm'][1]:.0f} | {lat['mc'][0]:.0f} / {lat['mc'][1]:.0f} |")
found = [d["found_ratio"] for r in runs.values() for x in r.values() for d in x.values() if d["found_ratio"] is not None]
if found:
    print(f"\nmemcached-port table: found ratio min {min(found):.4f} (every key is prefilled; below 1 means a server lost or refused items)")
EOF
if [ -f "$out/memory.md" ]; then echo; cat "$out/memory.md"; fi
echo "JSON summaries: $out"
