#!/usr/bin/env bash
# Description: an upstream (the BigQuery side) that misbehaves after it has received the
# request head, as an attacker or a broken network would. On the real path (an agent in the
# enforced container, the eBPF redirect, sluiced), bigquery.googleapis.com is pointed at one
# TLS server of a test CA that sluiced trusts; the dataset the agent asks for names what the
# server does wrong: close without answering (cleanly or with a reset), answer garbage that
# is not HTTP, cut a body short, answer with smuggling framing (Content-Length with
# Transfer-Encoding, two lengths, an unknown coding, a second response after the first),
# an oversized header block, too many headers, a bad chunk size, nothing at all, 1xx
# responses (one, ten thousand, an endless stream), a body that ends with a TCP close but
# no TLS close_notify. The standard for each: the agent gets ONE BigQuery-shaped 502 naming
# what went wrong, or a closed connection; never a hang past the configured timeout
# (limits.idle_timeout_ms, 3 s here), never more than one response, never a cut or garbled
# body passed as a success; the connection record says why; the upstream connection is
# closed too; and at the end sluiced is alive and serving (a control request on its socket,
# a good request through the gate). Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

HOST=bigquery.googleapis.com
IDLE_MS=3000   # limits.idle_timeout_ms: how long sluiced waits on a silent upstream
PROMPT_MS=1500 # an answer that does not wait for a timeout comes well before it

GATE_DIR=$(mktemp -d /tmp/sluice-gate.XXXXXX)
U=$GATE_DIR/upca
tests/standin/mkcerts.sh "$U" >/dev/null || exit 1

# --- the misbehaving upstream ----------------------------------------------------------------
# One TLS server (valid certificate of the test CA for $HOST). It reads a request head, logs
# "request N PATH" to up.events, then does what the last path segment (the dataset) says.
# Every byte it receives goes to up.bytes; each connection's end is logged ("closed N").
# TLS runs over a TCP socket it holds itself, so it can end TCP without a TLS close_notify
# (raw.end()) or reset it (raw.resetAndDestroy()).
cat > "$GATE_DIR/upstream.js" <<'JS'
const net = require("net"), tls = require("tls"), fs = require("fs");
const [cert, key, base] = process.argv.slice(2);
const ctx = tls.createSecureContext({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const ev = s => fs.appendFileSync(base + ".events", s + "\n");
fs.writeFileSync(base + ".bytes", "");
const json = o => JSON.stringify(o);
const ok = (body, extra = "") => "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
  "Content-Length: " + Buffer.byteLength(body) + "\r\n" + extra + "\r\n" + body;
const CONT = "HTTP/1.1 100 Continue\r\n\r\n";
let n = 0;
const srv = net.createServer(raw => {
  const id = ++n;
  raw.on("error", () => {});
  raw.on("close", () => ev("closed " + id));
  const s = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
  s.on("error", e => ev("error " + id + " " + (e.code || e.message)));
  let got = "", reqs = 0;
  // write everything at hand, respecting backpressure; then(): when it is handed over
  const send = (data, then) => s.write(data, () => then && then());
  // write <chunk> again and again as fast as the peer reads, until the connection ends
  const endless = chunk => {
    let sent = 0;
    raw.on("close", () => ev("sent " + id + " " + sent));
    const pump = () => {
      while (!s.destroyed && s.write(chunk)) sent += chunk.length;
      if (!s.destroyed) { sent += chunk.length; s.once("drain", pump); }
    };
    pump();
  };
  const finEnd = () => setTimeout(() => raw.end(), 50); // TCP FIN, no close_notify
  s.on("data", d => {
    fs.appendFileSync(base + ".bytes", d);
    got += d.toString("latin1");
    let e;
    while ((e = got.indexOf("\r\n\r\n")) >= 0) {
      const head = got.slice(0, e);
      got = got.slice(e + 4);
      const path = head.split(" ")[1] || "";
      const mode = path.split("?")[0].split("/").pop();
      ev("request " + id + " " + path);
      act(mode, ++reqs);
    }
  });
  function act(mode, nth) {
    switch (mode) {
    case "ok":
      return send(ok(json({ kind: "bigquery#dataset", id: "demo-project:ok" })));
    case "close_clean":          // 1: TLS close_notify, then FIN, no answer
      return s.end();
    case "close_reset":          // 1: a TCP reset, no answer
      return raw.resetAndDestroy();
    case "garbage_close":        // 2: not HTTP, then a clean close
      return send("SSH-2.0-x\r\n", () => s.end());
    case "garbage_open":         // 2: not HTTP, and the connection stays open
      return send("SSH-2.0-x\r\n");
    case "garbage_binary":       // 2: binary junk that is not even a text line
      return send(Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a, 0x7f, 0x45]));
    case "cut_body":             // 3: 10 of 1000 body bytes, clean close
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
                  '{"rows":[{', () => s.end());
    case "cut_body_fin":         // 3: the same, then TCP FIN without close_notify
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
                  '{"rows":[{', finEnd);
    case "cut_chunked":          // 3: a chunked body without its last chunk, clean close
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  'a\r\n{"rows":[{\r\n', () => s.end());
    case "cl_te":                // 4: Content-Length and chunked; the body holds a second response
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" +
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + ok(json({ smuggled: true })));
    case "te_cl":                // 4: the same, the other order
      return send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n" +
                  "Content-Type: application/json\r\n\r\n0\r\n\r\n" + ok(json({ smuggled: true })));
    case "two_cl":               // 4: two different lengths
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" +
                  "Content-Length: 44\r\n\r\n{}" + ok(json({ smuggled: true })));
    case "te_odd":               // 4: a coding list one side may read as chunked
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: identity, chunked\r\n\r\n" +
                  "2\r\n{}\r\n0\r\n\r\n");
    case "bare_lf":              // 4: heads split on bare LF by some parsers
      return send("HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 2\n\n{}");
    case "extra_response":       // 4: a complete response with a second one behind it, on a
                                 //    kept-alive connection; the next request gets a true answer
      if (nth === 1)
        return send(ok("{}") + ok(json({ smuggled: true })));
      return send(ok(json({ second: true })));
    case "idle_close":           // not a fault: a kept-alive connection closed while idle
                                 //    (BigQuery's front ends do), after a complete answer
      return send(ok(json({ nth })), () => setTimeout(() => s.end(), 100));
    case "big_headers":          // 5: 1 MB of headers
      { let h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
        const pad = "x".repeat(1000);
        for (let i = 0; i < 1024; i++) h += "X-Pad-" + i + ": " + pad + "\r\n";
        return send(h + "Content-Length: 2\r\n\r\n{}"); }
    case "big_header_line":      // 5: one header line of 1 MB
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Big: " +
                  "y".repeat(1 << 20) + "\r\nContent-Length: 2\r\n\r\n{}");
    case "many_headers":         // 5: 1000 small headers (about 12 KB: under the size bound)
      { let h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
        for (let i = 0; i < 1000; i++) h += "X-" + i + ": v\r\n";
        return send(h + "Content-Length: 2\r\n\r\n{}"); }
    case "bad_chunk":            // 6: a chunk size that is not hex; stays open
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  "zz\r\n{}\r\n0\r\n\r\n");
    case "chunk_overflow":       // 6: a chunk size of 2^64 + 2 (wraps to 2 in 64 bits)
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  "10000000000000002\r\n{}\r\n0\r\n\r\n");
    case "chunk_no_crlf":        // 6: chunk data not followed by CRLF
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  "2\r\n{}XX0\r\n\r\n");
    case "silent":               // 7: nothing, the connection stays open
      return;
    case "continue_silent":      // 8: one 100 Continue, then nothing
      return send(CONT);
    case "continue_flood":       // 8: 10000 of them, then nothing
      return send(CONT.repeat(10000));
    case "continue_flood_ok":    // 8: 10000 of them, then a true answer
      return send(CONT.repeat(10000) + ok(json({ kind: "bigquery#dataset", id: "after-1xx" })));
    case "continue_endless":     // 8: 1xx as fast as sluiced reads them, until it hangs up
      return endless(CONT.repeat(1000));
    case "switching":            // 8: 101 Switching Protocols, then bytes of another protocol
      return send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
                  "\x81\x05hello");
    case "until_close_notify":   // 9 control: no length, ended by close_notify: complete
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" +
                  json({ kind: "bigquery#dataset", id: "until-close" }), () => s.end());
    case "until_close_fin":      // 9: no length, ended by a TCP FIN without close_notify
      return send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" +
                  '{"kind": "bigquery#tableDataList", "rows": [{"f": [{"v": "1"}]}', finEnd);
    default:
      return send(ok(json({ unknown_mode: mode })));
    }
  }
});
srv.listen(0, "127.0.0.1", () => fs.writeFileSync(base + ".port", String(srv.address().port)));
JS
node "$GATE_DIR/upstream.js" "$U/server.pem" "$U/server.key" "$GATE_DIR/up" \
  > "$GATE_DIR/up.out" 2>&1 &
GATE_PIDS+=($!)
gate_wait_for "$GATE_DIR/up.port" . 100 || exit 1
UP_PORT=$(cat "$GATE_DIR/up.port")

# --- sluiced: every override pointed at that server, a short idle timeout -------------------
ct_create agent 127.0.0.1
STANDIN_PORT=$UP_PORT # gate_config's overrides; their CA is set to the test CA just below
gate_config "$(ct_cgroup agent)" ",
  \"limits\": { \"idle_timeout_ms\": $IDLE_MS }" || exit 1
node -e '
  const fs = require("fs"); const [f, ca] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  for (const o of c.upstream.overrides) o.ca_file = ca;
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' "$GATE_DIR/sluice.json" "$U/ca.pem" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_warm agent || exit 1

# --- the agent's client ----------------------------------------------------------------------
# raw GAP_MS FILE...: from inside the container, send the first FILE over TLS (SNI $HOST,
# verified with the sluice CA) to $HOST:443, each next one GAP_MS later on the same
# connection; keep what comes back (hanging up past 64 KiB: a flood must not flood the
# test) until the gate closes, or 8 s. Then print, one per line:
#   status: the first status line ("(none)")
#   error: CODE STATUS REASON | MESSAGE of the first response's JSON error body
#   responses: the status of each response read in order ("(none)"), by their framing
#   complete: yes when the last response's body is complete by its framing
#   after: bytes after the first response
#   end: close | error CODE | timeout | overflow
#   ms: from the first request written to the end
#   total: bytes received
#   body: the first response's body (200 characters at most)
#   bodies: every response's body, as a JSON array (200 characters of each at most)
#   text: all that came back, as a JSON string (4000 characters at most)
cat > "$GATE_DIR/raw.js" <<'JS'
const tls = require("tls"), fs = require("fs");
const [host, ca, gap, ...files] = process.argv.slice(2);
let t0 = 0, kept = [], total = 0, finished = false;
const s = tls.connect({ host, port: 443, servername: host, ca: fs.readFileSync(ca) }, () => {
  t0 = Date.now();
  s.write(fs.readFileSync(files[0]));
  files.slice(1).forEach((f, i) =>
    setTimeout(() => { if (!finished) s.write(fs.readFileSync(f)); }, +gap * (i + 1)));
});
s.on("data", d => {
  total += d.length;
  if (total <= 65536) kept.push(d);
  if (total > 65536) done("overflow");
});
s.on("end", () => done("close"));
s.on("close", () => done("close"));
s.on("error", e => done("error " + (e.code || e.message)));
setTimeout(() => done("timeout"), 8000);

function parse(b) { // responses framed as HTTP/1.1 frames them: [{status, line, body, complete, end}]
  const out = [];
  let i = 0;
  while (i < b.length) {
    const he = b.indexOf("\r\n\r\n", i);
    if (he < 0) break;
    const lines = b.slice(i, he).split("\r\n"), m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) break;
    const h = {};
    for (const l of lines.slice(1)) h[l.slice(0, l.indexOf(":")).toLowerCase()] = l.slice(l.indexOf(":") + 1).trim();
    const st = +m[1], r = { status: st, line: lines[0], body: "", complete: true, end: he + 4 };
    if (st < 200 || st === 204 || st === 304) {
    } else if ("content-length" in h) {
      r.body = b.slice(he + 4, he + 4 + +h["content-length"]);
      r.complete = r.body.length === +h["content-length"];
      r.end = he + 4 + r.body.length;
    } else if (/chunked/i.test(h["transfer-encoding"] || "")) {
      let j = he + 4;
      r.complete = false;
      for (;;) {
        const le = b.indexOf("\r\n", j), n = le < 0 ? NaN : parseInt(b.slice(j, le), 16);
        if (isNaN(n) || le + 2 + n + 2 > b.length) { j = b.length; break; }
        if (n === 0) { j = b.indexOf("\r\n\r\n", le) >= 0 ? b.indexOf("\r\n\r\n", le) + 4 : b.length;
                       r.complete = j < b.length || b.endsWith("\r\n\r\n"); break; }
        r.body += b.slice(le + 2, le + 2 + n);
        j = le + 2 + n + 2;
      }
      r.end = j;
    } else {
      r.body = b.slice(he + 4);
      r.complete = null; // until close: the agent cannot tell
      r.end = b.length;
    }
    out.push(r);
    i = r.end;
  }
  return out;
}
function done(how) {
  if (finished) return;
  finished = true;
  const ms = t0 ? Date.now() - t0 : -1;
  const b = Buffer.concat(kept).toString("latin1"), rs = parse(b), first = rs.find(r => r.status >= 200);
  let err = "(no response)";
  if (first) {
    try {
      const x = JSON.parse(first.body).error;
      err = x.code + " " + x.status + " " + x.errors[0].reason + " | " + x.message;
    } catch (e) { err = "not a JSON error: " + JSON.stringify(first.body.slice(0, 80)); }
  }
  const last = rs[rs.length - 1];
  process.stdout.write([
    "status: " + (b.indexOf("\r\n") >= 0 ? b.slice(0, b.indexOf("\r\n")) : b ? JSON.stringify(b.slice(0, 40)) : "(none)"),
    "error: " + err,
    "responses: " + (rs.length ? rs.map(r => r.status).join(" ") : "(none)"),
    "complete: " + (!last ? "-" : last.complete === null ? "unknown" : last.complete ? "yes" : "no"),
    "after: " + (rs.length ? total - rs[0].end : total) + " bytes",
    "end: " + how, "ms: " + ms, "total: " + total,
    "body: " + (first ? JSON.stringify(first.body.slice(0, 200)) : "-"),
    "bodies: " + JSON.stringify(rs.map(r => r.body.slice(0, 200))),
    "text: " + JSON.stringify(b.slice(0, 4000)), ""].join("\n"),
    () => process.exit(0));
  s.removeAllListeners(); s.on("error", () => {}); s.destroy();
}
JS

P=/bigquery/v2/projects/demo-project/datasets
reqfile() { # MODE [keep]: a well-formed datasets.get for dataset MODE; its file name
  local f=$GATE_DIR/req-$1-${2:-close} conn='Connection: close\r\n'
  [ "${2:-}" = keep ] && conn=''
  printf "GET %s/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer x\r\n$conn\r\n" "$P" "$1" \
    "$HOST" > "$f"
  echo "$f"
}
n_conns() { gate_conns | wc -l; }

# run MODE [GAP_MS KEEP_FILES...]: the agent asks for dataset MODE; sets A (raw's summary),
# REC (the connection record written for it), LOG (sluiced's log lines meanwhile), UPN
# (the server's connection number for it). With GAP_MS, the request is kept alive and the
# other request files follow on the same connection.
run() {
  local mode=$1 gap=${2:-0} before lines i first
  shift 2 2>/dev/null || shift $#
  before=$(n_conns)
  lines=$(wc -l < "$GATE_DIR/sluiced.log")
  if [ "$gap" != 0 ]; then first=$(reqfile "$mode" keep); else first=$(reqfile "$mode"); fi
  A=$(ct_exec agent node "$GATE_DIR/raw.js" "$HOST" "$GATE_DIR/sluice-ca.pem" "$gap" "$first" "$@" 2>&1)
  REC=""
  for i in $(seq 50); do
    [ "$(n_conns)" -gt "$before" ] && { REC=$(gate_conns | tail -n +"$((before + 1))"); break; }
    sleep 0.1
  done
  UPN=$(grep "^request [0-9]* $P/$mode$" "$GATE_DIR/up.events" | tail -1 | awk '{ print $2 }')
  sleep 0.2
  LOG=$(tail -n +"$((lines + 1))" "$GATE_DIR/sluiced.log")
  echo "# --- $mode"
  sed 's/^/#   agent: /' <<< "$A" | cut -c1-400
  sed 's/^/#   record: /' <<< "$REC"
  sed 's/^/#   log: /' <<< "$LOG" | head -5
  [ -z "$UPN" ] || grep -E "^[a-z]+ $UPN( |\$)" "$GATE_DIR/up.events" | sed 's/^/#   server: /'
}
field() { sed -n "s/^$1: //p" <<< "$A"; }
ms_below() { [ "$(field ms)" -ge 0 ] && [ "$(field ms)" -lt "$1" ]; }
ms_between() { [ "$(field ms)" -ge "$1" ] && [ "$(field ms)" -lt "$2" ]; }
reason_of() { sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' <<< "$REC" | tail -1; }
up_closed() { # the server's connection UPN was closed (by sluiced or by the server itself)
  local i
  for i in $(seq 30); do
    grep -qx "closed $UPN" "$GATE_DIR/up.events" && return 0
    sleep 0.1
  done
  return 1
}
not() { ! "$@"; }
closed_or_one_error() {
  [ "$(field end)" = close ] || return 1
  case "$(field responses)" in
    "(none)") [ "$(field total)" = 0 ] ;;
    502|504) [ "$(field after)" = "0 bytes" ] ;;
    *) return 1 ;;
  esac
}
log_quiet() { [ "$(wc -l <<< "$LOG")" -le 10 ]; } # no log flood either

# The checks every failure shares. ENDING is "502" (one BigQuery-shaped 502 whose message
# contains WHAT, then the close) or "close" (nothing, or one 5xx error, then the close);
# TIME is "prompt" (before PROMPT_MS) or "timeout" (at limits.idle_timeout_ms, not later
# than one more second).
expect_failure() { # NAME ENDING WHAT TIME
  local name=$1 ending=$2 what=$3 time=$4 resp
  check "$name: the server received the request head" test -n "$UPN"
  resp=$(field responses)
  if [ "$ending" = 502 ]; then
    check_contains "$name: one 502" "$(field status)" "HTTP/1.1 502"
    check_contains "$name: ... BigQuery-shaped, saying what went wrong" "$(field error)" \
      "502 UNAVAILABLE backendError | "
    check_contains "$name: ... ($what)" "$(field error)" "$what"
    check_eq "$name: ... and nothing else: one response, then the close" \
      "$resp|$(field after)|$(field end)" "502|0 bytes|close"
  else
    # a close without an answer, or one gateway error (502/504) naming the reason; never
    # a success, never more than one response
    check "$name: a close, or one gateway error then the close" closed_or_one_error
  fi
  if [ "$time" = prompt ]; then
    check "$name: at once (under $PROMPT_MS ms: $(field ms) ms)" ms_below "$PROMPT_MS"
  else
    check "$name: at the idle timeout ($IDLE_MS ms), not later ($(field ms) ms)" \
      ms_between $((IDLE_MS - 200)) $((IDLE_MS + 1000))
  fi
  check "$name: recorded with a reason ($(reason_of))" test -n "$(reason_of)"
  check "$name: the upstream connection is closed too" up_closed
  check "$name: sluiced logged a few lines, no flood" log_quiet
}

# --- control: a well-behaved answer passes -------------------------------------------------
run ok
check_eq "control: a good answer is relayed, once, whole" \
  "$(field status)|$(field responses)|$(field complete)|$(field after)|$(field end)" \
  "HTTP/1.1 200 OK|200|yes|0 bytes|close"
check_contains "control: ... with the server's body" "$(field body)" 'demo-project:ok'
check "control: ... and the server saw the request" test -n "$UPN"

# --- 1. closes the connection without answering --------------------------------------------
run close_clean
expect_failure "close (TLS close_notify)" 502 "closed the connection without a response" prompt
run close_reset
expect_failure "close (TCP reset)" 502 "" prompt

# --- 2. answers with something that is not HTTP --------------------------------------------
run garbage_close
expect_failure "not HTTP, then close" 502 "" prompt
# Not HTTP, and the server keeps the connection open. "SSH-2.0-x\r\n" can never begin a
# response: a demanding user expects the 502 at once (sluiced has the bytes to know), not
# after the idle timeout (5 minutes by default) with the agent waiting all along.
run garbage_open
expect_failure "not HTTP, connection kept open" 502 "" prompt
run garbage_binary
expect_failure "binary junk" 502 "" prompt

# --- 3. a head, then the body is cut --------------------------------------------------------
run cut_body
expect_failure "Content-Length 1000, 10 bytes, close" 502 "cut short" prompt
check "... the 10 bytes are not passed on" not grep -q '{"rows"' <<< "$A"
run cut_body_fin
expect_failure "... the same, TCP FIN without close_notify" 502 "cut short" prompt
run cut_chunked
expect_failure "chunked without its last chunk, close" 502 "" prompt

# --- 4. response smuggling ------------------------------------------------------------------
run cl_te
expect_failure "Content-Length with Transfer-Encoding" 502 "Content-Length with Transfer-Encoding" prompt
check "... the smuggled response is not relayed" not grep -q smuggled <<< "$A"
run te_cl
expect_failure "Transfer-Encoding with Content-Length" 502 "Content-Length with Transfer-Encoding" prompt
run two_cl
expect_failure "two Content-Lengths" 502 "duplicate Content-Length" prompt
check "... the smuggled response is not relayed" not grep -q smuggled <<< "$A"
run te_odd
expect_failure "Transfer-Encoding: identity, chunked" 502 "Transfer-Encoding" prompt
run bare_lf
expect_failure "bare LF line ends" 502 "bare LF" prompt
# A complete answer with a second response right behind it, on a connection both sides keep
# alive; the agent's next request on the same connection gets a true answer from the
# server ({"second": true}). The unrequested response must never become the answer to the
# agent's next request (a desync: answers shifted by one). What a demanding user expects:
# the first answer, then for the second request the server's own answer to it, or a 502, or
# the close; never {"smuggled": true}.
run extra_response 600 "$(reqfile extra_response)"
check_contains "extra response: the first answer is relayed" "$(field status)" "HTTP/1.1 200"
check "extra response: the unrequested response never reaches the agent" \
  not grep -q smuggled <<< "$A"
check "extra response: at most one answer per request" \
  test "$(wc -w <<< "$(field responses)")" -le 2
check "extra response: over by the time the second answer is due (under $PROMPT_MS ms after it)" \
  ms_below $((600 + PROMPT_MS))
# relayed: the second answer is the server's answer to the second request; refused: the
# record says why
extra_ok() {
  case "$(field responses)" in
    "200 200") [ "$(field bodies)" = '["{}","{\"second\":true}"]' ] ;;
    *) [ -n "$(reason_of)" ] ;;
  esac
}
check "extra response: the second request gets its own answer, or an error with a reason" extra_ok

# Not a fault: the server closes a kept-alive connection while it is idle, as BigQuery's front
# ends do. The agent's next request on its own connection must not be sent into the closed
# one: sluiced opens another and the agent gets the answer to that request.
run idle_close 600 "$(reqfile idle_close)"
check_eq "idle close: both requests answered 200" "$(field responses)" "200 200"
check_eq "... each with its own answer" "$(field bodies)" '["{\"nth\":1}","{\"nth\":1}"]'
check "... the second over a new upstream connection" \
  test "$(grep -c "^request [0-9]* $P/idle_close$" "$GATE_DIR/up.events")" -ge 2

# --- 5. oversized header blocks ---------------------------------------------------------------
run big_headers
expect_failure "1 MB of headers" 502 "header section too large" prompt
run big_header_line
expect_failure "one 1 MB header line" 502 "header section too large" prompt
run many_headers
expect_failure "1000 headers" 502 "too many headers" prompt

# --- 6. bad chunked encoding -----------------------------------------------------------------
run bad_chunk
expect_failure "chunk size 'zz'" 502 "invalid chunk size" prompt
run chunk_overflow
expect_failure "chunk size of 17 hex digits (2^64 + 2)" 502 "chunk size" prompt
run chunk_no_crlf
expect_failure "chunk data without its CRLF" 502 "missing CRLF after chunk data" prompt

# --- 7. nothing at all, the connection held open --------------------------------------------
# Nothing was sent to the agent yet, so a 504 naming the timeout would be the kindest ending;
# the close is accepted (the standard: an error or a close), as long as it comes at the
# configured timeout and the record says it timed out.
run silent
expect_failure "silent upstream" close "" timeout
check_contains "... the record says it timed out" "$(reason_of)" "timeout"

# --- 8. 1xx responses --------------------------------------------------------------------------
run continue_silent
expect_failure "100 Continue, then nothing" close "" timeout
check_contains "... the record says it timed out" "$(reason_of)" "timeout"
# A finite flood: sluiced may skip all of it and then time out like the silent upstream, or
# refuse it at once as too many interim responses (Go's HTTP client stops at 5).
run continue_flood
if [ "$(field responses)" = 502 ]; then
  expect_failure "10000 x 100 Continue, then nothing" 502 "" prompt
else
  expect_failure "10000 x 100 Continue, then nothing" close "" timeout
fi
# An endless flood: the idle timeout alone is no bound worth the name (5 minutes by default,
# a worker's core spent decrypting and skipping 1xx all along, about 160 MB a second here),
# so a demanding user expects interim responses bounded by number or size: a prompt 502.
cpu() { awk '{ print $14 + $15 }' "/proc/$SLUICED_PID/stat"; } # clock ticks, user + system
cpu0=$(cpu)
run continue_endless
expect_failure "an endless stream of 100 Continue" 502 "" prompt
check "... sluiced is still alive" kill -0 "$SLUICED_PID"
echo "# sluiced read $(awk -v n="$UPN" '$1 == "sent" && $2 == n { print $3 }' "$GATE_DIR/up.events") bytes" \
  "of 1xx in that time, using $(( ($(cpu) - cpu0) * 1000 / $(getconf CLK_TCK) )) ms of CPU"
# 10000 interim responses and then a real answer: relaying the answer is right, refusing
# the flood with a 502 is too; either way exactly one response, and no 1xx (the agent sent
# no Expect: 100-continue, so a 1xx is not for it).
run continue_flood_ok
check "10000 x 100 Continue, then 200: exactly one final response, no 1xx relayed" \
  test "$(field responses)" = 200 -o "$(field responses)" = 502
check_eq "... then the close" "$(field after)|$(field end)" "0 bytes|close"
check "... at once (under $PROMPT_MS ms: $(field ms) ms)" ms_below "$PROMPT_MS"
check "... an answer that is relayed is whole" \
  test "$(field responses)" = 502 -o "$(field complete)" = yes
# 101 Switching Protocols to a request that asked for no upgrade (sluiced sends no Upgrade
# header): RFC 9110 section 7.8, a server "MUST NOT switch to a protocol that was not
# indicated by the client". It is not an interim response to skip: what follows it is
# another protocol, never an HTTP answer, so a demanding user expects the 502 at once.
run switching
expect_failure "101 Switching Protocols to a GET" 502 "" prompt

# --- 9. a body without a length, cut by a TCP FIN with no TLS close_notify ---------------------
# RFC 9112 section 9.8: a response with neither Content-Length nor chunked framing "is
# complete only if a valid closure alert has been received"; anyone who can inject a FIN
# (a broken or hostile network) could otherwise cut it short and have it taken as whole.
run until_close_notify
check_eq "control: a body until close, ended by close_notify, is relayed whole" \
  "$(field status)|$(field responses)|$(field complete)|$(field end)" "HTTP/1.1 200 OK|200|yes|close"
run until_close_fin
expect_failure "a body until close, cut by a FIN without close_notify" 502 "" prompt
check "... the cut body is never relayed as a 200" not grep -q '"rows"' <<< "$A"

# --- sluiced is alive and serving ---------------------------------------------------------------
check "sluiced is still running" kill -0 "$SLUICED_PID"
check "sluiced answers on its control socket" \
  build/sluicectl approvals --socket "$GATE_DIR/ctl/sluice.sock"
run ok
check_eq "sluiced still relays a good answer" "$(field status)|$(field complete)" "HTTP/1.1 200 OK|yes"

gate_conns | sed 's/^/# /'
tap_done
