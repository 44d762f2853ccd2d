#!/usr/bin/env bash
# Description: command blocking through the real path. The real Node client and the bq tool
# in an enforced container, under policies/production.json: DROP TABLE, an unbounded DELETE,
# a DROP hidden after a comment and a SELECT, and tables.delete get BigQuery-shaped 403s that
# name the rule, and the stand-in's log proves none of them arrived; allowed reads and a
# bounded DELETE still work. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_up agent || exit 1
agent() { gate_agent "$@"; }
never_arrived() { ! grep -q "$1" "$GATE_DIR/standin.log"; }

out=$(agent 'SELECT COUNT(*) AS n FROM `demo-project.sales.orders`')
check_contains "allowed SELECT still works" "$out" '"ok":true'

out=$(agent 'DROP TABLE `demo-project.sales.orders`')
check_contains "Node client: DROP TABLE refused" "$out" '"ok":false'
check_contains "... with the rule and the table in the error" "$out" \
  "DROP_TABLE on demo-project.sales.orders (statement 1) is denied by rule 'no-destructive-ddl'"
check "... and it never reached BigQuery" never_arrived 'DROP TABLE'

out=$(agent '/* harmless */ SELECT 1; -- note
DROP TABLE sales.orders')
check_contains "a DROP after a comment and a SELECT is refused" "$out" "no-destructive-ddl"
check "... and never reached BigQuery" never_arrived 'DROP TABLE sales'

out=$(agent 'DELETE FROM `demo-project.sales.orders` WHERE 1=1')
check_contains "unbounded DELETE refused" "$out" "no-unbounded-writes"
check_contains "... telling the agent what to do" "$out" "add a WHERE clause"
check "... and never reached BigQuery" never_arrived 'WHERE 1=1'

out=$(agent 'DELETE FROM `demo-project.sales.orders` WHERE order_id = 1')
check_contains "bounded DELETE on sales allowed" "$out" '"ok":true'


# API-level write without SQL: tables.delete.
out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("sales").table("orders").delete()
    .then(() => console.log("deleted"), e => console.log("refused " + e.code + " " + e.message));' 2>&1)
check_contains "tables.delete refused with 403" "$out" "refused 403"
check_contains "... by the rule" "$out" "no-delete-api"
check "... and never reached BigQuery" bash -c "! grep -q '\"method\":\"DELETE\"' '$GATE_DIR/standin.log'"

# The bq tool.
echo "agent-token" > "$GATE_DIR/bq-token"; mkdir -p "$GATE_DIR/gcloud"
bq() {
  ct_exec agent env CLOUDSDK_CONFIG="$GATE_DIR/gcloud" CLOUDSDK_AUTH_ACCESS_TOKEN_FILE="$GATE_DIR/bq-token" \
    CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE="$GATE_DIR/sluice-ca.pem" bq --project_id demo-project "$@" 2>&1
}
out=$(bq query --nouse_legacy_sql 'DROP TABLE `demo-project.hr.salaries`')
check_contains "bq: DROP TABLE refused with the rule" "$out" "no-destructive-ddl"
check "... and never reached BigQuery" never_arrived 'hr.salaries`'
out=$(bq query 'SELECT COUNT(*) FROM [demo-project:hr.salaries]')
check_contains "bq: legacy SQL (useLegacySql left out) refused, saying what to send" "$out" "useLegacySql"
out=$(bq query --nouse_legacy_sql --format=json 'SELECT COUNT(*) AS n FROM `demo-project.hr.salaries`')
check_contains "bq: allowed SELECT still works" "$out" '"n":'
tap_done
