#!/usr/bin/env bash
# make bench: sluiced against a direct connection and haproxy, in one run, on this machine.
#
# The upstream is nginx serving canned BigQuery getQueryResults pages over TLS (never the
# bottleneck). wrk fetches one page with keep-alive over TLS:
#   direct   wrk -> nginx
#   haproxy  wrk -> haproxy (TLS re-termination) -> nginx
#   sluiced  wrk in an enforced test container -> eBPF redirect -> sluiced -> nginx
#   splice   wrk in the container -> sluiced splicing a non-intercepted host -> nginx
#   relay    wrk -> haproxy in TCP mode (bytes relayed, no decryption) -> nginx: what any
#            relay costs, the fair yardstick for splicing
# then sluiced's memory per idle TLS connection with N idle connections.
# Needs root and cgroup v2. Prints a Markdown table (also saved to build/bench.md).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require
DUR=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-32}
IDLE=${BENCH_IDLE:-10000}
# While tuning: BENCH_SIZES="small" runs one page size; BENCH_QUICK=1 leaves out the spliced
# cells and the idle-connection memory (the table then shows 0 for them).
SIZES=${BENCH_SIZES:-small large}
QUICK=${BENCH_QUICK:-}
ulimit -n "$(ulimit -Hn)" 2>/dev/null

GATE_DIR=$(mktemp -d /tmp/sluice-bench.XXXXXX)
# nginx and haproxy stop with their workers on TERM; the gate's clean-up then does the rest.
eval "gate_cleanup() $(declare -f ct_on_cleanup | tail -n +2)"
ct_on_cleanup() {
  [ -f "$GATE_DIR/nginx/nginx.pid" ] && kill -TERM "$(cat "$GATE_DIR/nginx/nginx.pid")" 2>/dev/null
  [ -f "$GATE_DIR/haproxy.pid" ] && kill -TERM $(cat "$GATE_DIR/haproxy.pid") 2>/dev/null
  sleep 0.3
  cp "$GATE_DIR/sluiced.log" build/bench-sluiced.log 2>/dev/null
  # why sluiced's connections ended, counted (from its recording)
  gate_conns 2>/dev/null | node -e 'const c = {}; require("readline").createInterface({ input: process.stdin })
    .on("line", l => { const r = JSON.parse(l); const k = r.route + " " + (r.reason || "-"); c[k] = (c[k] || 0) + 1; })
    .on("close", () => { for (const k in c) console.log(c[k] + " " + k); })' > build/bench-conns.txt 2>/dev/null
  [ -n "${SLUICED_PID:-}" ] && kill -TERM "$SLUICED_PID" 2>/dev/null && wait "$SLUICED_PID" 2>/dev/null
  umount "$GATE_DIR/recmem" 2>/dev/null
  gate_cleanup
}
trap ct_cleanup EXIT
d=$GATE_DIR
tests/standin/mkcerts.sh "$d/standin" >/dev/null

# Canned getQueryResults pages: ~1.5 KB and ~110 KB.
node -e '
const fs = require("fs");
function page(rows) {
  const r = [];
  for (let i = 0; i < rows; i++)
    r.push({ f: [{ v: String(i) }, { v: "Customer " + i }, { v: "customer" + i + "@example.com" },
                 { v: "+1-555-01" + String(i % 100).padStart(2, "0") }] });
  return JSON.stringify({ kind: "bigquery#getQueryResultsResponse", etag: "x",
    schema: { fields: [{ name: "customer_id", type: "INTEGER" }, { name: "name", type: "STRING" },
      { name: "email", type: "STRING" }, { name: "phone", type: "STRING" }] },
    jobReference: { projectId: "demo-project", jobId: "bench", location: "US" },
    totalRows: String(rows), rows: r, totalBytesProcessed: "0", jobComplete: true, cacheHit: false });
}
fs.writeFileSync(process.argv[1] + "/small.json", page(14));
fs.writeFileSync(process.argv[1] + "/large.json", page(1100));' "$d"

NGX=$(gate_free_port); HAP=$(gate_free_port); HAPT=$(gate_free_port); GATE_PORT=$(gate_free_port)
mkdir -p "$d/nginx"
chmod 0755 "$d"; chmod 0644 "$d"/*.json  # nginx's workers run unprivileged
cat > "$d/nginx.conf" <<NGX
worker_processes 1;
pid $d/nginx/nginx.pid;
error_log $d/nginx/error.log;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $d/nginx; proxy_temp_path $d/nginx; fastcgi_temp_path $d/nginx;
  uwsgi_temp_path $d/nginx; scgi_temp_path $d/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGX ssl;
    listen 127.0.0.1:443 ssl;
    ssl_certificate $d/standin/server.pem;
    ssl_certificate_key $d/standin/server.key;
    default_type application/json;
    location /bigquery/v2/projects/demo-project/queries/small { alias $d/small.json; }
    location /bigquery/v2/projects/demo-project/queries/large { alias $d/large.json; }
  }
}
NGX
nginx -c "$d/nginx.conf" || { echo "bench: nginx did not start"; exit 1; }

cat > "$d/haproxy.cfg" <<HAP
global
  nbthread 2
  maxconn 9500
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAP ssl crt $d/standin/haproxy.pem alpn http/1.1
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$NGX ssl verify required ca-file $d/standin/ca.pem sni str(bigquery.googleapis.com)
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:$HAPT
  default_backend be_tcp
backend be_tcp
  mode tcp
  server s1 127.0.0.1:$NGX
HAP
cat "$d/standin/server.pem" "$d/standin/server.key" > "$d/standin/haproxy.pem"
haproxy -f "$d/haproxy.cfg" -D -p "$d/haproxy.pid" || { echo "bench: haproxy did not start"; exit 1; }

ct_create bench 127.0.0.1
STANDIN_PORT=$NGX
gate_config "$(ct_cgroup bench)" || exit 1
gate_start || exit 1
gate_warm bench || exit 1

# CPU time (user + system, in clock ticks) that the processes PIDS have used: all their
# threads, or with THREADS=PATTERN those whose name matches (sluiced-w*: the workers)
cpu_ticks() {
  local p f
  for p in "$@"; do
    for f in /proc/"$p"/task/*; do
      case $(cat "$f/comm" 2>/dev/null) in ${THREADS:-*}) cat "$f/stat" 2>/dev/null ;; esac
    done
  done | awk '{ t += $14 + $15 } END { print t + 0 }'
}
# CPU time the whole machine has used (user, nice, system, irq, softirq; clock ticks)
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
TICK=$(getconf CLK_TCK)
# wrk URL -> "rps p50 p99 cpu wcpu all" (latencies in ms; cpu: µs of CPU the proxy
# processes $PROXY_PIDS used per request while wrk ran, 0 with none; wcpu: the part of it in
# sluiced's workers, the rest being its recorder's threads; all: the whole machine's). On this machine wrk, nginx and
# the proxy share the cores, so throughput tracks the CPU each request costs in all three;
# the proxy's share is the figure it controls.
run_wrk() {
  local t0 w0 m0 out
  t0=$(cpu_ticks ${PROXY_PIDS:-}); w0=$(THREADS='sluiced-w*' cpu_ticks ${PROXY_PIDS:-})
  m0=$(machine_ticks)
  out=$("$@" 2>&1)
  echo "$out" | awk -v cmd="${*: -1}" -v ticks=$(( $(cpu_ticks ${PROXY_PIDS:-}) - t0 )) -v hz="$TICK" \
    -v wticks=$(( $(THREADS='sluiced-w*' cpu_ticks ${PROXY_PIDS:-}) - w0 )) \
    -v mticks=$(( $(machine_ticks) - m0 )) '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Non-2xx/ { bad = $NF } /Socket errors/ { print "bench: " cmd ": " $0 > "/dev/stderr" }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    END { cpu = n ? ticks * 1e6 / hz / n : 0; wcpu = n ? wticks * 1e6 / hz / n : 0
          mcpu = n ? mticks * 1e6 / hz / n : 0
          if (bad) printf "0(%s-non-2xx) 0 0 0 0 0\n", bad
          else printf "%d %.2f %.2f %.0f %.0f %.0f\n", rps, p50, p99, cpu, wcpu, mcpu }'
}
# profiled NAME CMD...: CMD's output; with BENCH_PROFILE=1 also a cpu-clock profile of
# sluiced while CMD runs (build/perf-NAME.txt)
profiled() {
  local name=$1 perf_pid; shift
  [ -z "${BENCH_PROFILE:-}" ] && { "$@"; return; }
  perf record -q -e cpu-clock ${BENCH_CALLGRAPH:--g} -p "$SLUICED_PID" -o "$d/perf.data" -- sleep $((DUR - 1)) 2>/dev/null &
  perf_pid=$!
  "$@"
  wait $perf_pid
  perf report -i "$d/perf.data" --no-children --percent-limit 1 --stdio 2>/dev/null | grep -v "^$" > "build/perf-$name.txt"
  perf report -i "$d/perf.data" --no-children --sort comm,dso,sym -g none --percent-limit 0.2 --stdio 2>/dev/null \
    | grep -v "^$" > "build/perf-$name-flat.txt"
  mv "$d/perf.data" "build/perf-$name.data"
}
wrk_args=(-t2 -c"$CONNS" -d"${DUR}s" --latency)
path=/bigquery/v2/projects/demo-project/queries
rows=()
# Every path serves the same bytes (checked), so the cells compare like with like.
for size in small large; do
  for probe in "curl -sk https://127.0.0.1:$NGX$path/$size" "curl -sk https://127.0.0.1:$HAP$path/$size" \
               "curl -sk https://127.0.0.1:$HAPT$path/$size" \
               "ct_exec bench curl -sk https://bigquery.googleapis.com$path/$size" \
               "ct_exec bench curl -sk https://storage.googleapis.com$path/$size"; do
    got=$($probe | sha256sum)
    [ "$got" = "$(sha256sum < "$d/$size.json")" ] || { echo "bench: $probe did not return $size.json"; exit 1; }
  done
  sizes+=("$size=$(stat -c %s "$d/$size.json")")
done
for size in $SIZES; do
  direct=$(run_wrk wrk "${wrk_args[@]}" "https://127.0.0.1:$NGX$path/$size")
  hap=$(PROXY_PIDS=$(pgrep -f "haproxy -f $d/haproxy.cfg" | tr '\n' ' ') run_wrk wrk "${wrk_args[@]}" "https://127.0.0.1:$HAP$path/$size")
  slu=$(PROXY_PIDS=$SLUICED_PID profiled "$size" run_wrk ct_exec bench wrk "${wrk_args[@]}" "https://bigquery.googleapis.com$path/$size")
  spl="0 0 0 0 0 0" rel="0 0 0 0 0 0"
  [ -z "$QUICK" ] && spl=$(PROXY_PIDS=$SLUICED_PID run_wrk ct_exec bench wrk "${wrk_args[@]}" "https://storage.googleapis.com$path/$size")
  [ -z "$QUICK" ] && rel=$(PROXY_PIDS=$(pgrep -f "haproxy -f $d/haproxy.cfg" | tr '\n' ' ') run_wrk wrk "${wrk_args[@]}" "https://127.0.0.1:$HAPT$path/$size")
  rows+=("$size|$direct|$hap|$slu|$spl|$rel")
done

# sluiced again with its recordings on tmpfs (4 GiB: a run records about 1 GB): the proxy's own cost, without waiting for the
# disk's fsync (the durable default holds each request for one shared fsync).
mkdir -p "$d/recmem" && mount -t tmpfs -o size=4g tmpfs "$d/recmem" || exit 1
sed -i "s|\"dir\": \"$d/records\"|\"dir\": \"$d/recmem\"|" "$d/sluice.json"
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID" 2>/dev/null
gate_start || exit 1
gate_warm bench || exit 1
declare -A mem
for size in $SIZES; do
  mem[$size]=$(PROXY_PIDS=$SLUICED_PID profiled "mem-$size" run_wrk ct_exec bench wrk "${wrk_args[@]}" "https://bigquery.googleapis.com$path/$size")
done

# Memory per idle connection: IDLE TLS connections, established, no request in flight (an
# upstream connection is opened only for a request), to sluiced and to haproxy alike.
cat > "$d/idle.js" <<'JS'
const tls = require("tls"); const [host, port, n] = [process.argv[2], +process.argv[3], +process.argv[4]];
let up = 0; const socks = [];
function one() {
  const s = tls.connect({ host, port, rejectUnauthorized: false, servername: "bigquery.googleapis.com" },
    () => { if (++up === n) { console.log("up " + up); setTimeout(() => process.exit(0), 4000); } });
  s.on("error", (e) => { console.error(e.message); process.exit(1); });
  socks.push(s);
}
let i = 0; (function more() { for (let k = 0; k < 200 && i < n; k++, i++) one(); if (i < n) setTimeout(more, 10); })();
JS
rss_of() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# idle_cost PID OUT CMD...: bytes of RSS per connection that CMD's IDLE connections cost PID
idle_cost() {
  local pid=$1 out=$2 before after; shift 2
  before=$(rss_of "$pid")
  "$@" > "$out" 2>&1 &
  local cpid=$!
  for _ in $(seq 600); do grep -q "^up" "$out" && break; sleep 0.1; done
  sleep 1
  after=$(rss_of "$pid")
  wait $cpid
  grep -q "^up $IDLE" "$out" || { echo "bench: idle client failed: $(head -3 "$out")" >&2; echo 0; return; }
  echo $(( (after - before) * 1024 / IDLE ))
}
per_conn=0 hap_conn=0 HAP_IDLE=0
[ -z "$QUICK" ] && per_conn=$(idle_cost "$SLUICED_PID" "$d/idle.out" ct_exec bench node "$d/idle.js" bigquery.googleapis.com 443 "$IDLE")
[ -z "$QUICK" ] && HAP_IDLE=$(( IDLE < 9000 ? IDLE : 9000 )) # haproxy's maxconn fits the fd limit (20000 here)
[ -z "$QUICK" ] && for p in $(pgrep -f "haproxy -f $d/haproxy.cfg"); do # the worker holds the connections
  c=$(IDLE=$HAP_IDLE idle_cost "$p" "$d/idle-hap.out" node "$d/idle.js" 127.0.0.1 "$HAP" "$HAP_IDLE")
  [ "$c" -gt "$hap_conn" ] && hap_conn=$c
done

# crypto_us ALG BYTES [TIMES]: µs that TIMES passes of ALG over BYTES take on one core
crypto_us() {
  openssl speed -seconds 1 -bytes "$2" -evp "$1" 2>/dev/null | awk -v b="$2" -v t="${3:-1}" '
    END { r = $NF; sub(/k$/, "", r); if (r > 0) printf "%.1f", t * b / (r * 1000) * 1e6; else print "?" }'
}
{
  echo "| page | direct rps | direct p50/p99 ms | haproxy rps | haproxy p50/p99 ms | sluiced rps | sluiced p50/p99 ms | sluiced, recordings in memory: rps | p50/p99 ms | spliced rps | spliced p50/p99 ms | haproxy TCP relay rps | relay p50/p99 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do
    IFS='|' read -r size a b c e t <<< "$r"
    set -- $a; da=$1; dp="$2/$3"; set -- $b; ha=$1; hp="$2/$3"
    set -- $c; sa=$1; sp="$2/$3"; set -- $e; pa=$1; pp="$2/$3"; set -- $t; ta=$1; tp="$2/$3"
    set -- ${mem[$size]}; ma=$1; mp="$2/$3"
    [ "$size" = small ] && size="≈1.5 KB" || size="≈110 KB"
    echo "| $size | $da | $dp | $ha | $hp | $sa | $sp | $ma | $mp | $pa | $pp | $ta | $tp |"
  done
  echo
  echo "CPU per request of the proxy process (µs, user + system, all its threads, while wrk ran), against what the page's bytes cost in cryptography alone on this machine (\`openssl speed\`, one core): the SHA-256 of the whole response that sluiced records and haproxy does not compute, and AES-256-GCM both ways (upstream in, agent out) that both do:"
  echo
  echo "| page | haproxy | sluiced (workers + recorder) | sluiced, recordings in memory | spliced | haproxy TCP relay | SHA-256 of the page | AES-GCM of the page, both legs |"
  echo "|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do
    IFS='|' read -r size a b c e t <<< "$r"
    bytes=$(stat -c %s "$d/$size.json")
    set -- $b; hc=$4; set -- $c; sc="$4 ($5 + $(($4 - $5)))"; set -- $e; pc=$4; set -- $t; tc=$4
    set -- ${mem[$size]}; mc="$4 ($5 + $(($4 - $5)))"
    [ "$size" = small ] && label="≈1.5 KB" || label="≈110 KB"
    echo "| $label | $hc | $sc | $mc | $pc | $tc | $(crypto_us sha256 "$bytes") | $(crypto_us aes-256-gcm "$bytes" 2) |"
  done
  echo
  echo "CPU per request of the whole machine (µs: wrk, nginx, the proxy and the kernel together; what the throughput cells divide two cores by):"
  echo
  echo "| page | direct | haproxy | sluiced | sluiced, recordings in memory | spliced | haproxy TCP relay |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do
    IFS='|' read -r size a b c e t <<< "$r"
    [ "$size" = small ] && label="≈1.5 KB" || label="≈110 KB"
    set -- $a; m1=$6; set -- $b; m2=$6; set -- $c; m3=$6; set -- ${mem[$size]}; m4=$6; set -- $e; m5=$6; set -- $t; m6=$6
    echo "| $label | $m1 | $m2 | $m3 | $m4 | $m5 | $m6 |"
  done
  echo
  echo "Memory per idle TLS connection (RSS growth / connections): sluiced $per_conn bytes ($IDLE connections), haproxy $hap_conn bytes ($HAP_IDLE connections)."
  echo "Page sizes in bytes: ${sizes[*]}."
  echo "wrk: 2 threads, $CONNS connections, ${DUR}s per cell; sluiced 2 workers, haproxy 2 threads, nginx 1 worker; $(nproc) cores."
} | tee build/bench.md
