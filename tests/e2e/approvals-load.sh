#!/usr/bin/env bash
# Description: approvals under pressure and over time: 100 pending at once, a sluiced
# restart with approvals pending (they survive and are honoured), a non-job operation refused
# after its hold and passing once when retried after approval, and an approval that expires
# failing the agent's query with a clear reason. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

GATE_APPROVAL_TIMEOUT=12 GATE_HOLD_MS=1000
gate_up agent || exit 1
export SLUICE_SOCKET="$GATE_DIR/ctl/sluice.sock"
nodeenv=(env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules")
count_pending() {
  build/sluicectl approvals --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d)
    .on("end",()=>{const a=JSON.parse(s||"[]");console.log((Array.isArray(a)?a:a.approvals||[])
    .filter(x=>x.state==="pending").length)})'
}

# 100 jobs waiting at once (raw jobs.query calls: each is answered at once as a pending job).
ct_exec agent "${nodeenv[@]}" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  const bq = new BigQuery({ projectId: "demo-project" });
  Promise.all([...Array(100).keys()].map(i => bq.createQueryJob({ useLegacySql: false,
    query: "UPDATE `demo-project.crm.customers` SET phone = \"" + i + "\" WHERE customer_id = " + (1000 + i) })))
    .then(r => console.log("created " + r.length), e => console.log("ERR " + e.message));' > "$GATE_DIR/many.out" 2>&1
check_contains "100 risky jobs submitted concurrently are all answered as pending jobs" \
  "$(cat "$GATE_DIR/many.out")" "created 100"
check_eq "100 approvals are pending" "$(count_pending)" 100

# Restart with approvals pending: they survive, and one approved after the restart runs.
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID"
gate_start || exit 1
gate_warm agent
check_eq "after a restart the 100 approvals are still pending" "$(count_pending)" 100
id=$(build/sluicectl approvals --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
  const a=JSON.parse(s);const l=Array.isArray(a)?a:a.approvals;console.log(l.find(x=>x.sql.includes("customer_id = 1007")).id)})')
job=$(build/sluicectl show "$id" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).job_id))')
check "one of them approved after the restart" build/sluicectl approve "$id"
out=$(ct_exec agent "${nodeenv[@]}" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).job(process.argv[1]).getQueryResults()
    .then(() => console.log("done"), e => console.log("ERR " + e.message));' "$job" 2>&1)
check_contains "the client polling its job after the restart gets it done" "$out" done
check "... and it ran once in BigQuery" test "$(grep -c 'customer_id = 1007' "$GATE_DIR/standin.log")" -eq 1

# A non-job operation: refused after its hold, then the identical retry passes once approved.
insert='
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("crm").table("customers")
    .insert([{ customer_id: 4242, name: "Retry Row", email: "retry@example.com" }])
    .then(() => console.log("inserted"), e => console.log("refused " + e.message));'
out=$(ct_exec agent "${nodeenv[@]}" node -e "$insert" 2>&1)
check_contains "insertAll not approved within its hold: refused" "$out" "refused"
check_contains "... naming the approval and the command" "$out" "sluicectl approve"
id=$(grep -o "sluicectl approve [a-z0-9]*" <<< "$out" | head -1 | awk '{ print $3 }')
check "the operator approves it" build/sluicectl approve "$id"
out=$(ct_exec agent "${nodeenv[@]}" node -e "$insert" 2>&1)
check_contains "the identical retry passes" "$out" inserted
out=$(ct_exec agent "${nodeenv[@]}" node -e "$insert" 2>&1)
check_contains "... once: a second retry needs a new approval" "$out" refused

# Expiry: nobody answers within approvals.timeout_s (12 s here).
out=$(ct_exec agent "${nodeenv[@]}" node tests/e2e/lib/agent.mjs \
  'UPDATE `demo-project.crm.customers` SET phone = "x" WHERE customer_id = 5' 2>&1)
check_contains "an approval nobody answers expires: the query fails" "$out" '"ok":false'
check_contains "... saying it expired" "$out" "expired"
tap_done
