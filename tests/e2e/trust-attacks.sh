#!/usr/bin/env bash
# Description: the approval flow and the identity layer attacked through the real path
# (agent in an enforced container, eBPF redirect, sluiced, the stand-in; sluicectl over the
# control socket), by the agent and by a local user who is not an approver. Identity on:
# OIDC subject tokens exchanged at sluiced's STS, sluiced's own Google credential upstream.
# Not an approver (nobody; the agent as an unprivileged uid or as root of its own user
# namespace): no way into the control socket, the approvals journal, the recordings or the
# CA key; the agent holding many connections to the socket does not lock approvers out.
# Identity: subject tokens expired, not yet valid, for another audience or issuer, alg none,
# HS256 keyed with the issuer's public key, of an unknown kid or key, or huge are refused at
# the STS saying why, and the recording says why without keeping the token; an OIDC token
# sent to BigQuery directly, an altered sluice token, another container's token are 401; the
# agent's own Google credentials (X-Goog-Api-Key, ?access_token=, ?key=, cookies,
# X-Goog-User-Project, a second Authorization, OAuth refresh grants, IAM signJwt, the GCE
# metadata server) never reach BigQuery. Approvals: ids are matched whole, an approve and a
# deny racing give one decision recorded once, a denied query retried is held again and the
# recording has what was tried, a held job belongs to the container that asked (another can
# neither cancel it nor run it by its job id) and the real client can follow it by its own
# job id, it runs in the project the approver saw, the SQL the approver is shown is the SQL
# that runs, an approved operation passes again only when identical (query string too), a
# request pipelined behind a held one is decided on its own, an approval window covers one
# identity (not the same sub of another issuer, not another container), an expired approval
# cannot be approved, and a flood meets approvals.max_pending with a clear, recorded error.
# A control case shows the happy path works. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require
[ -d tests/node_modules ] || { echo "tests/node_modules missing: run scripts/install-deps.sh"; exit 1; }
command -v setpriv >/dev/null || ct_skip "needs setpriv (util-linux)"

GATE_IDENTITY=1 GATE_HOLD_MS=3000 GATE_APPROVAL_TIMEOUT=30
MAX_PENDING=8
OTHER_ISSUER="https://other-issuer.sluice.test"
gate_standin || exit 1
ct_create agent 127.0.0.1
ct_create thief 127.0.0.1
cat > "$GATE_DIR/policy.json" <<'JSON'
{ "default": "deny",
  "rules": [
    { "name": "dataset-deletes-need-a-human", "operations": ["bigquery.datasets.delete"],
      "decision": "approve", "reason": "deleting a dataset needs a second pair of eyes" },
    { "name": "crm-writes-need-a-human", "datasets": ["crm"], "access": ["write-data", "ddl"],
      "decision": "approve", "reason": "changes to customer data need a second pair of eyes" },
    { "name": "reads", "statements": ["SELECT"], "decision": "allow" },
    { "name": "read-api", "access": ["read-data", "read-metadata", "job-control"],
      "decision": "allow" } ] }
JSON
GATE_POLICY="$GATE_DIR/policy.json"
gate_config "$(ct_cgroup agent) $(ct_cgroup thief)" || exit 1
# A second trusted issuer (another team's), and a small cap on pending approvals.
node -e '
  const c = require("crypto"), fs = require("fs"), d = process.argv[1];
  const { privateKey, publicKey } = c.generateKeyPairSync("rsa", { modulusLength: 2048 });
  fs.writeFileSync(d + "/oidc/other.key", privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  const jwk = publicKey.export({ format: "jwk" });
  Object.assign(jwk, { kid: "other-1", alg: "RS256", use: "sig" });
  fs.writeFileSync(d + "/oidc/other-jwks.json", JSON.stringify({ keys: [jwk] }));
  const stray = c.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  fs.writeFileSync(d + "/oidc/stray.key", stray.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  const f = d + "/sluice.json", conf = JSON.parse(fs.readFileSync(f, "utf8"));
  conf.identity.issuers.push({ issuer: process.argv[2], audience: process.argv[3],
    jwks_file: d + "/oidc/other-jwks.json", algs: ["RS256"], groups_claim: "groups" });
  conf.approvals.max_pending = +process.argv[4];
  fs.writeFileSync(f, JSON.stringify(conf, null, 2));' \
  "$GATE_DIR" "$OTHER_ISSUER" "$GATE_OIDC_AUDIENCE" "$MAX_PENDING" || exit 1
openssl pkey -in "$GATE_DIR/oidc/issuer.key" -pubout -out "$GATE_DIR/oidc/issuer.pub" 2>/dev/null
# As if sluiced's state lived in a directory others may traverse (/var/lib is 0755): the
# modes sluiced gives what it creates must keep them out on their own.
chmod 755 "$GATE_DIR"
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem" || exit 1
gate_agent_key || exit 1                                # agent: sub "agent", analysts
gate_oidc_token thief '["analysts"]' "$GATE_DIR/oidc/thief.jwt"
gate_external_account "$GATE_DIR/oidc/thief.jwt" "$GATE_DIR/thief-key.json"
gate_wait_for "$GATE_DIR/standin.log" '"path":"/token"' || exit 1 # sluiced's own token
gate_warm agent || exit 1
gate_warm thief || exit 1
export SLUICE_SOCKET="$GATE_DIR/ctl/sluice.sock"
SL=$GATE_DIR/standin.log
P=/bigquery/v2/projects/demo-project
BQ=bigquery.googleapis.com

# --- helpers ---------------------------------------------------------------------------------

# mint OUT OPTIONS_JSON: a JWT; options: iss aud sub groups exp nbf (seconds from now) alg kid
# key (PEM file: RS256 signs with it, HS256 uses its bytes as the secret) pad (bytes of junk).
cat > "$GATE_DIR/mint.cjs" <<'JS'
const c = require("crypto"), fs = require("fs");
const o = JSON.parse(process.argv[3]), e = process.env;
const b64 = x => Buffer.from(JSON.stringify(x)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const hdr = { alg: o.alg || "RS256", typ: "JWT" };
if (o.kid !== null) hdr.kid = o.kid === undefined ? "e2e-1" : o.kid;
const pl = { iss: o.iss || e.ISS, aud: o.aud || e.AUD, sub: o.sub || "agent",
             groups: o.groups || ["analysts"], iat: now - 5, exp: now + (o.exp === undefined ? 3600 : o.exp) };
if (o.nbf !== undefined) pl.nbf = now + o.nbf;
if (o.pad) pl.pad = "x".repeat(o.pad);
const data = b64(hdr) + "." + b64(pl), key = fs.readFileSync(o.key || e.GATE_DIR + "/oidc/issuer.key");
const sig = hdr.alg === "RS256" ? c.sign("sha256", Buffer.from(data), key).toString("base64url")
          : hdr.alg === "HS256" ? c.createHmac("sha256", key).update(data).digest("base64url") : "";
fs.writeFileSync(process.argv[2], data + "." + sig);
JS
mint() { GATE_DIR="$GATE_DIR" ISS=$GATE_OIDC_ISSUER AUD=$GATE_OIDC_AUDIENCE node "$GATE_DIR/mint.cjs" "$@"; }

# raw CT HOST [RESPONSES] [WAIT_MS] < REQUEST_BYTES: the bytes over TLS to HOST:443 from
# container CT (PLAIN=1: plain TCP to HOST:80); prints each response as one line
# "STATUS BODY" (JSON compacted, else whitespace squeezed), or "000 why" when none came.
cat > "$GATE_DIR/raw.cjs" <<'JS'
const tls = require("tls"), net = require("net");
const [host, want, ms] = [process.argv[2], +(process.argv[3] || 1), +(process.argv[4] || 8000)];
const chunks = [];
process.stdin.on("data", d => chunks.push(d)).on("end", () => {
  let buf = Buffer.alloc(0), got = [], ended = false;
  const done = why => {
    if (ended) return; ended = true;
    for (const r of got) console.log(r);
    if (!got.length) console.log("000 " + why);
    process.exit(0);
  };
  const s = process.env.PLAIN ? net.connect({ host, port: 80 }, () => s.write(Buffer.concat(chunks)))
    : tls.connect({ host, port: 443, servername: host }, () => s.write(Buffer.concat(chunks)));
  s.on("data", d => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const h = buf.indexOf("\r\n\r\n");
      if (h < 0) break;
      const head = buf.subarray(0, h).toString(), m = /^HTTP\/1\.1 (\d+)/.exec(head);
      const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
      const n = cl ? +cl[1] : 0;
      if (buf.length < h + 4 + n) break;
      const st = m ? +m[1] : 0;
      let body = buf.subarray(h + 4, h + 4 + n).toString();
      try { body = JSON.stringify(JSON.parse(body)); } catch (e) { body = body.replace(/\s+/g, " "); }
      buf = buf.subarray(h + 4 + n);
      if (st >= 100 && st < 200) continue;
      got.push(st + " " + body);
      if (got.length >= want) return done();
    }
  });
  s.on("end", () => done("closed")).on("close", () => done("closed"));
  s.on("error", e => done(e.message));
  setTimeout(() => done("timeout"), ms);
});
JS
raw() { # CT HOST [RESPONSES] [WAIT_MS]
  local ct=$1; shift
  ct_exec "$ct" env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" node "$GATE_DIR/raw.cjs" "$@" 2>&1
}
# req METHOD PATH HOST AUTH BODY [HEADER...]: one HTTP/1.1 request (ASCII only)
req() {
  local m=$1 p=$2 h=$3 a=$4 b=$5 x ct=application/json; shift 5
  [[ "$b" == grant_type=* ]] && ct=application/x-www-form-urlencoded
  printf '%s %s HTTP/1.1\r\nHost: %s\r\n' "$m" "$p" "$h"
  [ -n "$a" ] && printf 'Authorization: %s\r\n' "$a"
  for x in "$@"; do printf '%s\r\n' "$x"; done
  if [ -n "$b" ]; then printf 'Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s' "$ct" "${#b}" "$b"
  else printf '\r\n'; fi
}
sts_form() { # SUBJECT_TOKEN: the form body of a token exchange
  printf 'grant_type=urn:ietf:params:oauth:grant-type:token-exchange&audience=%s&scope=https%%3A%%2F%%2Fwww.googleapis.com%%2Fauth%%2Fbigquery&requested_token_type=urn:ietf:params:oauth:token-type:access_token&subject_token_type=urn:ietf:params:oauth:token-type:jwt&subject_token=%s' \
    "$(node -p 'encodeURIComponent(process.argv[1])' "$GATE_STS_AUDIENCE")" "$1"
}
sts() { # CT SUBJECT_TOKEN: the STS answer, "STATUS BODY"
  req POST /v1/token sts.googleapis.com "" "$(sts_form "$2")" | raw "$1" sts.googleapis.com
}
token_of() { # "STATUS BODY" of a 200 exchange -> the access token
  node -e 'try { console.log(JSON.parse(process.argv[1].replace(/^\d+ /, "")).access_token || "") }
           catch (e) { console.log("") }' "$1"
}
# js EXPR: evaluate a JavaScript expression over the JSON on stdin (bound to o)
js() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let o;try{o=JSON.parse(s)}catch(e){o=null}
  console.log(eval(process.argv[1]))})' "$1"; }
# Every record of every recording, one JSON line each.
records() { cat "$GATE_DIR"/records/*/*.jsonl 2>/dev/null; }
nodeenv() { # CT: the environment of the real client in container CT
  echo env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" NODE_PATH="$PWD/tests/node_modules" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/$([ "$1" = thief ] && echo thief || echo agent)-key.json"
}
# job CT SQL: the real client creates a query job (jobs.insert; it returns at once, pending
# when held); prints the job id the client chose and the one in the answer, or "ERR message".
job() {
  # shellcheck disable=SC2046
  ct_exec "$1" $(nodeenv "$1") node -e '
    const { BigQuery } = require("@google-cloud/bigquery");
    new BigQuery({ projectId: "demo-project" }).createQueryJob({ query: process.argv[1], useLegacySql: false })
      .then(([j]) => console.log(j.id + " " + j.metadata.jobReference.jobId), e => console.log("ERR " + e.message));' "$2" 2>&1
}
# The id of the approval whose job is $1.
approval_of_job() {
  build/sluicectl approvals --json 2>/dev/null | js "(o||[]).filter(x => x.job_id === '$1').map(x => x.id).join(' ')"
}
state_of() { build/sluicectl show "$1" --json 2>/dev/null | js 'o && o.state'; }
approval_records() { # ID: how many approval records the recordings hold for it
  records | node -e 'let n=0;require("readline").createInterface({input:process.stdin}).on("line",l=>{
    try{const r=JSON.parse(l);if(r.type==="approval"&&r.data.id===process.argv[1])n++}catch(e){}}).on("close",()=>console.log(n))' "$1"
}

# --- control: the happy path works, so that the refusals below can fail -----------------------
out=$(ct_exec agent $(nodeenv agent) node tests/e2e/lib/agent.mjs \
  'SELECT COUNT(*) AS n FROM `demo-project.sales.orders`' 2>&1)
check_contains "control: the real client with workload identity gets its rows" "$out" '"ok":true'
ANS=$(sts agent "$(cat "$GATE_DIR/oidc/agent.jwt")")
check_contains "control: the agent's STS exchange by hand: 200" "$ANS" "200 "
TOK=$(token_of "$ANS")
check_contains "... a sluice token" "$TOK" "sluice1."
TTOK=$(token_of "$(sts thief "$(cat "$GATE_DIR/oidc/thief.jwt")")")
check_contains "control: the thief has its own sluice token" "$TTOK" "sluice1."
out=$(req GET "$P/datasets" $BQ "Bearer $TOK" "" | raw agent $BQ)
check_contains "control: a raw request with the sluice token: 200" "$out" "200 "
check_contains "... listing the datasets" "$out" '"datasetId":"crm"'
# A held job nobody answers: it expires (approvals.timeout_s 30) while the rest runs.
EXP_JOB=$(job agent 'UPDATE `demo-project.crm.customers` SET phone = "expire-me" WHERE customer_id = 30')
EXP_JOB=${EXP_JOB#* }
EXP_AT=$(( $(date +%s) + GATE_APPROVAL_TIMEOUT + 1 ))
check "control: a write to crm is held (a pending approval for the client's own job id)" \
  test -n "$EXP_JOB" -a -n "$(approval_of_job "$EXP_JOB")"

# --- a local user who is not an approver ----------------------------------------------------
asnobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@" 2>&1; }
check_eq "the control socket's directory: root's, 0750" "$(stat -c '%U %a' "$GATE_DIR/ctl")" "root 750"
check_eq "the control socket: 0660" "$(stat -c %a "$SLUICE_SOCKET")" 660
for op in "approvals" "show x" "approve x" "deny x --reason r"; do
  # shellcheck disable=SC2086
  out=$(asnobody env SLUICE_SOCKET="$SLUICE_SOCKET" build/sluicectl $op); rc=$?
  check_eq "nobody: sluicectl $op: exit 1" "$rc" 1
  check_contains "... not authorized, saying why" "$out" "not authorized: cannot open $SLUICE_SOCKET: permission denied"
done
out=$(asnobody ls "$GATE_DIR/approvals"); rc=$?
check "nobody cannot list the approvals journal (the SQL of every held request)" test $rc -ne 0
out=$(asnobody ls "$GATE_DIR/records"); rc=$?
check "nobody cannot list the recordings" test $rc -ne 0
out=$(asnobody env build/sluicectl sessions --dir "$GATE_DIR/records"); rc=$?
check "... nor read them with sluicectl sessions (exit $rc)" test $rc -ne 0
out=$(asnobody cat "$GATE_DIR/ca.key"); rc=$?
check "nobody cannot read the CA key that would mint googleapis.com certificates" test $rc -ne 0
check "... (0600)" test "$(stat -c %a "$GATE_DIR/ca.key")" = 600

# The agent in its container, as an unprivileged uid, and as root of its own user namespace.
out=$(ct_exec agent setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env SLUICE_SOCKET="$SLUICE_SOCKET" build/sluicectl approvals 2>&1); rc=$?
check_eq "the agent as an unprivileged uid: sluicectl approvals: exit 1" "$rc" 1
check_contains "... not authorized" "$out" "not authorized"
out=$(ct_exec agent setpriv --reuid=nobody --regid=nogroup --clear-groups unshare --user \
  --map-root-user env SLUICE_SOCKET="$SLUICE_SOCKET" build/sluicectl approvals 2>&1); rc=$?
check_eq "the agent as root of its own user namespace: exit 1" "$rc" 1
check_contains "... not authorized" "$out" "not authorized"
# The agent as root in its cgroup is refused (tests/e2e/approvals.sh); may it fill the
# control socket's connection slots so that the approvers cannot get in?
ct_exec agent node -e '
  const net = require("net"), fs = require("fs");
  let up = 0;
  const open = () => net.connect(process.argv[1])
    .on("connect", () => { if (++up === 64) fs.writeFileSync(process.argv[2], "up"); })
    .on("error", () => setTimeout(open, 20)); /* a full backlog: try again */
  for (let i = 0; i < 64; i++) open();
  setTimeout(() => process.exit(0), 6000);' "$SLUICE_SOCKET" "$GATE_DIR/hog.up" > /dev/null 2>&1 & hog=$!
gate_wait_for "$GATE_DIR/hog.up" up 50 >/dev/null || echo "# the agent could not open 64 connections"
sleep 0.3
out=$(timeout 4 build/sluicectl approvals 2>&1); rc=$?
wait $hog
check_eq "the agent holding 64 connections to the control socket does not lock the approvers out" "$rc" 0
[ $rc -eq 0 ] || echo "#   sluicectl: $out"

# --- identity: subject tokens the STS must refuse --------------------------------------------
tokens_before=$(grep -c '"path":"/token"' "$SL")
bad_sts() { # DESCRIPTION MINT_OPTIONS EXPECTED_IN_MESSAGE
  mint "$GATE_DIR/bad.jwt" "$2" || { check "$1: minted" false; return; }
  local out sig
  out=$(sts agent "$(cat "$GATE_DIR/bad.jwt")")
  check_contains "STS, $1: 400" "$out" "400 "
  check_contains "... invalid_grant, saying why ($3)" "$out" "$3"
  sig=$(cut -d. -f3 "$GATE_DIR/bad.jwt"); sig=${sig:0:40}
  check "... and nothing of it reached the stand-in" bash -c "! grep -qF -- '${sig:-$(cut -c1-60 "$GATE_DIR/bad.jwt")}' '$SL'"
}
bad_sts "an expired subject token" '{"exp": -120}' "expired"
bad_sts "a subject token not yet valid (nbf)" '{"nbf": 600}' "not yet valid"
bad_sts "another audience" '{"aud": "some-other-service"}' "audience"
bad_sts "an issuer sluice does not trust" '{"iss": "https://evil.example"}' "not trusted"
bad_sts "alg none" '{"alg": "none"}' "none"
bad_sts "HS256 keyed with the issuer's RSA public key (alg confusion)" \
  "{\"alg\": \"HS256\", \"key\": \"$GATE_DIR/oidc/issuer.pub\"}" "HMAC"
bad_sts "a kid the JWKS does not have" '{"kid": "attacker-kid"}' "attacker-kid"
bad_sts "the issuer's kid, signed by a key not in its JWKS" \
  "{\"key\": \"$GATE_DIR/oidc/stray.key\"}" "signature"
bad_sts "the trusted issuer's key, claiming the other trusted issuer" \
  "{\"iss\": \"$OTHER_ISSUER\"}" "e2e-1"
mint "$GATE_DIR/huge.jwt" '{"pad": 200000}'
out=$(sts agent "$(cat "$GATE_DIR/huge.jwt")")
check_contains "STS, a 200 KB subject token: 400" "$out" "400 "
check_contains "... saying it is too large" "$out" "too large"
check_eq "none of these exchanges reached the stand-in's token endpoints" \
  "$(grep -c '"path":"/token"' "$SL") $(grep -c '"path":"/v1/token' "$SL")" "$tokens_before 0"
n=$(records | node -e 'let n=0,w=0;require("readline").createInterface({input:process.stdin}).on("line",l=>{
  try{const r=JSON.parse(l);if(r.type==="request"&&r.data.host==="sts.googleapis.com"){n++;
  if(/refused|expired|audience|trusted|signature|none|HMAC|too large/.test(JSON.stringify({ ...r.data, body: 0 })))w++}}catch(e){}})
  .on("close",()=>console.log(n+" "+w))')
echo "# recorded STS exchanges / those saying why they were refused: $n; the expired one's record:"
records | grep '"type":"request"' | grep '"sts.googleapis.com"' | sed -n 2p | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf8")), d = r.data;
  console.log("#   " + JSON.stringify({ decision: d.decision, rule: d.rule, reason: d.reason, status: d.status,
    body: (d.body && d.body.text || "").slice(0, 60) + "..." }))'
check "the recording has every token exchange (${n% *} of at least 12)" test "${n% *}" -ge 12
check "... and says why each refused one was refused (${n#* } of 10)" test "${n#* }" -ge 10
sig=$(cut -d. -f3 "$GATE_DIR/oidc/agent.jwt")
check "the recording does not keep the agent's OIDC subject token (a credential any container can exchange) in clear" \
  bash -c "! cat '$GATE_DIR'/records/*/*.jsonl | grep -qF -- '${sig:0:40}'"

# --- identity: what is not the agent's identity at BigQuery -----------------------------------
out=$(req GET "$P/datasets" $BQ "Bearer $(cat "$GATE_DIR/oidc/agent.jwt")" "" | raw agent $BQ)
check_contains "the OIDC token itself presented to BigQuery: 401" "$out" "401 "
check_contains "... saying to exchange it at the STS first" "$out" "STS"
forged=$(node -e '
  const [pre, mac] = [process.argv[1].slice(0, process.argv[1].lastIndexOf(".")), process.argv[1].slice(process.argv[1].lastIndexOf(".") + 1)];
  const p = JSON.parse(Buffer.from(pre.slice(8), "base64url"));
  p.sub = "root"; p.groups = ["admins"];
  console.log("sluice1." + Buffer.from(JSON.stringify(p)).toString("base64url") + "." + mac);' "$TOK")
out=$(req GET "$P/datasets" $BQ "Bearer $forged" "" | raw agent $BQ)
check_contains "a sluice token with its claims altered (sub root, groups admins): 401" "$out" "401 "
check_contains "... bad signature" "$out" "bad signature"
out=$(req GET "$P/datasets" $BQ "Bearer $TTOK" "" | raw agent $BQ)
check_contains "the thief's sluice token used from the agent's container: 401" "$out" "401 "

# --- identity: the agent's own Google credentials never reach BigQuery ------------------------
leak() { # DESCRIPTION SECRET REQUEST_ARGS...: SECRET never in the stand-in's log (the request
  # refused, or passed with sluiced's credential only: checked for all requests at the end)
  local what=$1 secret=$2 out; shift 2
  out=$(req "$@" | raw agent "$3")
  echo "# $what: ${out:0:300}"
  check "$what: never reaches the stand-in (answered ${out:0:3})" bash -c "! grep -qF -- '$secret' '$SL'"
}
AIZA=AIzaSyLEAKaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
leak "a Google API key in X-Goog-Api-Key" "$AIZA" GET "$P/datasets" $BQ "Bearer $TOK" "" "X-Goog-Api-Key: $AIZA"
leak "a Google token in ?access_token=" "ya29.LEAKquery" GET "$P/datasets?access_token=ya29.LEAKquery" $BQ "Bearer $TOK" ""
leak "a Google API key in ?key=" "AIzaSyLEAKkey" GET "$P/datasets?key=AIzaSyLEAKkeyaaaaaaaaaaaaaaaaaaaaaaaaa" $BQ "Bearer $TOK" ""
leak "Google session cookies" "LEAKcookie" GET "$P/datasets" $BQ "Bearer $TOK" "" \
  "Cookie: SID=LEAKcookie1; __Secure-3PSID=LEAKcookie2" "X-Goog-AuthUser: 0"
leak "a second Authorization header with a Google token" "ya29.LEAKsecond" GET "$P/datasets" $BQ \
  "Bearer $TOK" "" "Authorization: Bearer ya29.LEAKsecond"
leak "a Google token first, the sluice token second" "ya29.LEAKfirst" GET "$P/datasets" $BQ \
  "Bearer ya29.LEAKfirst" "" "Authorization: Bearer $TOK"
leak "the agent choosing the project billed for sluiced's credential (X-Goog-User-Project)" \
  "agent-billing-project" GET "$P/datasets" $BQ "Bearer $TOK" "" "X-Goog-User-Project: agent-billing-project"
leak "an OAuth refresh-token grant (a user's Google credential)" "1//LEAKrefresh" POST /token \
  oauth2.googleapis.com "" "grant_type=refresh_token&client_id=x.apps.googleusercontent.com&client_secret=LEAKsecret&refresh_token=1//LEAKrefresh"
leak "the same grant at www.googleapis.com/oauth2/v4/token" "1//LEAKv4" POST /oauth2/v4/token \
  www.googleapis.com "" "grant_type=refresh_token&client_id=x&refresh_token=1//LEAKv4"
leak "IAM Credentials signJwt with the sluice token" "LEAKsignjwt" \
  POST "/v1/projects/-/serviceAccounts/sa@demo-project.iam.gserviceaccount.com:signJwt" \
  iamcredentials.googleapis.com "Bearer $TOK" '{"payload":"LEAKsignjwt"}'
leak "IAM generateAccessToken with a Google token" "ya29.LEAKiam" \
  POST "/v1/projects/-/serviceAccounts/sa@demo-project.iam.gserviceaccount.com:generateAccessToken" \
  iamcredentials.googleapis.com "Bearer ya29.LEAKiam" '{"scope":["https://www.googleapis.com/auth/bigquery"]}'
gid=$(node -e 'const b=x=>Buffer.from(JSON.stringify(x)).toString("base64url");
  console.log(b({alg:"RS256",kid:"g"})+"."+b({iss:"https://accounts.google.com",aud:"x",sub:"1",exp:9e9})+".LEAKgoogleid")')
out=$(sts agent "$gid")
check_contains "STS with a Google ID token as subject: 400" "$out" "400 "
check_contains "... the agent should not hold Google credentials" "$out" "should not hold Google credentials"
check "... and it never reached the stand-in" bash -c "! grep -qF LEAKgoogleid '$SL'"
out=$(req GET /computeMetadata/v1/instance/service-accounts/default/token 169.254.169.254 "" "" \
  "Metadata-Flavor: Google" | PLAIN=1 raw agent 169.254.169.254)
echo "# metadata server: $out" | cut -c1-300
check "the GCE metadata server (the node's own credential) is not reachable from the agent" \
  bash -c "[[ '$out' != 200* ]]"
check_eq "the stand-in never saw an Authorization other than sluiced's own" \
  "$(node -e 'let bad=0;for(const l of require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n")){
    const r=JSON.parse(l);if(r.path==="/token")continue;
    if(!/^Bearer standin-token-[0-9a-f]+$/.test(r.headers.authorization||""))bad++}console.log(bad)' "$SL")" 0

# --- approvals: ids -----------------------------------------------------------------------------
EXP_ID=$(approval_of_job "$EXP_JOB")
check "the held job is listed for the approvers" test -n "$EXP_ID"
out=$(build/sluicectl approve zzzzzz 2>&1); rc=$?
check_eq "approve an id that does not exist: exit 1" "$rc" 1
check_contains "... saying so" "$out" "no approval 'zzzzzz'"
out=$(build/sluicectl approve "${EXP_ID:0:3}" 2>&1); rc=$?
check_eq "approve a prefix of a real id: exit 1 (ids are matched whole)" "$rc" 1
check_contains "... no approval by that name" "$out" "no approval '${EXP_ID:0:3}'"
check_eq "... and the request is still pending" "$(state_of "$EXP_ID")" pending

# --- approvals: approve and deny at once, three times -----------------------------------------
for r in 1 2 3; do
  j=$(job agent "UPDATE \`demo-project.crm.customers\` SET phone = \"race$r\" WHERE customer_id = $((10 + r))")
  id=$(approval_of_job "${j#* }")
  build/sluicectl approve "$id" > "$GATE_DIR/race-a" 2>&1 & pa=$!
  build/sluicectl deny "$id" --reason "racing" > "$GATE_DIR/race-d" 2>&1 & pd=$!
  wait $pa; ra=$?; wait $pd; rd=$?
  check_eq "race $r ($id): exactly one of approve and deny succeeds" "$ra$rd" "$([ $ra -eq 0 ] && echo 01 || echo 10)"
  check_contains "... the other is told it was already decided" \
    "$(cat "$GATE_DIR/race-a" "$GATE_DIR/race-d")" "is already"
  check_eq "... the state is the winner's" "$(state_of "$id")" "$([ $ra -eq 0 ] && echo approved || echo denied)"
  for _ in $(seq 30); do [ "$(approval_records "$id")" -ge 1 ] && break; sleep 0.1; done
  check_eq "... and recorded once" "$(approval_records "$id")" 1
done

# --- approvals: a job waiting for approval belongs to the container that asked ---------------
J1=$(job agent 'UPDATE `demo-project.crm.customers` SET email = "cancel@example.com" WHERE customer_id = 20')
J1=${J1#* }
ID1=$(approval_of_job "$J1")
out=$(req POST "$P/jobs/$J1/cancel" $BQ "Bearer $TTOK" "" | raw thief $BQ)
echo "# the thief cancels the agent's held job: ${out:0:300}"
check_eq "another container cannot cancel the agent's held job (it stays pending)" "$(state_of "$ID1")" pending
[ "$(state_of "$ID1")" = pending ] && build/sluicectl deny "$ID1" --reason "test over" >/dev/null
J1=$(job agent 'UPDATE `demo-project.crm.customers` SET email = "mine@example.com" WHERE customer_id = 21')
C1=${J1% *} J1=${J1#* }
ID1=$(approval_of_job "$J1")
out=$(req GET "$P/queries/$J1?timeoutMs=200" $BQ "Bearer $TTOK" "" | raw thief $BQ)
echo "# the thief polls it while pending: ${out:0:300}"
build/sluicectl approve "$ID1" >/dev/null
out=$(req GET "$P/queries/$J1?timeoutMs=200" $BQ "Bearer $TTOK" "" | raw thief $BQ)
echo "# the thief polls it once approved: ${out:0:300}"
check "another container cannot run the agent's approved job by polling its job id" \
  bash -c "! grep -q 'mine@example.com' '$SL'"
records | node -e 'require("readline").createInterface({input:process.stdin}).on("line",l=>{const r=JSON.parse(l);
  if(r.type==="request"&&/mine@example/.test(r.data.submitted_job||""))console.log("#   recorded as "+r.data.decision+" in stream "+r.stream+" (pid "+r.data.pid+")")})'
getres() { # CT JOB_ID: the real client's getQueryResults of a job
  ct_exec "$1" $(nodeenv "$1") node -e '
    const { BigQuery } = require("@google-cloud/bigquery");
    new BigQuery({ projectId: "demo-project" }).job(process.argv[1]).getQueryResults()
      .then(() => console.log("done"), e => console.log("ERR " + e.message));' "$2" 2>&1
}
out=$(getres agent "$C1")
echo "# the client polls the job id it chose ($C1): $out"
check_contains "the real client's createQueryJob (jobs.insert, its own job id) follows its approved job" "$out" "done"
out=$(getres agent "$J1")
check_contains "the agent polling the job id sluice answered gets its approved job done" "$out" "done"
check_eq "... which ran exactly once" "$(grep -c 'mine@example.com' "$SL")" 1

# --- approvals: the approved job runs in the project the approver saw ----------------------
J2=$(job agent 'UPDATE `demo-project.crm.customers` SET email = "project@example.com" WHERE customer_id = 22')
J2=${J2#* }
ID2=$(approval_of_job "$J2")
check_eq "the approver is shown the job's project" "$(build/sluicectl show "$ID2" --json | js o.project)" demo-project
build/sluicectl approve "$ID2" >/dev/null
out=$(req GET "/bigquery/v2/projects/other-project/queries/$J2?timeoutMs=200" $BQ "Bearer $TOK" "" | raw agent $BQ)
echo "# polled under another project: ${out:0:300}"
grep 'other-project' "$SL" | node -e 'require("readline").createInterface({input:process.stdin}).on("line",l=>{
  const r=JSON.parse(l);console.log("#   the stand-in got: "+r.method+" "+r.path+" "+JSON.stringify(r.body).slice(0,300))})'
# (the poll itself may go on as a read of a job that is not there: only a job submitted in
# other-project would be the approved one running where the approver did not look)
check "polling the approved job under another project does not run it there" \
  bash -c "! grep '\"path\":\"/bigquery/v2/projects/other-project' '$SL' | grep -q '\"method\":\"POST\"'"

# --- approvals: denied, then retried -----------------------------------------------------------
QD='UPDATE `demo-project.crm.customers` SET email = "denied@example.com" WHERE customer_id = 23'
ct_exec agent $(nodeenv agent) node tests/e2e/lib/agent.mjs "$QD" > "$GATE_DIR/qd.out" 2>&1 & qd=$!
for _ in $(seq 100); do
  IDD=$(build/sluicectl approvals --json 2>/dev/null | js '(o||[]).filter(x => x.state === "pending" && x.sql.includes("denied@")).map(x => x.id).join("")')
  [ -n "$IDD" ] && break; sleep 0.1
done
build/sluicectl deny "$IDD" --reason "not this customer" >/dev/null
wait $qd
check_contains "a denied query fails with the approver's reason" "$(cat "$GATE_DIR/qd.out")" "not this customer"
JD=$(job agent "$QD"); JD=${JD#* }
IDD2=$(approval_of_job "$JD")
check "the identical query retried after the denial is held again (a new approval)" \
  bash -c "[ -n '$IDD2' ] && [ '$IDD2' != '$IDD' ] && [ \"\$(build/sluicectl show '$IDD2' --json | node -pe 'JSON.parse(require(\"fs\").readFileSync(0)).state')\" = pending ]"
check "... and never reached BigQuery" bash -c "! grep -q 'denied@example.com' '$SL'"
check "the recording has the denied query (what the agent tried, not only the verdict)" \
  bash -c "cat '$GATE_DIR'/records/*/*.jsonl | grep -q 'denied@example.com'"
build/sluicectl deny "$IDD2" --reason "still no" >/dev/null

# --- approvals: an approved operation passes only when retried identical ----------------------
out=$(req DELETE "$P/datasets/hr" $BQ "Bearer $TOK" "" | raw agent $BQ 1 15000)
check_contains "deleting a dataset is held, then refused naming the approval" "$out" "sluicectl approve "
IDO=$(grep -o "sluicectl approve [a-z0-9]*" <<< "$out" | head -1 | awk '{ print $3 }')
build/sluicectl approve "$IDO" >/dev/null
out=$(req DELETE "$P/datasets/hr?deleteContents=true" $BQ "Bearer $TOK" "" | raw agent $BQ 1 15000)
echo "# retried with deleteContents=true: ${out:0:300}"
check "the approval of 'delete dataset hr' does not pass 'delete hr with all its tables' (deleteContents=true)" \
  bash -c "! grep -q 'deleteContents' '$SL'"
out=$(req DELETE "$P/datasets/hr" $BQ "Bearer $TOK" "" | raw agent $BQ 1 15000)
echo "# retried identical: ${out:0:300}"
check "... the identical retry does pass" grep -q '"method":"DELETE","path":"/bigquery/v2/projects/demo-project/datasets/hr"' "$SL"

# --- approvals: a request pipelined behind a held one is decided on its own ------------------
ins() { req POST "$P/datasets/crm/tables/customers/insertAll" $BQ "Bearer $TOK" \
  "{\"rows\":[{\"json\":{\"customer_id\":$1,\"name\":\"Pipe\",\"email\":\"$2\"}}]}"; }
{ ins 901 pipe1@example.com; ins 902 pipe2@example.com; } | raw agent $BQ 2 20000 > "$GATE_DIR/pipe.out" & pp=$!
for _ in $(seq 100); do
  IDP=$(build/sluicectl approvals --json 2>/dev/null | js '(o||[]).filter(x => x.state === "pending" && /insertAll/.test(x.method)).map(x => x.id).join(" ")')
  [ -n "$IDP" ] && break; sleep 0.05
done
check_eq "two pipelined insertAll: one approval at a time" "$(wc -w <<< "$IDP")" 1
build/sluicectl approve "$IDP" >/dev/null
wait $pp
echo "# pipelined answers: $(cut -c1-200 "$GATE_DIR/pipe.out")"
check "the approved first one reached BigQuery" grep -q 'pipe1@example.com' "$SL"
check "the second one, never approved, did not" bash -c "! grep -q 'pipe2@example.com' '$SL'"
check_contains "... it was held for its own approval and refused" "$(sed -n 2p "$GATE_DIR/pipe.out")" "sluicectl approve "

# --- approvals and identity: the same subject from another issuer is another identity ---------
mint "$GATE_DIR/oidc/other.jwt" "{\"iss\": \"$OTHER_ISSUER\", \"kid\": \"other-1\", \"key\": \"$GATE_DIR/oidc/other.key\"}"
OTOK=$(token_of "$(sts agent "$(cat "$GATE_DIR/oidc/other.jwt")")")
check_contains "a token of the second trusted issuer, same sub \"agent\": exchanged" "$OTOK" "sluice1."
QW='UPDATE `demo-project.crm.customers` SET phone = "window" WHERE customer_id = 24'
body="{\"query\":$(node -p 'JSON.stringify(process.argv[1])' "$QW"),\"useLegacySql\":false}"
out=$(req POST "$P/queries" $BQ "Bearer $TOK" "$body" | raw agent $BQ)
JW=$(js 'o.jobReference.jobId' <<< "${out#* }")
check_contains "a write to crm by jobs.query is held" "$JW" sluice_approval_
build/sluicectl approve "$(approval_of_job "$JW")" --for 10m >/dev/null
out=$(req POST "$P/queries" $BQ "Bearer $OTOK" "$body" | raw agent $BQ)
echo "# the other issuer's \"agent\" sends the query approved with a window: ${out:0:200}"
n=$(grep -c 'customer_id = 24' "$SL")
check_eq "the window approved for one issuer's \"agent\" does not pass another issuer's \"agent\"" "$n" 0
out=$(req POST "$P/queries" $BQ "Bearer $TTOK" "$body" | raw thief $BQ)
check_eq "... nor another container's identity (the thief)" "$(grep -c 'customer_id = 24' "$SL")" "$n"
out=$(req POST "$P/queries" $BQ "Bearer $TOK" "$body" | raw agent $BQ)
check_eq "... while it does pass the identity it was approved for" "$(grep -c 'customer_id = 24' "$SL")" "$((n + 1))"

# --- approvals: the approver is shown the SQL that runs ------------------------------------------
decoy='UPDATE `demo-project.crm.customers` SET phone = "555-decoy" WHERE customer_id = 7'
real='UPDATE `demo-project.crm.customers` SET email = "hidden@evil.example" WHERE customer_id > 0'
body=$(node -e 'console.log(JSON.stringify({ query: process.argv[1], configuration: { query: {
  query: process.argv[2], useLegacySql: false } }, jobReference: { projectId: "demo-project", jobId: "agent_chose_this" } }))' "$decoy" "$real")
out=$(req POST "$P/jobs" $BQ "Bearer $TOK" "$body" | raw agent $BQ)
JX=$(js 'o.jobReference.jobId' <<< "${out#* }")
check "jobs.insert with a decoy top-level \"query\" beside configuration.query.query: held" \
  test "$JX" = agent_chose_this -a -n "$(approval_of_job agent_chose_this)"
IDX=$(approval_of_job "$JX")
shown=$(build/sluicectl show "$IDX" --json | js o.sql)
echo "# the approver is shown: $shown"
check_contains "the approver is shown the SQL that would run, not the decoy" "$shown" "hidden@evil.example"
build/sluicectl approve "$IDX" >/dev/null
out=$(req GET "$P/queries/$JX?timeoutMs=200" $BQ "Bearer $TOK" "" | raw agent $BQ)
ran=$(grep -c 'hidden@evil' "$SL")
check "nothing ran that the approver was not shown" bash -c "[ $ran -eq 0 ] || [[ '$shown' == *hidden@evil* ]]"
rsql=$(records | node -e 'require("readline").createInterface({input:process.stdin}).on("line",l=>{const r=JSON.parse(l);
  if(r.type==="request"&&/hidden@evil/.test(r.data.submitted_job||""))console.log(r.data.submitted_job)})' | head -1)
check_contains "the recording has the job that ran, as submitted" "$rsql" "hidden@evil"

# --- approvals: an expired approval cannot be approved -----------------------------------------
while [ "$(date +%s)" -lt "$EXP_AT" ]; do sleep 0.5; done
out=$(build/sluicectl approve "$EXP_ID" 2>&1); rc=$?
check_eq "approve a request that expired: exit 1" "$rc" 1
check_contains "... saying it expired" "$out" "expired"
check "... and it never reached BigQuery" bash -c "! grep -q 'expire-me' '$SL'"

# --- approvals: a flood from one agent meets the cap ------------------------------------------
pending() { build/sluicectl approvals --json 2>/dev/null | js '(o||[]).filter(x => x.state === "pending").length'; }
for id in $(build/sluicectl approvals --json | js '(o||[]).map(x => x.id).join(" ")'); do
  build/sluicectl deny "$id" --reason "clearing the list" >/dev/null
done
n0=$(pending)
out=$(ct_exec agent $(nodeenv agent) node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  const bq = new BigQuery({ projectId: "demo-project" }), n = +process.argv[1];
  Promise.allSettled([...Array(n).keys()].map(i => bq.createQueryJob({ useLegacySql: false,
    query: "UPDATE `demo-project.crm.customers` SET phone = \"flood" + i + "\" WHERE customer_id = " + (100 + i) })))
    .then(r => { console.log("held " + r.filter(x => x.status === "fulfilled").length);
      const e = r.find(x => x.status === "rejected"); if (e) console.log("refused: " + e.reason.message); });' \
  $((MAX_PENDING - n0 + 3)) 2>&1)
echo "# flood: $out" | head -3
check_contains "a flood of held requests: held up to approvals.max_pending" "$out" "held $((MAX_PENDING - n0))"
check_contains "... the rest refused with a clear error" "$out" "too many approvals are pending"
check_eq "the approvers can still list them" "$(pending)" "$MAX_PENDING"
check "... and none of them reached BigQuery" bash -c "! grep -q 'flood' '$SL'"
n=$(records | node -e 'let n=0;require("readline").createInterface({input:process.stdin}).on("line",l=>{const r=JSON.parse(l);
  if(r.type==="request"&&/flood/.test(r.data.sql||""))n++}).on("close",()=>console.log(n))')
check "the recording has the refused ones ($n of at least 3 recorded)" test "$n" -ge 3
out=$(job thief 'UPDATE `demo-project.crm.customers` SET phone = "thief" WHERE customer_id = 40')
echo "# note: another agent's risky job while one agent holds every slot: ${out:0:200}"

tap_done
