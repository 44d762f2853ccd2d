#!/usr/bin/env bash
# demo.sh - the end-to-end demo (make demo): a sandboxed "agent" container running the real
# @google-cloud/bigquery client, unchanged; eBPF sends its connections to sluiced, which
# terminates TLS with a local CA, records each connection and relays to a local BigQuery
# stand-in. Prints what the agent got, what sluiced saw, and what "BigQuery" received.
# Needs root, cgroup v2 and what scripts/install-deps.sh installs; cleans up on exit/Ctrl-C.
cd "$(dirname "$0")/.." || exit 1
CT_ID=${CT_ID:-sluice-demo-$$}
. tests/lib/container.sh
. tests/e2e/lib/gate.sh

die() { echo "demo: $*" >&2; exit 1; }
heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (cgroups, network namespaces, eBPF)"
[ -n "$(ct_cgroup2_mount)" ] || die "needs a cgroup v2 mount"
command -v ip >/dev/null && command -v unshare >/dev/null && command -v node >/dev/null ||
  die "missing ip/unshare/node: run scripts/install-deps.sh"
[ -x build/sluiced ] && [ -x build/sluicectl ] || die "build/sluiced missing: run make"
[ -d tests/node_modules ] || die "tests/node_modules missing: run scripts/install-deps.sh"

heading "Setting up: BigQuery stand-in, agent container, sluiced"
# The container first: creating it sets the clean-up traps (EXIT, Ctrl-C).
ct_create agent 127.0.0.1
echo "  agent container: cgroup $(ct_cgroup agent), netns $(ct_netns agent)"
gate_standin || die "the BigQuery stand-in did not start"
echo "  BigQuery stand-in listening on 127.0.0.1:$STANDIN_PORT"
# The agent holds no Google credential (an external_account file over an OIDC token that
# sluiced exchanges), and customer PII is masked by the policy.
GATE_IDENTITY=1 GATE_POLICY="$PWD/policies/pii-masking.json"
gate_config "$(ct_cgroup agent)" || die "could not write the sluiced configuration"
gate_start || die "sluiced did not start"
echo "  sluiced running (pid $SLUICED_PID), enforcing $(ct_cgroup agent)"
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem" ||
  die "could not export the sluice CA"
gate_agent_key
gate_warm agent || die "the gate never answered in the agent container"

Q1="SELECT name, email FROM \`demo-project.crm.customers\` ORDER BY customer_id LIMIT 3"
Q2="SELECT status, COUNT(*) AS orders FROM \`demo-project.sales.orders\` GROUP BY status ORDER BY status"

heading "Running the agent (tests/e2e/lib/agent.mjs) inside the container"
out=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" \
  node tests/e2e/lib/agent.mjs "$Q1" "$Q2" 2>&1)
agent_rc=$?

Q3="DROP TABLE \`demo-project.sales.orders\`"
drop=$(ct_exec agent env NODE_EXTRA_CA_CERTS="$GATE_DIR/sluice-ca.pem" \
  GOOGLE_APPLICATION_CREDENTIALS="$GATE_DIR/agent-key.json" \
  node tests/e2e/lib/agent.mjs "$Q3" 2>&1)

heading "The agent ran unchanged (stock BigQuery client, default endpoint, no Google key) and got:"
printf '%s\n' "$out" | node -e '
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
  for (const l of lines) {
    let r; try { r = JSON.parse(l); } catch { console.log("  " + l); continue; }
    console.log("\n  query: " + r.query);
    if (!r.ok) { console.log("  FAILED: " + (r.code ?? "") + " " + r.message); continue; }
    const rows = r.rows.slice(0, 10), cols = Object.keys(rows[0] ?? {});
    const cell = (v) => (v !== null && typeof v === "object") ? (v.value ?? JSON.stringify(v)) : String(v);
    const w = cols.map((c) => Math.max(c.length, ...rows.map((x) => cell(x[c]).length)));
    const fmt = (vs) => "    " + vs.map((v, i) => v.padEnd(w[i])).join("  ");
    console.log(fmt(cols)); console.log(fmt(w.map((n) => "-".repeat(n))));
    for (const x of rows) console.log(fmt(cols.map((c) => cell(x[c]))));
    if (r.rows.length > rows.length) console.log("    ... " + (r.rows.length - rows.length) + " more rows");
  }'

heading "It also tried a DROP TABLE; the error its client raised:"
node -e 'try { const r = JSON.parse(process.argv[1]); console.log("  " + (r.ok ? "NOT REFUSED" : r.message)); }
  catch { console.log("  " + process.argv[1]); }' "$drop" | fold -s -w 100 | sed '2,$s/^/  /'

heading "sluiced recorded (the container's tamper-evident recording: connections):"
gate_conns | node -e '
  const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
  if (!lines.length) console.log("  (no connection records)");
  const rows = lines.map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
  const pick = (o, ...ks) => { for (const k of ks) if (o[k] !== undefined) return o[k]; return ""; };
  const t = rows.map((r) => [String(pick(r, "comm") + (r.pid ? "[" + r.pid + "]" : "")),
    String(pick(r, "sni") || "-"), String(pick(r, "route")), String(pick(r, "reason") || "-"),
    String(pick(r, "requests")), String(pick(r, "bytes_from_agent")), String(pick(r, "bytes_to_agent"))]);
  const hdr = ["process", "SNI", "route", "reason", "requests", "bytes from agent", "bytes to agent"];
  const w = hdr.map((h, i) => Math.max(h.length, ...t.map((r) => r[i].length)));
  const fmt = (vs) => "  " + vs.map((v, i) => v.padEnd(w[i])).join("  ");
  if (t.length) { console.log(fmt(hdr)); console.log(fmt(w.map((n) => "-".repeat(n)))); }
  for (const r of t) console.log(fmt(r));
  if (rows.some((r) => r.comm === "bash"))
    console.log("  (the bash connection is the demo checking the gate is up before starting the agent;\n   it sent no TLS, so sluiced denied it)");'

heading "BigQuery (stand-in) received (relayed requests carry via; /token is sluiced fetching its own credential):"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
  const rows = lines.map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
  if (!rows.length) console.log("  (no requests)");
  const t = rows.map((r) => [String(r.method ?? ""), String(r.path ?? ""), String(r.via ?? r.headers?.via ?? "-")]);
  const w = [0, 1].map((i) => Math.max(...t.map((r) => r[i].length)));
  for (const r of t) console.log("  " + r[0].padEnd(w[0]) + "  " + r[1].padEnd(w[1]) + "  via: " + r[2]);
' "$GATE_DIR/standin.log"

heading "The recording is tamper-evident: sluiced stops (signing a last checkpoint), then an auditor checks it offline:"
kill -TERM "$SLUICED_PID" 2>/dev/null; wait "$SLUICED_PID" 2>/dev/null
build/sluicectl sessions --dir "$GATE_DIR/records" 2>&1 | sed 's/^/  /'
build/sluicectl verify "$GATE_DIR/records" 2>&1 | sed 's/^/  /'

echo
if [ "$agent_rc" -ne 0 ]; then
  echo "demo: the agent's queries FAILED (exit $agent_rc); sluiced log:" >&2
  tail -20 "$GATE_DIR/sluiced.log" | sed 's/^/  /' >&2
  exit 1
fi
echo "Demo done: cleaning up (container, sluiced, stand-in, pinned eBPF links)."
exit 0
