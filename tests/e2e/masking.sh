#!/usr/bin/env bash
# Description: masking through the real path, as an agent would try to get around it. Under
# policies/pii-masking.json the real Node client's queries are rewritten by sluiced and run
# by the stand-in: aliases, expressions, TO_JSON_STRING(t), CTEs, subqueries, UNION, equality
# and prefix probes all see masked values; unmasked columns are intact; job metadata shows the
# agent its own SQL; tabledata.list rows come back masked by the table's schema; results of a
# job run outside sluice are refused. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

GATE_POLICY="$PWD/policies/pii-masking.json"
gate_up agent || exit 1
agent() { gate_agent "$@"; }
# The clear values, read straight from the stand-in (not through the gate).
clear=$(gate_direct "SELECT ssn, email, card_number, name FROM \`demo-project.crm.customers\` WHERE customer_id = 1")
ssn=$(sed -n 1p <<< "$clear"); email=$(sed -n 2p <<< "$clear"); card=$(sed -n 3p <<< "$clear"); name=$(sed -n 4p <<< "$clear")
check "the clear values are known to the test" test -n "$ssn" -a -n "$email"
never_clear() { # WHAT OUTPUT: none of the clear values appear
  local v
  for v in "$ssn" "$email" "$card" "$name" "${ssn:0:3}-"; do
    [[ "$2" == *"$v"* ]] && { echo "# $1 leaked '$v': $2"; return 1; }
  done
  return 0
}
W='WHERE customer_id = 1'
out=$(agent "SELECT ssn, email, card_number, name, customer_id FROM \`demo-project.crm.customers\` $W")
check_contains "plain SELECT works" "$out" '"ok":true'
check "plain SELECT: no clear value" never_clear plain "$out"
check_contains "email keeps its domain only" "$out" "XXXXX@${email#*@}"
check_contains "card keeps its last four" "$out" "XXXXX${card: -4}"
check_contains "name redacted" "$out" '[redacted]'
check_contains "unmasked column intact" "$out" '"customer_id":1'
for q in "SELECT ssn AS x FROM crm.customers $W" \
         "SELECT TO_JSON_STRING(t) AS j FROM crm.customers t $W" \
         "SELECT CONCAT('<', ssn, '>') AS s, UPPER(email) AS e FROM crm.customers $W" \
         "WITH c AS (SELECT * FROM crm.customers) SELECT ssn, card_number FROM c $W" \
         "SELECT s FROM (SELECT ssn AS s, customer_id FROM crm.customers) $W" \
         "SELECT ssn FROM crm.customers $W UNION ALL SELECT email FROM crm.customers $W" \
         "SELECT STRUCT(ssn, email) AS p FROM crm.customers $W" \
         "SELECT STRING_AGG(ssn, ',') AS a FROM crm.customers $W" \
         "SELECT SUBSTR(ssn, 1, 4) AS p FROM crm.customers $W"; do
  out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" node tests/e2e/lib/agent.mjs \
    "$(sed 's/crm.customers/`demo-project.crm.customers`/g' <<< "$q")" 2>&1)
  check "bypass attempt gets masked values only: $q" bash -c '[[ "$1" == *"\"ok\":true"* ]] && ! [[ "$1" == *"$2"* || "$1" == *"$3"* || "$1" == *"$4"* ]]' _ "$out" "$ssn" "$email" "$card"
done
out=$(agent "SELECT COUNT(*) AS n FROM \`demo-project.crm.customers\` WHERE ssn = '$ssn'")
check_contains "an equality probe on the clear value finds nothing" "$out" '"n":0'
out=$(agent "SELECT COUNT(*) AS n FROM \`demo-project.crm.customers\` WHERE ssn LIKE '${ssn:0:3}%'")
check_contains "a prefix probe finds nothing" "$out" '"n":0'

# Job metadata shows the agent its own SQL, never the rewrite.
out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  const bq = new BigQuery({ projectId: "demo-project" });
  (async () => { const [job] = await bq.createQueryJob({ query: "SELECT ssn FROM `demo-project.crm.customers` LIMIT 1", useLegacySql: false });
    const [m] = await job.getMetadata(); console.log(JSON.stringify(m.configuration.query.query)); })()
    .catch(e => console.log("ERR " + e.message));' 2>&1)
check_eq "jobs.get shows the query the agent wrote" "$out" '"SELECT ssn FROM `demo-project.crm.customers` LIMIT 1"'
check "... and nothing of the rewrite reached the agent" bash -c '! grep -q "REPLACE\|SHA256\|sluice-masked" <<< "$1"' _ "$out"
check "the stand-in ran the rewrite (masking happened in BigQuery)" grep -q 'REPLACE (TO_HEX(SHA256(ssn))' "$GATE_DIR/standin.log"

# Results of a job created outside sluice (here straight at the stand-in) are refused: they
# were not computed through the rewrite. A job created through sluice can be read.
job=$(node -e '
  const https = require("https"), fs = require("fs");
  const body = JSON.stringify({ jobReference: { projectId: "demo-project", jobId: "outside_job_1" },
    configuration: { query: { query: "SELECT ssn FROM `demo-project.crm.customers` LIMIT 3", useLegacySql: false } } });
  const r = https.request({ host: "127.0.0.1", port: +process.argv[1], method: "POST",
    path: "/bigquery/v2/projects/demo-project/jobs", ca: fs.readFileSync(process.argv[2]),
    servername: "bigquery.googleapis.com",
    headers: { "content-type": "application/json", authorization: "Bearer direct" } }, res => {
      let s = ""; res.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).jobReference.jobId)); });
  r.end(body);' "$STANDIN_PORT" "$GATE_DIR/standin/ca.pem")
out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  const bq = new BigQuery({ projectId: "demo-project" });
  (async () => {
    const [mine] = await bq.createQueryJob({ query: "SELECT ssn FROM `demo-project.crm.customers` LIMIT 2", useLegacySql: false });
    const [rows] = await mine.getQueryResults();
    console.log("MINE " + JSON.stringify(rows));
    await bq.job(process.argv[1]).getQueryResults().then(r => console.log("OUTSIDE " + JSON.stringify(r[0])),
      e => console.log("OUTSIDE refused " + e.message));
  })().catch(e => console.log("ERR " + e.message));' "$job" 2>&1)
check_contains "results of a job created through sluice can be read" "$out" "MINE [{"
check_contains "results of a job created outside sluice are refused" "$out" "OUTSIDE refused"
check_contains "... saying why" "$out" "not run through sluice"
check "... and no clear value leaked" never_clear outside-job "$out"

out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("crm").table("customers").getRows({ maxResults: 2 })
    .then(r => console.log("ROWS " + JSON.stringify(r[0])), e => console.log("refused " + e.message));' 2>&1)
check_contains "tabledata.list of the masked table returns rows" "$out" 'ROWS [{"customer_id":1'
check "... masked by the table's schema: no clear value" never_clear tabledata "$out"
check_contains "... the same masking as queries (email keeps its domain)" "$out" "XXXXX@${email#*@}"
check_contains "... nested fields untouched unless masked" "$out" '"city":"Springfield"'
out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("crm").table("customers")
    .getRows({ maxResults: 2, selectedFields: "email" })
    .then(r => console.log("ROWS " + JSON.stringify(r[0])), e => console.log("refused " + e.message));' 2>&1)
check_contains "tabledata.list of only a masked column (selectedFields) is refused" "$out" "refused"
check_contains "... saying why" "$out" "selectedFields"
check "... and no clear value leaked" never_clear selected "$out"
# Which jobs an identity created through sluice survives a restart of sluiced.
node_agent() { ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" \
  node -e 'const { BigQuery } = require("@google-cloud/bigquery");
    const bq = new BigQuery({ projectId: "demo-project" });
    const run = async (arg) => { '"$1"' };
    run(process.argv[1]).catch(e => console.log("ERR " + e.message));' "${2:-}" 2>&1; }
job=$(node_agent 'const [j] = await bq.createQueryJob({ query: "SELECT ssn, customer_id FROM `demo-project.crm.customers` WHERE customer_id = 2", useLegacySql: false }); console.log(j.id);')
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID"
gate_start || exit 1
gate_warm agent
out=$(node_agent 'const [rows] = await bq.job(arg).getQueryResults(); console.log("ROWS " + JSON.stringify(rows));' "$job")
check_contains "after a restart, the agent still reads the results of its own job" "$out" 'ROWS [{'
check "... masked" never_clear restart "$out"

# Content detectors (defense in depth, no masks): an SSN in any string is masked in place, a
# payment card number withholds the response.
cat > "$GATE_DIR/detect.json" <<'JSON'
{ "default": "deny", "detect": { "ssn": "mask", "card": "refuse", "email": "off" },
  "rules": [ { "name": "reads", "statements": ["SELECT"], "decision": "allow" } ] }
JSON
sed -i "s|\"policy\": \"[^\"]*\"|\"policy\": \"$GATE_DIR/detect.json\"|" "$GATE_DIR/sluice.json"
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID"
gate_start || exit 1
gate_warm agent
out=$(agent "SELECT CONCAT('id ', ssn) AS s, email FROM \`demo-project.crm.customers\` $W")
check_contains "detectors: the query is answered" "$out" '"ok":true'
check "... the SSN inside a string is masked" bash -c '! [[ "$1" == *"$2"* ]]' _ "$out" "$ssn"
check_contains "... an email is left (its detector is off)" "$out" "$email"
out=$(agent "SELECT card_number FROM \`demo-project.crm.customers\` $W")
check_contains "a card number withholds the response" "$out" '"ok":false'
check_contains "... saying why" "$out" "card numbers"
check "... and the number did not reach the agent" bash -c '! [[ "$1" == *"$2"* ]]' _ "$out" "$card"
tap_done
