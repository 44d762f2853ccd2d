#!/usr/bin/env bash
# Description: what an attacker in the enforced container would try against the gate.
# Request smuggling and malformed framing over TLS get sluiced's 400 and never reach the
# upstream; a Host that differs from the SNI is refused; an upstream whose certificate does
# not verify gets a 502 and nothing forwarded; UDP to 443 (QUIC) is refused while UDP to 53
# is not; with intercept.other_tls "deny" a TLS connection to another host is closed without
# a certificate and recorded as route deny; TLS without SNI, plain HTTP to Google and a
# CONNECT followed by TLS for another host are refused. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_standin || exit 1
ct_create agent 127.0.0.1
gate_config "$(ct_cgroup agent)" ',
  "intercept": { "other_tls": "deny" }' || exit 1
# A second CA, unrelated to the stand-in's: www.googleapis.com goes to the stand-in but is
# verified against it, so the upstream certificate cannot verify.
tests/standin/mkcerts.sh "$GATE_DIR/otherca" >/dev/null || exit 1
node -e '
  const fs = require("fs"); const [f, port, ca] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  c.upstream.overrides.push({ host: "www.googleapis.com", address: "127.0.0.1:" + port, ca_file: ca });
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' \
  "$GATE_DIR/sluice.json" "$STANDIN_PORT" "$GATE_DIR/otherca/ca.pem" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_warm agent || exit 1

# raw HOST FILE: send FILE's bytes over TLS (SNI HOST, verified with the sluice CA) to
# HOST:443 from inside the container; print what comes back until the gate closes.
cat > "$GATE_DIR/raw.js" <<'JS'
const tls = require("tls"), fs = require("fs");
const [host, file, ca] = process.argv.slice(2);
const s = tls.connect({ host, port: 443, servername: host, ca: fs.readFileSync(ca) }, () => {
  s.write(fs.readFileSync(file));
});
let out = "";
s.on("data", d => { out += d.toString("latin1"); });
const done = (why) => { process.stdout.write(out + (why ? "\n#ERR " + why : "") + "\n"); process.exit(0); };
s.on("end", () => done());
s.on("close", () => done());
s.on("error", e => done(e.code || e.message));
setTimeout(() => done("timeout"), 8000);
JS
raw() { ct_exec agent node "$GATE_DIR/raw.js" "$1" "$2" "$GATE_DIR/sluice-ca.pem" 2>&1; }
P=/bigquery/v2/projects/demo-project
H="Host: bigquery.googleapis.com"
req() { printf '%b' "$2" > "$GATE_DIR/req-$1"; }   # N BYTES

# A well-formed control request does reach the stand-in (so the "never forwarded" checks
# below can fail).
req 0 "GET $P/datasets/control0 HTTP/1.1\r\n$H\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n"
out=$(raw bigquery.googleapis.com "$GATE_DIR/req-0")
check "control: a well-formed request is forwarded" gate_wait_for "$GATE_DIR/standin.log" control0 30

req 1 "POST $P/smuggle-1 HTTP/1.1\r\n$H\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET $P/smuggle-1b HTTP/1.1\r\n$H\r\n\r\n"
req 2 "POST $P/smuggle-2 HTTP/1.1\r\n$H\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhelloGET $P/smuggle-2b HTTP/1.1\r\n\r\n"
req 3 "POST $P/smuggle-3 HTTP/1.1\r\n$H\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
req 4 "GET $P/smuggle-4 HTTP/1.1\r\n$H\r\nX-Folded: a\r\n  Transfer-Encoding: chunked\r\n\r\n"
req 5 "GET $P/smuggle-5 HTTP/1.1\r\n$H\r\nX-A: b\nX-C: d\r\n\r\n"
{ printf 'GET %s/smuggle-6 HTTP/1.1\r\n%s\r\nX-Big: ' "$P" "$H"; head -c 70000 /dev/zero | tr '\0' a
  printf '\r\n\r\n'; } > "$GATE_DIR/req-6"
{ printf 'GET %s/smuggle-7 HTTP/1.1\r\n%s\r\n' "$P" "$H"
  for i in $(seq 150); do printf 'X-H-%d: v\r\n' "$i"; done; printf '\r\n'; } > "$GATE_DIR/req-7"
names=([1]="CL and TE together" [2]="duplicate Content-Length" [3]="Transfer-Encoding: xchunked"
  [4]="obs-fold header line" [5]="bare LF line ending" [6]="header section over 64 KiB"
  [7]="150 headers (over the 100 allowed)")
for n in 1 2 3 4 5 6 7; do
  out=$(raw bigquery.googleapis.com "$GATE_DIR/req-$n")
  check_contains "smuggling: ${names[$n]} -> 400 from sluiced" "$(head -1 <<< "$out")" "HTTP/1.1 400"
done
sleep 0.5
check "smuggling: no smuggle-N request reached the stand-in" \
  bash -c "! grep -q smuggle '$GATE_DIR/standin.log'"

# Host differs from the SNI.
req 8 "GET $P/hostmismatch-8 HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n"
out=$(raw bigquery.googleapis.com "$GATE_DIR/req-8")
check_contains "Host evil.example.com under SNI bigquery.googleapis.com -> 400" "$(head -1 <<< "$out")" "HTTP/1.1 400"
sleep 0.3
check "... and it was not forwarded" bash -c "! grep -q hostmismatch '$GATE_DIR/standin.log'"

# Upstream certificate that does not verify.
req 9 "GET /bigquery/v2/projects/demo-project/datasets/badcert9 HTTP/1.1\r\nHost: www.googleapis.com\r\nConnection: close\r\n\r\n"
out=$(raw www.googleapis.com "$GATE_DIR/req-9")
check_contains "upstream certificate from another CA -> 502" "$(head -1 <<< "$out")" "HTTP/1.1 502"
check_contains "... whose body says verification failed" "$out" "verification failed"
sleep 0.3
check "... and nothing was forwarded" bash -c "! grep -q badcert '$GATE_DIR/standin.log'"

# UDP: QUIC (443) refused, DNS (53) not.
out=$(ct_exec agent bash -c 'echo x > /dev/udp/127.0.0.1/443' 2>&1); rc=$?
check "UDP to port 443 is refused" test "$rc" -ne 0
check_contains "... with EPERM" "$out" "not permitted"
out=$(ct_exec agent node -e '
  const s = require("dgram").createSocket("udp4");
  s.send("x", 443, "127.0.0.1", e => { console.log(e ? e.code : "sent"); s.close(); });' 2>&1)
check_contains "unconnected UDP (sendmsg) to 443 is refused: EPERM" "$out" "EPERM"
check "UDP to port 53 is not refused" ct_exec agent bash -c 'echo x > /dev/udp/127.0.0.1/53'

# intercept.other_tls "deny": TLS to a host that is not intercepted.
out=$(ct_exec agent timeout 10 openssl s_client -connect 127.0.0.1:443 -servername example.org \
  -CAfile "$GATE_DIR/sluice-ca.pem" < /dev/null 2>&1); rc=$?
check "other_tls deny: TLS with SNI example.org fails" test "$rc" -ne 0
check "... without any certificate from sluice" bash -c "! grep -q 'BEGIN CERTIFICATE\|^Certificate chain' <<< \"\$1\"" _ "$out"
sleep 0.3
rec=$(gate_conns)
check_contains "upstream verification failure recorded with its reason" "$rec" '"sni":"www.googleapis.com","route":"intercept"'
check_contains "... the reason says verification failed (not a dangling pointer)" "$rec" '"reason":"sluice: upstream TLS verification failed'
check_contains "... recorded as route deny for that SNI" "$rec" '"sni":"example.org","route":"deny"'

# TLS without SNI, plain HTTP to Google, and a CONNECT whose TLS names another host.
out=$(ct_exec agent timeout 10 openssl s_client -connect 127.0.0.1:443 -noservername \
  -CAfile "$GATE_DIR/sluice-ca.pem" < /dev/null 2>&1); rc=$?
check "TLS without SNI is refused (no certificate)" bash -c "[ $rc -ne 0 ] && ! grep -q 'BEGIN CERTIFICATE' <<< \"\$1\"" _ "$out"
out=$(ct_exec agent curl -s -m 10 http://bigquery.googleapis.com/bigquery/v2/projects/demo-project/plain-10 2>&1)
check_contains "plain HTTP to an intercepted host gets a 403 telling to use https" "$out" "use https://"
ct_exec agent node -e '
  const net = require("net"), tls = require("tls"), fs = require("fs");
  const s = net.connect(3128, "127.0.0.1", () => s.write("CONNECT bigquery.googleapis.com:443 HTTP/1.1\r\nHost: bigquery.googleapis.com:443\r\n\r\n"));
  s.once("data", d => {
    console.log(d.toString().split("\r\n")[0]);
    const t = tls.connect({ socket: s, servername: "oauth2.googleapis.com", ca: fs.readFileSync(process.argv[1]) },
      () => console.log("TLS-UP"));
    t.on("error", e => { console.log("TLS-ERR " + e.code); process.exit(0); });
    t.on("close", () => process.exit(0));
  });
  setTimeout(() => process.exit(0), 5000);' "$GATE_DIR/sluice-ca.pem" > "$GATE_DIR/connect.out" 2>&1
check_contains "CONNECT is answered 200" "$(cat "$GATE_DIR/connect.out")" "200 Connection established"
check "... but a ClientHello naming another host than the CONNECT target is refused" \
  bash -c "! grep -q TLS-UP '$GATE_DIR/connect.out'"
sleep 0.3
check_contains "... and recorded with that reason" "$(gate_conns)" "SNI does not match the CONNECT target"
gate_conns | sed 's/^/# /'
tap_done
