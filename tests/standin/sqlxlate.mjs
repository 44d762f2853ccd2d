// GoogleSQL -> DuckDB translation for the BigQuery stand-in.
//
// The sluice tests send BigQuery ("GoogleSQL") text through the real clients;
// the stand-in runs it on DuckDB. This module rewrites just enough of the
// dialect for that: a tokenizer plus a handful of token-level rewrites, no
// parser. Anything it does not know passes through unchanged and DuckDB has
// the last word (its error becomes a BigQuery-shaped 400 invalidQuery).
//
// Rewrites:
//  - `a.b.c` backtick paths -> "a"."b"."c"; unquoted dashed project names after
//    FROM/JOIN/INTO/UPDATE/TABLE (demo-project.crm.t) -> "demo-project".crm.t
//  - "..." / '...' / r'...' / '''...''' string literals -> DuckDB '...';
//    b'...' -> BLOB; # comments -> --
//  - type names in type positions (CAST/SAFE_CAST AS, typed literals such as
//    TIMESTAMP '...', CREATE TABLE column lists, STRUCT<...>, ARRAY<...>)
//  - a few functions: SAFE_CAST, CURRENT_TIMESTAMP(), REGEXP_CONTAINS, ...
//    (others are TEMP MACROs, see MACROS)
//  - SELECT * EXCEPT (...) -> * EXCLUDE (...); FROM UNNEST(x) AS a -> AS a(a);
//    x IN UNNEST(arr) -> x IN (SELECT UNNEST(arr)); arr[OFFSET(i)] -> arr[i+1];
//    STRUCT(x AS a) -> struct_pack(a := x); 1.5 -> DOUBLE (BigQuery FLOAT64)
//  - [project.]dataset.INFORMATION_SCHEMA.{TABLES,COLUMNS,SCHEMATA} -> a
//    subquery the caller builds from the catalog (opts.infoSchema)
//  - sluice's masking expressions: SHA256 -> unhex(sha256()), TO_HEX -> lower(hex()),
//    CHAR_LENGTH -> length, TIMESTAMP_TRUNC(t, p, 'UTC') -> UTC truncation,
//    (SELECT AS STRUCT p.* REPLACE (e AS f)) -> struct_update(p, f := e)
//  - OPTIONS(...), PARTITION BY, CLUSTER BY dropped from DDL
//  - query parameters (@name, ?) inlined as typed literals
//  - stand-in hints in comments: /*standin:delay_ms=3000,poll_ms=200*/

// ---------------------------------------------------------------- tokenizer

const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUM = /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;
const WS = /\s+/y;

function fail(message) {
	const e = new Error(message);
	e.sqlSyntax = true;
	throw e;
}

// Returns [{k, v, s?}]: k is ws|comment|str|bytes|qid|word|num|param|pos|op.
// For str/bytes, s is the decoded value; for qid, s is the list of path parts.
export function tokenize(sql) {
	const out = [];
	let i = 0;
	const n = sql.length;
	const at = (re) => {
		re.lastIndex = i;
		const m = re.exec(sql);
		return m ? m[0] : null;
	};
	while (i < n) {
		const c = sql[i];
		const c2 = sql.slice(i, i + 2);
		let m;
		if ((m = at(WS))) {
			out.push({ k: 'ws', v: m });
			i += m.length;
		} else if (c2 === '--' || c === '#') {
			let j = sql.indexOf('\n', i);
			if (j < 0) j = n;
			out.push({ k: 'comment', v: '--' + sql.slice(i + (c === '#' ? 1 : 2), j) });
			i = j;
		} else if (c2 === '/*') {
			const j = sql.indexOf('*/', i + 2);
			if (j < 0) fail('Syntax error: Unclosed comment');
			out.push({ k: 'comment', v: sql.slice(i, j + 2) });
			i = j + 2;
		} else if (/^[rRbB]{0,2}['"]/.test(sql.slice(i, i + 3))) {
			let p = i;
			let raw = false;
			let bytes = false;
			while (sql[p] !== "'" && sql[p] !== '"') {
				if (/[rR]/.test(sql[p])) raw = true;
				else bytes = true;
				p++;
			}
			const q = sql.startsWith(sql[p].repeat(3), p) ? sql[p].repeat(3) : sql[p];
			let j = p + q.length;
			let body = '';
			for (;;) {
				if (j >= n) fail('Syntax error: Unclosed string literal');
				if (sql.startsWith(q, j)) break;
				if (sql[j] === '\\') {
					body += sql.slice(j, j + 2);
					j += 2;
				} else {
					body += sql[j++];
				}
			}
			out.push({ k: bytes ? 'bytes' : 'str', v: sql.slice(i, j + q.length), s: raw ? body : unescape(body) });
			i = j + q.length;
		} else if (c === '`') {
			const j = sql.indexOf('`', i + 1);
			if (j < 0) fail('Syntax error: Unclosed identifier literal');
			const body = sql.slice(i + 1, j);
			out.push({ k: 'qid', v: sql.slice(i, j + 1), s: body.split('.') });
			i = j + 1;
		} else if (c === '@' && sql[i + 1] !== '@' && (m = (WORD.lastIndex = i + 1, WORD.exec(sql)))) {
			out.push({ k: 'param', v: '@' + m[0], s: m[0] });
			i += 1 + m[0].length;
		} else if (c === '?') {
			out.push({ k: 'pos', v: '?' });
			i++;
		} else if ((m = at(WORD))) {
			out.push({ k: 'word', v: m, u: m.toUpperCase() });
			i += m.length;
		} else if (/[0-9.]/.test(c) && (m = at(NUM)) && m !== '.') {
			out.push({ k: 'num', v: m });
			i += m.length;
		} else {
			out.push({ k: 'op', v: c });
			i++;
		}
	}
	return out;
}

function unescape(s) {
	return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/gs, (_, e) => {
		switch (e[0]) {
			case 'n': return '\n';
			case 't': return '\t';
			case 'r': return '\r';
			case 'a': return '\x07';
			case 'b': return '\b';
			case 'f': return '\f';
			case 'v': return '\v';
			case 'x': case 'u': case 'U': return String.fromCodePoint(parseInt(e.slice(1), 16));
			default:
				return /^[0-7]{3}$/.test(e) ? String.fromCharCode(parseInt(e, 8)) : e;
		}
	});
}

export const quoteIdent = (s) => '"' + String(s).replace(/"/g, '""') + '"';
export const quoteStr = (s) => "'" + String(s).replace(/'/g, "''") + "'";

// ---------------------------------------------------------------- types

const SCALAR_TYPES = {
	INT64: 'BIGINT', INT: 'BIGINT', INTEGER: 'BIGINT', BIGINT: 'BIGINT', SMALLINT: 'BIGINT',
	TINYINT: 'BIGINT', BYTEINT: 'BIGINT',
	FLOAT64: 'DOUBLE', FLOAT: 'DOUBLE',
	NUMERIC: 'DECIMAL(38,9)', DECIMAL: 'DECIMAL(38,9)', BIGNUMERIC: 'DECIMAL(38,9)', BIGDECIMAL: 'DECIMAL(38,9)',
	BOOL: 'BOOLEAN', BOOLEAN: 'BOOLEAN',
	STRING: 'VARCHAR', BYTES: 'BLOB',
	DATE: 'DATE', DATETIME: 'TIMESTAMP', TIME: 'TIME', TIMESTAMP: 'TIMESTAMPTZ',
	JSON: 'JSON', GEOGRAPHY: 'VARCHAR', INTERVAL: 'INTERVAL',
};

// DuckDB type for a BigQuery schema field ({type, mode, fields}), as used by
// tables.insert and tabledata.insertAll.
export function duckTypeForField(f) {
	const t = String(f.type || 'STRING').toUpperCase();
	let d;
	if (t === 'RECORD' || t === 'STRUCT') {
		d = 'STRUCT(' + (f.fields || []).map((c) => `${quoteIdent(c.name)} ${duckTypeForField(c)}`).join(', ') + ')';
	} else {
		d = SCALAR_TYPES[t];
		if (!d) throw Object.assign(new Error(`Invalid field type: ${f.type}`), { sqlSyntax: true });
	}
	return f.mode === 'REPEATED' ? d + '[]' : d;
}

// Parses a GoogleSQL type starting at significant-token index i of toks.
// Returns [duckdbTypeText, nextIndex].
function parseType(toks, i) {
	const t = toks[i];
	if (!t) fail('Syntax error: Expected type');
	if (t.k === 'qid') return [quoteIdent(t.s.join('.')), i + 1];
	const u = t.u;
	if ((u === 'ARRAY' || u === 'STRUCT') && toks[i + 1]?.v === '<') {
		i += 2;
		if (u === 'ARRAY') {
			const [inner, j] = parseType(toks, i);
			if (toks[j]?.v !== '>') fail('Syntax error: Expected ">"');
			return [inner + '[]', j + 1];
		}
		const fields = [];
		while (toks[i] && toks[i].v !== '>') {
			let name = null;
			// "name TYPE" or just "TYPE" (anonymous field)
			if ((toks[i].k === 'word' || toks[i].k === 'qid') && toks[i + 1] && toks[i + 1].v !== ',' && toks[i + 1].v !== '>' && toks[i + 1].v !== '(') {
				name = toks[i].k === 'qid' ? toks[i].s.join('.') : toks[i].v;
				i++;
			}
			const [ft, j] = parseType(toks, i);
			fields.push(`${quoteIdent(name ?? `_field_${fields.length + 1}`)} ${ft}`);
			i = j;
			if (toks[i]?.v === ',') i++;
		}
		if (toks[i]?.v !== '>') fail('Syntax error: Expected ">"');
		return ['STRUCT(' + fields.join(', ') + ')', i + 1];
	}
	const d = SCALAR_TYPES[u];
	if (!d) fail(`Syntax error: Unrecognized type ${t.v}`);
	i++;
	// parameterised types: STRING(10), NUMERIC(10, 2)
	if (toks[i]?.v === '(') {
		const args = [];
		let j = i + 1;
		while (toks[j] && toks[j].v !== ')') {
			if (toks[j].k === 'num') args.push(toks[j].v);
			j++;
		}
		if ((u === 'NUMERIC' || u === 'DECIMAL') && args.length) {
			return [`DECIMAL(${args[0]},${args[1] ?? 0})`, j + 1];
		}
		return [d, j + 1];
	}
	return [d, i];
}

// ---------------------------------------------------------------- params

// Renders a BigQuery query parameter ({parameterType, parameterValue}) as a
// DuckDB literal expression.
export function paramLiteral(type, value) {
	const t = String(type?.type || 'STRING').toUpperCase();
	if (t === 'ARRAY') {
		const vals = value?.arrayValues || [];
		const inner = duckTypeForParam(type.arrayType);
		return `CAST([${vals.map((v) => paramLiteral(type.arrayType, v)).join(', ')}] AS ${inner}[])`;
	}
	if (t === 'STRUCT') {
		const sv = value?.structValues || {};
		const parts = (type.structTypes || []).map((st) => `${quoteStr(st.name)}: ${paramLiteral(st.type, sv[st.name])}`);
		return `{${parts.join(', ')}}`;
	}
	const v = value?.value;
	if (v === undefined || v === null) return `CAST(NULL AS ${duckTypeForParam(type)})`;
	if (t === 'BYTES') return `from_base64(${quoteStr(v)})`;
	return `CAST(${quoteStr(v)} AS ${duckTypeForParam(type)})`;
}

function duckTypeForParam(type) {
	const t = String(type?.type || 'STRING').toUpperCase();
	if (t === 'ARRAY') return duckTypeForParam(type.arrayType) + '[]';
	if (t === 'STRUCT') {
		return 'STRUCT(' + (type.structTypes || []).map((st) => `${quoteIdent(st.name)} ${duckTypeForParam(st.type)}`).join(', ') + ')';
	}
	return SCALAR_TYPES[t] || 'VARCHAR';
}

// ---------------------------------------------------------------- rewrite

// BigQuery functions that DuckDB lacks, added to every connection as TEMP MACROs.
export const MACROS = [
	'CREATE OR REPLACE TEMP MACRO safe_divide(a, b) AS CASE WHEN b = 0 THEN NULL ELSE a / b END',
	'CREATE OR REPLACE TEMP MACRO timestamp_sub(t, i) AS t - i',
	'CREATE OR REPLACE TEMP MACRO timestamp_add(t, i) AS t + i',
	'CREATE OR REPLACE TEMP MACRO datetime_sub(t, i) AS t - i',
	'CREATE OR REPLACE TEMP MACRO datetime_add(t, i) AS t + i',
	'CREATE OR REPLACE TEMP MACRO date_sub(d, i) AS CAST(d - i AS DATE)',
	'CREATE OR REPLACE TEMP MACRO date_add(d, i) AS CAST(d + i AS DATE)',
	'CREATE OR REPLACE TEMP MACRO unix_seconds(t) AS CAST(floor(epoch(t)) AS BIGINT)',
	'CREATE OR REPLACE TEMP MACRO unix_millis(t) AS epoch_ms(t)',
	'CREATE OR REPLACE TEMP MACRO unix_micros(t) AS epoch_us(t)',
	'CREATE OR REPLACE TEMP MACRO timestamp_seconds(n) AS to_timestamp(n)',
	'CREATE OR REPLACE TEMP MACRO timestamp_millis(n) AS to_timestamp(n / 1000)',
	'CREATE OR REPLACE TEMP MACRO timestamp_micros(n) AS to_timestamp(n / 1000000)',
	'CREATE OR REPLACE TEMP MACRO to_json_string(x) AS CAST(to_json(x) AS VARCHAR)',
	'CREATE OR REPLACE TEMP MACRO array_length(a) AS len(a)',
	'CREATE OR REPLACE TEMP MACRO generate_array(a, b) AS generate_series(a, b)',
	'CREATE OR REPLACE TEMP MACRO regexp_contains(s, r) AS regexp_matches(s, r)',
	'CREATE OR REPLACE TEMP MACRO session_user() AS \'standin@example.com\'',
	'CREATE OR REPLACE TEMP MACRO div(a, b) AS CAST(trunc(a / b) AS BIGINT)',
	'CREATE OR REPLACE TEMP MACRO format_timestamp(f, t) AS strftime(t, f)',
	'CREATE OR REPLACE TEMP MACRO format_datetime(f, t) AS strftime(t, f)',
	'CREATE OR REPLACE TEMP MACRO format_date(f, d) AS strftime(d, f)',
	'CREATE OR REPLACE TEMP MACRO parse_date(f, s) AS CAST(strptime(s, f) AS DATE)',
	'CREATE OR REPLACE TEMP MACRO parse_timestamp(f, s) AS CAST(strptime(s, f) AS TIMESTAMPTZ)',
	// date-part functions; the translator quotes the part (DAY -> 'day')
	// SHA256 returns BYTES in BigQuery (DuckDB: a hex VARCHAR); TO_HEX is lower-case
	'CREATE OR REPLACE TEMP MACRO bq_sha256(x) AS unhex(sha256(x))',
	'CREATE OR REPLACE TEMP MACRO bq_to_hex(b) AS lower(hex(b))',
	'CREATE OR REPLACE TEMP MACRO bq_date_diff(a, b, p) AS date_diff(p, b, a)',
	'CREATE OR REPLACE TEMP MACRO bq_datetime_diff(a, b, p) AS date_diff(p, b, a)',
	'CREATE OR REPLACE TEMP MACRO bq_timestamp_diff(a, b, p) AS date_diff(p, b, a)',
	'CREATE OR REPLACE TEMP MACRO bq_date_trunc(d, p) AS CAST(date_trunc(p, d) AS DATE)',
	'CREATE OR REPLACE TEMP MACRO bq_datetime_trunc(d, p) AS date_trunc(p, d)',
	'CREATE OR REPLACE TEMP MACRO bq_timestamp_trunc(t, p) AS date_trunc(p, t)',
];
const DATEPART_FUNCS = new Set(['DATE_DIFF', 'DATETIME_DIFF', 'TIMESTAMP_DIFF', 'DATE_TRUNC', 'DATETIME_TRUNC', 'TIMESTAMP_TRUNC']);

// Functions rewritten by name (word followed by "(").
const RENAME = { SAFE_CAST: 'TRY_CAST', FORMAT: 'printf', SHA256: 'bq_sha256', TO_HEX: 'bq_to_hex', CHAR_LENGTH: 'length' };
// Niladic functions BigQuery writes with "()" but DuckDB without.
const NILADIC = {
	CURRENT_TIMESTAMP: 'current_timestamp',
	CURRENT_DATE: 'current_date',
	CURRENT_TIME: 'current_time',
	CURRENT_DATETIME: 'CAST(current_timestamp AS TIMESTAMP)',
};
// Functions of one argument that are really casts: TIMESTAMP(x) etc.
const CAST_FUNCS = { TIMESTAMP: 'TIMESTAMPTZ', DATETIME: 'TIMESTAMP', DATE: 'DATE', TIME: 'TIME' };
const TYPED_LITERALS = new Set(['DATE', 'DATETIME', 'TIME', 'TIMESTAMP', 'NUMERIC', 'BIGNUMERIC', 'DECIMAL', 'BIGDECIMAL', 'JSON', 'INTERVAL']);
const TABLE_KEYWORDS = new Set(['FROM', 'JOIN', 'INTO', 'UPDATE', 'TABLE', 'USING', 'EXISTS', 'DELETE', 'MERGE', 'SCHEMA']);
const CLAUSE_WORDS = new Set([
	'ON', 'WHERE', 'GROUP', 'ORDER', 'LIMIT', 'HAVING', 'QUALIFY', 'WINDOW', 'UNION', 'EXCEPT', 'INTERSECT',
	'JOIN', 'LEFT', 'RIGHT', 'INNER', 'FULL', 'CROSS', 'OUTER', 'WITH', 'USING', 'SELECT', 'AS',
]);

function matchParen(sig, i) {
	// sig[i] is "("; returns index of matching ")"
	let depth = 0;
	for (let j = i; j < sig.length; j++) {
		if (sig[j].v === '(') depth++;
		else if (sig[j].v === ')' && --depth === 0) return j;
	}
	fail('Syntax error: Unbalanced parentheses');
}

function parseHints(comments) {
	const hints = {};
	for (const c of comments) {
		const m = /standin:\s*([a-z_]+\s*=\s*\d+(?:[\s,;]+[a-z_]+\s*=\s*\d+)*)/i.exec(c);
		if (!m) continue;
		for (const [, k, v] of m[1].matchAll(/([a-z_]+)\s*=\s*(\d+)/gi)) hints[k.toLowerCase()] = Number(v);
	}
	return hints;
}

// translate(sql, {queryParameters, infoSchema}) -> {sql, hints}.
// infoSchema(scopeParts, viewName) returns a SQL subquery for
// INFORMATION_SCHEMA views (or throws).
export function translate(sql, { queryParameters = [], infoSchema } = {}) {
	const all = tokenize(sql);
	const hints = parseHints(all.filter((t) => t.k === 'comment').map((t) => t.v));
	// Work on significant tokens; whitespace is re-inserted as single spaces
	// where it was, so DuckDB error positions stay roughly meaningful.
	const sig = [];
	for (const t of all) {
		if (t.k === 'ws' || t.k === 'comment') {
			if (sig.length) sig[sig.length - 1].sp = true;
			continue;
		}
		sig.push({ ...t, out: null });
	}

	const named = new Map();
	const positional = [];
	for (const p of queryParameters) {
		if (p.name) named.set(p.name.toLowerCase(), p);
		else positional.push(p);
	}
	let posIdx = 0;

	const isCreateTable = /^CREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?TABLE\b/i.test(
		sig.map((t) => t.v).join(' '),
	);

	for (let i = 0; i < sig.length; i++) {
		const t = sig[i];
		const prev = sig[i - 1];
		const next = sig[i + 1];
		if (t.out !== null) continue;
		switch (t.k) {
			case 'str':
				t.out = quoteStr(t.s);
				break;
			case 'bytes':
				t.out = `CAST(${quoteStr(t.s)} AS BLOB)`;
				break;
			case 'qid':
				if (infoSchemaRef(sig, i, infoSchema)) break;
				t.out = t.s.map(quoteIdent).join('.');
				break;
			case 'param': {
				const p = named.get(t.s.toLowerCase());
				if (!p) fail(`Query parameter '${t.s}' not found`);
				t.out = paramLiteral(p.parameterType, p.parameterValue);
				break;
			}
			case 'pos': {
				const p = positional[posIdx++];
				if (!p) fail('Positional query parameter is missing a value');
				t.out = paramLiteral(p.parameterType, p.parameterValue);
				break;
			}
			case 'num':
				// BigQuery: 1.5 is FLOAT64 (DuckDB would make it DECIMAL)
				t.out = /^[\d.]+$/.test(t.v) && t.v.includes('.') && prev?.v !== '.' ? `CAST(${t.v} AS DOUBLE)` : t.v;
				break;
			case 'word': {
				const u = t.u;
				if (prev && (prev.k === 'word' && TABLE_KEYWORDS.has(prev.u) || prev.v === ',') && infoSchemaRef(sig, i, infoSchema)) break;
				// SAFE.FUNC(...) -> FUNC(...)
				if (u === 'SAFE' && next?.v === '.' && sig[i + 2]?.k === 'word' && sig[i + 3]?.v === '(') {
					t.out = '';
					next.out = '';
					break;
				}
				// arr[OFFSET(i)] / [SAFE_OFFSET(i)] -> arr[(i)+1]; [ORDINAL(i)] -> arr[(i)]
				if (prev?.v === '[' && next?.v === '(' && ['OFFSET', 'SAFE_OFFSET', 'ORDINAL', 'SAFE_ORDINAL'].includes(u)) {
					const close = matchParen(sig, i + 1);
					t.out = '';
					if (u.endsWith('OFFSET')) sig[close].out = ')+1';
					break;
				}
				if (u === 'SELECT' && prev?.v === '(' && next?.u === 'AS' && sig[i + 2]?.u === 'STRUCT') {
					// (SELECT AS STRUCT p.* REPLACE (e AS f, ...)) -> (struct_update(p, f := e, ...))
					// (sluice's masking of a RECORD's field)
					let j = i + 3;
					while (sig[j] && (sig[j].k === 'word' || sig[j].k === 'qid') && sig[j + 1]?.v === '.') j += 2;
					if (sig[j]?.v === '*' && sig[j + 1]?.u === 'REPLACE' && sig[j + 2]?.v === '(') {
						const close = matchParen(sig, j + 2);
						const outer = matchParen(sig, i - 1);
						if (outer === close + 1) {
							t.out = 'struct_update(';
							next.out = '';
							sig[i + 2].out = '';
							sig[j - 1].out = '';
							sig[j - 1].sp = false;
							sig[j].out = ',';
							sig[j + 1].out = '';
							sig[j + 2].out = '';
							sig[close].out = ')';
							let start = j + 3;
							let depth = 0;
							for (let k = j + 3; k <= close; k++) {
								const v = sig[k].v;
								if (v === '(' || v === '[') depth++;
								else if ((v === ')' || v === ']') && k !== close) depth--;
								if ((k === close || (depth === 0 && v === ',')) && k - start >= 3 && sig[k - 2].u === 'AS') {
									const last = sig[k - 1];
									sig[start].pre = `${quoteIdent(last.k === 'qid' ? last.s.join('.') : last.v)} := `;
									sig[k - 2].out = '';
									last.out = '';
									sig[k - 3].sp = false;
									start = k + 1;
								} else if (k === close || (depth === 0 && v === ',')) {
									start = k + 1;
								}
							}
							break;
						}
					}
				}
				if (u === 'STRUCT' && next?.v === '(' && prev?.v !== '.') {
					// STRUCT(x AS a, y) -> struct_pack(a := x, y := y)
					const close = matchParen(sig, i + 1);
					let start = i + 2;
					let depth = 0;
					let k = 0;
					for (let j = i + 2; j <= close; j++) {
						const v = sig[j].v;
						if (v === '(' || v === '[') depth++;
						else if ((v === ')' || v === ']') && j !== close) depth--;
						if (j === close || (depth === 0 && v === ',')) {
							k++;
							if (j > start) {
								const last = sig[j - 1];
								if (j - start >= 3 && sig[j - 2].u === 'AS' && (last.k === 'word' || last.k === 'qid')) {
									sig[start].pre = `${quoteIdent(last.k === 'qid' ? last.s.join('.') : last.v)} := `;
									sig[j - 2].out = '';
									last.out = '';
									sig[j - 3].sp = false;
								} else if (last.k === 'word' || last.k === 'qid') {
									sig[start].pre = `${quoteIdent(last.k === 'qid' ? last.s[last.s.length - 1] : last.v)} := `;
								} else {
									sig[start].pre = `${quoteIdent(`_field_${k}`)} := `;
								}
							}
							start = j + 1;
						}
					}
					t.out = 'struct_pack';
					break;
				}
				if (DATEPART_FUNCS.has(u) && next?.v === '(' && prev?.v !== '.') {
					// DATE_DIFF(a, b, DAY) -> bq_date_diff(a, b, 'day')
					const close = matchParen(sig, i + 1);
					// TIMESTAMP_TRUNC(t, YEAR, 'UTC'): the stand-in runs in UTC, drop the zone
					if (u === 'TIMESTAMP_TRUNC' && sig[close - 1].k === 'str' && sig[close - 2]?.v === ',' &&
						sig[close - 3]?.k === 'word' && sig[close - 4]?.v === ',' && /^utc$/i.test(sig[close - 1].s)) {
						sig[close - 3].out = quoteStr(sig[close - 3].v.toLowerCase());
						sig[close - 2].out = '';
						sig[close - 1].out = '';
						t.out = 'bq_' + u.toLowerCase();
						break;
					}
					if (sig[close - 2]?.v === ',' && sig[close - 1].k === 'word') sig[close - 1].out = quoteStr(sig[close - 1].v.toLowerCase());
					t.out = 'bq_' + u.toLowerCase();
					break;
				}
				// demo-project.crm.customers after FROM/JOIN/...
				if (prev && prev.k === 'word' && TABLE_KEYWORDS.has(prev.u) && next?.v === '-' && !t.sp) {
					let j = i;
					let name = t.v;
					while (sig[j + 1]?.v === '-' && !sig[j].sp && !sig[j + 1].sp && (sig[j + 2]?.k === 'word' || sig[j + 2]?.k === 'num')) {
						name += '-' + sig[j + 2].v;
						j += 2;
					}
					if (j > i && sig[j + 1]?.v === '.' && !sig[j].sp) {
						t.out = quoteIdent(name);
						for (let k = i + 1; k <= j; k++) sig[k].out = '';
						t.sp = sig[j].sp;
						break;
					}
				}
				if (next?.v === '(' && prev?.v !== '.') {
					if (NILADIC[u] && sig[i + 2]?.v === ')') {
						t.out = NILADIC[u];
						next.out = '';
						sig[i + 2].out = '';
						t.sp = sig[i + 2].sp;
						break;
					}
					if (u === 'CAST' || u === 'SAFE_CAST') {
						// translate the type after the AS at depth 1
						const close = matchParen(sig, i + 1);
						let depth = 0;
						for (let j = i + 1; j < close; j++) {
							if (sig[j].v === '(') depth++;
							else if (sig[j].v === ')') depth--;
							else if (depth === 1 && sig[j].u === 'AS') {
								const [ty, end] = parseType(sig, j + 1);
								sig[j + 1].out = ty;
								for (let k = j + 2; k < end; k++) sig[k].out = '';
								sig[j + 1].sp = sig[end - 1].sp;
								break;
							}
						}
						t.out = RENAME[u] || u;
						break;
					}
					if (CAST_FUNCS[u]) {
						// TIMESTAMP('2024-01-01') -> CAST(('2024-01-01') AS TIMESTAMPTZ)
						const close = matchParen(sig, i + 1);
						let depth = 0;
						let commas = 0;
						for (let j = i + 1; j < close; j++) {
							if (sig[j].v === '(') depth++;
							else if (sig[j].v === ')') depth--;
							else if (depth === 1 && sig[j].v === ',') commas++;
						}
						if (commas === 0) {
							t.out = 'CAST';
							sig[close].out = `) AS ${CAST_FUNCS[u]})`;
							next.out = '((';
							break;
						}
						if (u === 'DATE' && commas === 2) {
							t.out = 'make_date';
							break;
						}
					}
					if (u === 'OPTIONS') {
						const close = matchParen(sig, i + 1);
						for (let k = i; k <= close; k++) sig[k].out = '';
						break;
					}
					if (RENAME[u]) {
						t.out = RENAME[u];
						break;
					}
					if (u === 'UNNEST' && prev?.u === 'IN') {
						// x IN UNNEST(arr) -> x IN (SELECT UNNEST(arr))
						const close = matchParen(sig, i + 1);
						t.out = '(SELECT UNNEST';
						sig[close].out = '))';
						break;
					}
					if (u === 'UNNEST' && (prev?.u === 'FROM' || prev?.u === 'JOIN' || prev?.v === ',')) {
						// FROM UNNEST(x) [AS] a -> UNNEST(x) AS a(a): DuckDB then names the column a.
						const close = matchParen(sig, i + 1);
						let j = close + 1;
						if (sig[j]?.u === 'AS') j++;
						const a = sig[j];
						if (a && (a.k === 'word' || a.k === 'qid') && sig[j + 1]?.v !== '(' && !(a.k === 'word' && CLAUSE_WORDS.has(a.u))) {
							const alias = a.k === 'qid' ? quoteIdent(a.s.join('.')) : a.v;
							if (sig[j - 1].u !== 'AS') sig[j - 1].sp = true;
							a.out = `${sig[j - 1].u === 'AS' ? '' : 'AS '}${alias}(${alias})`;
						}
						t.out = t.v;
						break;
					}
				}
				if (TYPED_LITERALS.has(u) && next && (next.k === 'str') && prev?.v !== '.') {
					if (u === 'INTERVAL') {
						t.out = t.v;
						break;
					}
					t.out = 'CAST(';
					t.sp = false;
					next.out = `${quoteStr(next.s)} AS ${SCALAR_TYPES[u]})`;
					break;
				}
				if ((u === 'STRUCT' || u === 'ARRAY') && next?.v === '<') {
					const [ty, end] = parseType(sig, i);
					// typed constructor: ARRAY<INT64>[1, 2] / STRUCT<a INT64>(1)
					t.out = '';
					for (let k = i + 1; k < end; k++) sig[k].out = '';
					if (sig[end]?.v === '[' || sig[end]?.v === '(') {
						const open = sig[end].v;
						const closeCh = open === '[' ? ']' : ')';
						let depth = 0;
						let j = end;
						for (; j < sig.length; j++) {
							if (sig[j].v === '(' || sig[j].v === '[') depth++;
							else if ((sig[j].v === ')' || sig[j].v === ']') && --depth === 0) break;
						}
						if (open === '[') {
							t.out = 'CAST(';
							sig[j].out = `${closeCh} AS ${ty})`;
						} else {
							t.out = 'CAST(ROW';
							sig[j].out = `) AS ${ty})`;
						}
					} else {
						t.out = ty;
						t.sp = sig[end - 1].sp;
					}
					break;
				}
				if (u === 'EXCEPT' && prev?.v === '*' && next?.v === '(') {
					t.out = 'EXCLUDE';
					break;
				}
				if (isCreateTable && (u === 'PARTITION' || u === 'CLUSTER') && next?.u === 'BY') {
					let j = i + 2;
					let depth = 0;
					while (j < sig.length) {
						const v = sig[j];
						if (v.v === '(') depth++;
						else if (v.v === ')') depth--;
						if (depth === 0 && (v.u === 'OPTIONS' || v.u === 'AS' || v.u === 'CLUSTER' || v.v === ';')) break;
						j++;
					}
					for (let k = i; k < j; k++) sig[k].out = '';
					break;
				}
				t.out = t.v;
				break;
			}
			default:
				t.out = t.v;
		}
	}

	// CREATE TABLE name ( col TYPE ..., ... ): translate the column types.
	if (isCreateTable) {
		let i = 0;
		while (i < sig.length && sig[i].v !== '(' && sig[i].u !== 'AS') i++;
		if (sig[i]?.v === '(') {
			const close = matchParen(sig, i);
			let j = i + 1;
			while (j < close) {
				// column name, then type
				const nameTok = sig[j];
				if (nameTok.k === 'word' && ['PRIMARY', 'FOREIGN', 'CONSTRAINT'].includes(nameTok.u)) break;
				const [ty, end] = parseType(sig, j + 1);
				sig[j + 1].out = ty;
				for (let k = j + 2; k < end; k++) sig[k].out = '';
				sig[j + 1].sp = sig[end - 1].sp || true;
				// skip to next top-level comma
				let depth = 0;
				j = end;
				while (j < close) {
					if (sig[j].v === '(' || sig[j].v === '<') depth++;
					else if (sig[j].v === ')' || sig[j].v === '>') depth--;
					else if (depth === 0 && sig[j].v === ',') break;
					j++;
				}
				j++;
			}
		}
	}

	let out = '';
	for (const t of sig) {
		if (t.pre) out += t.pre;
		if (!t.out) continue;
		out += t.out;
		if (t.sp) out += ' ';
	}
	return { sql: out.trim(), hints };
}

// If sig[i] starts a [project.][dataset.]INFORMATION_SCHEMA.VIEW path,
// replaces the path by infoSchema's subquery and returns true.
function infoSchemaRef(sig, i, infoSchema) {
	const parts = [];
	const idx = [];
	let j = i;
	while (sig[j] && (sig[j].k === 'word' || sig[j].k === 'qid' || sig[j].k === 'num')) {
		if (sig[j].k === 'qid') parts.push(...sig[j].s);
		else {
			let name = sig[j].v;
			while (sig[j + 1]?.v === '-' && !sig[j].sp && (sig[j + 2]?.k === 'word' || sig[j + 2]?.k === 'num')) {
				idx.push(j, j + 1);
				name += '-' + sig[j + 2].v;
				j += 2;
			}
			parts.push(name);
		}
		idx.push(j);
		if (sig[j + 1]?.v !== '.') break;
		idx.push(j + 1);
		j += 2;
	}
	const k = parts.findIndex((p) => p.toUpperCase() === 'INFORMATION_SCHEMA');
	if (k < 0 || k !== parts.length - 2) return false;
	if (!infoSchema) fail('INFORMATION_SCHEMA is not available here');
	const sub = infoSchema(parts.slice(0, k), parts[k + 1].toUpperCase());
	for (const x of idx) sig[x].out = '';
	sig[i].out = sub;
	sig[i].sp = sig[j].sp;
	return true;
}

// ---------------------------------------------------------------- analysis

const sigTokens = (sql) => tokenize(sql).filter((t) => t.k !== 'ws' && t.k !== 'comment');

// BigQuery statementType of a (single) GoogleSQL statement.
export function statementType(sql) {
	const toks = sigTokens(sql);
	const w = toks.filter((t) => t.k === 'word').map((t) => t.u);
	const first = toks[0]?.u ?? toks[0]?.v;
	if (first === 'SELECT' || first === 'WITH' || first === '(') return 'SELECT';
	if (['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(first)) return first;
	if (first === 'TRUNCATE') return 'TRUNCATE_TABLE';
	const obj = w.slice(1).find((x) => ['TABLE', 'VIEW', 'SCHEMA', 'FUNCTION', 'PROCEDURE'].includes(x));
	if (first === 'CREATE') {
		if (obj === 'TABLE') {
			// CREATE TABLE ... AS SELECT
			let depth = 0;
			for (let i = 0; i < toks.length; i++) {
				if (toks[i].v === '(') depth++;
				else if (toks[i].v === ')') depth--;
				else if (depth === 0 && toks[i].u === 'AS') return 'CREATE_TABLE_AS_SELECT';
			}
			return 'CREATE_TABLE';
		}
		return obj ? `CREATE_${obj}` : 'SCRIPT';
	}
	if ((first === 'DROP' || first === 'ALTER') && obj) return `${first}_${obj}`;
	return 'SCRIPT';
}

// The table a DML/DDL statement writes to, as a list of name parts, or null.
export function targetTable(sql) {
	const toks = sigTokens(sql);
	let i = 0;
	const skip = new Set(['INSERT', 'INTO', 'UPDATE', 'DELETE', 'FROM', 'MERGE', 'TRUNCATE', 'TABLE', 'CREATE', 'OR',
		'REPLACE', 'TEMP', 'TEMPORARY', 'DROP', 'ALTER', 'IF', 'NOT', 'EXISTS', 'VIEW', 'SNAPSHOT', 'MATERIALIZED']);
	while (toks[i] && toks[i].k === 'word' && skip.has(toks[i].u)) i++;
	return readName(toks, i);
}

// Reads a dotted name (possibly with backticks and dashed project names)
// starting at toks[i]; returns the list of parts or null.
function readName(toks, i) {
	const parts = [];
	while (toks[i]) {
		const t = toks[i];
		if (t.k === 'qid') parts.push(...t.s);
		else if (t.k === 'word') {
			let name = t.v;
			while (toks[i + 1]?.v === '-' && (toks[i + 2]?.k === 'word' || toks[i + 2]?.k === 'num')) {
				name += '-' + toks[i + 2].v;
				i += 2;
			}
			parts.push(name);
		} else break;
		if (toks[i + 1]?.v !== '.') break;
		i += 2;
	}
	return parts.length ? parts : null;
}

// Substrings of a non-SELECT statement that are queries (INSERT ... SELECT,
// subqueries), so their table references can be found.
export function subqueries(sql) {
	const all = tokenize(sql);
	const res = [];
	let pos = 0;
	const spans = all.map((t) => {
		const s = pos;
		pos += t.v.length;
		return [s, pos];
	});
	const sig = all.map((t, idx) => ({ t, idx })).filter((x) => x.t.k !== 'ws' && x.t.k !== 'comment');
	for (let i = 1; i < sig.length; i++) {
		const u = sig[i].t.u;
		if (u !== 'SELECT' && u !== 'WITH') continue;
		const prevV = sig[i - 1].t.v;
		const start = spans[sig[i].idx][0];
		if (prevV === '(') {
			let depth = 1;
			let j = i;
			for (; j < sig.length; j++) {
				if (sig[j].t.v === '(') depth++;
				else if (sig[j].t.v === ')' && --depth === 0) break;
			}
			res.push(sql.slice(start, j < sig.length ? spans[sig[j].idx][0] : sql.length));
		} else {
			res.push(sql.slice(start));
			break;
		}
	}
	return res;
}
