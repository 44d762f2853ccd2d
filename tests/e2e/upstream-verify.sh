#!/usr/bin/env bash
# Description: an upstream whose certificate does not verify gets nothing. On the real path
# (an agent in the enforced container, the eBPF redirect, sluiced), two intercepted hosts are
# pointed at TLS servers of a test CA that sluiced trusts for them: one whose certificate
# names another host (example.com), one whose certificate is right but expired. A well-formed
# request to each gets one 502 from sluiced, with a BigQuery-shaped body saying why, and then
# the connection is closed; the connection record and sluiced's log (once) carry that reason,
# and the server completes no handshake and logs no request byte; a third server of the same
# CA with a valid certificate does receive the same request, so the "nothing forwarded"
# checks can fail. (An upstream from an unknown CA: tests/e2e/gate-attacks.sh.) Needs root
# and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

WRONG_HOST=bigquery.mtls.googleapis.com               # -> certificate for example.com
EXPIRED_HOST=bigquery.europe-west1.rep.googleapis.com # -> right names, expired in 2020
VALID_HOST=www.googleapis.com                         # -> a valid certificate (the control)

gate_standin || exit 1

# --- the test CA and its three leaves ------------------------------------------------------
# mkcerts.sh makes the CA and a valid leaf (its SANs cover *.googleapis.com); openssl ca signs
# the other two, one flaw each: a wrong name (valid dates), or expired dates (right names).
U=$GATE_DIR/upca
tests/standin/mkcerts.sh "$U" >/dev/null || exit 1
mkdir -p "$U/newcerts" && : > "$U/index.txt" && echo 1000 > "$U/serial"
cat > "$U/ca.cnf" <<EOF
[ ca ]
default_ca = tca
[ tca ]
database = $U/index.txt
new_certs_dir = $U/newcerts
serial = $U/serial
default_md = sha256
default_days = 30
policy = pol
unique_subject = no
[ pol ]
commonName = supplied
[ wrongname ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:example.com
[ expired ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$WRONG_HOST,DNS:$EXPIRED_HOST
EOF
leaf() { # NAME CN EXTENSIONS [openssl ca options...]
  local n=$1 cn=$2 ext=$3; shift 3
  openssl ecparam -name prime256v1 -genkey -noout -out "$U/$n.key" 2>/dev/null &&
  openssl req -new -key "$U/$n.key" -subj "/CN=$cn" -out "$U/$n.csr" &&
  openssl ca -batch -notext -config "$U/ca.cnf" -cert "$U/ca.pem" -keyfile "$U/ca.key" \
    -extensions "$ext" -in "$U/$n.csr" -out "$U/$n.pem" "$@" 2>"$U/$n.err" ||
    { sed 's/^/# /' "$U/$n.err"; return 1; }
}
leaf wrongname example.com wrongname || exit 1
leaf expired "$EXPIRED_HOST" expired -startdate 20200101000000Z -enddate 20200102000000Z || exit 1

# The premises, checked with openssl itself: each leaf chains to the test CA and has exactly
# its one flaw.
verify() { openssl verify -CAfile "$U/ca.pem" "$@" 2>&1; }
verify_ok() { verify "$@" >/dev/null; }
check "premise: the wrong-name leaf chains to the test CA" verify_ok "$U/wrongname.pem"
check_contains "premise: ... but is not valid for $WRONG_HOST" \
  "$(verify -verify_hostname "$WRONG_HOST" "$U/wrongname.pem")" "hostname mismatch"
check_eq "premise: the expired leaf ended on 2 January 2020" \
  "$(openssl x509 -noout -enddate -in "$U/expired.pem")" "notAfter=Jan  2 00:00:00 2020 GMT"
check "premise: ... is otherwise valid for $WRONG_HOST (time not checked)" \
  verify_ok -no_check_time -verify_hostname "$WRONG_HOST" "$U/expired.pem"
check "premise: ... and for $EXPIRED_HOST" \
  verify_ok -no_check_time -verify_hostname "$EXPIRED_HOST" "$U/expired.pem"
check_contains "premise: ... and is refused as expired" \
  "$(verify -verify_hostname "$EXPIRED_HOST" "$U/expired.pem")" "certificate has expired"
check "premise: the valid leaf verifies for $VALID_HOST" \
  verify_ok -verify_hostname "$VALID_HOST" "$U/server.pem"

# --- three upstream TLS servers on 127.0.0.1 -----------------------------------------------
# Each appends every byte it receives to NAME.bytes and its events (connection, handshake
# done, TLS error) to NAME.events; once a request head has arrived it answers 200 and closes.
cat > "$GATE_DIR/upstream.js" <<'JS'
const tls = require("tls"), fs = require("fs");
const [cert, key, base] = process.argv.slice(2);
const ev = s => fs.appendFileSync(base + ".events", s + "\n");
fs.writeFileSync(base + ".bytes", "");
const srv = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, s => {
  ev("secure");
  let got = "";
  s.on("data", d => {
    fs.appendFileSync(base + ".bytes", d);
    got += d.toString("latin1");
    if (got.includes("\r\n\r\n")) {
      const body = '{"kind":"bigquery#datasetList","datasets":[]}';
      s.end("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
            body.length + "\r\nConnection: close\r\n\r\n" + body);
    }
  });
  s.on("error", e => ev("error " + (e.code || e.message)));
});
srv.on("connection", () => ev("connection"));
srv.on("tlsClientError", e => ev("tls-error " + (e.code || "") + " " + e.message.trim()));
srv.listen(0, "127.0.0.1", () => fs.writeFileSync(base + ".port", String(srv.address().port)));
JS
upstream() { # NAME LEAF: start it (in this shell: ct_on_cleanup stops it); sets UP_PORT
  node "$GATE_DIR/upstream.js" "$U/$2.pem" "$U/$2.key" "$GATE_DIR/up-$1" \
    > "$GATE_DIR/up-$1.out" 2>&1 &
  GATE_PIDS+=($!)
  gate_wait_for "$GATE_DIR/up-$1.port" . 100 || return 1
  UP_PORT=$(cat "$GATE_DIR/up-$1.port")
}
upstream wrong wrongname || exit 1; WRONG_PORT=$UP_PORT
upstream expired expired || exit 1; EXPIRED_PORT=$UP_PORT
upstream valid server || exit 1; VALID_PORT=$UP_PORT

# --- sluiced, with the three hosts pointed at them and the test CA trusted for them --------
ct_create agent 127.0.0.1
gate_config "$(ct_cgroup agent)" || exit 1
node -e '
  const fs = require("fs"); const [f, ca, ...hp] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  for (let i = 0; i < hp.length; i += 2)
    c.upstream.overrides.push({ host: hp[i], address: "127.0.0.1:" + hp[i + 1], ca_file: ca });
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' \
  "$GATE_DIR/sluice.json" "$U/ca.pem" "$WRONG_HOST" "$WRONG_PORT" \
  "$EXPIRED_HOST" "$EXPIRED_PORT" "$VALID_HOST" "$VALID_PORT" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_warm agent || exit 1

# raw HOST FILE: send FILE's bytes over TLS (SNI HOST, verified with the sluice CA) to
# HOST:443 from inside the container; print what comes back (its first 16 KiB) until the
# gate closes, then "#END HOW TOTAL": HOW is close, error CODE, timeout, or overflow (over
# 64 KiB came back: the client hangs up), TOTAL the bytes that came back.
cat > "$GATE_DIR/raw.js" <<'JS'
const tls = require("tls"), fs = require("fs");
const [host, file, ca] = process.argv.slice(2);
const s = tls.connect({ host, port: 443, servername: host, ca: fs.readFileSync(ca) }, () => {
  s.write(fs.readFileSync(file));
});
let out = "", total = 0, over = false;
s.on("data", d => {
  total += d.length;
  if (out.length < 16384) out += d.toString("latin1").slice(0, 16384 - out.length);
  if (total > 65536 && !over) { over = true; done("overflow"); }
});
function done(how) {
  process.stdout.write(out + "\n#END " + how + " " + total + "\n", () => process.exit(0));
  s.removeAllListeners(); s.on("error", () => {}); s.destroy();
}
s.on("end", () => done("close"));
s.on("close", () => done("close"));
s.on("error", e => done("error " + (e.code || e.message)));
setTimeout(() => done("timeout"), 8000);
JS
raw() { ct_exec agent node "$GATE_DIR/raw.js" "$1" "$2" "$GATE_DIR/sluice-ca.pem" 2>&1; }
P=/bigquery/v2/projects/demo-project/datasets
send() { # HOST: the same well-formed request to HOST; prints the answer
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n' \
    "$P" "$1" > "$GATE_DIR/req-$1"
  raw "$1" "$GATE_DIR/req-$1"
}
# An error answer read as one HTTP/1.1 response with a Content-Length, in four lines:
#   status: its status line
#   error: CODE STATUS REASON | MESSAGE  (BigQuery's error shape)
#   after: the bytes that came after that response
#   end: how the connection ended (raw's #END)
answer_of() {
  node -e '
    const a = process.argv[1], e = a.lastIndexOf("\n#END ");
    const m = /^\n#END (.+) (\d+)\s*$/.exec(a.slice(e)) || [];
    const total = +m[2], head = a.indexOf("\r\n\r\n");
    console.log("status: " + a.slice(0, a.indexOf("\r\n")));
    const cl = /\r\ncontent-length: *(\d+)\r\n/i.exec(a.slice(0, head + 2));
    const len = cl ? +cl[1] : 0, body = a.slice(head + 4, head + 4 + len);
    try {
      const x = JSON.parse(body).error;
      console.log("error: " + x.code + " " + x.status + " " + x.errors[0].reason + " | " + x.message);
    } catch (x) { console.log("error: not JSON: " + x.message); }
    console.log("after: " + (total - (head + 4 + len)) + " bytes");
    console.log("end: " + m[1]);' "$1"
}
# The connection record of HOST (its conn_close), once written.
conn_of() {
  local i
  for i in $(seq 50); do
    gate_conns | grep -F "\"sni\":\"$1\"" && return 0
    sleep 0.1
  done
  return 1
}
nothing_forwarded() { # NAME: its server completed no handshake and got no byte, no request
  ! grep -q '^secure' "$GATE_DIR/up-$1.events" 2>/dev/null && [ ! -s "$GATE_DIR/up-$1.bytes" ] &&
    ! grep -q "GET\|/bigquery" "$GATE_DIR/up-$1.bytes"
}
not() { ! "$@"; }

# Control: the same request to the server with a valid certificate is forwarded, so the
# logging servers would have logged it.
out=$(send "$VALID_HOST")
check_contains "control: valid upstream certificate -> the upstream's 200" "$(head -1 <<< "$out")" "HTTP/1.1 200"
check_eq "control: ... then sluiced closes the connection" "$(answer_of "$out" | sed -n 4p)" "end: close"
check "control: ... and the server logged the request" \
  gate_wait_for "$GATE_DIR/up-valid.bytes" "GET $P HTTP/1.1" 30
check "control: ... so the \"nothing forwarded\" check below fails for it" not nothing_forwarded valid

case_() { # NAME HOST DESCRIPTION REASON: the 502, its body, the record, nothing forwarded
  local name=$1 host=$2 what=$3 reason=$4 out ans msg
  msg="sluice: upstream TLS verification failed for $host: $reason; nothing was forwarded"
  out=$(send "$host")
  ans=$(answer_of "$out")
  sed 's/^/# /' <<< "$ans"
  check_contains "$what -> 502" "$(head -1 <<< "$out")" "HTTP/1.1 502"
  check_eq "... with a BigQuery-shaped body saying why" "$(sed -n 2p <<< "$ans")" \
    "error: 502 UNAVAILABLE backendError | $msg"
  check_eq "... one answer, then sluiced closes the connection" "$(sed -n 3,4p <<< "$ans")" \
    "after: 0 bytes"$'\n'"end: close"
  check_contains "... recorded with that reason" "$(conn_of "$host")" \
    "\"sni\":\"$host\",\"route\":\"intercept\",\"reason\":\"$msg\""
  check_eq "... sluiced logs it, once" "$(grep -cF "warning: proxy: $msg" "$GATE_DIR/sluiced.log")" 1
  check_contains "... the server saw sluiced's handshake and its refusal" \
    "$(cat "$GATE_DIR/up-$name.events" 2>/dev/null)" "tls-error"
  sleep 0.3
  check "... and the server completed no handshake and got no byte: nothing forwarded" \
    nothing_forwarded "$name"
  sed 's/^/#   server: /' "$GATE_DIR/up-$name.events"
}
case_ wrong "$WRONG_HOST" "certificate for example.com at $WRONG_HOST" \
  "hostname mismatch: the certificate is not valid for $WRONG_HOST"
case_ expired "$EXPIRED_HOST" "expired certificate at $EXPIRED_HOST" \
  "certificate verify failed: certificate has expired"

gate_conns | sed 's/^/# /'
tap_done
