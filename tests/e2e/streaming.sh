#!/usr/bin/env bash
# Description: responses larger than limits.buffer_bytes stream through sluiced. Under
# policies/pii-masking.json with a 4 KiB buffer, the real Node client's query results and
# tabledata.list pages come back chunked, every row masked as it passed; gzip is inflated,
# masked and compressed again for a client that accepts it (curl --compressed), identical
# once decoded to what an identity client gets; a result of about 100 MB passes whole while
# sluiced's peak memory grows by a bounded amount; a row larger than limits.value_bytes cuts
# the response instead of relaying it. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

GATE_POLICY="$PWD/policies/pii-masking.json"
GATE_EXTRA=', "limits": { "buffer_bytes": 4096, "value_bytes": 262144 }'
gate_up agent || exit 1
T='`demo-project.crm.customers`'
# Every clear SSN, email and card number of the table, read straight from the stand-in.
gate_direct "SELECT ssn, email, card_number FROM $T" > "$GATE_DIR/clear.txt"
check "the clear values are known to the test" test "$(wc -l < "$GATE_DIR/clear.txt")" -eq 150
no_clear() { # FILE: no clear value of the table in it
  ! grep -qFf "$GATE_DIR/clear.txt" "$1" || { echo "# leaked: $(grep -oFf "$GATE_DIR/clear.txt" "$1" | head -3)"; return 1; }
}
streamed_records() { cat "$GATE_DIR"/records/*/*.jsonl | grep -c '"streamed":true.*"type":"response"'; }

gate_agent "SELECT customer_id, ssn, email, card_number FROM $T ORDER BY customer_id" > "$GATE_DIR/q.out"
check_contains "a 50-row query result through the stream" "$(cat "$GATE_DIR/q.out")" '"ok":true'
check "... all 50 rows arrived" test "$(grep -o '"customer_id":' "$GATE_DIR/q.out" | wc -l)" -eq 50
check "... no clear value in any of them" no_clear "$GATE_DIR/q.out"
check_contains "... masked as the policy says (email keeps its domain)" "$(cat "$GATE_DIR/q.out")" 'XXXXX@'
check "... and the response was streamed (its record says so)" test "$(streamed_records)" -ge 1

ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" NODE_PATH="$PWD/tests/node_modules" node -e '
  const { BigQuery } = require("@google-cloud/bigquery");
  new BigQuery({ projectId: "demo-project" }).dataset("crm").table("customers").getRows({ maxResults: 50 })
    .then(r => console.log("ROWS " + r[0].length + " " + JSON.stringify(r[0])), e => console.log("ERR " + e.message));' \
  > "$GATE_DIR/rows.out" 2>&1
check_contains "tabledata.list streamed, masked row by row by the schema" "$(cat "$GATE_DIR/rows.out")" 'ROWS 50 '
check "... no clear value" no_clear "$GATE_DIR/rows.out"
check_contains "... nested fields intact" "$(cat "$GATE_DIR/rows.out")" '"city":"Springfield"'

# gzip: curl accepts it, sluiced inflates BigQuery's gzip, masks, and compresses again.
url="https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/datasets/crm/tables/customers/data?prettyPrint=false"
fetch() { # OUT HEADERS [curl args]: tabledata.list of the masked table through the gate
  local out=$1 hdr=$2; shift 2
  ct_exec agent curl -sS -m 30 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer t" \
    -D "$hdr" -o "$out" "$@" "$url"
}
fetch "$GATE_DIR/gz.json" "$GATE_DIR/gz.h" --compressed
fetch "$GATE_DIR/id.json" "$GATE_DIR/id.h"
check "gzip: the agent got a gzip body" grep -qi '^content-encoding: gzip' "$GATE_DIR/gz.h"
check "... chunked, as it streamed" grep -qi '^transfer-encoding: chunked' "$GATE_DIR/gz.h"
check "without gzip: no encoding" bash -c '! grep -qi "^content-encoding" "$1"' _ "$GATE_DIR/id.h"
check "... once decoded, the same masked rows either way" cmp -s "$GATE_DIR/gz.json" "$GATE_DIR/id.json"
check "... which are valid JSON with 50 rows" node -e '
  const o = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (o.rows.length !== 50) process.exit(1);' "$GATE_DIR/gz.json"
check "... and no clear value" no_clear "$GATE_DIR/gz.json"
fetch "$GATE_DIR/h10.json" "$GATE_DIR/h10.h" --http1.0
check "HTTP/1.0: streamed until close, the same rows" bash -c \
  '! grep -qi "^transfer-encoding" "$1" && cmp -s "$2" "$3"' _ "$GATE_DIR/h10.h" "$GATE_DIR/h10.json" "$GATE_DIR/id.json"
# A page under the buffer is relayed whole, in one write with its head: gzip and not.
url="$url&maxResults=2"
fetch "$GATE_DIR/gz1.json" "$GATE_DIR/gz1.h" --compressed
fetch "$GATE_DIR/id1.json" "$GATE_DIR/id1.h"
check "a whole page: gzip with a length" bash -c \
  'grep -qi "^content-encoding: gzip" "$1" && grep -qi "^content-length" "$1"' _ "$GATE_DIR/gz1.h"
check "... the same masked rows either way" cmp -s "$GATE_DIR/gz1.json" "$GATE_DIR/id1.json"
check "... which are 2 valid rows" node -e '
  const o = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (o.rows.length !== 2) process.exit(1);' "$GATE_DIR/id1.json"
check "... and no clear value" no_clear "$GATE_DIR/id1.json"

# About 100 MB in one response: it passes whole, and sluiced's memory stays bounded.
q='{"query": "SELECT x, REPEAT(\"p\", 60) AS pad FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS x", "useLegacySql": false, "timeoutMs": 120000}'
echo 5 > "/proc/$SLUICED_PID/clear_refs"  # reset the peak (VmHWM) to what is resident now
before=$(awk '/VmHWM/ {print $2}' "/proc/$SLUICED_PID/status")
ct_exec agent curl -sS -m 300 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer t" \
  -H "Content-Type: application/json" --data "$q" -o "$GATE_DIR/big.json" -D "$GATE_DIR/big.h" \
  "https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/queries?prettyPrint=false"
after=$(awk '/VmHWM/ {print $2}' "/proc/$SLUICED_PID/status")
size=$(stat -c %s "$GATE_DIR/big.json")
check "a result of about 100 MB arrived ($size bytes)" test "$size" -gt 90000000
check "... whole: a million rows, in order" node -e '
  const o = JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (o.rows.length !== 1000000 || o.rows[999999].f[0].v !== "1000000") process.exit(1);' "$GATE_DIR/big.json"
check "... while sluiced's peak memory grew by $(( (after - before) / 1024 )) MB (bound: 32 MB)" \
  test $(( after - before )) -lt 32768
check "... and its record has the job's outcome (rows, bytes processed)" grep -q \
  '"bytes_processed":"[0-9]*","job_id":"[^"]*".*"rows":"1000000".*"streamed":true.*"type":"response"' \
  "$GATE_DIR"/records/*/*.jsonl

# A row larger than limits.value_bytes cannot be filtered: the response is cut, not relayed.
q='{"query": "SELECT REPEAT(\"v\", 300000) AS big", "useLegacySql": false}'
cut=$(ct_exec agent curl -sS -m 30 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer t" \
  -H "Content-Type: application/json" --data "$q" -w '\nSTATUS %{http_code}' \
  "https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/queries?prettyPrint=false" 2>&1)
check "an oversized value cuts the response: the agent never gets it" bash -c \
  '! grep -q "vvvvvvvvvvvvvvvvvvvv" <<< "$1" && grep -q "curl: (18)" <<< "$1"' _ "$cut"
check "... and the recording says why" grep -q '"error":"a JSON value larger than the streaming bound".*"type":"response"' \
  "$GATE_DIR"/records/*/*.jsonl
tap_done
