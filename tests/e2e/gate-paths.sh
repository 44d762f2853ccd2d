#!/usr/bin/env bash
# Description: the other ways an agent reaches Google, and sluiced's lifecycle under load.
# The real Node client through HTTPS_PROXY (CONNECT) and over IPv6 and IPv4-mapped
# addresses; a server-speaks-first TCP service spliced byte for byte; SIGHUP reloads without
# dropping a keep-alive connection; SIGTERM lets an in-flight query finish, then exits 0.
# Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_up agent || exit 1
agent() {
  ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" "$@"
}
Q='SELECT COUNT(*) AS n FROM `demo-project.crm.customers`'

# HTTPS_PROXY: the client sends CONNECT to a proxy address; the redirect brings it to sluiced.
out=$(agent env HTTPS_PROXY=http://127.0.0.1:3128 node tests/e2e/lib/agent.mjs "$Q" 2>&1)
check_contains "Node client through HTTPS_PROXY (CONNECT) is served" "$out" '"ok":true'
check_contains "... and recorded as a connection to the proxy port" \
  "$(gate_conns)" '"dst_port":3128,"sni":"bigquery.googleapis.com","route":"intercept"'

# CONNECT to a host that is not intercepted: sluiced resolves the name itself (off its
# workers) and splices the TLS inside unchanged, here to the stand-in as "localhost".
out=$(ct_exec agent node -e '
  const net = require("net"), tls = require("tls"), fs = require("fs");
  const [port, ca] = process.argv.slice(1);
  const s = net.connect(3128, "127.0.0.1", () =>
    s.write("CONNECT localhost:" + port + " HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n"));
  s.once("data", d => {
    const t = tls.connect({ socket: s, servername: "localhost", ca: fs.readFileSync(ca) }, () => {
      console.log("issuer " + t.getPeerCertificate().issuer.CN);
      t.write("GET /bigquery/v2/projects/demo-project/datasets/viaconnect HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n");
    });
    t.on("data", d => process.stdout.write(d.toString().split("\r\n")[0] + "\n"));
    t.on("error", e => console.log("ERR " + e.code));
    t.on("close", () => process.exit(0));
  });
  setTimeout(() => process.exit(0), 8000);' "$STANDIN_PORT" "$GATE_DIR/standin/ca.pem" 2>&1)
check_contains "CONNECT to a name sluiced must resolve: the TLS inside reaches the real server" "$out" "HTTP/1.1"
check_contains "... end to end (the server's own certificate, not sluice's)" "$out" "issuer"
check_contains "... and the request arrived unchanged (no Via: not intercepted)" \
  "$(grep viaconnect "$GATE_DIR/standin.log")" '"host":"localhost"'
check "... spliced, not intercepted" bash -c "! grep viaconnect '$GATE_DIR/standin.log' | grep -q sluice"

# IPv6 and IPv4-mapped destinations (a raw HTTPS request to the API host's address).
cat > "$GATE_DIR/get.js" <<'JS'
const https = require("https"), fs = require("fs");
const [addr, path] = process.argv.slice(2);
https.get({ host: addr, port: 443, path, servername: "bigquery.googleapis.com",
  headers: { host: "bigquery.googleapis.com", authorization: "Bearer t" },
  ca: fs.readFileSync(process.env.CA) }, r => { let b = ""; r.on("data", d => b += d);
  r.on("end", () => console.log(r.statusCode + " " + b.slice(0, 80))); })
 .on("error", e => console.log("ERR " + e.code));
JS
for a in ::1 ::ffff:127.0.0.1; do
  out=$(ct_exec agent env CA="$GATE_DIR/sluice-ca.pem" node "$GATE_DIR/get.js" "$a" \
    /bigquery/v2/projects/demo-project/datasets 2>&1)
  check_contains "HTTPS to [$a]:443 is redirected and served" "$out" "200 "
done

# A server-speaks-first service on a port sluiced does not inspect: spliced byte for byte.
node -e '
  const net = require("net");
  net.createServer(s => { s.write("BANNER sluice-splice\r\n"); s.pipe(s); })
     .listen(7777, "127.0.0.1", () => console.log("up"));' > "$GATE_DIR/echo.out" 2>&1 &
GATE_PIDS+=($!)
gate_wait_for "$GATE_DIR/echo.out" up
head -c 200000 /dev/urandom > "$GATE_DIR/blob"
ct_exec agent node -e '
  const net = require("net"), fs = require("fs"), crypto = require("crypto");
  const blob = fs.readFileSync(process.argv[1]); const chunks = [];
  const s = net.connect(7777, "127.0.0.1");
  s.once("data", () => {}); s.on("data", d => chunks.push(d));
  setTimeout(() => s.write(blob), 200);
  setTimeout(() => { const all = Buffer.concat(chunks);
    const banner = "BANNER sluice-splice\r\n";
    console.log(all.slice(0, banner.length).toString() === banner ? "banner-first" : "no-banner");
    console.log(crypto.createHash("sha256").update(all.slice(banner.length)).digest("hex"));
    process.exit(0); }, 3000);' "$GATE_DIR/blob" > "$GATE_DIR/splice.out" 2>&1
check_contains "server speaks first: its banner arrives without the agent sending" \
  "$(cat "$GATE_DIR/splice.out")" banner-first
check_eq "200 KB echoed byte-exact through the splice" "$(sed -n 2p "$GATE_DIR/splice.out")" \
  "$(sha256sum < "$GATE_DIR/blob" | cut -d' ' -f1)"
check_contains "splice recorded" "$(gate_conns)" '"dst_port":7777,"sni":"","route":"splice"'

# Keep-alive with large responses (and so a receive buffer that grows while a response
# arrives): 400 requests on 4 connections, every response intact and the connections reused.
out=$(ct_exec agent env CA="$GATE_DIR/sluice-ca.pem" node -e '
const https = require("https"), fs = require("fs");
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: fs.readFileSync(process.env.CA) });
let ok = 0, bad = 0; const errs = {}, sockets = new Set();
const one = () => new Promise(res => https.get({ host: "bigquery.googleapis.com", agent,
    path: "/bigquery/v2/projects/demo-project/datasets/sales/tables/orders/data?maxResults=200",
    headers: { authorization: "Bearer t" } }, r => { sockets.add(r.socket.localPort); let b = "";
    r.on("data", d => b += d); r.on("end", () => { try { JSON.parse(b); r.statusCode === 200 ? ok++ : bad++; }
      catch (e) { bad++; errs.parse = 1; } res(); }); })
  .on("error", e => { bad++; errs[e.code] = 1; res(); }));
(async () => { for (let k = 0; k < 100; k++) await Promise.all([one(), one(), one(), one()]);
  console.log("ok=" + ok + " bad=" + bad + " sockets=" + sockets.size + " " + JSON.stringify(errs)); process.exit(0); })();' 2>&1)
check_contains "400 large responses on keep-alive connections all arrive intact" "$out" "ok=400 bad=0"
check "... on reused connections" bash -c '[[ "$1" =~ sockets=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -le 8 ]' _ "$out"

# SIGHUP mid-connection: two requests on one keep-alive connection, a reload in between.
cat > "$GATE_DIR/ka.js" <<'JS'
const https = require("https"), fs = require("fs");
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: fs.readFileSync(process.env.CA) });
const get = () => new Promise((ok, ko) => https.get({ host: "bigquery.googleapis.com",
  path: "/bigquery/v2/projects/demo-project/datasets", agent,
  headers: { authorization: "Bearer t" } }, r => { const port = r.socket.localPort; r.resume();
  r.on("end", () => ok({ statusCode: r.statusCode, port })); }).on("error", ko));
(async () => {
  const a = await get(); const s1 = a.port;
  fs.writeFileSync(process.env.MARK, "first\n");
  await new Promise(r => setTimeout(r, 1500));
  const b = await get(); const s2 = b.port;
  console.log(a.statusCode, b.statusCode, s1 === s2 ? "same-connection" : "new-connection");
  agent.destroy();
})().catch(e => console.log("ERR " + e.message));
JS
ct_exec agent env CA="$GATE_DIR/sluice-ca.pem" MARK="$GATE_DIR/ka.mark" node "$GATE_DIR/ka.js" \
  > "$GATE_DIR/ka.out" 2>&1 &
kapid=$!
gate_wait_for "$GATE_DIR/ka.mark" first
kill -HUP "$SLUICED_PID"
wait $kapid
check_eq "SIGHUP: the keep-alive connection survives the reload" "$(cat "$GATE_DIR/ka.out")" \
  "200 200 same-connection"
check_contains "SIGHUP: configuration reloaded" "$(cat "$GATE_DIR/sluiced.log")" "reloaded"

# SIGTERM with a query in flight (the stand-in takes 2 s): it finishes, then sluiced exits 0.
agent node tests/e2e/lib/agent.mjs "/*standin:delay_ms=2000*/ $Q" > "$GATE_DIR/slow.out" 2>&1 &
slowpid=$!
gate_wait_for "$GATE_DIR/standin.log" 'delay_ms=2000' 100
kill -TERM "$SLUICED_PID"
wait $slowpid
wait "$SLUICED_PID"; rc=$?
check_contains "SIGTERM: the in-flight query still completes" "$(cat "$GATE_DIR/slow.out")" '"ok":true'
check_eq "SIGTERM: sluiced exits 0 after draining" "$rc" 0
tap_done
