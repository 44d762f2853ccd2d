#!/usr/bin/env bash
# Description: sluicectl explain, a policy author's tool: statements, kinds, tables and the
# decision of a policy for a query, offline, as JSON and for a person; bad input says why.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
ex() { build/sluicectl explain --project demo-project "$@" 2>&1; }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);
  const v=eval("o"+process.argv[1]); console.log(v === undefined ? "absent" : JSON.stringify(v))})' "$1"; }

out=$(ex --json --sql 'WITH c AS (SELECT * FROM crm.customers) SELECT * FROM c JOIN sales.orders o USING (customer_id)')
check_eq "statement kind" "$(field '.statements[0].kind' <<< "$out")" '"SELECT"'
check_eq "tables resolved, CTE name not a table" "$(field '.tables' <<< "$out")" \
  '["demo-project.crm.customers","demo-project.sales.orders"]'
check_eq "no decision without --policy" "$(field '.decision' <<< "$out")" absent
out=$(ex --json --policy policies/production.json --sql "SELECT 1 /* ; DROP TABLE x */; DELETE sales.orders WHERE 'a'='a'")
check_eq "comment hides nothing; the DELETE is unbounded" "$(field '.statements[1].unbounded' <<< "$out")" true
check_eq "decision deny" "$(field '.decision' <<< "$out")" '"deny"'
check_eq "by the rule" "$(field '.rule' <<< "$out")" '"no-unbounded-writes"'
out=$(ex --json --policy policies/production.json --sql 'SELECT COUNT(*) FROM `demo-project.sales.orders`')
check_eq "an allowed query" "$(field '.decision' <<< "$out")" '"allow"'
out=$(ex --json --policy policies/production.json --sql "SELECT 'unterminated")
check_eq "an unterminated string is UNKNOWN" "$(field '.unknown' <<< "$out")" true
check_eq "... and UNKNOWN is denied" "$(field '.decision' <<< "$out")" '"deny"'
out=$(ex --policy policies/production.json --sql 'DROP TABLE sales.orders')
check_contains "for a person: the kind and the table" "$out" "statement 1: DROP_TABLE"
check_contains "... and the decision with its reason" "$out" "decision: deny (rule no-destructive-ddl)"

out=$(ex --json --policy policies/pii-masking.json --sql 'SELECT ssn AS x FROM crm.customers c')
check_contains "with masks: the rewritten SQL BigQuery will run" "$(field '.rewritten_sql' <<< "$out")" 'TO_HEX(SHA256(ssn)) AS ssn'
check_contains "... keeping the alias" "$(field '.rewritten_sql' <<< "$out")" ') AS c'
check_contains "... and the masked columns per table" "$(field '.masked' <<< "$out")" '"columns":"ssn:sha256'

tmp=$(mktemp); printf '{"rules": [\n {"name": "x", "decision": "alow"}]}' > "$tmp"
out=$(ex --policy "$tmp" --sql 'SELECT 1'); rc=$?
check_eq "invalid policy: exit 2" "$rc" 2
check_contains "... naming file, line and key" "$out" "$tmp:2: rules[0].decision"
rm -f "$tmp"
out=$(build/sluicectl explain 2>&1); rc=$?
check_eq "missing --sql: exit 2" "$rc" 2
check_contains "... saying so" "$out" "--sql is required"
tap_done
