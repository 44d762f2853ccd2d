#!/usr/bin/env bash
# Description: spliced connections (hosts and ports sluiced does not intercept) forwarded
# inside the kernel (intercept.splice_via "sockmap"), end to end from an enforced test
# container: TLS to a host that is not intercepted carries 8 MB of random bytes each way at
# once, byte-exact, with the server's own certificate; a server-speaks-first service gets its
# banner through, then 8 MB from the agent, a half-close by the agent, and the server's
# answer after it; the connection records say "sockmap" and count exactly the bytes each side
# saw; an idle spliced connection is closed at the idle timeout while a slow but live one is
# not; a reset is passed on. Then the same service with the default, copying path (the same
# bytes, the same half-close). Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_standin || exit 1
ct_create agent 127.0.0.1
TLS_PORT=$(gate_free_port)
RAW_PORT=$(gate_free_port)
RST_PORT=$(gate_free_port)
# Spliced bytes through the kernel's socket hash; the TLS server's port is inspected (peeked
# at), the raw one is not; the idle timeout is short.
gate_config "$(ct_cgroup agent)" ", \"intercept\": { \"splice_via\": \"sockmap\",
  \"inspect_ports\": [443, $TLS_PORT] },
  \"limits\": { \"idle_timeout_ms\": 1500 }" || exit 1
gate_start || exit 1
gate_warm agent || exit 1
d=$GATE_DIR
head -c 8388608 /dev/urandom > "$d/a.bin"   # agent -> server
head -c 8388608 /dev/urandom > "$d/b.bin"   # server -> agent
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# Servers outside the container, where the agent's connections were going.
cat > "$d/servers.js" <<'JS'
const net = require("net"), tls = require("tls"), fs = require("fs"), crypto = require("crypto");
const [tlsPort, rawPort, dir] = process.argv.slice(2);
const B = fs.readFileSync(dir + "/b.bin");
// TLS: sends B while it receives; says what it received once the agent's bytes are in.
tls.createServer({ key: fs.readFileSync(dir + "/standin/server.key"),
                   cert: fs.readFileSync(dir + "/standin/server.pem") }, s => {
  const h = crypto.createHash("sha256"); let n = 0;
  s.on("data", d => { h.update(d); n += d.length;
    if (n === 8388608) fs.writeFileSync(dir + "/tls-server.out", n + " " + h.digest("hex")); });
  s.on("error", () => {});
  s.write(B);
}).listen(tlsPort, "127.0.0.1");
// Raw TCP, server speaks first: a banner; after the agent's FIN, what it got, then B.
net.createServer({ allowHalfOpen: true }, s => {
  s.write("BANNER sluice-splice\n");
  const h = crypto.createHash("sha256"); let n = 0;
  s.on("data", d => { h.update(d); n += d.length; });
  s.on("end", () => { s.write("GOT " + n + " " + h.digest("hex") + "\n"); s.end(B); });
  s.on("error", () => {});
}).listen(rawPort, "127.0.0.1", () => console.log("up"));
JS
node "$d/servers.js" "$TLS_PORT" "$RAW_PORT" "$d" > "$d/servers.log" 2>&1 &
GATE_PIDS+=($!)
gate_wait_for "$d/servers.log" up || exit 1

# The agent's side of the raw service: wait for the banner, send FILE (optionally slowly),
# half-close, read to the end. Prints the banner, the server's GOT line, then the length and
# SHA-256 of the rest.
cat > "$d/raw-client.js" <<'JS'
const net = require("net"), fs = require("fs"), crypto = require("crypto");
const [port, file, slow] = process.argv.slice(2);
const A = fs.readFileSync(file), chunks = [];
const s = net.connect({ port: +port, host: "127.0.0.1", allowHalfOpen: true });
let started = false;
s.on("data", d => {
  chunks.push(d);
  if (started || !Buffer.concat(chunks).includes("\n")) return;
  started = true;
  if (!slow) return s.end(A);
  let i = 0; const t = setInterval(() => { // one byte every 250 ms, 3 s in all
    if (i < A.length && i < 12) s.write(A.subarray(i, ++i)); else { clearInterval(t); s.end(); } }, 250);
});
s.on("end", () => {
  const all = Buffer.concat(chunks), l1 = all.indexOf("\n"), l2 = all.indexOf("\n", l1 + 1);
  const rest = all.subarray(l2 + 1);
  console.log(all.subarray(0, l1).toString());
  console.log(all.subarray(l1 + 1, l2).toString());
  console.log(rest.length + " " + crypto.createHash("sha256").update(rest).digest("hex"));
});
s.on("error", e => console.log("ERR " + e.code));
JS

# conn_rec PORT N: the Nth (1-based) connection record for destination PORT, waiting for it:
# splice, reason, bytes from and to the agent.
conn_rec() {
  local i out
  for i in $(seq 50); do
    out=$(cat "$d"/records/*/*.jsonl 2>/dev/null | node -e '
      const [port, n] = process.argv.slice(1).map(Number); const got = [];
      require("readline").createInterface({ input: process.stdin }).on("line", l => {
        let r; try { r = JSON.parse(l); } catch (e) { return; }
        if (r.type === "conn_close" && r.data.dst_port === port) got.push(r.data);
      }).on("close", () => { const r = got[n - 1]; if (r) console.log([r.route, r.splice,
        r.reason || "-", r.bytes_from_agent, r.bytes_to_agent].join(" ")); });' "$1" "$2")
    [ -n "$out" ] && { echo "$out"; return; }
    sleep 0.1
  done
}

# 1. TLS to a host that is not intercepted: 8 MB each way at once, through the kernel.
cat > "$d/tls-client.js" <<'JS'
const net = require("net"), tls = require("tls"), fs = require("fs"), crypto = require("crypto");
const [port, dir] = process.argv.slice(2);
const raw = net.connect(+port, "storage.googleapis.com");
const t = tls.connect({ socket: raw, servername: "storage.googleapis.com",
                        ca: fs.readFileSync(dir + "/standin/ca.pem") }, () => {
  console.log("issuer " + t.getPeerCertificate().issuer.CN);
  t.write(fs.readFileSync(dir + "/a.bin"));
});
const h = crypto.createHash("sha256"); let n = 0;
t.on("data", d => { h.update(d); n += d.length;
  if (n === 8388608) { console.log("got " + n + " " + h.digest("hex")); t.end(); } });
t.on("close", () => console.log("raw " + raw.bytesWritten + " " + raw.bytesRead));
t.on("error", e => console.log("ERR " + e.code));
JS
out=$(ct_exec agent timeout 60 node "$d/tls-client.js" "$TLS_PORT" "$d" 2>&1)
check_contains "TLS to a host not intercepted: the server's own certificate" "$out" \
  "issuer $(openssl x509 -noout -issuer -in "$d/standin/server.pem" | sed 's/.*CN *= *//')"
check_contains "... 8 MB server -> agent byte-exact" "$out" "got 8388608 $(sha "$d/b.bin")"
check_eq "... 8 MB agent -> server byte-exact, at the same time" \
  "$(cat "$d/tls-server.out" 2>/dev/null)" "8388608 $(sha "$d/a.bin")"
raw=$(sed -n 's/^raw //p' <<< "$out")
check_eq "... recorded as spliced in the kernel, with the bytes the agent's socket counted" \
  "$(conn_rec "$TLS_PORT" 1)" "splice sockmap - $raw"

# 2. Server speaks first, 8 MB from the agent, the agent half-closes, the server answers.
raw_case() { # $1: record number; $2: "sockmap" or "copy"
  local out
  out=$(ct_exec agent timeout 60 node "$d/raw-client.js" "$RAW_PORT" "$d/a.bin" 2>&1)
  check_eq "[$2] server speaks first: its banner arrives before the agent sends" \
    "$(sed -n 1p <<< "$out")" "BANNER sluice-splice"
  check_eq "[$2] ... 8 MB from the agent arrive byte-exact, then its FIN" \
    "$(sed -n 2p <<< "$out")" "GOT 8388608 $(sha "$d/a.bin")"
  check_eq "[$2] ... after the half-close the server's 8 MB answer arrives byte-exact" \
    "$(sed -n 3p <<< "$out")" "8388608 $(sha "$d/b.bin")"
  check_eq "[$2] ... recorded: spliced ($2), ended normally, exact bytes each way" \
    "$(conn_rec "$RAW_PORT" "$1")" \
    "splice $2 - 8388608 $((21 + ${#GOT_LINE} + 1 + 8388608))"
}
GOT_LINE="GOT 8388608 $(sha "$d/a.bin")"
raw_case 1 sockmap

# 3. Idle timeout (1.5 s here): an idle spliced connection is closed, a slow one is not.
start=$(date +%s%N)
out=$(ct_exec agent timeout 20 node -e '
  const s = require("net").connect(+process.argv[1], "127.0.0.1");
  s.on("data", () => {}); s.on("close", () => console.log("closed")); s.on("error", () => {});' \
  "$RAW_PORT" 2>&1)
secs=$(( ($(date +%s%N) - start) / 1000000 ))
check_contains "an idle spliced connection is closed by sluiced" "$out" closed
check "... at the idle timeout (1.5 s), not before, not much later (${secs} ms)" \
  test "$secs" -ge 1400 -a "$secs" -lt 6000
check_contains "... recorded as a timeout" "$(conn_rec "$RAW_PORT" 2)" "splice sockmap timeout"
out=$(ct_exec agent timeout 20 node "$d/raw-client.js" "$RAW_PORT" "$d/a.bin" slow 2>&1)
check_eq "a slow spliced connection (a byte every 250 ms for 3 s) stays open" \
  "$(sed -n 2p <<< "$out")" "GOT 12 $(head -c 12 "$d/a.bin" | sha256sum | cut -d' ' -f1)"

# 4. A reset by the server (once the kernel forwards) closes the agent's connection too.
node -e '
  const s = require("net").createServer(c => { setTimeout(() => c.resetAndDestroy(), 300); });
  s.listen(+process.argv[1], "127.0.0.1", () => console.log("up"));' "$RST_PORT" \
  > "$d/rst.log" 2>&1 &
GATE_PIDS+=($!)
gate_wait_for "$d/rst.log" up
out=$(ct_exec agent timeout 10 node -e '
  const s = require("net").connect(+process.argv[1], "127.0.0.1");
  s.on("close", () => console.log("closed")); s.on("error", e => console.log("ERR " + e.code));' \
  "$RST_PORT" 2>&1)
check_contains "a reset by the server closes the agent's connection" "$out" closed
check_contains "... recorded with why" "$(conn_rec "$RST_PORT" 1)" \
  "splice sockmap error on the original destination's connection"

# 5. The copy path (the default; also a kernel without sockmap): the same service, the same
# bytes, the same half-close.
sed -i 's/"splice_via": "sockmap"/"splice_via": "copy"/' "$d/sluice.json"
n=$(grep -c reloaded "$d/sluiced.log")
kill -HUP "$SLUICED_PID"
for i in $(seq 50); do [ "$(grep -c reloaded "$d/sluiced.log")" -gt "$n" ] && break; sleep 0.1; done
raw_case 4 copy
check "sluiced said nothing about the kernel refusing a connection" \
  bash -c "! grep -q 'could not join the socket hash\|not available here' '$d/sluiced.log'"
tap_done
