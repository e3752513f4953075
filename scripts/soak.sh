#!/usr/bin/env bash
# Soak test (issue 10): a 3-node cluster under mixed GET/SET load for SOAK_SECS
# (default 600), with a slow-origin group whose loader queue fills, abusive
# connections on every node for the whole run, and one node killed (SIGKILL) at
# about a third of the run and restarted on the same port. Every node's RSS is
# sampled every second; counters are scraped at the start and the end; a summary
# compares the largest RSS seen with the worst-case formula of docs/operations.md
# ("Limits and failure behaviour" > "Connections") for the settings used.
#
#   scripts/soak.sh                      10 minutes
#   SOAK_SECS=30 scripts/soak.sh         a short run (at least 20 s)
#   scripts/soak.sh --summary DIR        print an earlier run's summary again
#
# Env: SOAK_SECS       duration of the load (default 600)
#      SOAK_PORT       first node port (default 17601; nodes use SOAK_PORT..+2,
#                      metrics SOAK_PORT+100..+102); refused if any is busy
#      SOAK_FAST_RATE  GET+SET per second on group `fast`, open loop (default 5000)
#      SOAK_SLOW_RATE  GET+SET per second on group `slow`, open loop (default 150)
#      SOAK_DIR        run directory (default $CARGO_TARGET_DIR/soak/<time>, where
#                      CARGO_TARGET_DIR defaults to target)
#      SOAK_ABUSE=0    no abusive clients; SOAK_ABUSE_KINDS=slowloris,bigheader,ping,get
#                      (the default) picks some of them: for finding which one hurts
#
# What runs, all on 127.0.0.1 only:
#   - nodes 1-3: groupcached --config soak.toml (written below: 2 threads, 1 MiB
#     frames, 16 MiB of connection-buffer memory, 500 connections, 10 s frame
#     timeout; group `fast`: synthetic 100-byte values, 16 MiB; group `slow`:
#     synthetic values after 200 ms, 4 MiB, 4 loader threads, a queue of 32 and a
#     1.5 s load timeout, so its queue fills and overflows);
#   - two groupcached-bench processes, one per group, open loop, 9:1 GET:SET, their
#     connections spread over the three nodes, --json results;
#   - abuse.py (written below): per node 4 slowloris connections (a frame header,
#     then one byte a second), 2 connections that declare a frame of exactly
#     --max-frame and 2 that declare one byte more, then stall, 3 that pipeline
#     128 KiB PINGs and 3 that pipeline GETs of a 512 KiB value, never reading
#     (held 30 s, then reopened); every connection is reopened when the server
#     closes it;
#   - sampler.py: every second, each node's VmRSS (/proc/PID/status) and its
#     connection-buffer, connection and cache gauges (/metrics) into rss.csv;
#   - at a third of the run: kill -9 of node 2, restart on the same port after a
#     few seconds (times in events.log).
# Everything started here is stopped on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."

summary() { # summary RUN_DIR: every figure from the files of the run (params.env)
  (
    # shellcheck disable=SC1091
    source "$1/params.env"
    python3 - "$1" "$secs" "$kill_at" "$threads" "$max_frame" "$max_buffer_memory" "$max_connections" \
      "$caches" "$victim" $node_list <<'PY'
import csv, json, os, sys
run, secs, kill_at, T, F, M, N, caches, victim = sys.argv[1], *map(int, sys.argv[2:10])
nodes = sys.argv[10:]
MiB, KiB = 1 << 20, 1 << 10
def mib(b): return "%.1f MiB" % (b / MiB)
print("== soak summary (%s) ==" % run)
print(open(os.path.join(run, "machine.txt")).read().rstrip())
print("events:")
for line in open(os.path.join(run, "events.log")): print("  t=%s" % line.rstrip())
rows = list(csv.DictReader(open(os.path.join(run, "rss.csv"))))
print("\nRSS per node (VmRSS, sampled every second; %d samples):" % len(rows))
maxrss = 0; maxbuf = 0; maxconns = 0
for n in nodes:
    r = [x for x in rows if x["node"] == n and x["rss_kib"]]
    if not r: print("  node %s: no samples" % n); continue
    rss = [int(x["rss_kib"]) for x in r]
    top = max(r, key=lambda x: int(x["rss_kib"]))
    pids = sorted(set(x["pid"] for x in r), key=lambda p: [x["pid"] for x in r].index(p))
    buf = [int(x["conn_buffer_bytes"]) for x in r if x["conn_buffer_bytes"]]
    conns = [int(x["connections"]) for x in r if x["connections"]]
    missing = sum(1 for x in rows if x["node"] == n and not x["rss_kib"])
    maxrss = max(maxrss, max(rss) * KiB); maxbuf = max([maxbuf] + buf); maxconns = max([maxconns] + conns)
    line = "  node %s: start %s, max %s (t=%ss), end %s" % (n, mib(rss[0] * KiB), mib(max(rss) * KiB), top["time_s"], mib(rss[-1] * KiB))
    if len(pids) > 1:
        before = [int(x["rss_kib"]) for x in r if x["pid"] == pids[0]]
        after = [int(x["rss_kib"]) for x in r if x["pid"] == pids[-1]]
        line += "\n          (first process: max %s, last %s before the kill; restarted process: first %s, max %s; %d s without a process)" % (
            mib(max(before) * KiB), mib(before[-1] * KiB), mib(after[0] * KiB), mib(max(after) * KiB), missing)
    line += "; conn_buffer_bytes max %s, connections max %s" % (mib(max(buf)) if buf else "?", max(conns) if conns else "?")
    print(line)
# RSS over time: one line per node, the value at each tenth of the run
print("  RSS by tenth of the run (MiB):")
for n in nodes:
    r = [x for x in rows if x["node"] == n]
    pts = []
    for k in range(11):
        t = (secs + 2) * k / 10
        near = [x for x in r if float(x["time_s"]) <= t + 0.5]
        v = near[-1]["rss_kib"] if near else ""
        pts.append("%.0f" % (int(v) / 1024) if v else "-")
    print("    node %s: %s" % (n, " ".join(pts)))

print("\nload (groupcached-bench, open loop, 9:1 GET:SET, connections spread over the 3 nodes):")
for g in ("fast", "slow"):
    try: d = json.load(open(os.path.join(run, "bench-%s.json" % g)))
    except Exception as e: print("  %s: no JSON (%s)" % (g, e)); continue
    c = d["config"]
    print("  %s: %.0f s, target %s/s: %d ops (%.0f/s), GET p50 %.0f us p99 %.0f us max %.0f us, found %s" % (
        g, d["secs"], c["rate"], d["ops"], d["ops_per_sec"], d["per_op"]["get"]["latency_us"]["p50"],
        d["per_op"]["get"]["latency_us"]["p99"], d["per_op"]["get"]["latency_us"]["max"], d["found"]))
    print("        errors %d (%.3f%% of requests): %s" % (d["errors"], 100 * d["error_rate"],
        ", ".join("%s %d" % kv for kv in d["errors_by_kind"].items()) or "none"))
    ivs = d.get("intervals", [])
    bad = [iv for iv in ivs if iv.get("errors")]
    if bad:
        print("        seconds with errors: %d of %d (first at %ss, last at %ss)" % (len(bad), len(ivs), bad[0].get("second", "?"), bad[-1].get("second", "?")))

def stats(path):
    out = {}
    try:
        for line in open(path):
            p = line.split()
            if len(p) == 2 and p[1].isdigit(): out[p[0]] = int(p[1])
    except OSError: pass
    return out
end = {n: stats(os.path.join(run, "stats-end-node%s.txt" % n)) for n in nodes}
pre = stats(os.path.join(run, "stats-prekill-node%d.txt" % victim))
names = ["total_connections", "curr_connections", "frame_timeouts", "output_overflows", "buffer_memory_pauses",
         "idle_timeouts", "protocol_errors", "rejected_connections", "invalidate_errors", "peers_suspect",
         "peer_auth_failures", "conn_buffer_bytes"]
for g in ("fast", "slow"):
    names += ["group.%s.%s" % (g, c) for c in ("gets", "cache_hits", "peer_loads", "peer_errors", "local_loads",
              "local_load_errs", "sets", "load_queue_waits", "load_queue_full", "load_queue_timeouts",
              "main.evictions", "hot.evictions", "main.bytes", "hot.bytes")]
print("\ncounters at the end (STATS; node %d: its restarted process, + its first process a moment before the kill):" % victim)
print("  %-32s %s" % ("", "  ".join("%14s" % ("node " + n) for n in nodes)))
for name in names:
    cells = []
    for n in nodes:
        v = end[n].get(name)
        s = "-" if v is None else str(v)
        if int(n) == victim and name in pre and not name.endswith("bytes") and name not in ("curr_connections", "peers_suspect"):
            s += "+%d" % pre[name]
        cells.append("%14s" % s)
    print("  %-32s %s" % (name, "  ".join(cells)))
try:
    ab = json.load(open(os.path.join(run, "abuse.json")))
    print("\nabusive clients (abuse.json: connections, sessions, what the server answered; _held_s = seconds held in all):")
    print("  " + ", ".join("%s %s" % kv for kv in sorted(ab.items())))
except Exception as e:
    print("\nabusive clients: no counts (%s)" % e)

R = F + 8 * KiB
O = (4 * MiB + 2 * F) + F + 256 * KiB
reads_term = M + 2 * T * (F + 8 * KiB)
conns_term = min(N * (R + O), reads_term)
base = 10 * MiB + maxconns * KiB
bound = caches + base + conns_term
print("\nworst-case RSS (docs/operations.md, Limits and failure behaviour > Connections), settings of this run:")
print("  N=%d connections, T=%d threads, F=%s frames, M=%s buffer memory, --max-conn-output auto = %s" % (N, T, mib(F), mib(M), mib(4 * MiB + 2 * F)))
print("  per connection R + O = %s + %s = %s" % (mib(R), mib(O), mib(R + O)))
print("  all connections min(N x (R+O), M + 2T(F+8 KiB) + P) = min(%s, %s + P) = %s + P" % (mib(N * (R + O)), mib(reads_term), mib(conns_term)))
print("  RSS <= caches %s + base %s (10 MiB + 1 KiB x %d connections) + %s + P = %s + P" % (mib(caches), mib(base), maxconns, mib(conns_term), mib(bound)))
# P (answers owed when the limit is reached) has no fixed size: the samples give a
# lower bound, what conn_buffer_bytes held beyond the read-buffer term.
p_seen = max(0, maxbuf - reads_term)
print("  observed: max RSS %s; max conn_buffer_bytes %s, so P was at least %s at some sample" % (mib(maxrss), mib(maxbuf), mib(p_seen)))
print("  bound with that P: %s; max RSS is %.0f%% of it" % (mib(bound + p_seen), 100 * maxrss / (bound + p_seen)))
# Each sample split: cache bytes charged + connection buffers + the rest (base,
# allocator slack, loader and peer buffers), to check the formula's "base".
rest = [(int(x["rss_kib"]) * KiB - int(x["conn_buffer_bytes"]) - int(x["cache_bytes"]), x) for x in rows
        if x["rss_kib"] and x["conn_buffer_bytes"] and x["cache_bytes"]]
if rest:
    worst = max(rest, key=lambda r: r[0])
    print("  RSS - cache bytes charged - conn_buffer_bytes, per sample: max %s (node %s at t=%ss; formula's base: %s)" % (
        mib(worst[0]), worst[1]["node"], worst[1]["time_s"], mib(base)))
print("  verdict: %s" % ("max RSS within the bound" + (" (without P)" if maxrss <= bound else " once the observed P is added")
                         if maxrss <= bound + p_seen else "max RSS ABOVE the bound: see rss.csv"))
PY
  )
}
if [[ ${1:-} == --summary ]]; then
  # The summary of an earlier run, again: scripts/soak.sh --summary RUN_DIR
  [[ -f ${2:-}/params.env ]] || { echo "usage: $0 --summary RUN_DIR (a soak run directory, with params.env)" >&2; exit 2; }
  summary "$2"
  exit 0
fi


secs=${SOAK_SECS:-600}
port0=${SOAK_PORT:-17601}
fast_rate=${SOAK_FAST_RATE:-5000}
slow_rate=${SOAK_SLOW_RATE:-150}
target_dir=${CARGO_TARGET_DIR:-target}
run=${SOAK_DIR:-$target_dir/soak/$(date +%Y%m%d-%H%M%S)}
bin=$target_dir/release

[[ $secs =~ ^[0-9]+$ && $secs -ge 20 ]] || { echo "SOAK_SECS must be a whole number of seconds, at least 20" >&2; exit 2; }
[[ $port0 =~ ^[0-9]+$ && $port0 -ge 1024 && $port0 -le 65000 ]] || { echo "SOAK_PORT must be a port between 1024 and 65000" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed (abusive clients, sampler, summary)" >&2; exit 1; }

# Settings: they go into the config file and into the formula of the summary.
threads=2
max_frame=$((1024 * 1024))       # F
max_buffer_memory=$((16 << 20))  # M
max_connections=500              # N
fast_cache=$((16 << 20))
slow_cache=$((4 << 20))
nodes=(1 2 3)
port() { echo $((port0 + $1 - 1)); }
mport() { echo $((port0 + 100 + $1 - 1)); }
members=$(for n in "${nodes[@]}"; do printf '127.0.0.1:%s,' "$(port "$n")"; done)
members=${members%,}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for n in "${nodes[@]}"; do
  for p in "$(port "$n")" "$(mport "$n")"; do
    # SO_REUSEPORT would let a leftover server on the same port take a share of
    # the connections: refuse to start rather than measure a mixture.
    if port_open "$p"; then echo "port $p is already in use; stop whatever listens there or set SOAK_PORT" >&2; exit 1; fi
  done
done

echo "building release binaries (cargo build --release --workspace)..."
cargo build -q --release --workspace

mkdir -p "$run"
run=$(cd "$run" && pwd)
echo "run directory: $run"

# --- everything started below is in pids (and node_pid); cleanup stops it -----
declare -A node_pid=()
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for n in "${!node_pid[@]}"; do kill -TERM "${node_pid[$n]}" 2>/dev/null || true; done
  for n in "${!node_pid[@]}"; do
    local p=${node_pid[$n]}
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0_us=${EPOCHREALTIME/./}
elapsed() { local now=${EPOCHREALTIME/./}; printf '%d.%01d' $(((now - t0_us) / 1000000)) $((((now - t0_us) / 100000) % 10)); }
event() { echo "$(elapsed) $*" | tee -a "$run/events.log"; }
pause() { sleep "$1" & wait $! || true; }

kill_at=$((secs / 3))
victim=2
cat >"$run/params.env" <<EOF
# the settings scripts/soak.sh --summary needs
secs=$secs
kill_at=$kill_at
threads=$threads
max_frame=$max_frame
max_buffer_memory=$max_buffer_memory
max_connections=$max_connections
caches=$((fast_cache + slow_cache))
victim=$victim
node_list="${nodes[*]}"
EOF

cat >"$run/soak.toml" <<EOF
# written by scripts/soak.sh
threads = $threads
max_frame = $max_frame
max_buffer_memory = $max_buffer_memory
max_connections = $max_connections
frame_timeout = "10s"
load_timeout = "1500ms"
peer_timeout = "2s"
peers = [$(for n in "${nodes[@]}"; do printf '"127.0.0.1:%s",' "$(port "$n")"; done)]

[[group]]
name = "fast"
cache_size = $fast_cache
origin = "synthetic:size=100"

[[group]]
name = "slow"
cache_size = $slow_cache
origin = "synthetic:size=100,delay_ms=200"
loader_threads = 4
loader_queue = 32
EOF
"$bin/groupcached" --config "$run/soak.toml" --print-config >"$run/effective-config.toml"

start_node() {
  local n=$1
  RUST_LOG=${RUST_LOG:-info} "$bin/groupcached" --config "$run/soak.toml" \
    --listen "127.0.0.1:$(port "$n")" --metrics-listen "127.0.0.1:$(mport "$n")" \
    >>"$run/node$n.log" 2>&1 </dev/null &
  node_pid[$n]=$!
  echo "$!" >"$run/node$n.pid.tmp" && mv "$run/node$n.pid.tmp" "$run/node$n.pid"
}
# Until node n answers STATS and sees all members (at most 15 s); prints how long.
wait_ready() {
  local n=$1 start=${EPOCHREALTIME/./}
  for _ in $(seq 150); do
    kill -0 "${node_pid[$n]}" 2>/dev/null || { echo "node $n exited; its log:" >&2; tail -n 20 "$run/node$n.log" >&2; return 1; }
    local m
    m=$("$bin/groupcached-cli" --server "127.0.0.1:$(port "$n")" --timeout 1s stats 2>/dev/null | awk '$1 == "members" { print $2 }') || true
    if [[ $m == "${#nodes[@]}" ]]; then
      local now=${EPOCHREALTIME/./}
      printf '%d.%03d\n' $(((now - start) / 1000000)) $((((now - start) / 1000) % 1000))
      return 0
    fi
    sleep 0.1
  done
  echo "node $n did not see ${#nodes[@]} members within 15 s" >&2
  return 1
}
scrape() { # scrape TAG: STATS and /metrics of every running node
  for n in "${nodes[@]}"; do
    "$bin/groupcached-cli" --server "127.0.0.1:$(port "$n")" --timeout 2s stats >"$run/stats-$1-node$n.txt" 2>&1 || true
    curl -s -m 2 "http://127.0.0.1:$(mport "$n")/metrics" >"$run/metrics-$1-node$n.txt" 2>&1 || true
  done
}

# --- helpers --------------------------------------------------------------------
cat >"$run/abuse.py" <<'PY'
# Abusive clients against every node, until SIGTERM; counts to abuse.json.
import json, signal, socket, struct, sys, threading, time
ports, max_frame, out = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
counts = {}
def count(k, n=1):
    with lock: counts[k] = counts.get(k, 0) + n
STATUS = {0: "OK", 3: "TOO_LARGE", 4: "BAD_REQUEST", 8: "TIMEOUT", 9: "UNAVAILABLE", None: "nothing"}
def frame(op, rid, body):
    return struct.pack(">IBBBBI", 8 + len(body), 1, op, 0, 0, rid) + body
def keyref(group, key):
    return bytes([len(group)]) + group + struct.pack(">H", len(key)) + key
def connect(port):
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            count("connects"); return s
        except OSError:
            count("connect_refused"); time.sleep(0.5)
def closed_by_server(s):  # non-blocking: True if EOF/reset, notes TIMEOUT frames
    try:
        d = s.recv(65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    if not d: return True
    if len(d) >= 12 and d[7] != 0: count("slowloris_got_%s" % STATUS.get(d[7], d[7]))
    return False
def wait_close(s, limit):  # blocking read until the server closes; first status seen
    s.settimeout(limit); first = None; buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            buf += d
            if first is None and len(buf) >= 12: first = buf[7]
    except OSError: pass
    return first
def slowloris(port, i):
    while True:
        s = connect(port); t = time.time()
        s.settimeout(None)  # blocking: MSG_DONTWAIT then returns at once
        try:
            s.sendall(struct.pack(">I", 1024) + bytes([1, 1, 0, 0]))  # GET, 1 KiB frame
            while True:
                time.sleep(1)
                if closed_by_server(s): break
                s.send(b"\x00")
        except OSError: pass
        count("slowloris_closed"); count("slowloris_held_s", int(time.time() - t)); s.close()
def big_header(port, i, extra):
    while True:
        s = connect(port); t = time.time()
        try:
            s.sendall(struct.pack(">IBBBBI", max_frame + extra, 1, 2, 0, 0, 7) + b"\x05")  # SET
            st = wait_close(s, 120)
            count("bigheader%s_got_%s" % ("_over" if extra else "", STATUS.get(st, st)))
        except OSError: pass
        count("bigheader%s_closed" % ("_over" if extra else "")); count("bigheader_held_s", int(time.time() - t)); s.close()
def never_read(port, i, kind):
    # Sends whole frames only (partial sends resume where they stopped, so the
    # stream stays well framed) and never reads a byte of the answers. A server
    # close shows up as a reset on send.
    big = b"v" * (512 * 1024); key = b"soak-abuse-%d-%d" % (port, i); ping = frame(5, 1, b"p" * (128 * 1024))
    while True:
        s = connect(port); t = time.time(); sent = 0
        try:
            if kind == "get":
                s.sendall(frame(2, 1, keyref(b"fast", key) + struct.pack(">Q", 0) + big))
                try:
                    hdr = s.recv(12)
                    count("bigset_got_%s" % (STATUS.get(hdr[7], hdr[7]) if len(hdr) >= 12 else "nothing"))
                except socket.timeout:
                    count("bigset_no_answer")
                req = frame(1, 2, keyref(b"fast", key))
            else:
                req = ping
            s.settimeout(1)
            batch = memoryview(req * 8); pos = 0
            while time.time() - t < 30:
                try:
                    pos += s.send(batch[pos:])
                except socket.timeout:
                    continue  # the server stopped reading us: backpressure
                if pos == len(batch): pos = 0; sent += 8
            count("neverread_%s_held_30s" % kind)
        except OSError:
            count("neverread_%s_closed_by_server" % kind)
        count("neverread_%s_requests" % kind, sent); count("neverread_%s_sessions" % kind); s.close()
def write():
    with lock: json.dump(counts, open(out, "w"), indent=1, sort_keys=True)
def stop(*_):
    write(); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
kinds = sys.argv[4].split(",")
for p in ports:
    jobs = []
    if "slowloris" in kinds: jobs += [(slowloris, (p, i)) for i in range(4)]
    if "bigheader" in kinds: jobs += [(big_header, (p, i, 0)) for i in range(2)] + [(big_header, (p, i, 1)) for i in range(2)]
    if "ping" in kinds: jobs += [(never_read, (p, i, "ping")) for i in range(3)]
    if "get" in kinds: jobs += [(never_read, (p, i, "get")) for i in range(3)]
    for f, a in jobs: threading.Thread(target=f, args=a, daemon=True).start()
while True:
    time.sleep(5); write()
PY

cat >"$run/sampler.py" <<'PY'
# Every second: time_s,node,rss_kib,pid,conn_buffer_bytes,connections,cache_bytes
import os, re, sys, time, urllib.request
run, t0, nodes = sys.argv[1], int(sys.argv[2]) / 1e6, sys.argv[3:]  # node=metricsport
want = {"groupcached_connection_buffer_bytes": "buf", "groupcached_connections": "conns"}
out = open(os.path.join(run, "rss.csv"), "w", buffering=1)
out.write("time_s,node,rss_kib,pid,conn_buffer_bytes,connections,cache_bytes\n")
tick = time.time()
while True:
    for spec in nodes:
        n, mp = spec.split("=")
        try: pid = open(os.path.join(run, "node%s.pid" % n)).read().strip()
        except OSError: pid = ""
        rss = ""
        try:
            for line in open("/proc/%s/status" % pid):
                if line.startswith("VmRSS:"): rss = line.split()[1]
        except OSError: pass
        vals = {"buf": "", "conns": "", "cache": ""}
        if rss:
            try:
                body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mp, timeout=0.5).read().decode()
                cache = 0
                for line in body.splitlines():
                    name = line.split("{")[0].split(" ")[0]
                    if name in want: vals[want[name]] = line.split()[-1]
                    elif name == "groupcached_cache_bytes": cache += int(float(line.split()[-1]))
                vals["cache"] = str(cache)
            except Exception: pass
        out.write("%.1f,%s,%s,%s,%s,%s,%s\n" % (time.time() - t0, n, rss, pid, vals["buf"], vals["conns"], vals["cache"]))
    tick += 1
    time.sleep(max(0, tick - time.time()))
PY

# --- the run ------------------------------------------------------------------
{
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine:  $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, shared with other work"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "duration: ${secs}s; fast ${fast_rate}/s, slow ${slow_rate}/s"
} | tee "$run/machine.txt"

for n in "${nodes[@]}"; do start_node "$n"; done
for n in "${nodes[@]}"; do wait_ready "$n" >/dev/null; done
t0_us=${EPOCHREALTIME/./}
event "cluster up: $(for n in "${nodes[@]}"; do printf 'node%s=pid %s ' "$n" "${node_pid[$n]}"; done)"
python3 "$run/sampler.py" "$run" "$t0_us" $(for n in "${nodes[@]}"; do printf '%s=%s ' "$n" "$(mport "$n")"; done) &
pids+=($!)
pause 2  # RSS at start: the idle cluster, before any load
scrape start

bench_common=(--server "$members" --threads 1 --ratio 9:1 --duration "${secs}s" --timeout 5s --max-error-rate 1)
"$bin/groupcached-bench" "${bench_common[@]}" --group fast --connections 24 --pipeline 8 --rate "$fast_rate" \
  --keys 200000 --key-dist zipf:0.99 --value-size 100-8000 --seed 1 \
  --json "$run/bench-fast.json" >"$run/bench-fast.txt" 2>&1 &
bench_fast=$!; pids+=($!)
"$bin/groupcached-bench" "${bench_common[@]}" --group slow --connections 8 --pipeline 32 --rate "$slow_rate" \
  --keys 1000000 --value-size 100 --seed 2 \
  --json "$run/bench-slow.json" >"$run/bench-slow.txt" 2>&1 &
bench_slow=$!; pids+=($!)
abuse=
if [[ ${SOAK_ABUSE:-1} == 1 ]]; then
  python3 "$run/abuse.py" "$(for n in "${nodes[@]}"; do printf '%s,' "$(port "$n")"; done | sed 's/,$//')" \
    "$max_frame" "$run/abuse.json" "${SOAK_ABUSE_KINDS:-slowloris,bigheader,ping,get}" >"$run/abuse.log" 2>&1 &
  abuse=$!; pids+=($!)
else
  event "SOAK_ABUSE=${SOAK_ABUSE}: no abusive clients (a comparison run)"
fi
event "load started: bench fast pid $bench_fast, bench slow pid $bench_slow, abuse pid $abuse"

load_start=$(elapsed)
down_secs=$((secs / 20 < 2 ? 2 : (secs / 20 > 10 ? 10 : secs / 20)))
pause "$kill_at"
"$bin/groupcached-cli" --server "127.0.0.1:$(port $victim)" --timeout 2s stats >"$run/stats-prekill-node$victim.txt" 2>&1 || true
for n in "${nodes[@]}"; do
  kill -0 "${node_pid[$n]}" 2>/dev/null || event "node $n (pid ${node_pid[$n]}) is NOT running before the kill: it died on its own"
done
if kill -KILL "${node_pid[$victim]}" 2>/dev/null; then
  event "node $victim killed (kill -9, pid ${node_pid[$victim]})"
fi
wait "${node_pid[$victim]}" 2>/dev/null || true
pause "$down_secs"
start_node "$victim"
event "node $victim restarted on port $(port $victim) (pid ${node_pid[$victim]})"
ready=$(wait_ready "$victim") && event "node $victim ready (answers STATS, sees ${#nodes[@]} members) after ${ready}s" ||
  event "node $victim NOT ready within 15 s of its restart"

rc_fast=0 rc_slow=0
wait "$bench_fast" || rc_fast=$?
wait "$bench_slow" || rc_slow=$?
event "bench finished (exit fast $rc_fast, slow $rc_slow)"
pause 3  # a few idle samples after the load, abuse still running
alive=()
for n in "${nodes[@]}"; do kill -0 "${node_pid[$n]}" 2>/dev/null && alive+=("$n") || event "node $n is NOT running at the end"; done
scrape end
if [[ -n $abuse ]]; then kill -TERM "$abuse" 2>/dev/null || true; wait "$abuse" 2>/dev/null || true; fi
event "abusive clients stopped"

summary "$run" | tee "$run/summary.txt"

for n in "${nodes[@]}"; do
  if grep -qi 'panick' "$run/node$n.log"; then echo "node $n log has a panic:"; grep -i -m5 'panick' "$run/node$n.log"; fi
done
echo "files: $run (rss.csv, events.log, bench-*.json, stats-*, metrics-*, node*.log, summary.txt)"
