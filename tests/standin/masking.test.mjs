#!/usr/bin/env node
// Masking on the stand-in: runs queries as sluice's rewrite (userspace/mask.c) emits them
// (the text of tests/data/mask/rewrite.cases, rules tests/data/mask/rules.json, tokenize
// secret below) through the real @google-cloud/bigquery client, and checks that DuckDB
// accepts them and that every value comes out masked exactly as the C routines mask rows.
//
//   node tests/standin/masking.test.mjs      (exit 0 = pass, 1 = fail; TAP lines)

import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { customers } from './seed.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROJECT = 'demo-project';
const SECRET = '0123456789abcdef0123456789abcdef';
const hex = (s) => createHash('sha256').update(s).digest('hex');
const K1 = createHmac('sha256', SECRET).update('sluice tokenize k1').digest('hex');
const K2 = createHmac('sha256', SECRET).update('sluice tokenize k2').digest('hex');
const token = (v) => hex(K2 + hex(K1 + String(v)));

// {C} of rewrite.cases: the REPLACE list of crm.customers
const C = "TO_HEX(SHA256(ssn)) AS ssn, " +
	"IF(REGEXP_CONTAINS(email, r'^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'), CONCAT('XXXXX', " +
	"SUBSTR(email, STRPOS(email, '@'))), TO_HEX(SHA256(email))) AS email, " +
	"IF(CHAR_LENGTH(card_number) > 4, CONCAT('XXXXX', SUBSTR(card_number, -4)), " +
	"TO_HEX(SHA256(card_number))) AS card_number, " +
	"IF(phone IS NULL, NULL, '') AS phone, " +
	"DATE_TRUNC(birth_date, YEAR) AS birth_date, " +
	"IF(name IS NULL, NULL, '[redacted]') AS name, " +
	`TO_HEX(SHA256(CONCAT('${K2}', TO_HEX(SHA256(CONCAT('${K1}', CAST(customer_id AS ` +
	'STRING))))))) AS customer_id, ' +
	"IF(address IS NULL, NULL, (SELECT AS STRUCT address.* REPLACE (IF(address.street IS " +
	"NULL, NULL, '[redacted]') AS street))) AS address";
const M = `(SELECT * REPLACE (${C}) FROM crm.customers)`;

if (process.argv[2] === '--client') {
	await clientChecks(process.argv[3], process.argv[4]);
	process.exit(0);
}

let n = 0;
let failed = 0;
function report(ok, desc, detail) {
	n++;
	if (!ok) failed++;
	console.log(`${ok ? 'ok' : 'not ok'} ${n} - ${desc}`);
	if (!ok && detail) console.log(`  # ${String(detail).split('\n').join('\n  # ')}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'standin-masking-'));
let server;
const deadline = setTimeout(() => {
	report(false, 'masking test finished within 55 s');
	cleanup();
	process.exit(1);
}, 55000);
function cleanup() {
	if (server && server.exitCode === null) server.kill('SIGTERM');
	rmSync(tmp, { recursive: true, force: true });
}
const run = (cmd, args, opts = {}) => new Promise((resolve) => {
	execFile(cmd, args, { timeout: 40000, maxBuffer: 16 << 20, ...opts }, (err, stdout, stderr) =>
		resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr, err }));
});

try {
	const certs = join(tmp, 'certs');
	const mk = await run('sh', [join(HERE, 'mkcerts.sh'), certs]);
	report(mk.code === 0, 'test certificates made', mk.stderr);
	const ready = join(tmp, 'ready');
	server = spawn(process.execPath, [join(HERE, 'server.mjs'), '--cert', join(certs, 'server.pem'),
		'--key', join(certs, 'server.key'), '--host', '127.0.0.1', '--port', '0', '--log', join(tmp, 'log'),
		'--ready-file', ready], { stdio: ['ignore', 'ignore', 'pipe'] });
	let serverErr = '';
	server.stderr.on('data', (d) => (serverErr += d));
	const t0 = Date.now();
	while (!existsSync(ready) && Date.now() - t0 < 15000 && server.exitCode === null) await new Promise((r) => setTimeout(r, 50));
	const port = existsSync(ready) ? readFileSync(ready, 'utf8').trim() : '';
	report(/^\d+$/.test(port), 'stand-in starts', serverErr);
	if (/^\d+$/.test(port)) {
		const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
		const keyFile = join(tmp, 'sa.json');
		writeFileSync(keyFile, JSON.stringify({
			type: 'service_account', project_id: PROJECT, private_key_id: 'k',
			private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
			client_email: `sluice-test@${PROJECT}.iam.gserviceaccount.com`, client_id: '1',
			token_uri: `https://127.0.0.1:${port}/token`,
		}));
		const child = await run(process.execPath, [fileURLToPath(import.meta.url), '--client', port, keyFile], {
			env: { ...process.env, NODE_EXTRA_CA_CERTS: join(certs, 'ca.pem') },
		});
		const results = child.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
		for (const r of results) report(r.ok, r.desc, r.detail);
		report(child.code === 0 && results.length > 0, 'client checks ran to completion', child.stderr || child.err?.message);
	}
} catch (e) {
	report(false, 'masking test ran to completion', e.stack);
} finally {
	cleanup();
	clearTimeout(deadline);
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);

async function clientChecks(port, keyFile) {
	const emit = (ok, desc, detail) => console.log(JSON.stringify({ ok: !!ok, desc, detail: detail === undefined ? undefined : String(detail) }));
	const check = async (desc, fn) => {
		try {
			const r = await fn();
			if (r === true) emit(true, desc);
			else emit(false, desc, typeof r === 'string' ? r : JSON.stringify(r));
		} catch (e) {
			emit(false, desc, e.stack);
		}
	};
	const { BigQuery } = await import('@google-cloud/bigquery');
	const key = JSON.parse(readFileSync(keyFile, 'utf8'));
	const bq = new BigQuery({
		projectId: PROJECT, apiEndpoint: `https://127.0.0.1:${port}`, autoRetry: false,
		credentials: { client_email: key.client_email, private_key: key.private_key },
	});
	const auth = await bq.authClient.getClient();
	auth.transporter.interceptors.request.add({
		resolved: async (opts) => {
			if (String(opts.url).startsWith('https://oauth2.googleapis.com/token')) opts.url = new URL(key.token_uri);
			return opts;
		},
	});
	const q = (query) => bq.query({ query, defaultDataset: { projectId: PROJECT, datasetId: 'crm' } }).then(([r]) => r);
	const cs = customers();
	const raw = new Set(cs.flatMap((c) => [c.ssn, c.email, c.card_number, c.phone, c.name, c.address.street]));

	await check('every column of every row comes out masked as the C routines mask it', async () => {
		const rows = await q(`SELECT customer_id, name, email, phone, ssn, card_number, birth_date, address FROM ${M} AS customers`);
		const byTok = new Map(rows.map((r) => [r.customer_id, r]));
		for (const c of cs) {
			const r = byTok.get(token(c.customer_id));
			if (!r) return `no row with the token of customer ${c.customer_id}`;
			const want = {
				name: '[redacted]', email: 'XXXXX' + c.email.slice(c.email.indexOf('@')), phone: '',
				ssn: hex(c.ssn), card_number: 'XXXXX' + c.card_number.slice(-4),
				birth_date: c.birth_date.slice(0, 4) + '-01-01', street: '[redacted]', city: c.address.city,
			};
			const got = { name: r.name, email: r.email, phone: r.phone, ssn: r.ssn, card_number: r.card_number,
				birth_date: r.birth_date.value, street: r.address.street, city: r.address.city };
			if (JSON.stringify(got) !== JSON.stringify(want)) return `customer ${c.customer_id}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
		}
		return rows.length === cs.length || `got ${rows.length} rows`;
	});
	await check('alias + WHERE probe: ssn AS x WHERE ssn LIKE computes on hashes', async () => {
		const rows = await q(`SELECT ssn AS x FROM ${M} AS customers WHERE ssn LIKE '1%'`);
		const hashes = new Set(cs.map((c) => hex(c.ssn)));
		const wantN = cs.filter((c) => hex(c.ssn).startsWith('1')).length;
		return (rows.length === wantN && rows.every((r) => hashes.has(r.x))) || `got ${JSON.stringify(rows)}`;
	});
	await check('TO_JSON_STRING(t) of the whole row holds no raw value', async () => {
		const rows = await q(`SELECT TO_JSON_STRING(t) AS j FROM ${M} AS t`);
		const leak = rows.find((r) => [...raw].some((v) => r.j.includes(v)));
		return (rows.length === 50 && !leak) || `leak: ${leak?.j}`;
	});
	await check('CTE, CONCAT and UNION ALL see masked values', async () => {
		const rows = await q(`WITH x AS (SELECT CONCAT(ssn, '|', card_number) AS s FROM ${M} AS customers) SELECT s FROM x UNION ALL SELECT email FROM ${M} AS customers`);
		const leak = rows.find((r) => [...raw].some((v) => r.s.includes(v)));
		return (rows.length === 100 && !leak) || `leak: ${leak?.s}`;
	});
	await check('tokenized keys still join', async () => {
		const rows = await q(`SELECT COUNT(*) AS n FROM ${M} AS a JOIN ${M} AS b USING (customer_id)`);
		return rows[0].n === 50 || JSON.stringify(rows);
	});
	await check('TABLESAMPLE moved inside the derived table runs', async () => {
		const rows = await q(`SELECT COUNT(*) AS n FROM (SELECT * REPLACE (${C}) FROM crm.customers TABLESAMPLE SYSTEM (100 PERCENT)) AS c`);
		return rows[0].n === 50 || JSON.stringify(rows);
	});
}
