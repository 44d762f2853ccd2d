#!/usr/bin/env node
// Fidelity test of the BigQuery stand-in: proves the real
// @google-cloud/bigquery client and the real bq CLI work against it
// unchanged, so the sluice tests built on the stand-in mean something.
//
//   node tests/standin/fidelity.test.mjs      (exit 0 = pass, 1 = fail)
//
// Makes certs (mkcerts.sh) in a temp dir, starts server.mjs on port 0, runs
// the client checks in a child process (NODE_EXTRA_CA_CERTS must be set at
// process start), then the bq CLI checks and the request-log checks. Prints
// "ok N - ..." / "not ok N - ..." lines. The server is always stopped.
//
// Auth: the client uses a service-account key generated here. Its token
// request (google-auth-library always posts to
// https://oauth2.googleapis.com/token and ignores the key's token_uri) is
// redirected to the stand-in's /token by a gaxios interceptor, so the JWT
// bearer flow runs end to end. bq gets a fixed token through
// CLOUDSDK_AUTH_ACCESS_TOKEN_FILE.

import { spawn, execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import tls from 'node:tls';
import { gunzipSync, gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { customers, orders, salaries } from './seed.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROJECT = 'demo-project';
const GZ_QUERY = 'SELECT 1 AS one';

if (process.argv[2] === '--client') {
	await clientChecks(process.argv[3], process.argv[4]);
	process.exit(0);
}

// ------------------------------------------------------------------ orchestrator

let n = 0;
let failed = 0;
function report(ok, desc, detail) {
	n++;
	if (!ok) failed++;
	console.log(`${ok ? 'ok' : 'not ok'} ${n} - ${desc}`);
	if (!ok && detail) console.log(`  # ${String(detail).split('\n').join('\n  # ')}`);
}

if (!existsSync(join(HERE, '..', 'node_modules', '@duckdb', 'node-api'))) {
	console.log('not ok 1 - npm dependencies installed (run: cd tests && npm ci)');
	process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'standin-fidelity-'));
let server;
let serverErr = '';
const deadline = setTimeout(() => {
	report(false, 'fidelity test finished within 55 s');
	cleanup();
	process.exit(1);
}, 55000);

const children = new Set();
function cleanup() {
	for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
	if (server && server.exitCode === null) server.kill('SIGTERM');
	rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
	process.on(sig, () => {
		cleanup();
		process.exit(1);
	});
}

function run(cmd, args, opts = {}) {
	return new Promise((resolve) => {
		const c = execFile(cmd, args, { timeout: 30000, maxBuffer: 16 << 20, ...opts }, (err, stdout, stderr) => {
			children.delete(c);
			resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr, err });
		});
		children.add(c);
	});
}

try {
	await main();
} catch (e) {
	report(false, 'fidelity test ran to completion', e.stack);
} finally {
	cleanup();
	clearTimeout(deadline);
}
process.exit(failed ? 1 : 0);

async function main() {
	const certs = join(tmp, 'certs');
	const mk = await run('sh', [join(HERE, 'mkcerts.sh'), certs]);
	report(mk.code === 0 && existsSync(join(certs, 'server.pem')), 'mkcerts.sh makes the test CA and server cert', mk.stderr);
	const caBefore = readFileSync(join(certs, 'ca.pem'), 'utf8');
	const again = await run('sh', [join(HERE, 'mkcerts.sh'), certs]);
	report(again.code === 0 && readFileSync(join(certs, 'ca.pem'), 'utf8') === caBefore, 'mkcerts.sh is idempotent (keeps existing certs)');

	const log = join(tmp, 'requests.log');
	const ready = join(tmp, 'ready');
	server = spawn(process.execPath, [join(HERE, 'server.mjs'), '--cert', join(certs, 'server.pem'),
		'--key', join(certs, 'server.key'), '--host', '127.0.0.1', '--port', '0', '--log', log, '--ready-file', ready],
	{ stdio: ['ignore', 'pipe', 'pipe'] });
	let serverOut = '';
	server.stdout.on('data', (d) => (serverOut += d));
	server.stderr.on('data', (d) => (serverErr += d));
	const t0 = Date.now();
	while (!existsSync(ready) && Date.now() - t0 < 15000 && server.exitCode === null) await new Promise((r) => setTimeout(r, 50));
	const port = existsSync(ready) ? readFileSync(ready, 'utf8').trim() : '';
	// the line was written first, but reaches this process's pipe reader on its own time
	while (/^\d+$/.test(port) && !serverOut.includes(`listening on 127.0.0.1:${port}`) &&
		Date.now() - t0 < 15000) await new Promise((r) => setTimeout(r, 20));
	report(/^\d+$/.test(port) && serverOut.includes(`standin: listening on 127.0.0.1:${port}`),
		'server starts on a free port and writes --ready-file', serverErr);
	if (!/^\d+$/.test(port)) return;

	// service-account key for the client, token_uri pointing at the stand-in
	const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
	const keyFile = join(tmp, 'sa.json');
	writeFileSync(keyFile, JSON.stringify({
		type: 'service_account', project_id: PROJECT, private_key_id: 'standin-test-key',
		private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
		client_email: `sluice-test@${PROJECT}.iam.gserviceaccount.com`, client_id: '100000000000000000001',
		token_uri: `https://127.0.0.1:${port}/token`,
	}));

	// client checks in a child that trusts the test CA from the start
	const child = await run(process.execPath, [fileURLToPath(import.meta.url), '--client', port, keyFile], {
		env: { ...process.env, NODE_EXTRA_CA_CERTS: join(certs, 'ca.pem') }, timeout: 40000,
	});
	const results = child.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
	for (const r of results) report(r.ok, `client: ${r.desc}`, r.detail);
	report(child.code === 0 && results.length > 0, 'client checks ran to completion', child.stderr || child.err?.message);

	// raw HTTP behaviour
	await rawChecks(port, certs);

	// bq CLI
	await bqChecks(port, certs);

	// request log
	const entries = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
	report(entries.every((e) => e.time && e.method && e.path && e.headers && typeof e.body === 'string'),
		'log: one JSON object per request with time, method, path, headers, body');
	const tokenReq = entries.find((e) => e.method === 'POST' && e.path === '/token');
	report(!!tokenReq && /grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer/.test(tokenReq.body) && /assertion=/.test(tokenReq.body),
		'log: client fetched its token from /token with a JWT-bearer grant');
	const clientApi = entries.filter((e) => e.path.startsWith('/bigquery/v2/') && /gl-node|gccl/.test(e.headers['x-goog-api-client'] ?? ''));
	report(clientApi.length > 10 && clientApi.every((e) => /^Bearer standin-token-[0-9a-f]+$/.test(e.headers.authorization)),
		'log: every client API request carries the issued Bearer token in authorization', `${clientApi.length} requests`);
	const marker = entries.findIndex((e) => e.method === 'POST' && e.body.includes('standin:delay_ms=1500'));
	const polls = entries.slice(marker + 1).filter((e) => e.method === 'GET' && /\/queries\/[^/?]+\?/.test(e.path));
	report(marker >= 0 && polls.length >= 2, 'log: delayed query was polled through getQueryResults', `${polls.length} polls`);
	const bqReqs = entries.filter((e) => /google-api-python-client/.test(e.headers['user-agent'] ?? ''));
	report(bqReqs.length > 0 && bqReqs.every((e) => e.headers.authorization === 'Bearer bq-cli-token-standin'),
		'log: bq requests carry the CLOUDSDK_AUTH_ACCESS_TOKEN_FILE token');
	const gz = entries.find((e) => e.headers['content-encoding'] === 'gzip');
	report(gz && JSON.parse(gz.body).query === GZ_QUERY, 'log: gzip request bodies are logged decompressed');
	report(!serverErr.includes('internal error'), 'server logged no internal errors', serverErr);
}

function request(port, ca, { method = 'GET', path, headers = {}, body }) {
	return new Promise((resolve, reject) => {
		const req = https.request({ host: '127.0.0.1', port, method, path, headers, ca, servername: 'bigquery.googleapis.com' }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, raw: Buffer.concat(chunks) }));
		});
		req.on('error', reject);
		req.end(body);
	});
}

async function rawChecks(port, certs) {
	const ca = readFileSync(join(certs, 'ca.pem'));
	const alpn = await new Promise((resolve, reject) => {
		const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'bigquery.googleapis.com', ALPNProtocols: ['h2', 'http/1.1'] }, () => {
			resolve(s.alpnProtocol);
			s.end();
		});
		s.on('error', reject);
	});
	report(alpn === 'http/1.1', 'TLS: cert valid for bigquery.googleapis.com, ALPN picks http/1.1 over h2', alpn);

	const r = await request(port, ca, {
		method: 'POST', path: '/bigquery/v2/projects/demo-project/queries',
		headers: { authorization: 'Bearer raw-test', 'content-type': 'application/json', 'content-encoding': 'gzip', 'accept-encoding': 'gzip' },
		body: gzipSync(JSON.stringify({ query: GZ_QUERY, useLegacySql: false })),
	});
	let j = {};
	try {
		j = JSON.parse(gunzipSync(r.raw));
	} catch {
		// reported below
	}
	report(r.status === 200 && r.headers['content-encoding'] === 'gzip' && j.rows?.[0]?.f?.[0]?.v === '1' && j.totalRows === '1',
		'gzip: request body decompressed, response gzipped when accepted', r.raw.toString('latin1').slice(0, 200));

	const anon = await request(port, ca, { path: '/bigquery/v2/projects/demo-project/datasets' });
	const aj = JSON.parse(anon.raw);
	report(anon.status === 401 && aj.error?.status === 'UNAUTHENTICATED', 'no Authorization header: BigQuery-shaped 401');

	const unk = await request(port, ca, { path: '/bigquery/v2/projects/demo-project/nothing/here', headers: { authorization: 'Bearer raw-test' } });
	const uj = JSON.parse(unk.raw);
	report(unk.status === 404 && uj.error?.code === 404 && uj.error?.errors?.[0]?.reason === 'notFound' && uj.error?.status === 'NOT_FOUND',
		'unknown path: BigQuery-shaped 404');

	const legacy = await request(port, ca, { path: '/projects/demo-project/datasets/crm', headers: { authorization: 'Bearer raw-test' } });
	report(legacy.status === 200 && JSON.parse(legacy.raw).id === 'demo-project:crm', 'paths without the /bigquery/v2 prefix work');
}

async function bqChecks(port, certs) {
	const bqBin = ['/usr/bin/bq', '/usr/lib/google-cloud-sdk/bin/bq'].find((f) => existsSync(f));
	if (!bqBin) {
		report(false, 'bq CLI is installed');
		return;
	}
	const cfg = join(tmp, 'gcloud');
	mkdirSync(cfg);
	const tok = join(tmp, 'token');
	writeFileSync(tok, 'bq-cli-token-standin\n');
	const env = {
		...process.env, CLOUDSDK_CONFIG: cfg, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE: tok,
		CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE: join(certs, 'ca.pem'), CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
		BIGQUERYRC: join(tmp, 'bigqueryrc'), HOME: tmp,
	};
	const bq = (...args) => run(bqBin, ['--api', `https://127.0.0.1:${port}`, '--project_id', PROJECT, ...args], { env });
	const c = customers();

	const [q, qjson, ls, show, head, bad, dry] = await Promise.all([
		bq('query', '--nouse_legacy_sql', 'SELECT customer_id, email FROM `demo-project.crm.customers` WHERE customer_id <= 3 ORDER BY customer_id'),
		bq('--format=json', 'query', '--nouse_legacy_sql', 'SELECT customer_id, name, address, tags, created_at FROM crm.customers WHERE customer_id = 1'),
		bq('ls', '--format=json'),
		bq('--format=json', 'show', 'crm.customers'),
		bq('--format=json', 'head', '-n', '5', 'sales.orders'),
		bq('query', '--nouse_legacy_sql', 'SELECT * FROM crm.nope'),
		bq('query', '--nouse_legacy_sql', '--dry_run', 'SELECT email FROM crm.customers'),
	]);
	report(q.code === 0 && c.slice(0, 3).every((x) => q.stdout.includes(x.email)) && /customer_id/.test(q.stdout),
		'bq query prints the rows', q.stdout + q.stderr);
	let rows = [];
	try {
		rows = JSON.parse(qjson.stdout);
	} catch {
		// reported below
	}
	report(rows.length === 1 && rows[0].name === c[0].name && rows[0].address?.city === c[0].address.city &&
		JSON.stringify(rows[0].tags) === JSON.stringify(c[0].tags) && /^2023-01-01 00:00:00/.test(rows[0].created_at),
	'bq --format=json query decodes RECORD, REPEATED and TIMESTAMP', qjson.stdout + qjson.stderr);
	let dsets = [];
	try {
		dsets = JSON.parse(ls.stdout).map((d) => d.datasetReference.datasetId);
	} catch {
		// reported below
	}
	report(['crm', 'hr', 'sales'].every((d) => dsets.includes(d)), 'bq ls lists the datasets', ls.stdout + ls.stderr);
	let meta = {};
	try {
		meta = JSON.parse(show.stdout);
	} catch {
		// reported below
	}
	report(Number(meta.numRows) >= 50 && meta.schema?.fields?.some((f) => f.name === 'address' && f.type === 'RECORD'),
		'bq show prints the table schema', show.stdout + show.stderr);
	let hrows = [];
	try {
		hrows = JSON.parse(head.stdout);
	} catch {
		// reported below
	}
	report(hrows.length === 5 && String(hrows[0].order_id) === String(orders()[0].order_id), 'bq head reads tabledata.list', head.stdout + head.stderr);
	const squash = (x) => x.replace(/\s+/g, '');
	report(bad.code !== 0 && squash(bad.stdout + bad.stderr).includes(squash('Not found: Table demo-project:crm.nope was not found in location US')),
		'bq query on a missing table reports the BigQuery error', bad.stdout + bad.stderr);
	report(dry.code === 0 && /Query successfully validated.*will process \d+ bytes/s.test(dry.stdout), 'bq query --dry_run', dry.stdout + dry.stderr);
}

// ------------------------------------------------------------------ client checks (child)

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
		projectId: PROJECT,
		apiEndpoint: `https://127.0.0.1:${port}`,
		credentials: { client_email: key.client_email, private_key: key.private_key },
		autoRetry: false,
	});
	// google-auth-library posts service-account JWT grants to a fixed Google
	// URL; send them to the stand-in's /token (key.token_uri) instead.
	const authClient = await bq.authClient.getClient();
	authClient.transporter.interceptors.request.add({
		resolved: async (opts) => {
			if (String(opts.url).startsWith('https://oauth2.googleapis.com/token')) opts.url = new URL(key.token_uri);
			return opts;
		},
	});

	const cs = customers();
	const same = (a, b) => JSON.stringify(a) === JSON.stringify(b) || `got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`;

	await check('query() counts the seeded customers', async () => {
		const [rows] = await bq.query('SELECT COUNT(*) AS n FROM `demo-project.crm.customers`');
		return same(rows, [{ n: 50 }]);
	});

	await check('query() returns a specific customer with all column types decoded', async () => {
		const [rows] = await bq.query({
			query: 'SELECT * FROM crm.customers WHERE email = @email',
			params: { email: cs[6].email },
		});
		const r = rows[0];
		const want = cs[6];
		return same([rows.length, r.customer_id, r.name, r.email, r.ssn, r.card_number, r.birth_date.value,
			r.address, r.tags, r.created_at.value],
		[1, want.customer_id, want.name, want.email, want.ssn, want.card_number, want.birth_date,
			want.address, want.tags, new Date(want.created_at).toJSON()]);
	});

	await check('query() with defaultDataset-free 2-part names, NUMERIC and aggregates', async () => {
		const [rows] = await bq.query('SELECT status, COUNT(*) AS n, SUM(amount) AS total FROM sales.orders GROUP BY status ORDER BY status');
		const os = orders();
		const want = {};
		for (const o of os) {
			want[o.status] ??= { n: 0, cents: 0 };
			want[o.status].n++;
			want[o.status].cents += Math.round(o.amount * 100);
		}
		return same(rows.map((r) => [r.status, r.n, r.total.toString()]),
			Object.keys(want).sort().map((s) => [s, want[s].n, String(want[s].cents / 100)]));
	});

	await check('createQueryJob + getQueryResults({maxResults: 10}) pages through all rows once', async () => {
		const [job] = await bq.createQueryJob({ query: 'SELECT order_id FROM `demo-project.sales.orders` ORDER BY order_id' });
		const seen = [];
		let opts = { maxResults: 10, autoPaginate: false };
		let pages = 0;
		for (;;) {
			const [rows, next] = await job.getQueryResults(opts);
			pages++;
			seen.push(...rows.map((r) => r.order_id));
			if (!next) break;
			opts = next;
		}
		const want = orders().map((o) => o.order_id);
		return same([pages, seen], [20, want]);
	});

	await check('getQueryResults with startIndex', async () => {
		const [job] = await bq.createQueryJob({ query: 'SELECT order_id FROM sales.orders ORDER BY order_id' });
		const [rows] = await job.getQueryResults({ startIndex: '195', maxResults: 3, autoPaginate: false });
		return same(rows.map((r) => r.order_id), [1195, 1196, 1197]);
	});

	await check('query() survives jobComplete:false and polls until the rows come', async () => {
		const t = Date.now();
		const [rows] = await bq.query('/*standin:delay_ms=1500,poll_ms=200*/ SELECT name FROM hr.salaries WHERE employee_id = 3');
		const took = Date.now() - t;
		return (took >= 1400 || `took only ${took} ms`) && same(rows, [{ name: salaries()[2].name }]);
	});

	await check('job.cancel() stops a running job', async () => {
		const [job] = await bq.createQueryJob({ query: '/*standin:delay_ms=5000*/ DELETE FROM hr.salaries WHERE true' });
		await job.cancel();
		const [meta] = await job.getMetadata();
		const [[{ n }]] = await bq.query('SELECT COUNT(*) AS n FROM hr.salaries');
		return same([meta.status.state, meta.status.errorResult?.reason, n], ['DONE', 'stopped', 20]);
	});

	await check('table.getRows() reads tabledata.list', async () => {
		const [rows] = await bq.dataset('hr').table('salaries').getRows();
		const s = salaries();
		return same(rows.map((r) => [r.employee_id, r.name, r.salary, r.bonus]), s.map((x) => [x.employee_id, x.name, x.salary, x.bonus]));
	});

	await check('table.getRows({maxResults}) pages', async () => {
		const [rows, next] = await bq.dataset('sales').table('orders').getRows({ maxResults: 7, autoPaginate: false });
		const [rows2] = await bq.dataset('sales').table('orders').getRows(next);
		return same([rows.length, rows2.length, rows2[0].order_id], [7, 7, 1007]);
	});

	await check('table.insert() then the row reads back', async () => {
		const table = bq.dataset('crm').table('customers');
		await table.insert([{
			customer_id: 9001, name: 'Test Person', email: 'test.person@example.com', phone: '+1-555-0199',
			birth_date: '1990-02-03', address: { street: '1 Test Way', city: 'Testville' }, tags: ['new', 'test'],
			created_at: bq.timestamp('2024-05-01T12:00:00.000Z'),
		}]);
		const [rows] = await bq.query('SELECT name, address.city AS city, tags, birth_date, created_at FROM crm.customers WHERE customer_id = 9001');
		return same(rows.map((r) => [r.name, r.city, r.tags, r.birth_date.value, r.created_at.value]),
			[['Test Person', 'Testville', ['new', 'test'], '1990-02-03', '2024-05-01T12:00:00.000Z']]);
	});

	await check('table.insert() of a bad row raises PartialFailureError', async () => {
		try {
			await bq.dataset('crm').table('customers').insert([{ customer_id: 9002, nope: 1 }]);
			return 'no error';
		} catch (e) {
			return same([e.name, e.errors?.[0]?.errors?.[0]?.reason], ['PartialFailureError', 'invalid']);
		}
	});

	await check('DDL/DML jobs report statementType and numDmlAffectedRows', async () => {
		const run = async (query) => {
			const [job] = await bq.createQueryJob({ query });
			await job.getQueryResults();
			const [m] = await job.getMetadata();
			return [m.statistics.query.statementType, m.statistics.query.numDmlAffectedRows ?? null];
		};
		return same([
			await run('CREATE TABLE sales.scratch (id INT64, note STRING)'),
			await run("INSERT INTO sales.scratch (id, note) VALUES (1, 'a'), (2, \"b\")"),
			await run("UPDATE sales.scratch SET note = 'c' WHERE id = 2"),
			await run('DELETE FROM sales.scratch WHERE id = 1'),
		], [['CREATE_TABLE', null], ['INSERT', '2'], ['UPDATE', '1'], ['DELETE', '1']]);
	});

	await check('table.delete() then table.exists() is false', async () => {
		const table = bq.dataset('sales').table('scratch');
		const [before] = await table.exists();
		await table.delete();
		const [after] = await table.exists();
		return same([before, after], [true, false]);
	});

	await check('dataset.createTable() with a schema, then getMetadata()', async () => {
		const [table] = await bq.dataset('hr').createTable('reviews', {
			schema: [{ name: 'employee_id', type: 'INTEGER', mode: 'REQUIRED' }, { name: 'score', type: 'FLOAT' },
				{ name: 'notes', type: 'RECORD', mode: 'REPEATED', fields: [{ name: 'text', type: 'STRING' }] }],
		});
		const [m] = await table.getMetadata();
		await table.delete();
		return same(m.schema.fields.map((f) => [f.name, f.type, f.mode]),
			[['employee_id', 'INTEGER', 'REQUIRED'], ['score', 'FLOAT', 'NULLABLE'], ['notes', 'RECORD', 'REPEATED']]);
	});

	await check('dry run returns statementType SELECT, referencedTables and totalBytesProcessed', async () => {
		const [job] = await bq.createQueryJob({
			query: 'SELECT c.email, o.amount FROM `demo-project.crm.customers` c JOIN sales.orders o USING (customer_id)',
			dryRun: true,
		});
		const q = job.metadata.statistics.query;
		const refs = q.referencedTables.map((t) => `${t.projectId}.${t.datasetId}.${t.tableId}`).sort();
		return same([q.statementType, refs, Number(q.totalBytesProcessed) > 0],
			['SELECT', ['demo-project.crm.customers', 'demo-project.sales.orders'], true]);
	});

	await check('missing table: query() rejects with the BigQuery 404 message', async () => {
		try {
			await bq.query('SELECT * FROM crm.nope');
			return 'no error';
		} catch (e) {
			return same([e.code, e.message, e.errors?.[0]?.reason],
				[404, 'Not found: Table demo-project:crm.nope was not found in location US', 'notFound']);
		}
	});

	await check('bad SQL: query() rejects with 400 invalidQuery', async () => {
		try {
			await bq.query('SELEC 1');
			return 'no error';
		} catch (e) {
			return same([e.code, e.errors?.[0]?.reason], [400, 'invalidQuery']);
		}
	});

	await check('job.promise() polls jobs.get; the anonymous destination table serves the result', async () => {
		const [job] = await bq.createQueryJob({ query: '/*standin:delay_ms=300*/ SELECT employee_id FROM hr.salaries WHERE employee_id <= 3 ORDER BY 1' });
		await job.promise();
		const [meta] = await job.getMetadata();
		const dt = meta.configuration.query.destinationTable;
		const [rows] = await bq.dataset(dt.datasetId).table(dt.tableId).getRows();
		return same([meta.status.state, rows.map((r) => r.employee_id)], ['DONE', [1, 2, 3]]);
	});

	await check('INFORMATION_SCHEMA.COLUMNS describes the seeded tables', async () => {
		const [rows] = await bq.query("SELECT column_name, data_type FROM `demo-project.crm.INFORMATION_SCHEMA.COLUMNS` WHERE table_name = 'customers' ORDER BY ordinal_position");
		return same(rows.map((r) => `${r.column_name} ${r.data_type}`), ['customer_id INT64', 'name STRING', 'email STRING', 'phone STRING',
			'ssn STRING', 'card_number STRING', 'birth_date DATE', 'address STRUCT<street STRING, city STRING>', 'tags ARRAY<STRING>',
			'created_at TIMESTAMP']);
	});

	await check('getDatasets() and getTables()', async () => {
		const [ds] = await bq.getDatasets();
		const [tables] = await bq.dataset('crm').getTables();
		return same([ds.map((d) => d.id).sort(), tables.map((t) => t.id)], [['crm', 'hr', 'sales'], ['customers']]);
	});

	await check('getJobs() lists the jobs run so far', async () => {
		const [jobs] = await bq.getJobs({ maxResults: 5 });
		return (jobs.length === 5 && jobs.every((j) => j.metadata.status.state)) || `got ${jobs.length}`;
	});
}
