#!/usr/bin/env bash
# Description: session recordings through the real path. The real Node client's queries
# (allowed and refused) are in the container's recording; replay shows the SQL, the
# decisions and what the agent received; an export verifies offline and a tampered copy
# does not; with the recordings disk full, requests are refused (no record, no query) and
# nothing reaches BigQuery. Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_up agent || exit 1
agent() { gate_agent "$@"; }
agent 'SELECT name FROM `demo-project.crm.customers` WHERE customer_id = 7' > /dev/null
agent 'DROP TABLE `demo-project.sales.orders`' > /dev/null
# A result of about 150 KB, held whole (it arrives in many reads), plain and gzip: the
# digest recorded is the one of exactly what the agent received (decoded).
q='{"query": "SELECT x, REPEAT(\"p\", 60) AS pad FROM UNNEST(GENERATE_ARRAY(1, 2000)) AS x", "useLegacySql": false}'
for enc in id gz; do
  ct_exec agent curl -sS -m 60 --cacert "$GATE_DIR/sluice-ca.pem" -H "Authorization: Bearer t" \
    -H "Content-Type: application/json" --data "$q" -o "$GATE_DIR/whole-$enc.json" \
    $([ $enc = gz ] && echo --compressed) \
    "https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/queries?prettyPrint=false"
done
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID"
digests=$(cat "$GATE_DIR"/records/*/*.jsonl | node -e 'require("readline").createInterface({ input: process.stdin })
  .on("line", l => { const r = JSON.parse(l); if (r.type === "response") console.log(r.data.body.sha256); })')
for enc in id gz; do
  check "a whole $enc result of $(stat -c %s "$GATE_DIR/whole-$enc.json") bytes: its record has its digest" \
    grep -q "$(sha256sum < "$GATE_DIR/whole-$enc.json" | cut -d' ' -f1)" <<< "$digests"
done

rec="$GATE_DIR/records"
sessions=$(build/sluicectl sessions --dir "$rec" --json)
check_contains "one stream for the container, named after it" "$sessions" "agent--"
id=$(node -e 'const s = JSON.parse(process.argv[1]); const a = Array.isArray(s) ? s : s.sessions || s.streams;
  console.log(a.find(x => (x.stream || x.id || "").includes("agent")).stream || "")' "$sessions")
check_eq "sessions counts the refused DROP as a denial" "$(node -e 'const s = JSON.parse(process.argv[1]);
  const a = Array.isArray(s) ? s : s.sessions || s.streams; console.log(a.find(x => (x.stream || "").includes("agent")).denials)' "$sessions")" 1
out=$(build/sluicectl replay "$id" --dir "$rec")
check_contains "replay: the SQL the agent sent" "$out" 'customer_id = 7'
check_contains "replay: the refused statement and its rule" "$out" 'no-destructive-ddl'
check_contains "replay: what the agent received" "$out" 'status'
check "verify: the store is intact" build/sluicectl verify "$rec"

build/sluicectl export --dir "$rec" --container "$id" -o "$GATE_DIR/export" >/dev/null
check "export verifies offline" build/sluicectl verify "$GATE_DIR/export"
check "... and its manifest with sha256sum alone" bash -c "cd '$GATE_DIR/export' && sha256sum -c --quiet MANIFEST.sha256"
cp -r "$GATE_DIR/export" "$GATE_DIR/tampered"
f=$(ls "$GATE_DIR"/tampered/streams/*.jsonl | head -1)
sed -i 's/customer_id = 7/customer_id = 8/' "$f"
out=$(build/sluicectl verify "$GATE_DIR/tampered" 2>&1); rc=$?
check_eq "a tampered export fails verification" "$rc" 1
check_contains "... naming what is wrong" "$out" "modified"

# Recordings disk full: requests are refused, nothing reaches BigQuery.
mkdir -p "$GATE_DIR/small"
mount -t tmpfs -o size=256k tmpfs "$GATE_DIR/small" || exit 1
trap 'umount "$GATE_DIR/small" 2>/dev/null' RETURN
# (the durability log is made small enough to be created on this disk first)
sed -i "s|\"dir\": \"$rec\"|\"dir\": \"$GATE_DIR/small/rec\", \"wal_bytes\": 65536|" "$GATE_DIR/sluice.json"
gate_start
gate_warm agent
dd if=/dev/zero of="$GATE_DIR/small/filler" bs=4k 2>/dev/null  # until the disk is full
pad=$(head -c 9000 /dev/zero | tr '\0' x)  # a record that needs new pages on the full disk
out=$(agent "SELECT COUNT(*) AS n FROM \`demo-project.hr.salaries\` WHERE employee_id > 12345 /* $pad */")
check_contains "disk full: the request is refused" "$out" '"ok":false'
check_contains "... saying it could not be recorded" "$out" "could not be recorded"
check "... and it never reached BigQuery" bash -c "! grep -q 'employee_id > 12345' '$GATE_DIR/standin.log'"
kill -TERM "$SLUICED_PID"; wait "$SLUICED_PID"
umount "$GATE_DIR/small"
tap_done
