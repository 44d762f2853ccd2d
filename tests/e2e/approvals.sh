#!/usr/bin/env bash
# Description: just-in-time approval through the real path. Under policies/production.json a
# write to crm needs a human: the real Node client's query() (and bq's jobs.insert) just
# polls a pending job until an approver answers with sluicectl; approved jobs run exactly
# once under the job id sluiced chose, denied ones fail with the approver's reason, an
# approval window lets the identical query pass again, a non-job write (insertAll) is held
# and passes once approved, and a process in the enforced container cannot approve.
# Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_up agent || exit 1
export SLUICE_SOCKET="$GATE_DIR/ctl/sluice.sock"
agent_bg() { # OUT QUERY: the agent's query in the background
  ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
    GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" \
    node tests/e2e/lib/agent.mjs "$2" > "$1" 2>&1 &
}
# The id of the pending approval whose SQL (or, with a second argument, method) contains $1.
pending_id() {
  local i id
  for i in $(seq 100); do
    id=$(build/sluicectl approvals --json 2>/dev/null | node -e '
      let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        const a = JSON.parse(s || "[]"), f = process.argv[2] ? "method" : "sql";
        const m = (Array.isArray(a) ? a : a.approvals || [])
          .find(x => x.state === "pending" && (x[f] || "").includes(process.argv[1]));
        if (m) console.log(m.id); });' "$1" "${2:-}")
    [ -n "$id" ] && { echo "$id"; return 0; }
    sleep 0.1
  done
  return 1
}

Q1='UPDATE `demo-project.crm.customers` SET email = "approved@example.com" WHERE customer_id = 1'
agent_bg "$GATE_DIR/q1.out" "$Q1"; q1=$!
id=$(pending_id 'approved@example.com')
check "the query waits for approval (listed by sluicectl approvals)" test -n "$id"
show=$(build/sluicectl show "$id" --json 2>&1)
check_contains "show: the SQL as the agent sent it" "$show" 'approved@example.com'
check_contains "show: the container" "$show" "$(ct_cgroup agent)"
check_contains "show: why (the rule)" "$show" 'high-risk-writes'
check "the agent is still waiting (its client polls the pending job)" kill -0 $q1
check "nothing reached BigQuery yet" bash -c "! grep -q 'approved@example.com' '$GATE_DIR/standin.log'"
out=$(ct_exec agent env SLUICE_SOCKET="$SLUICE_SOCKET" build/sluicectl approve "$id" 2>&1); rc=$?
check "a process in the enforced container cannot approve" test $rc -ne 0
check_contains "... and is told why" "$out" "enforced cgroup"
check "root on the node approves" build/sluicectl approve "$id" --reason "ticket 42"
wait $q1
check_contains "the agent's query() returns once approved" "$(cat "$GATE_DIR/q1.out")" '"ok":true'
n=$(grep -c 'approved@example.com' "$GATE_DIR/standin.log")
check_eq "the approved job reached BigQuery exactly once" "$n" 1
check_contains "... as a jobs.insert under the job id sluiced chose" \
  "$(grep 'approved@example.com' "$GATE_DIR/standin.log" | tr -d '\\')" '"jobId":"sluice_approval_'

Q2='UPDATE `demo-project.crm.customers` SET email = "denied@example.com" WHERE customer_id = 2'
agent_bg "$GATE_DIR/q2.out" "$Q2"; q2=$!
id=$(pending_id 'denied@example.com')
check "deny needs a reason" bash -c "! build/sluicectl deny '$id' 2>/dev/null"
check "the approver denies with a reason" build/sluicectl deny "$id" --reason "not on a Friday"
wait $q2
out=$(cat "$GATE_DIR/q2.out")
check_contains "the agent's query() fails" "$out" '"ok":false'
check_contains "... with the approver and the reason" "$out" "not on a Friday"
check "... and nothing reached BigQuery" bash -c "! grep -q 'denied@example.com' '$GATE_DIR/standin.log'"

Q3='UPDATE `demo-project.crm.customers` SET phone = "555" WHERE customer_id = 3'
agent_bg "$GATE_DIR/q3.out" "$Q3"; q3=$!
id=$(pending_id 'phone = "555"')
check "approve for a window" build/sluicectl approve "$id" --for 10m
wait $q3
agent_bg "$GATE_DIR/q3b.out" "$Q3"; q3b=$!
wait $q3b
check_contains "within the window the identical query passes without asking" \
  "$(cat "$GATE_DIR/q3b.out")" '"ok":true'

# insertAll (not a job): held, then passes once approved.
ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("crm").table("customers")
    .insert([{ customer_id: 999, name: "Held Row", email: "held@example.com" }])
    .then(() => console.log("inserted"), e => console.log("refused " + e.message));' \
  > "$GATE_DIR/ins.out" 2>&1 &
ins=$!
id=$(pending_id insertAll method)
check "insertAll waits for approval" test -n "$id"
check "approved" build/sluicectl approve "$id"
wait $ins
check_contains "the held insertAll goes through once approved" "$(cat "$GATE_DIR/ins.out")" inserted
check "... and reached BigQuery" grep -q 'held@example.com' "$GATE_DIR/standin.log"
tap_done
