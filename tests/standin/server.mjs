#!/usr/bin/env node
// BigQuery stand-in for the sluice tests: an HTTPS (HTTP/1.1 only) server
// speaking enough of the BigQuery v2 REST API for @google-cloud/bigquery and
// the bq CLI, executing SQL on DuckDB over a seeded demo warehouse.
//
//   node server.mjs --cert F --key F [--host 127.0.0.1] [--port 0] --log FILE
//                   [--ready-file FILE] [--allow-anonymous] [--no-seed]
//
// Once listening it writes the port (one line) to --ready-file and prints
// "standin: listening on HOST:PORT". Every request is appended to --log as
// one JSON line {time, method, path, headers, body} before it is answered,
// so tests can assert what reached "BigQuery". API paths are accepted with
// or without the /bigquery/v2 prefix; the Host header is ignored.
// Without --allow-anonymous, API calls lacking "Authorization: Bearer ..."
// get BigQuery's 401.

import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { Api, errorBody } from './api.mjs';
import { BqError, Engine } from './engine.mjs';
import { seed } from './seed.mjs';

const { values: opt } = parseArgs({
	options: {
		cert: { type: 'string' },
		key: { type: 'string' },
		host: { type: 'string', default: '127.0.0.1' },
		port: { type: 'string', default: '0' },
		log: { type: 'string' },
		'ready-file': { type: 'string' },
		'allow-anonymous': { type: 'boolean', default: false },
		'no-seed': { type: 'boolean', default: false },
	},
	strict: true,
});
if (!opt.cert || !opt.key || !opt.log) {
	console.error('usage: server.mjs --cert F --key F [--host H] [--port N] --log FILE [--ready-file FILE] [--allow-anonymous] [--no-seed]');
	process.exit(2);
}

appendFileSync(opt.log, ''); // fail now, not on the first request, if the log is unwritable
const engine = await Engine.create();
if (!opt['no-seed']) await seed(engine);
const api = new Api(engine, { allowAnonymous: opt['allow-anonymous'] });

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

// Google APIs pretty-print JSON unless ?prettyPrint=false.
function send(req, res, { status, json, headers = {} }) {
	const pretty = !/[?&]prettyPrint=false(&|$)/.test(req.url);
	let body = json === undefined || status === 204 ? Buffer.alloc(0) : Buffer.from(JSON.stringify(json, null, pretty ? 2 : 0));
	const h = {
		'content-type': 'application/json; charset=UTF-8',
		vary: 'Origin, X-Origin, Referer',
		'x-content-type-options': 'nosniff',
		server: 'ESF',
		...headers,
	};
	if (body.length && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
		body = gzipSync(body);
		h['content-encoding'] = 'gzip';
	}
	// Google's front ends send large bodies chunked, as they produce them
	if (status !== 204 && body.length <= 1 << 20) h['content-length'] = body.length;
	res.writeHead(status, h);
	if (status === 204) return res.end();
	for (let i = 0; i < body.length; i += 1 << 16) res.write(body.subarray(i, i + (1 << 16)));
	res.end();
}

async function onRequest(req, res) {
	let raw = await readBody(req);
	let decodeError = null;
	try {
		const enc = (req.headers['content-encoding'] ?? '').toLowerCase();
		if (enc === 'gzip') raw = gunzipSync(raw);
		else if (enc === 'deflate') raw = inflateSync(raw);
	} catch (e) {
		decodeError = e;
	}
	const body = raw.toString('utf8');
	appendFileSync(opt.log, JSON.stringify({
		time: new Date().toISOString(), method: req.method, path: req.url, headers: req.headers, body,
	}) + '\n');
	if (decodeError) {
		return send(req, res, { status: 400, json: errorBody(new BqError(400, 'parseError', `Could not decode request body: ${decodeError.message}`)) });
	}
	const url = new URL(req.url, 'https://bigquery.googleapis.com');
	let path = url.pathname;
	if (path === '/bigquery/v2' || path.startsWith('/bigquery/v2/')) path = path.slice('/bigquery/v2'.length) || '/';
	const out = await api.handle({ method: req.method, path, query: url.searchParams, headers: req.headers, body });
	send(req, res, out);
}

const server = createServer({
	cert: readFileSync(opt.cert),
	key: readFileSync(opt.key),
	ALPNProtocols: ['http/1.1'],
}, (req, res) => {
	onRequest(req, res).catch((e) => {
		console.error('standin: request failed:', e);
		if (!res.headersSent) send(req, res, { status: 500, json: errorBody(new BqError(500, 'backendError', e.message)) });
		else res.destroy();
	});
});

server.listen(Number(opt.port), opt.host, () => {
	const { port } = server.address();
	const host = opt.host.includes(':') ? `[${opt.host}]` : opt.host;
	console.log(`standin: listening on ${host}:${port}`); // before the ready file: it says all is out
	if (opt['ready-file']) {
		writeFileSync(opt['ready-file'] + '.tmp', `${port}\n`);
		renameSync(opt['ready-file'] + '.tmp', opt['ready-file']);
	}
});

function shutdown() {
	server.close();
	server.closeAllConnections();
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
