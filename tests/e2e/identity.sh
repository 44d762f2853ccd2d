#!/usr/bin/env bash
# Description: identity through the real path (GATE_IDENTITY=1). The real Node client,
# unchanged, with an external_account (workload identity) credential over an OIDC token of a
# test issuer: sluiced answers the STS exchange itself (the stand-in never sees /v1/token nor
# any agent token), queries succeed, and every BigQuery request carries only sluiced's own
# credential (the token the stand-in issued to sluiced's service-account assertion). A sluice
# token copied into another container is refused (401, another container), a Google token is
# refused ("should not hold Google credentials"), a service-account key in the agent gets a
# 403, and the policy decides on the OIDC groups (analysts may read crm, interns may not).
# Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require
[ -d tests/node_modules ] || { echo "tests/node_modules missing: run scripts/install-deps.sh"; exit 1; }

GATE_IDENTITY=1
gate_standin || exit 1
ct_create agent 127.0.0.1
ct_create thief 127.0.0.1
cat > "$GATE_DIR/policy.json" <<'JSON'
{ "default": "deny",
  "rules": [
    { "name": "crm-analysts", "groups": ["analysts"], "datasets": ["crm"],
      "statements": ["SELECT"], "decision": "allow" },
    { "name": "crm-analysts-only", "datasets": ["crm"], "decision": "deny",
      "reason": "customer data is read by the analysts group only" },
    { "name": "reads", "statements": ["SELECT"], "decision": "allow" },
    { "name": "read-api", "access": ["read-data", "read-metadata", "job-control"],
      "decision": "allow" } ] }
JSON
GATE_POLICY="$GATE_DIR/policy.json"
gate_config "$(ct_cgroup agent) $(ct_cgroup thief)" || exit 1
check "sluiced's service-account key is root-only (0600)" \
  test "$(stat -c %a "$GATE_DIR/sluiced-key.json")" = 600
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem"
gate_agent_key                                  # agent: external_account, groups analysts
gate_oidc_token intern '["interns"]' "$GATE_DIR/oidc/intern.jwt"
gate_external_account "$GATE_DIR/oidc/intern.jwt" "$GATE_DIR/intern-key.json"
check_contains "the agent's credential is an external_account, not a key" \
  "$(cat "$GATE_DIR/agent-key.json")" '"type": "external_account"'
gate_wait_for "$GATE_DIR/standin.log" '"path":"/token"' || exit 1 # sluiced's own token
gate_warm agent || exit 1
gate_warm thief || exit 1

agent() { # KEY_FILE QUERY...
  local key=$1; shift
  ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$key" node tests/e2e/lib/agent.mjs "$@" 2>&1
}
# A raw HTTPS request from container CT: prints "STATUS BODY".
cat > "$GATE_DIR/http.cjs" <<'JS'
const [method, url, auth, body, ctype] = process.argv.slice(2);
const headers = {};
if (auth) headers.authorization = auth;
if (body) headers["content-type"] = ctype || "application/json";
const r = require("https").request(url, { method, headers }, res => {
  let d = ""; res.on("data", c => d += c);
  res.on("end", () => console.log(res.statusCode + " " + d.replace(/\s+/g, " ")));
});
r.on("error", e => console.log("000 " + e.message));
if (body) r.write(body);
r.end();
JS
http() { # CT METHOD URL [AUTH] [BODY] [CTYPE]
  local ct=$1; shift
  ct_exec "$ct" env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" node "$GATE_DIR/http.cjs" "$@" 2>&1
}

# The real client: STS exchange answered by sluiced, the query through the gate.
out=$(agent "$GATE_DIR/agent-key.json" \
  "SELECT name, email FROM \`demo-project.crm.customers\` WHERE customer_id = 1")
check_contains "real Node client with workload identity: query answered" "$out" '"ok":true'
check_contains "... with the stand-in's row (analysts may read crm)" "$out" '"email":'
check "the STS exchange never reached the stand-in (no /v1/token)" \
  bash -c "! grep -q '\"path\":\"/v1/token' '$GATE_DIR/standin.log'"
check "no sluice token reached the stand-in" bash -c "! grep -q 'sluice1\.' '$GATE_DIR/standin.log'"
check "the agent's OIDC token never reached the stand-in" \
  bash -c "! grep -qF '$(cut -d. -f3 "$GATE_DIR/oidc/agent.jwt")' '$GATE_DIR/standin.log'"
creds=$(node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  let api = 0, bad = 0, sa = 0;
  for (const r of lines) {
    if (r.path === "/token") {             // sluiced getting its own token
      const a = new URLSearchParams(r.body).get("assertion") || "";
      const p = JSON.parse(Buffer.from(a.split(".")[1] || "", "base64url").toString() || "{}");
      if (p.iss === "sluiced@demo-project.iam.gserviceaccount.com") sa++;
      continue;
    }
    api++;
    if (!/^Bearer standin-token-[0-9a-f]+$/.test(r.headers.authorization || "")) bad++;
  }
  console.log(`api=${api} bad=${bad} sa=${sa}`);' "$GATE_DIR/standin.log")
check_contains "the stand-in issued sluiced a token for its service-account assertion" "$creds" " sa=1"
check "every BigQuery request carried only sluiced's credential ($creds)" \
  bash -c "[[ '$creds' == *' bad=0 '* && '$creds' != *'api=0 '* ]]"

# A sluice token is bound to its container.
sts_body="grant_type=urn:ietf:params:oauth:grant-type:token-exchange&audience=$(node -p \
  'encodeURIComponent(process.argv[1])' "$GATE_STS_AUDIENCE")&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fbigquery&requested_token_type=urn:ietf:params:oauth:token-type:access_token&subject_token_type=urn:ietf:params:oauth:token-type:jwt&subject_token=$(cat "$GATE_DIR/oidc/agent.jwt")"
out=$(http agent POST https://sts.googleapis.com/v1/token "" "$sts_body" application/x-www-form-urlencoded)
check_contains "STS exchange by hand from the agent: 200" "$out" '200 '
tok=$(printf '%s' "${out#* }" | node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>{try{console.log(JSON.parse(d).access_token||"")}catch(e){console.log("")}})')
check_contains "... a sluice token" "$tok" "sluice1."
ds=https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/datasets
out=$(http agent GET "$ds" "Bearer $tok")
check_contains "the token works in its own container" "$out" '200 '
out=$(http thief GET "$ds" "Bearer $tok")
check_contains "the same token copied into another container: 401" "$out" '401 '
check_contains "... saying it belongs to another container" "$out" "another container"

# Google credentials in the agent are refused.
out=$(http agent GET "$ds" "Bearer ya29.x")
check_contains "a Google access token: 401" "$out" '401 '
check_contains "... the agent should not hold Google credentials" "$out" "should not hold Google credentials"
key_json=$(GATE_IDENTITY=0 gate_agent_key && cat "$GATE_DIR/agent-key.json")
gate_agent_key # back to the external_account
printf '%s' "$key_json" > "$GATE_DIR/sa-key.json"
out=$(agent "$GATE_DIR/sa-key.json" 'SELECT 1')
check_contains "a service-account key in the agent: its token grant is refused" "$out" '"ok":false'
check_contains "... saying to give it an external_account credential" "$out" "external_account"
check "... and no Google token grant of the agent reached the stand-in" \
  bash -c "[ \$(grep -c '\"path\":\"/token\"' '$GATE_DIR/standin.log') -eq 1 ]"

# Policy on OIDC groups: interns may not read crm, may read sales.
out=$(agent "$GATE_DIR/intern-key.json" "SELECT name FROM \`demo-project.crm.customers\` LIMIT 1")
check_contains "a token without the analysts group: crm refused" "$out" '"ok":false'
check_contains "... by the group rule" "$out" "customer data is read by the analysts group only"
out=$(agent "$GATE_DIR/intern-key.json" "SELECT COUNT(*) AS n FROM \`demo-project.sales.orders\`")
check_contains "... the same token may read sales" "$out" '"ok":true'
tap_done
