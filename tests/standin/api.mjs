// BigQuery v2 REST handlers of the stand-in the sluice tests talk to.
//
// handle(req) takes {method, path, query: URLSearchParams, headers, body} with
// the /bigquery/v2 prefix already removed and returns {status, json} (or
// {status, text}). Shapes follow what BigQuery returns and what
// @google-cloud/bigquery and the bq CLI read: rows as {"f":[{"v":...}]},
// counts as strings, BigQuery-shaped errors. Query jobs are real: the SQL
// runs on DuckDB (engine.mjs). A query's duration can be stretched with a
// /*standin:delay_ms=N*/ comment (the job stays RUNNING for N ms and the SQL
// runs at the end, so a cancel in between prevents it) and the longest a
// single jobs.query/getQueryResults call blocks can be cut with
// /*standin:poll_ms=N*/, so tests can exercise jobComplete:false polling.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BqError, LOCATION, encodeRows, invalid, tableNotFound } from './engine.mjs';

const SELF = 'https://bigquery.googleapis.com/bigquery/v2';
const DEFAULT_WAIT_MS = 10000; // BigQuery's default timeoutMs
// A SELECT job's configuration.query.destinationTable is
// _standin_anonymous.anon_<jobId>; tables.get / tabledata.list serve the
// job's result there, like BigQuery's anonymous result tables.
const ANON = '_standin_anonymous';
const STATUS = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
	409: 'ALREADY_EXISTS', 500: 'INTERNAL', 501: 'UNIMPLEMENTED', 503: 'UNAVAILABLE' };

export function errorBody(e) {
	const item = { message: e.message, domain: 'global', reason: e.reason };
	if (e.location) item.location = e.location;
	if (e.locationType) item.locationType = e.locationType;
	return { error: { code: e.code, message: e.message, errors: [item], status: STATUS[e.code] ?? 'UNKNOWN' } };
}

const etag = (o) => createHash('md5').update(JSON.stringify(o)).digest('base64');
const withEtag = (o) => ({ ...o, etag: etag(o) });
const b64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

const pageToken = (offset) => Buffer.from(JSON.stringify({ o: offset })).toString('base64url');
function pageStart(q) {
	if (q.get('startIndex') != null && q.get('startIndex') !== '') return Number(q.get('startIndex'));
	const t = q.get('pageToken');
	if (!t) return 0;
	try {
		const o = b64json(t).o;
		if (Number.isInteger(o) && o >= 0) return o;
	} catch {
		// fall through
	}
	throw invalid(`Invalid page token: ${t}`);
}
const maxResultsOf = (v) => (v == null || v === '' ? Infinity : Math.max(0, Number(v)));

// "formatOptions.useInt64Timestamp" / "formatOptions.timestampOutputFormat" -> row encoding
function tsFormat(useInt64, outFmt) {
	if (outFmt === 'ISO8601_STRING' || outFmt === 'INT64') return outFmt;
	if (outFmt === 'FLOAT64') return 'FLOAT';
	return useInt64 === true || useInt64 === 'true' ? 'INT64' : 'FLOAT';
}

// Where the bq CLI keeps its discovery document (it fetches it from --api
// when --api is not a googleapis.com host).
function findDiscoveryDoc() {
	const cands = [process.env.STANDIN_DISCOVERY_FILE];
	for (const bin of ['/usr/bin/bq', '/usr/local/bin/bq', '/usr/lib/google-cloud-sdk/bin/bq']) {
		try {
			cands.push(join(dirname(realpathSync(bin)), '..', 'platform', 'bq', 'discovery_next', 'bigquery.json'));
		} catch {
			// not installed there
		}
	}
	return cands.find((f) => f && existsSync(f));
}

export class Api {
	constructor(engine, { allowAnonymous = false } = {}) {
		this.engine = engine;
		this.allowAnonymous = allowAnonymous;
		this.jobs = new Map(); // "project/jobId" -> job
		this.tokens = new Map(); // access token -> principal email
	}

	async handle(req) {
		try {
			return await this.route(req);
		} catch (e) {
			if (e instanceof BqError) return { status: e.code, json: errorBody(e) };
			console.error('standin: internal error:', e);
			return { status: 500, json: errorBody(new BqError(500, 'backendError', `Internal error: ${e.message}`)) };
		}
	}

	async route(req) {
		const { method } = req;
		let seg;
		try {
			seg = req.path.split('/').filter(Boolean).map(decodeURIComponent);
		} catch {
			throw invalid(`Malformed path: ${req.path}`);
		}
		const is = (m, ...pat) => method === m && seg.length === pat.length && pat.every((p, i) => p === '*' || p === seg[i]);

		// OAuth / STS token endpoints and discovery: no credentials needed.
		if (method === 'POST' && ['/token', '/oauth2/v4/token', '/o/oauth2/token', '/v1/token'].includes(req.path)) {
			return this.token(req);
		}
		if (method === 'GET' && (req.path === '/discovery/v1/apis/bigquery/v2/rest' || req.path === '/$discovery/rest')) {
			return this.discovery(req);
		}

		if (!this.allowAnonymous && !/^Bearer\s+\S+/i.test(req.headers.authorization ?? '')) {
			throw new BqError(401, 'required',
				'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
				{ location: 'Authorization', locationType: 'header' });
		}
		const body = req.body ? parseJson(req.body) : {};
		const q = req.query;
		const [, p, coll, id, sub, id2] = seg;
		if (seg[0] === 'projects') {
			if (is('GET', 'projects')) return this.listProjects();
			if (is('POST', 'projects', '*', 'queries')) return this.jobsQuery(p, body, req);
			if (is('GET', 'projects', '*', 'queries', '*')) return this.getQueryResults(p, id, q);
			if (is('POST', 'projects', '*', 'jobs')) return this.jobsInsert(p, body, req);
			if (is('GET', 'projects', '*', 'jobs')) return this.jobsList(p, q);
			if (is('GET', 'projects', '*', 'jobs', '*')) return { status: 200, json: this.jobResource(this.job(p, id)) };
			if (is('POST', 'projects', '*', 'jobs', '*', 'cancel')) return this.jobsCancel(p, id);
			if (is('DELETE', 'projects', '*', 'jobs', '*', 'delete')) {
				this.job(p, id);
				this.jobs.delete(`${p}/${id}`);
				return { status: 204 };
			}
			if (is('GET', 'projects', '*', 'datasets')) return this.datasetsList(p, q);
			if (is('POST', 'projects', '*', 'datasets')) return this.datasetsInsert(p, body);
			if (is('GET', 'projects', '*', 'datasets', '*')) return this.datasetResource(p, id);
			if ((is('PATCH', 'projects', '*', 'datasets', '*') || is('PUT', 'projects', '*', 'datasets', '*'))) {
				const meta = await this.engine.getDataset(p, id);
				if ('description' in body) meta.description = body.description;
				if ('labels' in body) meta.labels = body.labels;
				meta.lastModifiedTime = String(Date.now());
				return this.datasetResource(p, id);
			}
			if (is('DELETE', 'projects', '*', 'datasets', '*')) {
				await this.engine.deleteDataset(p, id, q.get('deleteContents') === 'true');
				return { status: 204 };
			}
			if (coll === 'datasets' && sub === 'tables') {
				if (is('GET', 'projects', '*', 'datasets', '*', 'tables')) return this.tablesList(p, id, q);
				if (is('POST', 'projects', '*', 'datasets', '*', 'tables')) return this.tablesInsert(p, id, body);
				if (is('GET', 'projects', '*', 'datasets', '*', 'tables', '*')) return this.tableResource(p, id, id2, q);
				if (is('PATCH', 'projects', '*', 'datasets', '*', 'tables', '*') || is('PUT', 'projects', '*', 'datasets', '*', 'tables', '*')) {
					const t = await this.engine.getTable(p, id, id2);
					if ('description' in body) t.meta.description = body.description;
					if ('labels' in body) t.meta.labels = body.labels;
					t.meta.lastModifiedTime = String(Date.now());
					return this.tableResource(p, id, id2, q);
				}
				if (is('DELETE', 'projects', '*', 'datasets', '*', 'tables', '*')) {
					await this.engine.deleteTable(p, id, id2);
					return { status: 204 };
				}
				if (is('GET', 'projects', '*', 'datasets', '*', 'tables', '*', 'data')) return this.tabledataList(p, id, id2, q);
				if (is('POST', 'projects', '*', 'datasets', '*', 'tables', '*', 'insertAll')) return this.insertAll(p, id, id2, body);
			}
		}
		throw new BqError(404, 'notFound', `Not found: ${method} ${req.path}`);
	}

	// ---------------------------------------------------------- auth

	token(req) {
		const ct = req.headers['content-type'] ?? '';
		const f = ct.includes('json') ? parseJson(req.body || '{}') : Object.fromEntries(new URLSearchParams(req.body));
		const oauthError = (error, error_description) => ({ status: 400, json: { error, error_description } });
		const issue = (principal, extra = {}) => {
			const access_token = `standin-token-${randomBytes(16).toString('hex')}`;
			this.tokens.set(access_token, principal);
			return { status: 200, json: { access_token, expires_in: 3600, token_type: 'Bearer', ...extra } };
		};
		const grant = f.grant_type;
		if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
			const claims = decodeJwt(f.assertion);
			if (!claims) return oauthError('invalid_grant', 'Invalid JWT: assertion is not a well-formed JWT.');
			if (!claims.iss || !(claims.scope || claims.aud || claims.target_audience)) {
				return oauthError('invalid_grant', 'Invalid JWT: missing iss or scope/aud claim.');
			}
			if (claims.target_audience) {
				const idt = fakeJwt({ iss: 'https://accounts.google.com', aud: claims.target_audience, email: claims.iss });
				return { status: 200, json: { id_token: idt } };
			}
			return issue(claims.sub || claims.iss);
		}
		if (grant === 'refresh_token') {
			if (!f.refresh_token) return oauthError('invalid_request', 'Missing required parameter: refresh_token');
			return issue(f.client_id ? `user-of-${f.client_id}` : 'standin-user@example.com', { scope: f.scope ?? 'https://www.googleapis.com/auth/bigquery' });
		}
		if (grant === 'urn:ietf:params:oauth:grant-type:token-exchange') {
			if (!f.subject_token) return oauthError('invalid_request', 'Missing required parameter: subject_token');
			return issue('federated-principal@example.com', { issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
		}
		return oauthError('unsupported_grant_type', `Invalid grant_type: ${grant ?? ''}`);
	}

	principal(req) {
		const m = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '');
		if (!m) return 'anonymous@example.com';
		if (this.tokens.has(m[1])) return this.tokens.get(m[1]);
		const claims = decodeJwt(m[1]); // self-signed JWT credentials
		return claims?.sub || claims?.iss || 'standin-user@example.com';
	}

	discovery(req) {
		const file = findDiscoveryDoc();
		if (!file) throw new BqError(404, 'notFound', 'Not found: discovery document (bq CLI not installed; set STANDIN_DISCOVERY_FILE)');
		const doc = JSON.parse(readFileSync(file, 'utf8'));
		const root = `https://${req.headers.host ?? 'bigquery.googleapis.com'}/`;
		doc.rootUrl = root;
		doc.baseUrl = root + doc.servicePath;
		return { status: 200, json: doc };
	}

	// ---------------------------------------------------------- jobs

	job(p, id) {
		const j = this.jobs.get(`${p}/${id}`);
		if (!j) throw new BqError(404, 'notFound', `Not found: Job ${p}:${LOCATION}.${id}`);
		return j;
	}

	// Creates a query job and starts it. cfg is configuration.query.
	async startQuery(p, jobRef, cfg, { dryRun = false, labels, principal, queryParameters } = {}) {
		if (cfg.useLegacySql === true || /^\s*#legacySQL/i.test(cfg.query ?? '')) {
			throw invalid('Legacy SQL is not supported by the BigQuery stand-in; set useLegacySql: false.');
		}
		if (!cfg.query) throw invalid('Required parameter is missing: query');
		const ref = { projectId: p, jobId: jobRef.jobId ?? `job_${randomBytes(18).toString('base64url')}`, location: jobRef.location || LOCATION };
		if (!dryRun && this.jobs.has(`${p}/${ref.jobId}`)) {
			throw new BqError(409, 'duplicate', `Already Exists: Job ${p}:${ref.location}.${ref.jobId}`);
		}
		const ctx = { projectId: p, defaultDataset: cfg.defaultDataset, queryParameters: queryParameters ?? cfg.queryParameters ?? [] };
		const job = {
			ref, cfg: { ...cfg, useLegacySql: false, priority: cfg.priority ?? 'INTERACTIVE' }, labels, principal, dryRun,
			created: Date.now(), started: null, ended: null, state: 'PENDING', error: null, result: null, analysis: null,
		};
		job.done = new Promise((r) => (job.resolve = r));
		const finish = (error, result) => {
			if (job.state === 'DONE') return;
			Object.assign(job, { state: 'DONE', error, result, ended: Date.now() });
			job.resolve();
		};
		job.finish = finish;
		try {
			job.analysis = await this.engine.analyze(cfg.query, ctx);
		} catch (e) {
			if (dryRun || !(e instanceof BqError)) throw e;
			finish(e);
		}
		if (dryRun) {
			job.state = 'DONE';
			return job;
		}
		this.jobs.set(`${p}/${ref.jobId}`, job);
		if (job.state === 'DONE') return job;
		job.state = 'RUNNING';
		job.started = Date.now();
		job.pollMs = job.analysis.hints.poll_ms;
		job.timer = setTimeout(async () => {
			try {
				finish(null, await this.engine.execute(job.analysis, ctx));
			} catch (e) {
				finish(e instanceof BqError ? e : new BqError(500, 'backendError', e.message));
			}
		}, job.analysis.hints.delay_ms ?? 0);
		return job;
	}

	async waitFor(job, timeoutMs) {
		if (job.state === 'DONE') return;
		let wait = timeoutMs == null || timeoutMs === '' ? DEFAULT_WAIT_MS : Number(timeoutMs);
		if (job.pollMs != null) wait = Math.min(wait, job.pollMs);
		let t;
		await Promise.race([job.done, new Promise((r) => (t = setTimeout(r, wait)))]);
		clearTimeout(t);
	}

	// Body shared by jobs.query and jobs.getQueryResults.
	queryResults(job, kind, { start = 0, max = Infinity, tsFmt = 'FLOAT' }) {
		const out = { kind, jobReference: job.ref, jobComplete: job.state === 'DONE' };
		if (!out.jobComplete) return out;
		if (job.error) throw job.error;
		const a = job.analysis;
		const r = job.result;
		out.totalBytesProcessed = String(a.totalBytesProcessed);
		out.cacheHit = false;
		if (r.rows) {
			const page = r.rows.slice(start, Number.isFinite(max) ? start + max : undefined);
			out.schema = { fields: r.fields };
			out.totalRows = String(r.rows.length);
			if (page.length) out.rows = encodeRows(r.types, page, tsFmt);
			if (start + page.length < r.rows.length) out.pageToken = pageToken(start + page.length);
		} else {
			out.totalRows = '0';
		}
		if (r.affected != null) {
			out.numDmlAffectedRows = String(r.affected);
			out.dmlStats = dmlStats(a.statementType, r.affected);
		}
		return out;
	}

	async jobsQuery(p, body, req) {
		const cfg = {
			query: body.query, defaultDataset: body.defaultDataset, useLegacySql: body.useLegacySql,
			queryParameters: body.queryParameters, parameterMode: body.parameterMode, useQueryCache: body.useQueryCache,
		};
		if (body.dryRun) {
			const job = await this.startQuery(p, { location: body.location }, cfg, { dryRun: true });
			return {
				status: 200,
				json: {
					kind: 'bigquery#queryResponse', jobReference: { projectId: p, location: job.ref.location },
					schema: job.analysis.fields ? { fields: job.analysis.fields } : undefined,
					totalBytesProcessed: String(job.analysis.totalBytesProcessed), jobComplete: true, cacheHit: false,
				},
			};
		}
		const job = await this.startQuery(p, { location: body.location }, cfg, { labels: body.labels, principal: this.principal(req) });
		await this.waitFor(job, body.timeoutMs);
		const fo = body.formatOptions ?? {};
		return {
			status: 200,
			json: this.queryResults(job, 'bigquery#queryResponse', {
				max: maxResultsOf(body.maxResults), tsFmt: tsFormat(fo.useInt64Timestamp, fo.timestampOutputFormat),
			}),
		};
	}

	async getQueryResults(p, id, q) {
		const job = this.job(p, id);
		await this.waitFor(job, q.get('timeoutMs'));
		const out = this.queryResults(job, 'bigquery#getQueryResultsResponse', {
			start: pageStart(q), max: maxResultsOf(q.get('maxResults')),
			tsFmt: tsFormat(q.get('formatOptions.useInt64Timestamp'), q.get('formatOptions.timestampOutputFormat')),
		});
		return { status: 200, json: withEtag(out) };
	}

	async jobsInsert(p, body, req) {
		const conf = body.configuration ?? {};
		if (!conf.query) {
			const kind = Object.keys(conf).find((k) => ['load', 'copy', 'extract'].includes(k)) ?? 'unknown';
			throw new BqError(400, 'invalid', `The BigQuery stand-in only runs query jobs (got ${kind}).`);
		}
		const jobRef = { ...(body.jobReference ?? {}) };
		const job = await this.startQuery(p, jobRef, conf.query, {
			dryRun: !!conf.dryRun, labels: conf.labels, principal: this.principal(req),
		});
		return { status: 200, json: this.jobResource(job) };
	}

	jobsList(p, q) {
		const states = q.getAll('stateFilter').map((s) => s.toUpperCase());
		const jobs = [...this.jobs.values()].filter((j) => j.ref.projectId === p)
			.filter((j) => !states.length || states.includes(j.state))
			.sort((a, b) => b.created - a.created);
		const start = pageStart(q);
		const max = maxResultsOf(q.get('maxResults'));
		const page = jobs.slice(start, Number.isFinite(max) ? start + max : undefined);
		const out = {
			kind: 'bigquery#jobList',
			jobs: page.map((j) => {
				const r = this.jobResource(j);
				const item = { id: r.id, kind: r.kind, jobReference: r.jobReference, state: r.status.state,
					statistics: r.statistics, status: r.status, user_email: r.user_email, principal_subject: r.principal_subject };
				if (q.get('projection') === 'full') item.configuration = r.configuration;
				else item.configuration = { jobType: 'QUERY', query: { query: r.configuration.query.query } };
				if (r.status.errorResult) item.errorResult = r.status.errorResult;
				return item;
			}),
		};
		if (start + page.length < jobs.length) {
			out.nextPageToken = pageToken(start + page.length);
		}
		return { status: 200, json: withEtag(out) };
	}

	jobsCancel(p, id) {
		const job = this.job(p, id);
		if (job.state !== 'DONE') {
			clearTimeout(job.timer);
			job.finish(new BqError(400, 'stopped', 'Job execution was cancelled: User requested cancellation'));
		}
		return { status: 200, json: { kind: 'bigquery#jobCancelResponse', job: this.jobResource(job) } };
	}

	jobResource(job) {
		const a = job.analysis;
		const r = job.result;
		const ref = job.dryRun ? { projectId: job.ref.projectId, location: job.ref.location } : job.ref;
		const cfgQuery = { ...job.cfg };
		for (const k of Object.keys(cfgQuery)) if (cfgQuery[k] === undefined) delete cfgQuery[k];
		if (!job.dryRun && a?.statementType === 'SELECT') {
			cfgQuery.destinationTable = { projectId: job.ref.projectId, datasetId: ANON, tableId: `anon_${job.ref.jobId}` };
			cfgQuery.writeDisposition = 'WRITE_TRUNCATE';
			cfgQuery.createDisposition = 'CREATE_IF_NEEDED';
		}
		const configuration = { query: cfgQuery, jobType: 'QUERY' };
		if (job.dryRun) configuration.dryRun = true;
		if (job.labels) configuration.labels = job.labels;

		const stats = { creationTime: String(job.created) };
		if (job.started) stats.startTime = String(job.started);
		if (job.ended && !job.dryRun) stats.endTime = String(job.ended);
		const qs = {};
		if (a) {
			stats.totalBytesProcessed = String(a.totalBytesProcessed);
			Object.assign(qs, {
				totalBytesProcessed: String(a.totalBytesProcessed),
				totalBytesBilled: job.dryRun ? '0' : String(a.totalBytesProcessed ? Math.max(a.totalBytesProcessed, 10485760) : 0),
				totalBytesProcessedAccuracy: 'PRECISE',
				cacheHit: false,
				statementType: a.statementType,
			});
			if (a.referenced.length) qs.referencedTables = a.referenced;
			if (a.fields && (job.dryRun || r?.fields)) qs.schema = { fields: r?.fields ?? a.fields };
			if (a.statementType.startsWith('CREATE') || a.statementType.startsWith('DROP') || a.statementType.startsWith('ALTER') || a.statementType === 'TRUNCATE_TABLE') {
				if (r || job.dryRun) {
					qs.ddlOperationPerformed = a.statementType.startsWith('DROP') ? 'DROP'
						: /^\s*CREATE\s+OR\s+REPLACE/i.test(job.cfg.query) ? 'REPLACE' : a.statementType.startsWith('CREATE') ? 'CREATE' : 'ALTER';
					if (a.target) qs.ddlTargetTable = a.target;
				}
			}
			if (r?.affected != null) {
				qs.numDmlAffectedRows = String(r.affected);
				qs.dmlStats = dmlStats(a.statementType, r.affected);
			}
			if (!job.dryRun && job.ended) {
				qs.billingTier = 1;
				qs.totalSlotMs = String(Math.max(1, job.ended - (job.started ?? job.created)));
				stats.totalSlotMs = qs.totalSlotMs;
			}
			stats.query = qs;
		}
		const status = { state: job.state };
		if (job.error) {
			const e = { reason: job.error.reason, message: job.error.message };
			if (job.error.location) e.location = job.error.location;
			status.errorResult = e;
			status.errors = [e];
		}
		const principal = job.principal ?? 'standin-user@example.com';
		return withEtag({
			kind: 'bigquery#job',
			id: `${ref.projectId}:${ref.location}${job.dryRun ? '' : '.' + ref.jobId}`,
			selfLink: `${SELF}/projects/${ref.projectId}/jobs/${job.dryRun ? '' : ref.jobId}?location=${ref.location}`,
			user_email: principal,
			configuration,
			jobReference: ref,
			statistics: stats,
			status,
			principal_subject: `${principal.includes('gserviceaccount') ? 'serviceAccount' : 'user'}:${principal}`,
			jobCreationReason: { code: 'REQUESTED' },
		});
	}

	// ---------------------------------------------------------- datasets / tables

	listProjects() {
		const projects = [...this.engine.projects].sort().map((id, i) => ({
			kind: 'bigquery#project', id, numericId: String(100000000000 + i), projectReference: { projectId: id }, friendlyName: id,
		}));
		return { status: 200, json: withEtag({ kind: 'bigquery#projectList', projects, totalItems: projects.length }) };
	}

	async datasetsList(p, q) {
		const names = await this.engine.listDatasets(p);
		const start = pageStart(q);
		const max = maxResultsOf(q.get('maxResults'));
		const page = names.slice(start, Number.isFinite(max) ? start + max : undefined);
		const out = { kind: 'bigquery#datasetList' };
		if (page.length) {
			out.datasets = page.map((d) => ({
				kind: 'bigquery#dataset', id: `${p}:${d}`, datasetReference: { datasetId: d, projectId: p },
				location: this.engine.metaFor(`${p}.${d}`).location ?? LOCATION,
			}));
		}
		if (start + page.length < names.length) out.nextPageToken = pageToken(start + page.length);
		return { status: 200, json: withEtag(out) };
	}

	async datasetsInsert(p, body) {
		const ref = body.datasetReference ?? {};
		if (!ref.datasetId) throw invalid('Required parameter is missing: datasetReference.datasetId');
		const meta = { location: body.location ?? LOCATION };
		if (body.description) meta.description = body.description;
		if (body.labels) meta.labels = body.labels;
		await this.engine.createDataset(ref.projectId ?? p, ref.datasetId, meta);
		return this.datasetResource(ref.projectId ?? p, ref.datasetId);
	}

	async datasetResource(p, d) {
		const meta = await this.engine.getDataset(p, d);
		return {
			status: 200,
			json: withEtag({
				kind: 'bigquery#dataset', id: `${p}:${d}`, selfLink: `${SELF}/projects/${p}/datasets/${d}`,
				datasetReference: { datasetId: d, projectId: p },
				...(meta.description ? { description: meta.description } : {}),
				...(meta.labels ? { labels: meta.labels } : {}),
				access: [
					{ role: 'WRITER', specialGroup: 'projectWriters' },
					{ role: 'OWNER', specialGroup: 'projectOwners' },
					{ role: 'READER', specialGroup: 'projectReaders' },
				],
				creationTime: meta.creationTime, lastModifiedTime: meta.lastModifiedTime,
				location: meta.location ?? LOCATION, type: 'DEFAULT', maxTimeTravelHours: '168',
			}),
		};
	}

	async tablesList(p, d, q) {
		const tables = await this.engine.listTables(p, d);
		const start = pageStart(q);
		const max = maxResultsOf(q.get('maxResults'));
		const page = tables.slice(start, Number.isFinite(max) ? start + max : undefined);
		const out = { kind: 'bigquery#tableList', totalItems: tables.length };
		if (page.length) {
			out.tables = page.map((t) => ({
				kind: 'bigquery#table', id: `${p}:${d}.${t.name}`,
				tableReference: { projectId: p, datasetId: d, tableId: t.name },
				type: t.type, creationTime: t.meta.creationTime,
			}));
		}
		if (start + page.length < tables.length) out.nextPageToken = pageToken(start + page.length);
		return { status: 200, json: withEtag(out) };
	}

	async tablesInsert(p, d, body) {
		const ref = body.tableReference ?? {};
		if (!ref.tableId) throw invalid('Required parameter is missing: tableReference.tableId');
		if (body.view) throw invalid('The BigQuery stand-in does not create views through tables.insert; use CREATE VIEW.');
		const meta = {};
		if (body.description) meta.description = body.description;
		if (body.labels) meta.labels = body.labels;
		await this.engine.createTable(ref.projectId ?? p, ref.datasetId ?? d, ref.tableId, body.schema?.fields ?? [], meta);
		return this.tableResource(ref.projectId ?? p, ref.datasetId ?? d, ref.tableId, new URLSearchParams());
	}

	anonJob(p, t) {
		const job = this.jobs.get(`${p}/${t.replace(/^anon_/, '')}`);
		if (!job?.result?.rows) throw tableNotFound(p, ANON, t);
		return job;
	}

	async tableResource(p, d, t, q) {
		if (d === ANON) {
			const job = this.anonJob(p, t);
			return {
				status: 200,
				json: withEtag({
					kind: 'bigquery#table', id: `${p}:${d}.${t}`, selfLink: `${SELF}/projects/${p}/datasets/${d}/tables/${t}`,
					tableReference: { projectId: p, datasetId: d, tableId: t }, schema: { fields: job.result.fields },
					numBytes: '0', numLongTermBytes: '0', numRows: String(job.result.rows.length),
					creationTime: String(job.ended), lastModifiedTime: String(job.ended), expirationTime: String(job.ended + 86400000),
					type: 'TABLE', location: job.ref.location,
				}),
			};
		}
		const info = await this.engine.getTable(p, d, t);
		let fields = info.fields;
		const sel = q.get('selectedFields');
		if (sel) {
			const want = new Set(sel.split(',').map((s) => s.trim().split('.')[0].toLowerCase()));
			fields = fields.filter((f) => want.has(f.name.toLowerCase()));
		}
		const bytes = String(info.bytes ?? 0);
		return {
			status: 200,
			json: withEtag({
				kind: 'bigquery#table', id: `${p}:${d}.${t}`, selfLink: `${SELF}/projects/${p}/datasets/${d}/tables/${t}`,
				tableReference: { projectId: p, datasetId: d, tableId: t },
				...(info.meta.description ? { description: info.meta.description } : {}),
				...(info.meta.labels ? { labels: info.meta.labels } : {}),
				schema: { fields },
				numBytes: bytes, numLongTermBytes: '0', numRows: String(info.numRows),
				creationTime: info.meta.creationTime, lastModifiedTime: info.meta.lastModifiedTime,
				type: info.type, location: LOCATION,
				numTotalLogicalBytes: bytes, numActiveLogicalBytes: bytes, numLongTermLogicalBytes: '0',
			}),
		};
	}

	async tabledataList(p, d, t, q) {
		const start = pageStart(q);
		const max = maxResultsOf(q.get('maxResults'));
		const sel = q.get('selectedFields');
		let r;
		if (d === ANON) {
			const res = this.anonJob(p, t).result;
			r = { types: res.types, rows: res.rows.slice(start, Number.isFinite(max) ? start + max : undefined), total: res.rows.length };
		} else {
			r = await this.engine.readTable(p, d, t, {
				offset: start, limit: max, selectedFields: sel ? sel.split(',').map((s) => s.trim()) : null,
			});
		}
		const out = { kind: 'bigquery#tableDataList', totalRows: String(r.total) };
		const tsFmt = tsFormat(q.get('formatOptions.useInt64Timestamp'), q.get('formatOptions.timestampOutputFormat'));
		if (r.rows.length) out.rows = encodeRows(r.types, r.rows, tsFmt);
		if (start + r.rows.length < r.total) out.pageToken = pageToken(start + r.rows.length);
		return { status: 200, json: withEtag(out) };
	}

	async insertAll(p, d, t, body) {
		const rows = body.rows ?? [];
		const errors = await this.engine.insertRows(p, d, t, rows, {
			skipInvalidRows: !!body.skipInvalidRows, ignoreUnknownValues: !!body.ignoreUnknownValues,
		});
		const out = { kind: 'bigquery#tableDataInsertAllResponse' };
		if (errors.length) out.insertErrors = errors;
		return { status: 200, json: out };
	}
}

function dmlStats(type, n) {
	const k = { INSERT: 'insertedRowCount', UPDATE: 'updatedRowCount', DELETE: 'deletedRowCount' }[type];
	return k ? { [k]: String(n) } : {};
}

function parseJson(s) {
	try {
		return JSON.parse(s);
	} catch (e) {
		throw new BqError(400, 'parseError', `Invalid JSON payload received. ${e.message}`);
	}
}

function decodeJwt(s) {
	const parts = String(s ?? '').split('.');
	if (parts.length !== 3 || parts.some((x) => !/^[A-Za-z0-9_-]*$/.test(x)) || !parts[0] || !parts[1]) return null;
	try {
		const header = b64json(parts[0]);
		const claims = b64json(parts[1]);
		return header && typeof claims === 'object' ? claims : null;
	} catch {
		return null;
	}
}

function fakeJwt(claims) {
	const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
	const now = Math.floor(Date.now() / 1000);
	return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iat: now, exp: now + 3600, ...claims })}.`;
}
