#!/usr/bin/env bash
# Description: an agent in the enforced container trying to exhaust or wedge sluiced, with
# small limits in sluice.json so that every bound shows within seconds. Slowloris on the TLS
# handshake (nothing, half a ClientHello, a ClientHello and no more) is closed at
# limits.handshake_timeout_ms, a request head or body sent a byte every 200 ms at
# limits.header_timeout_ms, neither much before; a head over limits.header_bytes or with more
# fields than limits.headers gets a BigQuery-shaped 400/431 at once; a body over
# limits.body_bytes (Content-Length, chunked) a 413 while sluiced's peak memory stays far
# below the 50 MB sent; 1000 requests pipelined in one write are answered in order and
# forwarded once each as sent, and an agent that pipelines and reads nothing for a while
# neither makes sluiced hold every answer nor gets anything forwarded twice; 2000 idle
# connections (plain TCP, TLS, keep-alive) do not stop a normal request, the connection count
# stays at limits.connections, and each kind is closed at its own timeout. Nothing refused
# reaches the stand-in, each connection is recorded with its reason, and after all that
# sluiced is alive and serves the control request through curl and a raw client. A memory
# guard kills (and the test then restarts) a sluiced above 512 MB. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

HS_MS=3000       # limits.handshake_timeout_ms
HEAD_MS=4000     # limits.header_timeout_ms
IDLE_MS=5000     # limits.idle_timeout_ms
HDR_BYTES=4096   # limits.header_bytes
HDRS=16          # limits.headers
BODY=1048576     # limits.body_bytes
CONNS=2100       # limits.connections
SLACK_MS=1000    # timers tick every 100 ms; the rest is a loaded machine
MB=1024          # VmHWM is in kB

gate_standin || exit 1
ct_create agent 127.0.0.1
gate_config "$(ct_cgroup agent)" ",
  \"limits\": { \"handshake_timeout_ms\": $HS_MS, \"header_timeout_ms\": $HEAD_MS,
              \"idle_timeout_ms\": $IDLE_MS, \"header_bytes\": $HDR_BYTES, \"headers\": $HDRS,
              \"body_bytes\": $BODY, \"connections\": $CONNS }" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_warm agent || exit 1

# A guard for the machine, not a check: a sluiced above 512 MB (it needs about 70 MB here) is
# killed, so that a runaway cannot take the host down with the test; its peak is kept in
# rss.max and the kill in rss.killed, both checked at the end.
rss_guard() {
  (
    max=0
    while [ -r "/proc/$SLUICED_PID/status" ]; do
      r=0
      while read -r k v _; do [ "$k" = VmRSS: ] && r=$v; done < "/proc/$SLUICED_PID/status"
      [ "$r" -gt "$max" ] && { max=$r; echo "$max" > "$GATE_DIR/rss.max"; }
      if [ "$r" -gt 524288 ]; then echo "$r" >> "$GATE_DIR/rss.killed"; kill -9 "$SLUICED_PID"; break; fi
      sleep 0.1
    done
  ) 2>/dev/null &
  GATE_PIDS+=($!)
}
rss_guard
# The later cases need a running sluiced: if the guard had to kill it, it is started again
# (the kill stays a failure, checked at the end).
revive() {
  kill -0 "$SLUICED_PID" 2>/dev/null && return 0
  local why="exited by itself"
  [ -e "$GATE_DIR/rss.killed" ] && why="killed by the guard at $(tail -1 "$GATE_DIR/rss.killed") kB resident"
  echo "# sluiced is gone ($why): started again" | tee -a "$GATE_DIR/restarts"
  gate_start && gate_warm agent && rss_guard
}

# --- the attacker: one Node client per attack, inside the container -------------------------
# limits.js MODE OPTS_JSON: a deadline of its own (guard_ms), at most 64 KiB of answer kept;
# prints one JSON line with its pid (the connection records name it) and what happened.
cat > "$GATE_DIR/limits.js" <<'JS'
const net = require("net"), tls = require("tls"), fs = require("fs"), { Duplex } = require("stream");
const [mode, optsJson] = process.argv.slice(2);
const o = Object.assign({ host: "bigquery.googleapis.com", guard_ms: 15000 }, JSON.parse(optsJson || "{}"));
const ca = o.ca ? fs.readFileSync(o.ca) : undefined;
const t0 = Date.now();
const now = () => Date.now() - t0;
let done = false;
function finish(r) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(Object.assign({ pid: process.pid }, r)) + "\n");
  process.exit(0);
}
setTimeout(() => finish({ how: "client-guard", ms: now() }), o.guard_ms).unref();
const tlsOpts = () => ({ host: o.host, port: 443, servername: o.host, ca });
const keep = (acc, d) => {
  if (acc.s.length < 65536) acc.s += d.toString("latin1").slice(0, 65536 - acc.s.length);
  acc.n += d.length;
};
const statusOf = s => s.indexOf("\r\n") < 0 ? "" : s.slice(0, s.indexOf("\r\n"));

// The ClientHello Node sends for <host>, captured from a socket that goes nowhere.
function clientHello(host) {
  return new Promise(res => {
    const d = new Duplex({ read() {}, write(c, e, cb) { res(Buffer.from(c)); cb(); } });
    tls.connect({ socket: d, servername: host, rejectUnauthorized: false }).on("error", () => {});
  });
}

// A plain TCP connection that sends <bytes> (maybe none), then nothing: how long after the
// connect the gate closed it.
function tcpStall(bytes) {
  const acc = { s: "", n: 0 };
  const s = net.connect(443, o.host);
  let tc = 0;
  s.on("connect", () => { tc = now(); if (bytes) s.write(bytes); });
  s.on("data", d => keep(acc, d));
  const end = how => finish({ how, ms: now() - tc, bytes: acc.n });
  s.on("end", () => end("end"));
  s.on("close", () => end("close"));
  s.on("error", e => end(e.code || e.message));
}

const modes = {
  "tcp-silent": () => tcpStall(null),
  "half-hello": async () => { const h = await clientHello(o.host); tcpStall(h.subarray(0, h.length >> 1)); },
  // a whole ClientHello, then no answer to the server's flight: the handshake never ends
  "hello-stall": async () => tcpStall(await clientHello(o.host)),

  // after the handshake: <prefix> at once, then <text> a byte every <every_ms>; how long
  // after the handshake the gate closed it, what it said
  "trickle": () => {
    const acc = { s: "", n: 0 }, text = Buffer.from(o.text);
    let ts = 0, i = 0, iv;
    const s = tls.connect(tlsOpts(), () => {
      ts = now();
      if (o.prefix) s.write(o.prefix);
      iv = setInterval(() => { if (i < text.length) s.write(text.subarray(i, ++i)); }, o.every_ms);
    });
    s.on("data", d => keep(acc, d));
    const end = how => { clearInterval(iv); finish({ how, ms: now() - ts, sent: i, status: statusOf(acc.s), bytes: acc.n }); };
    s.on("end", () => end("end"));
    s.on("close", () => end("close"));
    s.on("error", e => end(e.code || e.message));
  },

  // <file>'s bytes in one write; the answer until the gate closes (never ended from here:
  // a gate that waits for more must give up by itself)
  "send": () => {
    const acc = { s: "", n: 0 }, data = fs.readFileSync(o.file);
    let tw = 0;
    const s = tls.connect(tlsOpts(), () => { tw = now(); s.write(data); });
    s.on("data", d => keep(acc, d));
    const end = how => finish({ how, ms: now() - tw, status: statusOf(acc.s), bytes: acc.n,
                                body: acc.s.slice(acc.s.indexOf("\r\n\r\n") + 4, 2048) });
    s.on("end", () => end("end"));
    s.on("close", () => end("close"));
    s.on("error", e => end(e.code || e.message));
  },

  // <n> GETs of <path_fmt> (%d: 1..n) in one write; the answers counted, their order checked
  // with <marker_fmt> in each body; with <noread_ms>, nothing is read for that long first
  "pipeline": () => {
    const reqs = [];
    for (let i = 1; i <= o.n; i++)
      reqs.push("GET " + o.path_fmt.replace("%d", i) + " HTTP/1.1\r\nHost: " + o.host +
                "\r\nAuthorization: Bearer x\r\n\r\n");
    let buf = Buffer.alloc(0), got = 0, inOrder = true, tw = 0, bytes = 0, other = "";
    const statuses = {};
    const s = tls.connect(tlsOpts(), () => {
      tw = now();
      s.write(reqs.join(""));
      if (o.noread_ms) { s.pause(); setTimeout(() => s.resume(), o.noread_ms); }
    });
    const parse = () => { // the gate's answers: Content-Length framed or chunked
      for (;;) {
        const h = buf.indexOf("\r\n\r\n");
        if (h < 0) return;
        const head = buf.subarray(0, h).toString("latin1");
        let body, rest;
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (cl) {
          if (buf.length < h + 4 + +cl[1]) return;
          body = buf.subarray(h + 4, h + 4 + +cl[1]); rest = buf.subarray(h + 4 + +cl[1]);
        } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          let p = h + 4; const parts = [];
          for (;;) {
            const e = buf.indexOf("\r\n", p);
            if (e < 0) return;
            const n = parseInt(buf.subarray(p, e).toString(), 16);
            if (buf.length < e + 2 + n + 2) return;
            parts.push(buf.subarray(e + 2, e + 2 + n)); p = e + 2 + n + 2;
            if (!n) break;
          }
          body = Buffer.concat(parts); rest = buf.subarray(p);
        } else { body = Buffer.alloc(0); rest = buf.subarray(h + 4); }
        got++;
        const st = statusOf(head + "\r\n");
        const code = st.split(" ")[1] || "none";
        statuses[code] = (statuses[code] || 0) + 1;
        if (o.marker_fmt && !body.toString().includes(o.marker_fmt.replace("%d", got))) {
          if (inOrder) other = "answer " + got + ": " + st + " " + body.toString().slice(0, 300);
          inOrder = false;
        }
        buf = rest;
        if (got === o.n) { s.destroy(); return end("all"); }
      }
    };
    s.on("data", d => { bytes += d.length; buf = Buffer.concat([buf, d]); parse(); });
    const end = how => finish({ how, ms: now() - tw, answers: got, in_order: inOrder, statuses, bytes, other });
    s.on("end", () => end("end"));
    s.on("close", () => end("close"));
    s.on("error", e => end(e.code || e.message));
  },

  // Idle connections: <ka> after one keep-alive request answered, <tls> after the handshake,
  // <tcp> plain (nothing sent), opened <par> at a time. Once all are up: <burst> more plain
  // ones at once, how many the gate closed within <burst_ms> (then closed from here); then
  // <ready> is written and each kind is watched until the gate has closed all of them.
  "idle": () => {
    const kinds = { ka: [], tls: [], tcp: [] };
    let pending = 0, ready = false, tReady = 0, failed = 0, burst = null, firstClose = 0;
    const all = () => [].concat(kinds.ka, kinds.tls, kinds.tcp);
    const report = how => {
      const r = { how, ready_ms: tReady, failed, burst, first_close_epoch: firstClose };
      for (const k of Object.keys(kinds)) {
        const l = kinds[k], cl = l.filter(c => c.closed >= 0 && c.ready >= 0).map(c => c.closed - c.ready);
        r[k] = { n: l.length, up: l.filter(c => c.ready >= 0).length, closed: cl.length,
                 min_ms: cl.length ? Math.min(...cl) : null, max_ms: cl.length ? Math.max(...cl) : null };
      }
      finish(r);
    };
    const gone = () => { if (ready && all().every(c => c.closed >= 0)) report("all-closed"); };
    const one = kind => {
      const c = { ready: -1, closed: -1 };
      kinds[kind].push(c);
      pending++;
      const up = () => { c.ready = now(); pending--; next(); };
      let s, got = "";
      if (kind === "tcp") {
        s = net.connect(443, o.host, up);
      } else {
        s = tls.connect(tlsOpts(), () => {
          if (kind === "tls") return up();
          s.write("GET /bigquery/v2/projects/demo-project/datasets/sales HTTP/1.1\r\nHost: " +
                  o.host + "\r\nAuthorization: Bearer x\r\n\r\n");
        });
        if (kind === "ka") s.on("data", d => {
          got += d.toString("latin1");
          const h = got.indexOf("\r\n\r\n"), cl = /\r\ncontent-length: *(\d+)/i.exec(got);
          if (c.ready < 0 && h > 0 && cl && got.length >= h + 4 + +cl[1]) up();
        });
      }
      s.on("close", () => {
        if (c.closed >= 0) return;
        c.closed = now();
        if (!firstClose) firstClose = Date.now();
        if (c.ready < 0) { failed++; pending--; next(); }
        gone();
      });
      s.on("error", () => {});
    };
    const queue = [].concat(Array(o.ka).fill("ka"), Array(o.tls).fill("tls"), Array(o.tcp).fill("tcp"));
    const next = () => {
      while (pending < o.par && queue.length) one(queue.shift());
      if (ready || queue.length || pending) return;
      ready = true;
      tReady = now();
      const open = all().filter(c => c.closed < 0).length, socks = [];
      let connected = 0, closed = 0;
      for (let i = 0; i < o.burst; i++) {
        const s = net.connect(443, o.host, () => connected++);
        s.on("close", () => closed++);
        s.on("error", () => {});
        socks.push(s);
      }
      setTimeout(() => {
        burst = { open_idle: open, connected, closed_by_gate: closed };
        socks.forEach(s => s.destroy());
        fs.writeFileSync(o.ready, JSON.stringify({ ready_ms: tReady, failed, open_idle: open }) + "\n");
        gone();
      }, o.burst_ms);
    };
    next();
  },
};
if (!modes[mode]) { console.error("unknown mode " + mode); process.exit(2); }
modes[mode]();
JS

cl() { # MODE [JSON MEMBERS]: run the client in the container, print its JSON line
  ct_exec agent node "$GATE_DIR/limits.js" "$1" "{\"ca\":\"$GATE_DIR/sluice-ca.pem\"${2:+,$2}}" 2>&1 | tail -1
}
jv() { # JSON PATH...: each value on a line ("" when absent)
  node -e 'const o = JSON.parse(process.argv[1]);
    for (const p of process.argv.slice(2)) { let v = o;
      for (const k of p.split(".")) v = v == null ? v : v[k];
      console.log(v == null ? "" : typeof v === "object" ? JSON.stringify(v) : v); }' "$@" 2>/dev/null
}
standin_n() { wc -l < "$GATE_DIR/standin.log"; }
hwm_reset() { echo 5 > "/proc/$SLUICED_PID/clear_refs"; hwm; }   # peak := what is resident now
# sluiced's peak resident memory (kB); a huge number once it is gone, so no bound passes
hwm() { awk '/VmHWM/ {print $2}' "/proc/$SLUICED_PID/status" 2>/dev/null || echo 99999999; }
between() { [ "${1:-0}" -ge "$2" ] && [ "${1:-0}" -le "$3" ]; }   # N LOW HIGH
# HOW MS LOW HIGH: the client saw the gate end the connection (not its own guard) in LOW..HIGH
closed_in() { case $1 in end|close|ECONNRESET) between "$2" "$3" "$4" ;; *) false ;; esac; }
# The connection records (conn_close) of the agent process PID: "reason|duration_ms|sni" per
# line, once at least N (default 1) are written.
recs_of() {
  local i out
  for i in $(seq 50); do
    out=$(cat "$GATE_DIR"/records/*/*.jsonl 2>/dev/null | node -e '
      const pid = +process.argv[1];
      require("readline").createInterface({ input: process.stdin }).on("line", l => {
        let r; try { r = JSON.parse(l); } catch (e) { return; }
        if (r.type === "conn_close" && r.data.pid === pid)
          console.log(r.data.reason + "|" + r.data.duration_ms + "|" + r.data.sni);
      });' "$1")
    [ "$(grep -c . <<< "$out")" -ge "${2:-1}" ] && break
    sleep 0.1
  done
  printf '%s\n' "$out"
}
reason_of() { recs_of "$1" | head -1 | cut -d'|' -f1; }
P=/bigquery/v2/projects/demo-project
H="Host: bigquery.googleapis.com"

# The control: a well-formed request reaches the stand-in, so "nothing forwarded" can fail.
printf 'GET %s/datasets/control0 HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n' \
  "$P" "$H" > "$GATE_DIR/req-control"
out=$(cl send "\"file\":\"$GATE_DIR/req-control\"")
check_eq "control: a well-formed request gets the stand-in's answer" "$(jv "$out" status)" "HTTP/1.1 404 Not Found"
check "control: ... and reached the stand-in" gate_wait_for "$GATE_DIR/standin.log" control0 30
RSS0=$(awk '/VmRSS/ {print $2}' "/proc/$SLUICED_PID/status")
echo "# sluiced resident at start: $((RSS0 / MB)) MB"

# --- 1 and 2: slowloris on the handshake and on the request, all at once ---------------------
# Each is closed by sluiced, not by the client: at its timeout (with SLACK_MS), and not
# before three quarters of it (a gate that drops slow but legitimate clients at once is
# another bug). No request line is ever complete, so nothing may reach the stand-in.
n0=$(standin_n)
cl tcp-silent > "$GATE_DIR/c1a" & p1=$!
cl half-hello > "$GATE_DIR/c1b" & p2=$!
cl hello-stall > "$GATE_DIR/c1c" & p3=$!
cl trickle "\"every_ms\":200,\"text\":\"GET $P/datasets/trickle2 HTTP/1.1\\r\\n$H\\r\\nX-Slow: 0123456789abcdef\\r\\n\\r\\n\"" > "$GATE_DIR/c2a" & p4=$!
# a complete head, then its body a byte every 200 ms: limits has no body timeout of its own,
# the request's deadline (header_timeout for the first one) bounds the whole request
cl trickle "\"every_ms\":200,\"prefix\":\"POST $P/queries HTTP/1.1\\r\\n$H\\r\\nAuthorization: Bearer x\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n\",\"text\":\"{\\\"query\\\": \\\"SELECT 'trickle2b' AS x, 1 AS one, 2 AS two, 3 AS three, 4 AS four, 5 AS five, 6 AS six\\\"}\"" > "$GATE_DIR/c2b" & p5=$!
wait "$p1" "$p2" "$p3" "$p4" "$p5"
hs_case() { # FILE WHAT EXPECTED_REASON
  local out ms how
  out=$(cat "$GATE_DIR/$1"); echo "# $2: $out"
  mapfile -t v < <(jv "$out" ms how pid)
  check "$2: closed by sluiced (${v[1]}) after ${v[0]} ms: within handshake_timeout_ms $HS_MS (+$SLACK_MS), not before $((HS_MS * 3 / 4))" \
    closed_in "${v[1]}" "${v[0]}" $((HS_MS * 3 / 4)) $((HS_MS + SLACK_MS))
  check_eq "$2: ... recorded with the reason" "$(reason_of "${v[2]}")" "$3"
}
hs_case c1a "1a: TCP connection, nothing sent" "handshake timeout"
hs_case c1b "1b: half a ClientHello, then nothing" "handshake timeout"
hs_case c1c "1c: a whole ClientHello, then no answer to sluiced's flight" "handshake timeout"
head_case() { # FILE WHAT
  local out
  out=$(cat "$GATE_DIR/$1"); echo "# $2: $out"
  mapfile -t v < <(jv "$out" ms how status pid sent)
  check "$2: closed by sluiced (${v[1]}) ${v[0]} ms after the handshake (${v[4]} bytes in): within header_timeout_ms $HEAD_MS (+$SLACK_MS), not before $((HEAD_MS * 3 / 4))" \
    closed_in "${v[1]}" "${v[0]}" $((HEAD_MS * 3 / 4)) $((HEAD_MS + SLACK_MS))
  # A 408 before closing would be friendlier; closing without a word is what sluiced's timer
  # does, and is just as bounded. Anything else (a 200, a 5xx) would be wrong.
  check "$2: ... with a 408 or nothing at all (got '${v[2]}')" bash -c "[ -z '${v[2]}' ] || [ '${v[2]}' = 'HTTP/1.1 408 Request Timeout' ]"
  check_eq "$2: ... recorded with the reason" "$(reason_of "${v[3]}")" "idle or header timeout"
}
head_case c2a "2a: request head a byte every 200 ms"
head_case c2b "2b: request body a byte every 200 ms"
sleep 0.3
check_eq "1-2: nothing of the slow requests reached the stand-in" "$(standin_n)" "$n0"

# --- 3: oversized header blocks -----------------------------------------------------------------
# 431 (RFC 6585) is the precise status; sluiced answers 400 with the reason, as BigQuery's
# front end does for a malformed request. Either is right if it is BigQuery-shaped, immediate
# (not at the header timeout) and nothing is forwarded.
n0=$(standin_n)
pad() { head -c "$1" /dev/zero | tr '\0' a; }
{ printf 'GET %s/datasets/hdrbig3a HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\nX-Big: %s\r\n\r\n' \
    "$P" "$H" "$(pad 5000)"; } > "$GATE_DIR/req-3a"
{ printf 'GET %s/datasets/hdrbig3b HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\nX-Big: %s' \
    "$P" "$H" "$(pad 200000)"; } > "$GATE_DIR/req-3b"       # never ends: 200 KB and counting
{ printf 'GET %s/datasets/hdrmany3c HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\n' "$P" "$H"
  for i in $(seq 20); do printf 'X-H-%d: v\r\n' "$i"; done; printf '\r\n'; } > "$GATE_DIR/req-3c"
{ printf 'GET %s/datasets/hdrok3d HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\nConnection: close\r\n' "$P" "$H"
  for i in $(seq 10); do printf 'X-H-%d: v\r\n' "$i"; done; printf 'X-Big: %s\r\n\r\n' "$(pad 3000)"; } > "$GATE_DIR/req-3d"
hdr_case() { # N WHAT REASON
  local out
  out=$(cl send "\"file\":\"$GATE_DIR/req-$1\",\"guard_ms\":$((HEAD_MS + 3000))")
  mapfile -t v < <(jv "$out" status ms pid how body)
  echo "# $2: ${v[0]} after ${v[1]} ms (${v[3]}): ${v[4]:0:200}"
  check "$2: -> 400 or 431 from sluiced (got '${v[0]}')" \
    bash -c "[ '${v[0]}' = 'HTTP/1.1 400 Bad Request' ] || [ '${v[0]}' = 'HTTP/1.1 431 Request Header Fields Too Large' ]"
  check_contains "$2: ... a BigQuery-shaped error naming why" "${v[4]}" "\"message\": \"$3\""
  check "$2: ... at once (${v[1]} ms), not at the header timeout" test "${v[1]:-99999}" -lt 1000
  check "$2: ... then closed (${v[3]})" closed_in "${v[3]}" 0 0 99999
  check_eq "$2: ... recorded with the reason" "$(reason_of "${v[2]}")" "$3"
}
hdr_case 3a "3a: a 5000-byte header (header_bytes $HDR_BYTES)" "header section too large"
hdr_case 3b "3b: a header that never ends (200 KB sent, connection left open)" "header section too large"
hdr_case 3c "3c: 23 header fields (headers $HDRS)" "too many headers"
out=$(cl send "\"file\":\"$GATE_DIR/req-3d\"")
check_eq "3d: control: 3.1 KB and 13 fields are within the limits: forwarded" "$(jv "$out" status)" "HTTP/1.1 404 Not Found"
sleep 0.3
check_eq "3: of these only the control reached the stand-in" \
  "$(tail -n +$((n0 + 1)) "$GATE_DIR/standin.log" | grep -o 'datasets/hdr[a-z0-9]*' | tr '\n' ' ')" "datasets/hdrok3d "

# --- 4: bodies over limits.body_bytes --------------------------------------------------------
# curl, a real client, with a 50 MB body: Content-Length then chunked (no length), without
# "Expect: 100-continue" so that it sends at once. sluiced must refuse it with a 413 before
# forwarding anything, and must not take the whole body in: its peak memory (VmHWM, reset
# before each) may grow by far less than the 50 MB sent.
n0=$(standin_n)
pad $((50 * 1048576)) > "$GATE_DIR/big.bin"
{ printf '{"query": "SELECT 1 AS ok4", "useLegacySql": false, "labels": {"pad": "'; pad 500000; printf '"}}'; } > "$GATE_DIR/ok.json"
U="https://bigquery.googleapis.com$P/queries"
curl_post() { # OUT_FILE [curl args...]
  local out=$1; shift
  ct_exec agent curl -sS -m 20 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer x" \
    -H "Content-Type: application/json" -w '\nCODE %{http_code} SENT %{size_upload} TIME %{time_total}\n' \
    "$@" "$U" > "$out" 2>&1
}
n413() { grep -c ": 413 sluice: $1" "$GATE_DIR/sluiced.log"; }
# 4a and 4b: sluiced answers the 413 at once, then lingers (RFC 9112 9.6): it ends its side
# and reads and drops what the agent still sends, for a bounded time and amount, so that a
# client still sending its body reads the 413 instead of a reset ("Broken pipe"). A client
# that asks first (4c: "Expect: 100-continue") gets it without sending anything.
before=$(hwm_reset); k0=$(n413 "request body larger than limits.body_bytes")
curl_post "$GATE_DIR/c4a" -H "Expect:" --data-binary "@$GATE_DIR/big.bin"
grow=$(( $(hwm) - before ))
sed 's/^/# 4a: /' "$GATE_DIR/c4a" | tail -3
check "4a: 50 MB with Content-Length -> sluiced answers 413 naming limits.body_bytes (its log)" \
  test "$(n413 "request body larger than limits.body_bytes")" -gt "$k0"
check "4a: ... and the agent, still sending, reads that 413 ($(tail -1 "$GATE_DIR/c4a"))" \
  grep -q "^CODE 413" "$GATE_DIR/c4a"
check "4a: ... sluiced's peak memory grew by $((grow / MB)) MB (bound: 16 MB)" test "$grow" -lt $((16 * MB))
before=$(hwm_reset); k0=$(n413 "request")
curl_post "$GATE_DIR/c4b" -H "Expect:" -H "Transfer-Encoding: chunked" --data-binary @- < "$GATE_DIR/big.bin"
grow=$(( $(hwm) - before ))
sed 's/^/# 4b: /' "$GATE_DIR/c4b" | tail -3
check "4b: 50 MB chunked -> sluiced answers 413 (its log)" test "$(n413 "request")" -gt "$k0"
check "4b: ... and the agent, still sending, reads that 413 ($(tail -1 "$GATE_DIR/c4b"))" \
  grep -q "^CODE 413" "$GATE_DIR/c4b"
check "4b: ... sluiced's peak memory grew by $((grow / MB)) MB (bound: 16 MB)" test "$grow" -lt $((16 * MB))
curl_post "$GATE_DIR/c4c" -H "Expect: 100-continue" --data-binary "@$GATE_DIR/big.bin"
sed 's/^/# 4c: /' "$GATE_DIR/c4c" | tail -3
check_contains "4c: the same with \"Expect: 100-continue\" -> 413, no body byte sent" \
  "$(tail -1 "$GATE_DIR/c4c")" "CODE 413 SENT 0 "
check_contains "4c: ... a BigQuery-shaped error naming the limit" "$(cat "$GATE_DIR/c4c")" \
  '"message": "sluice: request body larger than limits.body_bytes"'
# A chunked body that announces more than the limit in one chunk: the same refusal, 413.
printf 'POST %s/queries HTTP/1.1\r\n%s\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n{"query": "SELECT 1"' \
  "$P" "$H" > "$GATE_DIR/req-4d"
out=$(cl send "\"file\":\"$GATE_DIR/req-4d\"")
mapfile -t v < <(jv "$out" status body pid)
echo "# 4d: ${v[0]}: ${v[1]:0:200}"
check_eq "4d: a chunk announcing 2 MiB (body_bytes 1 MiB) -> 413, as a Content-Length over it" \
  "${v[0]}" "HTTP/1.1 413 Content Too Large"
check_contains "4d: ... a BigQuery-shaped error" "${v[1]}" '"code": '
before=$(hwm_reset)
curl_post "$GATE_DIR/c4e" --data-binary "@$GATE_DIR/ok.json"
check_contains "4e: control: a 500 KB body (under body_bytes) is forwarded and answered" \
  "$(tail -1 "$GATE_DIR/c4e")" "CODE 200"
sleep 0.3
check_eq "4: of these only the control reached the stand-in" \
  "$(tail -n +$((n0 + 1)) "$GATE_DIR/standin.log" | grep -c .)/$(tail -n +$((n0 + 1)) "$GATE_DIR/standin.log" | grep -c ok4)" "1/1"

# --- 5: pipelining ------------------------------------------------------------------------------
# 1000 small GETs in one write (about 120 KB): each answered, in order (each answer names its
# dataset), each forwarded once as it was sent, sluiced's peak memory bounded.
n0=$(standin_n)
before=$(hwm_reset)
out=$(cl pipeline "\"n\":1000,\"guard_ms\":10000,\"path_fmt\":\"$P/datasets/pipe%d\",\"marker_fmt\":\"demo-project:pipe%d \"")
grow=$(( $(hwm) - before ))
echo "# 5a: $out" | cut -c1-900
mapfile -t v < <(jv "$out" answers in_order statuses.404 ms)
check_eq "5a: 1000 pipelined GETs: 1000 answers (in ${v[3]} ms)" "${v[0]}" 1000
check_eq "5a: ... in order" "${v[1]}" true
check_eq "5a: ... all the stand-in's 404 (no dataset pipeN)" "${v[2]}" 1000
sleep 0.3
check_eq "5a: ... and the stand-in got exactly pipe1..pipe1000, in order, nothing else" \
  "$(tail -n +$((n0 + 1)) "$GATE_DIR/standin.log" | node -e '
      const l = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean)
        .map(x => JSON.parse(x).path);
      const bad = l.findIndex((p, i) => p !== process.argv[1] + "/datasets/pipe" + (i + 1));
      console.log(l.length === 1000 && bad < 0 ? "ok" : l.length + " requests, first unexpected #" +
        (bad + 1) + ": " + l[bad]);' "$P")" ok
check "5a: ... sluiced's peak memory grew by $((grow / MB)) MB (bound: 16 MB)" test "$grow" -lt $((16 * MB))
revive
# An agent that pipelines 60 requests whose answers are about 430 KB each (26 MB in all) and
# reads nothing for 3 s: sluiced must stop taking requests (or reading BigQuery) once the
# agent is behind, not hold every answer; once it reads, all 60 arrive, in order.
q='{"query": "SELECT x, REPEAT(\"p\", 400) AS pad FROM UNNEST(GENERATE_ARRAY(1, 1000)) AS x", "useLegacySql": false}'
ct_exec agent curl -sS -m 30 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer x" \
  -H "Content-Type: application/json" --data "$q" "$U?prettyPrint=false" -o "$GATE_DIR/job.json"
job=$(node -e 'try { console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).jobReference.jobId); }
  catch (e) {}' "$GATE_DIR/job.json")
[ -n "$job" ] || head -c 600 "$GATE_DIR/job.json" | sed 's/^/# 5b: job: /'
check "5b: a job with a 430 KB result ($job)" test -n "$job"
before=$(hwm_reset)
n0=$(standin_n)
out=$(cl pipeline "\"n\":60,\"noread_ms\":3000,\"guard_ms\":15000,\"path_fmt\":\"$P/queries/$job?prettyPrint=false&maxResults=2000%d\",\"marker_fmt\":\"$job\"")
grow=$(( $(hwm) - before ))
echo "# 5b: $out" | cut -c1-900
mapfile -t v < <(jv "$out" answers in_order statuses.200 bytes)
check_eq "5b: 60 pipelined getQueryResults, nothing read for 3 s: 60 answers" "${v[0]}" 60
check_eq "5b: ... all 200, in order" "${v[2]}/${v[1]}" "60/true"
sleep 0.3
check_eq "5b: ... each forwarded once, in order (request N asks maxResults=2000N)" \
  "$(tail -n +$((n0 + 1)) "$GATE_DIR/standin.log" | node -e '
      const l = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean)
        .map(x => (/maxResults=(\d+)/.exec(JSON.parse(x).path) || [])[1]);
      const bad = l.findIndex((m, i) => m !== "2000" + (i + 1));
      console.log(l.length === 60 && bad < 0 ? "ok" : l.length + " requests forwarded, #" + (bad + 1) +
        " asked maxResults=" + l[bad] + " (all: " + l.join(" ") + ")");')" ok
if kill -0 "$SLUICED_PID" 2>/dev/null; then grew="grew by $((grow / MB)) MB"
else grew="passed 512 MB (the guard killed it)"; fi
check "5b: ... sluiced's peak memory $grew while $((${v[3]:-0} / 1048576)) MB went to the agent (bound: 12 MB)" \
  test "$grow" -lt $((12 * MB))

revive

# --- 6: many idle connections ------------------------------------------------------------------
# 100 keep-alive connections after one request, 500 after the TLS handshake, 1400 plain TCP:
# 2000 held by one agent. While all are open: 300 more at once must be capped at
# limits.connections (those over it closed at once), and a normal request still works. Then
# each kind is closed by sluiced at its own timeout: plain TCP at the handshake timeout, TLS
# without a request at the header timeout, keep-alive at the idle timeout.
before=$(hwm_reset)
rm -f "$GATE_DIR/ready"
cl idle "\"ka\":100,\"tls\":500,\"tcp\":1400,\"par\":200,\"burst\":300,\"burst_ms\":600,\"ready\":\"$GATE_DIR/ready\",\"guard_ms\":25000" > "$GATE_DIR/c6" & p6=$!
gate_wait_for "$GATE_DIR/ready" . 150 >/dev/null
held_hwm=$(hwm)
t_ctl0=$(date +%s%3N)
ctl=$(ct_exec agent curl -sS -m 10 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer x" \
  -w '\nCODE %{http_code}' "https://bigquery.googleapis.com$P/datasets/sales" 2>&1)
t_ctl=$(date +%s%3N)
wait "$p6"
out=$(cat "$GATE_DIR/c6"); echo "# 6: ready: $(cat "$GATE_DIR/ready" 2>/dev/null)"; echo "# 6: $out"
mapfile -t v < <(jv "$out" how failed burst.open_idle burst.connected burst.closed_by_gate first_close_epoch pid \
  tcp.up tls.up ka.up tcp.min_ms tcp.max_ms tls.min_ms tls.max_ms ka.min_ms ka.max_ms)
check_eq "6: 2000 idle connections opened (100 keep-alive, 500 TLS, 1400 TCP), none refused" \
  "${v[7]}/${v[8]}/${v[9]}/${v[1]}" "1400/500/100/0"
check "6: ... costing sluiced $(( (held_hwm - before) * 1024 / 2000 )) bytes each at most (bound: 64 KiB)" \
  test $(( (held_hwm - before) * 1024 / 2000 )) -lt 65536
allowed=$((CONNS - ${v[2]:-0}))
check "6: with ${v[2]} held, of 300 more at once at most $allowed (limits.connections $CONNS) stay: $((${v[3]:-0} - ${v[4]:-0})) stayed, ${v[4]} closed at once" \
  test $((${v[3]:-0} - ${v[4]:-0})) -le "$allowed" -a "${v[3]:-0}" -eq 300
# Debatable: a connection over the cap is closed before sluiced knows whose it is, so it has
# no record; an operator should still learn that the cap was hit.
check "6: ... sluiced says so in its log" grep -qi "limits.connections\|connection limit\|too many connections" "$GATE_DIR/sluiced.log"
check_contains "6: a normal request while they are all held gets its answer" "$ctl" "CODE 200"
check "6: ... and it was answered before any idle connection was closed" test "$t_ctl" -lt "${v[5]:-0}"
echo "# 6: control request took $((t_ctl - t_ctl0)) ms"
check_eq "6: every idle connection was closed by sluiced (none by the client's guard)" "${v[0]}" "all-closed"
check "6: plain TCP closed ${v[10]}..${v[11]} ms after connect: at handshake_timeout_ms $HS_MS" \
  between "${v[11]:-99999}" $((HS_MS * 3 / 4)) $((HS_MS + SLACK_MS))
check "6: ... none before $((HS_MS * 3 / 4))" test "${v[10]:-0}" -ge $((HS_MS * 3 / 4))
check "6: TLS without a request closed ${v[12]}..${v[13]} ms after the handshake: at header_timeout_ms $HEAD_MS" \
  between "${v[13]:-99999}" $((HEAD_MS * 3 / 4)) $((HEAD_MS + SLACK_MS))
check "6: ... none before $((HEAD_MS * 3 / 4))" test "${v[12]:-0}" -ge $((HEAD_MS * 3 / 4))
check "6: keep-alive closed ${v[14]}..${v[15]} ms after its answer: at idle_timeout_ms $IDLE_MS" \
  between "${v[15]:-99999}" $((IDLE_MS * 3 / 4)) $((IDLE_MS + SLACK_MS))
check "6: ... none before $((IDLE_MS * 3 / 4))" test "${v[14]:-0}" -ge $((IDLE_MS * 3 / 4))
reasons=$(recs_of "${v[6]}" 2000 | cut -d'|' -f1 | sort | uniq -c | sed 's/^ *//')
echo "$reasons" | sed 's/^/# 6: records: /'
check_contains "6: records: 1400 plain ones closed for the handshake timeout" "$reasons" "1400 handshake timeout"
check_contains "6: ... 600 TLS ones for the idle or header timeout" "$reasons" "600 idle or header timeout"

# --- 7: after all that ---------------------------------------------------------------------------
check "7: sluiced is still running, and never had to be started again" \
  bash -c "kill -0 $SLUICED_PID && [ ! -e '$GATE_DIR/restarts' ]"
ctl=$(ct_exec agent curl -sS -m 10 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer x" \
  "https://bigquery.googleapis.com$P/datasets/sales" 2>&1)
check_contains "7: curl through the gate gets the stand-in's answer" "$ctl" '"id": "demo-project:sales"'
out=$(cl send "\"file\":\"$GATE_DIR/req-control\"")
check_eq "7: so does the raw client" "$(jv "$out" status)" "HTTP/1.1 404 Not Found"
max=$(cat "$GATE_DIR/rss.max" 2>/dev/null || echo 0)
echo "# sluiced resident: $((RSS0 / MB)) MB at start, $(( $(awk '/VmRSS/ {print $2}' "/proc/$SLUICED_PID/status" 2>/dev/null || echo 0) / MB)) MB now, $((max / MB)) MB at most"
check "7: sluiced's memory never passed 512 MB (the test's guard did not have to kill it)" test ! -e "$GATE_DIR/rss.killed"
grep -v 'info: \(redirect\|main\|ctlsock\|record\)' "$GATE_DIR/sluiced.log" | sort | uniq -c | sort -rn | head -20 | sed 's/^/# log: /'
tap_done
