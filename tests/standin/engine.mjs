// DuckDB side of the BigQuery stand-in used by the sluice tests.
//
// Each BigQuery project is an attached in-memory DuckDB catalog, each dataset
// a schema in it, so `demo-project.crm.customers` is
// "demo-project"."crm"."customers". All DuckDB work is serialised on one
// connection (queries set the default project/dataset with USE).
//
// Also here: DuckDB type -> BigQuery schema field mapping and the BigQuery
// REST row encoding ({"f": [{"v": ...}]}).

import { DuckDBInstance, DuckDBTypeId as T } from '@duckdb/node-api';
import * as xl from './sqlxlate.mjs';

export const LOCATION = 'US';

export class BqError extends Error {
	constructor(code, reason, message, extra = {}) {
		super(message);
		this.code = code;
		this.reason = reason;
		Object.assign(this, extra);
	}
}

export const invalidQuery = (msg) => new BqError(400, 'invalidQuery', msg, { location: 'q', locationType: 'parameter' });
export const invalid = (msg) => new BqError(400, 'invalid', msg);
export const tableNotFound = (p, d, t) =>
	new BqError(404, 'notFound', `Not found: Table ${p}:${d}.${t} was not found in location ${LOCATION}`);
export const datasetNotFound = (p, d) =>
	new BqError(404, 'notFound', `Not found: Dataset ${p}:${d} was not found in location ${LOCATION}`);

const HIDDEN_SCHEMAS = new Set(['main', 'information_schema', 'pg_catalog']);

// ---------------------------------------------------------------- types

const INT_TYPES = new Set([T.TINYINT, T.SMALLINT, T.INTEGER, T.BIGINT, T.UTINYINT, T.USMALLINT, T.UINTEGER,
	T.UBIGINT, T.HUGEINT, T.UHUGEINT]);

// BigQuery schema field for a DuckDB column type.
export function fieldFor(name, type, mode = 'NULLABLE') {
	const id = type.typeId;
	if (id === T.LIST || id === T.ARRAY) return { ...fieldFor(name, type.valueType), mode: 'REPEATED' };
	if (id === T.STRUCT) {
		return { name, type: 'RECORD', mode, fields: type.entryNames.map((n, i) => fieldFor(n, type.entryTypes[i])) };
	}
	return { name, type: bqScalarType(type), mode };
}

function bqScalarType(type) {
	const id = type.typeId;
	if (id === T.BOOLEAN) return 'BOOLEAN';
	if (INT_TYPES.has(id)) return 'INTEGER';
	if (id === T.FLOAT || id === T.DOUBLE) return 'FLOAT';
	if (id === T.DECIMAL) return type.scale <= 9 ? 'NUMERIC' : 'BIGNUMERIC';
	if (id === T.DATE) return 'DATE';
	if (id === T.TIME || id === T.TIME_TZ || id === T.TIME_NS) return 'TIME';
	if (id === T.TIMESTAMP_TZ) return 'TIMESTAMP';
	if (id === T.TIMESTAMP || id === T.TIMESTAMP_S || id === T.TIMESTAMP_MS || id === T.TIMESTAMP_NS) return 'DATETIME';
	if (id === T.BLOB) return 'BYTES';
	if (id === T.INTERVAL) return 'INTERVAL';
	if (id === T.VARCHAR && type.alias === 'JSON') return 'JSON';
	return 'STRING';
}

// ---------------------------------------------------------------- encoding

// Java's Double.toString, which is how BigQuery renders FLOAT64 and
// float-seconds TIMESTAMPs ("1.7E9", "0.5", "100.0").
export function javaDouble(x) {
	if (Number.isNaN(x)) return 'NaN';
	if (x === Infinity) return 'Infinity';
	if (x === -Infinity) return '-Infinity';
	if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
	const a = Math.abs(x);
	if (a >= 1e-3 && a < 1e7) {
		const s = String(x);
		return s.includes('.') ? s : s + '.0';
	}
	let [m, e] = x.toExponential().split('e');
	if (!m.includes('.')) m += '.0';
	return `${m}E${Number(e)}`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// micros since epoch -> ["YYYY-MM-DD", "HH:MM:SS", "ffffff"]
function splitMicros(micros) {
	const us = BigInt(micros);
	let ms = us / 1000n;
	let rem = us % 1000000n;
	if (rem < 0n) rem += 1000000n;
	if (us < 0n && us % 1000n !== 0n) ms -= 1n;
	const d = new Date(Number(ms));
	const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
	const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
	return [date, time, String(rem).padStart(6, '0')];
}

function fmtTimestamp(micros, fmt) {
	if (fmt === 'INT64') return String(micros);
	if (fmt === 'ISO8601_STRING') {
		const [d, t, f] = splitMicros(micros);
		return `${d}T${t}.${f}Z`;
	}
	return javaDouble(Number(micros) / 1e6);
}

function timeMicros(v) {
	// DuckDB TIME value -> "HH:MM:SS[.ffffff]"
	const us = BigInt(v.micros ?? 0n);
	const s = us / 1000000n;
	const f = us % 1000000n;
	const base = `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}`;
	return f ? `${base}.${String(f).padStart(6, '0')}` : base;
}

function numericString(s) {
	s = String(s);
	if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
	return s === '-0' ? '0' : s;
}

// Encodes one DuckDB value of DuckDB type `type` as a BigQuery REST cell
// value. tsFmt: 'FLOAT' (BigQuery's default), 'INT64' or 'ISO8601_STRING'.
export function encodeValue(v, type, tsFmt) {
	const id = type.typeId;
	if (id === T.LIST || id === T.ARRAY) {
		if (v === null || v === undefined) return [];
		return v.items.map((it) => ({ v: encodeValue(it, type.valueType, tsFmt) }));
	}
	if (v === null || v === undefined) return null;
	if (id === T.STRUCT) {
		return { f: type.entryNames.map((n, i) => ({ v: encodeValue(v.entries[n], type.entryTypes[i], tsFmt) })) };
	}
	if (id === T.BOOLEAN) return v ? 'true' : 'false';
	if (id === T.FLOAT || id === T.DOUBLE) return javaDouble(Number(v));
	if (id === T.DECIMAL) return numericString(v.toString());
	if (id === T.TIMESTAMP_TZ) return fmtTimestamp(v.micros, tsFmt);
	if (id === T.TIMESTAMP || id === T.TIMESTAMP_S || id === T.TIMESTAMP_MS || id === T.TIMESTAMP_NS) {
		const micros = id === T.TIMESTAMP_S ? BigInt(v.seconds) * 1000000n
			: id === T.TIMESTAMP_MS ? BigInt(v.millis) * 1000n
				: id === T.TIMESTAMP_NS ? BigInt(v.nanos) / 1000n : v.micros;
		const [d, t, f] = splitMicros(micros);
		return f === '000000' ? `${d}T${t}` : `${d}T${t}.${f}`;
	}
	if (id === T.TIME) return timeMicros(v);
	if (id === T.BLOB) return Buffer.from(v.bytes).toString('base64');
	return String(v);
}

export function encodeRows(types, rows, tsFmt) {
	return rows.map((r) => ({ f: r.map((v, i) => ({ v: encodeValue(v, types[i], tsFmt) })) }));
}

// BigQuery's name for unnamed result columns is f0_, f1_, ...
function resultNames(names) {
	let anon = 0;
	const seen = new Map();
	return names.map((n) => {
		let name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) ? n : `f${anon++}_`;
		const k = name.toLowerCase();
		if (seen.has(k)) {
			const c = seen.get(k) + 1;
			seen.set(k, c);
			name = `${name}_${c}`;
		} else seen.set(k, 0);
		return name;
	});
}

// ---------------------------------------------------------------- SQL literals for insertAll

function cellLiteral(val, field, path, opts) {
	const where = path.join('.');
	if (field.mode === 'REPEATED') {
		if (val === null || val === undefined) return '[]';
		if (!Array.isArray(val)) throw invalid(`Field ${where}: Value of type ${typeof val} cannot be converted to array.`);
		return `[${val.map((x) => cellLiteral(x, { ...field, mode: 'NULLABLE' }, path, opts)).join(', ')}]`;
	}
	if (val === null || val === undefined) {
		if (field.mode === 'REQUIRED') throw invalid(`Missing required field: ${where}.`);
		return 'NULL';
	}
	if (Array.isArray(val)) throw invalid(`Array specified for non-repeated field: ${where}.`);
	if (field.type === 'RECORD') {
		if (typeof val !== 'object') throw invalid(`This field: ${where} is not a record.`);
		const known = new Set(field.fields.map((f) => f.name.toLowerCase()));
		for (const k of Object.keys(val)) {
			if (!known.has(k.toLowerCase()) && !opts.ignoreUnknownValues) throw invalid(`no such field: ${[...path, k].join('.')}.`);
		}
		const lower = Object.fromEntries(Object.entries(val).map(([k, x]) => [k.toLowerCase(), x]));
		return `{${field.fields.map((f) => `${xl.quoteStr(f.name)}: ${cellLiteral(lower[f.name.toLowerCase()], f, [...path, f.name], opts)}`).join(', ')}}`;
	}
	if (typeof val === 'object') throw invalid(`This field: ${where} is a record but a scalar value was given.`);
	const duck = xl.duckTypeForField({ type: field.type });
	if (field.type === 'TIMESTAMP' && typeof val === 'number') return `to_timestamp(${Number(val)})`;
	if (field.type === 'BYTES') return `from_base64(${xl.quoteStr(val)})`;
	return `CAST(${xl.quoteStr(typeof val === 'boolean' ? String(val) : val)} AS ${duck})`;
}

// ---------------------------------------------------------------- engine

export class Engine {
	static async create() {
		const inst = await DuckDBInstance.create(':memory:');
		const conn = await inst.connect();
		const e = new Engine(inst, conn);
		await conn.run(`SET TimeZone = 'UTC'`);
		for (const m of xl.MACROS) await conn.run(m);
		return e;
	}

	constructor(inst, conn) {
		this.inst = inst;
		this.conn = conn;
		this.queue = Promise.resolve();
		this.projects = new Set();
		this.meta = new Map(); // "p.d" / "p.d.t" -> {creationTime, lastModifiedTime, description, labels}
	}

	// Serialises DuckDB work (USE is per connection).
	locked(fn) {
		const run = this.queue.then(fn);
		this.queue = run.catch(() => {});
		return run;
	}

	metaFor(key) {
		if (!this.meta.has(key)) {
			const now = String(Date.now());
			this.meta.set(key, { creationTime: now, lastModifiedTime: now });
		}
		return this.meta.get(key);
	}

	touch(...parts) {
		this.metaFor(parts.join('.')).lastModifiedTime = String(Date.now());
	}

	async rows(sql, params) {
		const r = await this.conn.runAndReadAll(sql, params);
		return r.getRowObjectsJS();
	}

	async ensureProject(p) {
		if (this.projects.has(p)) return;
		await this.conn.run(`ATTACH IF NOT EXISTS ':memory:' AS ${xl.quoteIdent(p)}`);
		this.projects.add(p);
	}

	// ---- catalog (callers hold the lock)

	async datasetNames(p) {
		if (!this.projects.has(p)) return [];
		const rows = await this.rows(
			'SELECT schema_name FROM duckdb_schemas() WHERE database_name = $1 ORDER BY schema_name', [p]);
		return rows.map((r) => r.schema_name).filter((s) => !HIDDEN_SCHEMAS.has(s));
	}

	async hasDataset(p, d) {
		return (await this.datasetNames(p)).includes(d);
	}

	async tableNames(p, d) {
		if (!this.projects.has(p)) return [];
		const rows = await this.rows(
			`SELECT table_name AS name, 'TABLE' AS type FROM duckdb_tables() WHERE database_name = $1 AND schema_name = $2
			 UNION ALL
			 SELECT view_name, 'VIEW' FROM duckdb_views() WHERE database_name = $1 AND schema_name = $2 AND NOT internal
			 ORDER BY 1`, [p, d]);
		return rows;
	}

	async tableInfo(p, d, t) {
		const found = (await this.tableNames(p, d)).find((r) => r.name === t);
		if (!found) return null;
		const fq = [p, d, t].map(xl.quoteIdent).join('.');
		const r = await this.conn.runAndReadAll(`SELECT * FROM ${fq} LIMIT 0`);
		const notNull = new Set((await this.rows(
			`SELECT column_name FROM duckdb_columns() WHERE database_name = $1 AND schema_name = $2 AND table_name = $3 AND NOT is_nullable`,
			[p, d, t])).map((x) => x.column_name));
		const names = r.columnNames();
		const types = r.columnTypes();
		const fields = names.map((n, i) => fieldFor(n, types[i], notNull.has(n) ? 'REQUIRED' : 'NULLABLE'));
		const [{ n }] = await this.rows(`SELECT count(*)::BIGINT AS n FROM ${fq}`);
		return { type: found.type, names, types, fields, numRows: Number(n), fq };
	}

	// ---- public API (each takes the lock)

	listDatasets(p) {
		return this.locked(() => this.datasetNames(p));
	}

	getDataset(p, d) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			return this.metaFor(`${p}.${d}`);
		});
	}

	createDataset(p, d, meta = {}) {
		return this.locked(async () => {
			await this.ensureProject(p);
			if (await this.hasDataset(p, d)) throw new BqError(409, 'duplicate', `Already Exists: Dataset ${p}:${d}`);
			await this.conn.run(`CREATE SCHEMA ${xl.quoteIdent(p)}.${xl.quoteIdent(d)}`);
			this.meta.delete(`${p}.${d}`);
			Object.assign(this.metaFor(`${p}.${d}`), meta);
		});
	}

	deleteDataset(p, d, deleteContents) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			if (!deleteContents && (await this.tableNames(p, d)).length) {
				throw new BqError(400, 'resourceInUse', `Dataset ${p}:${d} is still in use`);
			}
			await this.conn.run(`DROP SCHEMA ${xl.quoteIdent(p)}.${xl.quoteIdent(d)} CASCADE`);
			this.meta.delete(`${p}.${d}`);
		});
	}

	listTables(p, d) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			return (await this.tableNames(p, d)).map((r) => ({ ...r, meta: this.metaFor(`${p}.${d}.${r.name}`) }));
		});
	}

	getTable(p, d, t) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			const info = await this.tableInfo(p, d, t);
			if (!info) throw tableNotFound(p, d, t);
			const bytes = await this.estimateBytes({ projectId: p, datasetId: d, tableId: t });
			return { ...info, bytes, meta: this.metaFor(`${p}.${d}.${t}`) };
		});
	}

	createTable(p, d, t, fields, meta = {}) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			if ((await this.tableNames(p, d)).some((r) => r.name === t)) {
				throw new BqError(409, 'duplicate', `Already Exists: Table ${p}:${d}.${t}`);
			}
			if (!fields?.length) fields = [];
			const cols = fields.map((f) => `${xl.quoteIdent(f.name)} ${xl.duckTypeForField(f)}${f.mode === 'REQUIRED' ? ' NOT NULL' : ''}`);
			const fq = [p, d, t].map(xl.quoteIdent).join('.');
			try {
				await this.conn.run(`CREATE TABLE ${fq} (${cols.join(', ')})`);
			} catch (e) {
				throw invalid(e.message);
			}
			this.meta.delete(`${p}.${d}.${t}`);
			Object.assign(this.metaFor(`${p}.${d}.${t}`), meta);
		});
	}

	deleteTable(p, d, t) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			const found = (await this.tableNames(p, d)).find((r) => r.name === t);
			if (!found) throw tableNotFound(p, d, t);
			await this.conn.run(`DROP ${found.type} ${[p, d, t].map(xl.quoteIdent).join('.')}`);
			this.meta.delete(`${p}.${d}.${t}`);
		});
	}

	// tabledata.list: rows [offset, offset+limit) of a table.
	readTable(p, d, t, { offset = 0, limit = Infinity, selectedFields = null } = {}) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			const info = await this.tableInfo(p, d, t);
			if (!info) throw tableNotFound(p, d, t);
			let names = info.names;
			if (selectedFields) {
				const want = new Set(selectedFields.map((s) => s.split('.')[0].toLowerCase()));
				names = names.filter((n) => want.has(n.toLowerCase()));
			}
			const lim = Number.isFinite(limit) ? ` LIMIT ${Number(limit)}` : '';
			const r = await this.conn.runAndReadAll(
				`SELECT ${names.map(xl.quoteIdent).join(', ') || '*'} FROM ${info.fq}${lim} OFFSET ${Number(offset)}`);
			return { types: r.columnTypes(), rows: r.getRows(), total: info.numRows, fields: info.fields.filter((f) => names.includes(f.name)) };
		});
	}

	// tabledata.insertAll. Returns insertErrors ([] when all rows went in).
	insertRows(p, d, t, rows, opts = {}) {
		return this.locked(async () => {
			if (!(await this.hasDataset(p, d))) throw datasetNotFound(p, d);
			const info = await this.tableInfo(p, d, t);
			if (!info || info.type !== 'TABLE') throw tableNotFound(p, d, t);
			const good = [];
			const errors = [];
			rows.forEach((row, index) => {
				try {
					const json = row.json ?? {};
					const lower = Object.fromEntries(Object.entries(json).map(([k, v]) => [k.toLowerCase(), v]));
					for (const k of Object.keys(json)) {
						if (!info.fields.some((f) => f.name.toLowerCase() === k.toLowerCase()) && !opts.ignoreUnknownValues) {
							throw Object.assign(invalid(`no such field: ${k}.`), { field: k });
						}
					}
					good.push({ index, lits: info.fields.map((f) => cellLiteral(lower[f.name.toLowerCase()], f, [f.name], opts)) });
				} catch (e) {
					if (!(e instanceof BqError)) throw e;
					errors.push({ index, errors: [{ reason: 'invalid', location: e.field ?? '', debugInfo: '', message: e.message }] });
				}
			});
			// values that only fail when DuckDB casts them (e.g. "abc" as INTEGER)
			for (const g of [...good]) {
				try {
					await this.conn.run(`SELECT ${g.lits.join(', ')}`);
				} catch (e) {
					good.splice(good.indexOf(g), 1);
					errors.push({ index: g.index, errors: [{ reason: 'invalid', location: '', debugInfo: '', message: e.message.split('\n')[0] }] });
				}
			}
			if (errors.length && !opts.skipInvalidRows) {
				for (const g of good) errors.push({ index: g.index, errors: [{ reason: 'stopped', location: '', debugInfo: '', message: '' }] });
				return errors.sort((a, b) => a.index - b.index);
			}
			if (good.length) {
				const cols = info.names.map(xl.quoteIdent).join(', ');
				await this.conn.run(`INSERT INTO ${info.fq} (${cols}) VALUES ${good.map((g) => `(${g.lits.join(', ')})`).join(', ')}`);
				this.touch(p, d, t);
			}
			return errors.sort((a, b) => a.index - b.index);
		});
	}

	// ---- queries

	async use(ctx) {
		await this.ensureProject(ctx.projectId);
		const dd = ctx.defaultDataset;
		if (dd?.datasetId) {
			const dp = dd.projectId || ctx.projectId;
			if (!(await this.hasDataset(dp, dd.datasetId))) throw datasetNotFound(dp, dd.datasetId);
			await this.conn.run(`USE ${xl.quoteIdent(dp)}.${xl.quoteIdent(dd.datasetId)}`);
		} else {
			await this.conn.run(`USE ${xl.quoteIdent(ctx.projectId)}`);
		}
	}

	resolveName(parts, ctx) {
		const dd = ctx.defaultDataset;
		if (parts.length === 1) {
			if (!dd?.datasetId) {
				throw invalidQuery(`Table "${parts[0]}" must be qualified with a dataset (e.g. dataset.table).`);
			}
			return { projectId: dd.projectId || ctx.projectId, datasetId: dd.datasetId, tableId: parts[0] };
		}
		if (parts.length === 2) return { projectId: ctx.projectId, datasetId: parts[0], tableId: parts[1] };
		if (parts.length === 3) return { projectId: parts[0], datasetId: parts[1], tableId: parts[2] };
		throw invalidQuery(`Invalid table name: ${parts.join('.')}`);
	}

	// Translates and checks a query without running it. ctx: {projectId,
	// defaultDataset, queryParameters}. Throws BqError (400 invalidQuery,
	// 404 notFound) like BigQuery would before starting the job.
	analyze(sql, ctx) {
		return this.locked(async () => {
			let tr;
			try {
				const infoSchema = /INFORMATION_SCHEMA/i.test(sql) ? await this.infoSchemaBuilder(ctx) : undefined;
				tr = xl.translate(sql, { ...ctx, infoSchema });
			} catch (e) {
				if (e.sqlSyntax) throw invalidQuery(e.message);
				throw e;
			}
			await this.use(ctx);
			let count;
			try {
				count = (await this.conn.extractStatements(tr.sql)).count;
			} catch (e) {
				throw invalidQuery(cleanError(e.message));
			}
			if (count === 0) throw invalidQuery('Syntax error: Unexpected end of script');
			const statementType = count > 1 ? 'SCRIPT' : xl.statementType(sql);

			// referenced tables: DuckDB's parse tree of the statement (queries)
			// or of its SELECT parts (DML/DDL), plus the DML/DDL target
			const names = [];
			for (const q of statementType === 'SELECT' ? [tr.sql] : xl.subqueries(tr.sql)) {
				names.push(...(await this.tableRefs(q)));
			}
			const referenced = [];
			const key = (r) => `${r.projectId}.${r.datasetId}.${r.tableId}`;
			for (const parts of names) {
				const r = this.resolveName(parts, ctx);
				if (!referenced.some((x) => key(x) === key(r))) referenced.push(r);
			}
			let target = null;
			if (count === 1 && statementType !== 'SELECT' && !statementType.endsWith('_SCHEMA')) {
				const parts = xl.targetTable(sql);
				if (parts) target = this.resolveName(parts, ctx);
			}
			for (const r of referenced) await this.mustExist(r);
			if (target) {
				const creating = statementType.startsWith('CREATE');
				const ifExists = /\bIF\s+EXISTS\b/i.test(sql);
				if (creating || ifExists) {
					if (!(await this.hasDataset(target.projectId, target.datasetId))) throw datasetNotFound(target.projectId, target.datasetId);
				} else {
					await this.mustExist(target);
				}
				if (['UPDATE', 'DELETE', 'MERGE'].includes(statementType) && !referenced.some((x) => key(x) === key(target))) {
					referenced.unshift(target);
				}
			}

			// result schema (queries only) and a byte estimate, for dry runs
			let fields;
			if (statementType === 'SELECT') {
				try {
					const prep = await this.conn.prepare(tr.sql);
					const cn = [];
					const ct = [];
					for (let i = 0; i < prep.columnCount; i++) {
						cn.push(prep.columnName(i));
						ct.push(prep.columnType(i));
					}
					const rn = resultNames(cn);
					fields = rn.map((n, i) => fieldFor(n, ct[i]));
				} catch (e) {
					throw invalidQuery(cleanError(e.message));
				}
			}
			let bytes = 0;
			for (const r of referenced) bytes += await this.estimateBytes(r);
			return { ...tr, statementType, count, referenced, target, fields, totalBytesProcessed: bytes };
		});
	}

	// Tables a SELECT reads, as name parts, from json_serialize_sql's tree
	// (CTE names excluded).
	async tableRefs(sql) {
		const r = await this.conn.runAndReadAll(`SELECT json_serialize_sql(${xl.quoteStr(sql)})`);
		const tree = JSON.parse(r.getRows()[0][0]);
		if (tree.error) return [];
		const refs = [];
		const ctes = new Set();
		const walk = (n) => {
			if (Array.isArray(n)) n.forEach(walk);
			else if (n && typeof n === 'object') {
				if (n.type === 'BASE_TABLE' && n.table_name) refs.push([n.catalog_name, n.schema_name, n.table_name].filter(Boolean));
				for (const e of n.cte_map?.map ?? []) ctes.add(String(e.key).toLowerCase());
				Object.values(n).forEach(walk);
			}
		};
		walk(tree);
		return refs.filter((p) => !(p.length === 1 && ctes.has(p[0].toLowerCase())));
	}

	// INFORMATION_SCHEMA.{SCHEMATA,TABLES,COLUMNS} for the translator: a
	// snapshot of the catalog rendered as VALUES subqueries.
	async infoSchemaBuilder(ctx) {
		const snap = [];
		for (const p of [...this.projects].sort()) {
			for (const d of await this.datasetNames(p)) {
				const tables = [];
				for (const t of await this.tableNames(p, d)) {
					tables.push({ ...t, info: await this.tableInfo(p, d, t.name), meta: this.metaFor(`${p}.${d}.${t.name}`) });
				}
				snap.push({ p, d, meta: this.metaFor(`${p}.${d}`), tables });
			}
		}
		const ts = (ms) => `CAST(to_timestamp(${Number(ms) / 1000}) AS TIMESTAMPTZ)`;
		return (scope, view) => {
			let project = ctx.projectId;
			let dataset = null;
			const rest = [...scope];
			if (rest.length === 2) project = rest.shift();
			if (rest.length === 1 && !/^region-/i.test(rest[0])) dataset = rest[0];
			else if (rest.length === 0 && ctx.defaultDataset?.datasetId) {
				project = ctx.defaultDataset.projectId || project;
				dataset = ctx.defaultDataset.datasetId;
			} else if (rest.length > 1 || (rest.length === 0)) {
				throw invalidQuery('INFORMATION_SCHEMA must be qualified with a dataset or a region, e.g. `region-us.INFORMATION_SCHEMA.TABLES`');
			}
			const sets = snap.filter((x) => x.p === project && (!dataset || x.d === dataset));
			if (dataset && !sets.length) throw datasetNotFound(project, dataset);
			const S = 'VARCHAR';
			if (view === 'SCHEMATA') {
				return valuesSubquery([['catalog_name', S], ['schema_name', S], ['schema_owner', S], ['creation_time', 'TIMESTAMPTZ'],
					['last_modified_time', 'TIMESTAMPTZ'], ['location', S]],
				sets.map((x) => [xl.quoteStr(x.p), xl.quoteStr(x.d), 'NULL', ts(x.meta.creationTime), ts(x.meta.lastModifiedTime),
					xl.quoteStr(x.meta.location ?? LOCATION)]));
			}
			const tables = sets.flatMap((x) => x.tables.map((t) => ({ ...t, p: x.p, d: x.d })));
			if (view === 'TABLES') {
				return valuesSubquery([['table_catalog', S], ['table_schema', S], ['table_name', S], ['table_type', S],
					['is_insertable_into', S], ['is_typed', S], ['creation_time', 'TIMESTAMPTZ'], ['ddl', S]],
				tables.map((t) => [xl.quoteStr(t.p), xl.quoteStr(t.d), xl.quoteStr(t.name),
					xl.quoteStr(t.type === 'VIEW' ? 'VIEW' : 'BASE TABLE'), xl.quoteStr(t.type === 'VIEW' ? 'NO' : 'YES'), "'NO'",
					ts(t.meta.creationTime), xl.quoteStr(ddlOf(t.p, t.d, t.name, t.info.fields))]));
			}
			if (view === 'COLUMNS') {
				return valuesSubquery([['table_catalog', S], ['table_schema', S], ['table_name', S], ['column_name', S],
					['ordinal_position', 'BIGINT'], ['is_nullable', S], ['data_type', S], ['is_hidden', S], ['is_system_defined', S],
					['is_partitioning_column', S], ['clustering_ordinal_position', 'BIGINT']],
				tables.flatMap((t) => t.info.fields.map((f, i) => [xl.quoteStr(t.p), xl.quoteStr(t.d), xl.quoteStr(t.name),
					xl.quoteStr(f.name), String(i + 1), xl.quoteStr(f.mode === 'REQUIRED' ? 'NO' : 'YES'), xl.quoteStr(sqlType(f)),
					"'NO'", "'NO'", "'NO'", 'NULL'])));
			}
			throw new BqError(404, 'notFound', `Not found: Table ${project}:${dataset ?? 'region-us'}.INFORMATION_SCHEMA.${view} (the stand-in has SCHEMATA, TABLES and COLUMNS)`);
		};
	}

	async mustExist(r) {
		if (!(await this.hasDataset(r.projectId, r.datasetId))) throw datasetNotFound(r.projectId, r.datasetId);
		if (!(await this.tableNames(r.projectId, r.datasetId)).some((x) => x.name === r.tableId)) {
			throw tableNotFound(r.projectId, r.datasetId, r.tableId);
		}
	}

	// Rough BigQuery-style size: 8 bytes per number/date, 2 + length per string.
	async estimateBytes(r) {
		const info = await this.tableInfo(r.projectId, r.datasetId, r.tableId);
		if (!info || info.type !== 'TABLE' || !info.names.length || !info.numRows) return 0;
		const parts = info.names.map((n) => `coalesce(sum(strlen(CAST(${xl.quoteIdent(n)} AS VARCHAR))), 0)`);
		const [row] = await this.rows(`SELECT ${parts.map((x, i) => `${x}::BIGINT AS c${i}`).join(', ')} FROM ${info.fq}`);
		let total = 0;
		info.fields.forEach((f, i) => {
			const fixed = { INTEGER: 8, FLOAT: 8, NUMERIC: 16, BIGNUMERIC: 32, BOOLEAN: 1, DATE: 8, DATETIME: 8, TIME: 8, TIMESTAMP: 8 }[f.type];
			total += fixed && f.mode !== 'REPEATED' ? fixed * info.numRows : 2 * info.numRows + Number(row[`c${i}`]);
		});
		return total;
	}

	// Runs an analysed query. Returns {names, types, rows} for queries (the
	// last statement's, for scripts) and {affected} for DML.
	execute(a, ctx) {
		return this.locked(async () => {
			await this.use(ctx);
			let last;
			try {
				if (a.count === 1) {
					last = await this.conn.runAndReadAll(a.sql);
				} else {
					const ex = await this.conn.extractStatements(a.sql);
					for (let i = 0; i < ex.count; i++) {
						const prep = await ex.prepare(i);
						last = await prep.runAndReadAll();
					}
				}
			} catch (e) {
				throw invalidQuery(cleanError(e.message));
			}
			const out = { affected: null };
			if (['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(a.statementType)) {
				out.affected = last.rowsChanged;
			} else if (a.statementType === 'SELECT' || a.statementType === 'SCRIPT') {
				out.names = resultNames(last.columnNames());
				out.types = last.columnTypes();
				out.rows = last.getRows();
				out.fields = out.names.map((n, i) => fieldFor(n, out.types[i]));
			}
			if (a.target) this.touch(a.target.projectId, a.target.datasetId, a.target.tableId);
			if (a.statementType.startsWith('DROP') && a.target) {
				this.meta.delete(`${a.target.projectId}.${a.target.datasetId}.${a.target.tableId}`);
			}
			return out;
		});
	}

	// Runs trusted SQL (seeding) under the lock.
	exec(sql) {
		return this.locked(() => this.conn.run(sql));
	}
}

// GoogleSQL type name of a schema field: INT64, STRUCT<a STRING>, ARRAY<...>.
export function sqlType(f) {
	const base = f.type === 'RECORD'
		? `STRUCT<${f.fields.map((c) => `${c.name} ${sqlType(c)}`).join(', ')}>`
		: ({ INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL' }[f.type] ?? f.type);
	return f.mode === 'REPEATED' ? `ARRAY<${base}>` : base;
}

function ddlOf(p, d, t, fields) {
	const cols = fields.map((f) => `  ${f.name} ${sqlType({ ...f })}${f.mode === 'REQUIRED' ? ' NOT NULL' : ''}`);
	return `CREATE TABLE \`${p}.${d}.${t}\`\n(\n${cols.join(',\n')}\n);`;
}

// (SELECT ... FROM (VALUES ...)) with named, typed columns; rows hold SQL literals.
function valuesSubquery(cols, rows) {
	const sel = cols.map(([n, ty], i) => `CAST(c${i} AS ${ty}) AS ${xl.quoteIdent(n)}`).join(', ');
	if (!rows.length) return `(SELECT ${cols.map(([n, ty]) => `CAST(NULL AS ${ty}) AS ${xl.quoteIdent(n)}`).join(', ')} WHERE false)`;
	return `(SELECT ${sel} FROM (VALUES ${rows.map((r) => `(${r.join(', ')})`).join(', ')}) AS v(${cols.map((_, i) => `c${i}`).join(', ')}))`;
}

// DuckDB error text -> a one-line message worded like BigQuery's where the
// meaning is the same.
function cleanError(msg) {
	const line = String(msg).replace(/^Failed to extract statements: /, '').split('\n')[0]
		.replace(/^[A-Z][A-Za-z ]* Error: /, '');
	const m = [
		[/^syntax error at or near (.*)$/, (x) => `Syntax error: Unexpected ${x}`],
		[/^syntax error at end of input$/, () => 'Syntax error: Unexpected end of script'],
		[/^Referenced column "?([^"]*)"? (?:not found|was not found).*$/, (x) => `Unrecognized name: ${x}`],
		[/^Scalar Function with name (\S+) does not exist!?$/, (x) => `Function not found: ${x}`],
	].find(([re]) => re.test(line));
	return m ? line.replace(m[0], (_, x) => m[1](x)) : line;
}
