# gate.sh - start the pieces of an end-to-end run: the BigQuery stand-in, a sluice CA, a
# sluiced configuration that enforces a test container, and sluiced itself. Source after
# tests/lib/container.sh; every process started here is stopped by ct_cleanup.
GATE_DIR=""
GATE_PIDS=()

ct_on_cleanup() {
  local p
  for p in "${GATE_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -n "$GATE_DIR" ] && [ -x build/sluiced ] && [ -f "$GATE_DIR/sluice.json" ] &&
    build/sluiced --config "$GATE_DIR/sluice.json" --detach >/dev/null 2>&1
  [ -n "$GATE_DIR" ] && rm -rf "$GATE_DIR"
}

# A TCP port below the ephemeral range that no socket on this machine uses.
gate_free_port() {
  local p
  while :; do
    p=$((10000 + RANDOM % 22000))
    ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

gate_wait_for() { # FILE PATTERN [TRIES]
  local i
  for i in $(seq "${3:-100}"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "# timed out waiting for '$2' in $1"; sed 's/^/#   /' "$1" | tail -20; return 1
}

# gate_standin: certificates and the stand-in on 127.0.0.1; sets STANDIN_PORT.
gate_standin() {
  GATE_DIR=${GATE_DIR:-$(mktemp -d /tmp/sluice-gate.XXXXXX)}
  tests/standin/mkcerts.sh "$GATE_DIR/standin" >/dev/null
  node tests/standin/server.mjs --cert "$GATE_DIR/standin/server.pem" \
    --key "$GATE_DIR/standin/server.key" --port 0 --log "$GATE_DIR/standin.log" \
    --ready-file "$GATE_DIR/standin.port" > "$GATE_DIR/standin.out" 2>&1 &
  GATE_PIDS+=($!)
  gate_wait_for "$GATE_DIR/standin.port" . 300 || return 1
  STANDIN_PORT=$(cat "$GATE_DIR/standin.port")
}

# --- GATE_IDENTITY=1: agents prove who they are with OIDC, sluiced holds the Google key ----
# The test issuer (an RSA key and its JWKS, made here), the audience its tokens carry, and the
# workload identity provider the agents' external_account credentials name.
GATE_OIDC_ISSUER="https://oidc.sluice.test"
GATE_OIDC_AUDIENCE="sluice-e2e"
GATE_STS_AUDIENCE="//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/sluice/providers/e2e"

# gate_oidc_issuer: $GATE_DIR/oidc/issuer.key (0600) and jwks.json; and sluiced's own
# service-account key ($GATE_DIR/sluiced-key.json, 0600, root only) whose token_uri is
# Google's: the credential override sends it to the stand-in's /token.
gate_oidc_issuer() {
  mkdir -p "$GATE_DIR/oidc"
  GATE_DIR="$GATE_DIR" node -e '
    const c = require("crypto"), fs = require("fs"), d = process.env.GATE_DIR;
    const { privateKey, publicKey } = c.generateKeyPairSync("rsa", { modulusLength: 2048 });
    fs.writeFileSync(d + "/oidc/issuer.key", privateKey.export({ type: "pkcs8", format: "pem" }),
                     { mode: 0o600 });
    const jwk = publicKey.export({ format: "jwk" });
    Object.assign(jwk, { kid: "e2e-1", alg: "RS256", use: "sig" });
    fs.writeFileSync(d + "/oidc/jwks.json", JSON.stringify({ keys: [jwk] }));
    const sa = c.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    fs.writeFileSync(d + "/sluiced-key.json", JSON.stringify({ type: "service_account",
      project_id: "demo-project", private_key_id: "sluiced-1",
      client_email: "sluiced@demo-project.iam.gserviceaccount.com", client_id: "2",
      token_uri: "https://oauth2.googleapis.com/token",
      private_key: sa.export({ type: "pkcs8", format: "pem" }) }), { mode: 0o600 });' || return 1
  chmod 600 "$GATE_DIR/sluiced-key.json" "$GATE_DIR/oidc/issuer.key"
}

# gate_oidc_token SUB GROUPS_JSON OUT [TTL_S]: an OIDC token of the test issuer.
gate_oidc_token() {
  GATE_DIR="$GATE_DIR" SUB=$1 GRPS=$2 OUT=$3 TTL=${4:-3600} ISS=$GATE_OIDC_ISSUER \
  AUD=$GATE_OIDC_AUDIENCE node -e '
    const c = require("crypto"), fs = require("fs"), e = process.env;
    const b64 = o => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const data = b64({ alg: "RS256", typ: "JWT", kid: "e2e-1" }) + "." +
      b64({ iss: e.ISS, aud: e.AUD, sub: e.SUB, groups: JSON.parse(e.GRPS), iat: now - 5,
            exp: now + Number(e.TTL) });
    const key = fs.readFileSync(e.GATE_DIR + "/oidc/issuer.key");
    fs.writeFileSync(e.OUT, data + "." + c.sign("sha256", Buffer.from(data), key).toString("base64url"));'
}

# gate_external_account TOKEN_FILE OUT: the agent's Google credential file: workload identity
# federation reading its OIDC token from TOKEN_FILE (no Google secret in it).
gate_external_account() {
  cat > "$2" <<JSON
{ "type": "external_account", "audience": "$GATE_STS_AUDIENCE",
  "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
  "token_url": "https://sts.googleapis.com/v1/token",
  "credential_source": { "file": "$1" } }
JSON
}

# gate_config CGROUP [EXTRA_JSON]: sluice CA and configuration enforcing CGROUP (several:
# separated by spaces).
gate_config() {
  local cg=$1 extra=${2:-} ident="" c cgs=""
  for c in $cg; do cgs="$cgs${cgs:+, }\"$c\""; done
  GATE_PORT=${GATE_PORT:-$(gate_free_port)}
  build/sluicectl ca init --cert "$GATE_DIR/ca.pem" --key "$GATE_DIR/ca.key" >/dev/null || return 1
  if [ "${GATE_IDENTITY:-0}" = 1 ]; then
    gate_oidc_issuer || return 1
    ident=",
  \"identity\": { \"issuers\": [ { \"issuer\": \"$GATE_OIDC_ISSUER\", \"audience\": \"$GATE_OIDC_AUDIENCE\",
      \"jwks_file\": \"$GATE_DIR/oidc/jwks.json\", \"algs\": [\"RS256\"], \"groups_claim\": \"groups\" } ],
    \"sts_audience\": \"$GATE_STS_AUDIENCE\" },
  \"credential\": { \"source\": \"service_account\", \"key_file\": \"$GATE_DIR/sluiced-key.json\",
    \"override\": { \"address\": \"127.0.0.1:$STANDIN_PORT\", \"ca_file\": \"$GATE_DIR/standin/ca.pem\" } }"
  fi
  cat > "$GATE_DIR/sluice.json" <<JSON
{
  "workers": 2,
  "listen_port": $GATE_PORT,
  "enforce": { "cgroups": [$cgs], "pass_loopback": false,
               "bpf_pin_dir": "/sys/fs/bpf/sluice-test-$$" },
  "ca": { "cert": "$GATE_DIR/ca.pem", "key": "$GATE_DIR/ca.key" },
  "upstream": { "overrides": [
    { "host": "bigquery.googleapis.com", "address": "127.0.0.1:$STANDIN_PORT",
      "ca_file": "$GATE_DIR/standin/ca.pem" },
    { "host": "oauth2.googleapis.com", "address": "127.0.0.1:$STANDIN_PORT",
      "ca_file": "$GATE_DIR/standin/ca.pem" } ] },
  "policy": "${GATE_POLICY:-$PWD/policies/production.json}",
  "record": { "dir": "$GATE_DIR/records" },
  "control": { "socket": "$GATE_DIR/ctl/sluice.sock" },
  "approvals": { "dir": "$GATE_DIR/approvals", "timeout_s": ${GATE_APPROVAL_TIMEOUT:-120},
                 "hold_ms": ${GATE_HOLD_MS:-20000} },
  "approvers": { "uids": [0] }$ident$extra
}
JSON
}

gate_start() {
  local before i
  before=$(grep -c "started with" "$GATE_DIR/sluiced.log" 2>/dev/null)
  ${SLUICED_WRAP:-} build/sluiced --config "$GATE_DIR/sluice.json" >> "$GATE_DIR/sluiced.log" 2>&1 &
  SLUICED_PID=$!
  GATE_PIDS+=($SLUICED_PID)
  for i in $(seq 100); do  # a restart waits for its own "started", not the last run's
    [ "$(grep -c "started with" "$GATE_DIR/sluiced.log" 2>/dev/null)" -gt "${before:-0}" ] && return 0
    kill -0 $SLUICED_PID 2>/dev/null || break
    sleep 0.1
  done
  echo "# sluiced did not start:"; sed 's/^/#   /' "$GATE_DIR/sluiced.log" | tail -20; return 1
}

# The connection records sluiced wrote to the recordings, one JSON line each with the keys in
# a fixed order: comm, dst_port, sni, route, reason, requests, bytes_from_agent, bytes_to_agent.
gate_conns() {
  cat "$GATE_DIR"/records/*/*.jsonl 2>/dev/null | node -e '
    const keys = ["comm", "dst_port", "sni", "route", "reason", "requests", "bytes_from_agent",
                  "bytes_to_agent", "pid"];
    require("readline").createInterface({ input: process.stdin }).on("line", l => {
      let r; try { r = JSON.parse(l); } catch (e) { return; }
      if (r.type !== "conn_close") return;
      const o = {}; for (const k of keys) if (k in r.data) o[k] = r.data[k];
      console.log(JSON.stringify(o));
    });'
}

# A service-account key for the agent (its token_uri is Google's: the gate answers it). With
# GATE_IDENTITY=1, an external_account credential instead ($GATE_DIR/agent-key.json all the
# same) over the agent's OIDC token $GATE_DIR/oidc/agent.jwt (subject "agent", groups
# $GATE_AGENT_GROUPS, default ["analysts"]).
gate_agent_key() {
  if [ "${GATE_IDENTITY:-0}" = 1 ]; then
    gate_oidc_token agent "${GATE_AGENT_GROUPS:-[\"analysts\"]}" "$GATE_DIR/oidc/agent.jwt" || return 1
    gate_external_account "$GATE_DIR/oidc/agent.jwt" "$GATE_DIR/agent-key.json"
    return
  fi
  node -e '
    const { generateKeyPairSync } = require("crypto");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    console.log(JSON.stringify({ type: "service_account", project_id: "demo-project",
      private_key_id: "k1", client_email: "agent@demo-project.iam.gserviceaccount.com",
      client_id: "1", token_uri: "https://oauth2.googleapis.com/token",
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }) }));' > "$GATE_DIR/agent-key.json"
}

# Run in container NAME until the gate answers there: the first connect from a new network
# namespace is refused while sluiced opens its listener in it.
gate_warm() {
  local i
  for i in $(seq 50); do
    ct_exec "$1" bash -c 'exec 3<>/dev/tcp/bigquery.googleapis.com/443' 2>/dev/null && return 0
    sleep 0.1
  done
  echo "# the gate never answered in container $1"; return 1
}

# The usual end-to-end set-up in one call: the stand-in, container NAME (created here), a
# configuration enforcing it, sluiced, the CA exported for the agent, the agent's
# credential, and a gate that answers in the container. Honours GATE_POLICY, GATE_IDENTITY...
# and GATE_EXTRA (more top-level configuration, e.g. ', "limits": {...}').
gate_up() {
  gate_standin || return 1
  ct_create "$1" 127.0.0.1
  gate_config "$(ct_cgroup "$1")" "${GATE_EXTRA:-}" || return 1
  gate_start || return 1
  build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem" || return 1
  gate_agent_key
  gate_warm "$1"
}

# gate_agent QUERY...: the sample agent (real Node client) in container "agent", its output.
gate_agent() {
  ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" node tests/e2e/lib/agent.mjs "$@" 2>&1
}

# gate_direct SQL: run a query straight at the stand-in (not through the gate) and print the
# values of its rows, one per line, cells in order: what a value looks like in clear.
gate_direct() {
  node -e '
  const https = require("https"), fs = require("fs");
  const body = JSON.stringify({ query: process.argv[3], useLegacySql: false });
  const r = https.request({ host: "127.0.0.1", port: +process.argv[1], method: "POST",
    path: "/bigquery/v2/projects/demo-project/queries", ca: fs.readFileSync(process.argv[2]),
    servername: "bigquery.googleapis.com",
    headers: { "content-type": "application/json", authorization: "Bearer direct" } }, res => {
      let s = ""; res.on("data", d => s += d).on("end", () =>
        console.log(JSON.parse(s).rows.map(r => r.f.map(x => x.v).join("\n")).join("\n"))); });
  r.end(body);' "$STANDIN_PORT" "$GATE_DIR/standin/ca.pem" "$1"
}
