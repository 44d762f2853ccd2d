/* gate.c - turn a request into policy items and decide them.
 *
 * Items: every table of every statement (with the access its role implies), one item for a
 * statement that names no table, the write target of a job's destinationTable, the tables
 * of copy, load and extract jobs, or the API operation itself when no SQL is carried. The
 * policy's strictest answer over the items is the request's. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "gate.h"
#include "jobseen.h"
#include "mask.h"
#include "route.h"
#include "sql.h"

#define GATE_NAMES_BYTES (512 * 1024)

/* Items, and the names split from "p.d.t" they point to, until the decision is made. */
struct items {
	struct policy_item it[GATE_MAX_ITEMS];
	char names[GATE_NAMES_BYTES];
	size_t used;
	int n, overflow;
};

/* Copy <len> bytes of <p> into the name arena; NULL (and overflow) when full. */
static const char *keep(struct items *s, const char *p, size_t len)
{
	char *q;

	if (s->used + len + 1 > sizeof(s->names)) {
		s->overflow = 1;
		return "";
	}
	q = s->names + s->used;
	memcpy(q, p, len);
	q[len] = '\0';
	s->used += len + 1;
	return q;
}

static struct policy_item *add(struct items *s)
{
	if (s->n >= GATE_MAX_ITEMS) {
		s->overflow = 1;
		return NULL;
	}
	memset(&s->it[s->n], 0, sizeof(s->it[0]));
	s->it[s->n].project = s->it[s->n].dataset = s->it[s->n].table = "";
	s->it[s->n].kind = "";
	s->it[s->n].statement = -1;
	return &s->it[s->n++];
}

/* Split "p.d.t" (or "p.d" when <is_dataset>) from the right into the item's names. */
static void set_names(struct items *s, struct policy_item *it, const char *name, int is_dataset)
{
	const char *parts[3] = { "", "", "" }, *end = name + strlen(name), *dot;
	int part = is_dataset ? 1 : 2;

	while (part > 0 && (dot = memrchr(name, '.', (size_t)(end - name)))) {
		parts[part--] = keep(s, dot + 1, (size_t)(end - dot - 1));
		end = dot;
	}
	parts[part] = keep(s, name, (size_t)(end - name));
	it->project = parts[0];
	it->dataset = parts[1];
	it->table = parts[2];
}

/* --- masking ------------------------------------------------------------------------------ */

#define GATE_MARK "/*sluice-masked:"
#define GATE_MARKED 4096 /* rewritten queries whose original can be put back in responses */

/* What the rewrite needs for one request, and what it produced. */
struct masking {
	const struct mask_rules *rules;
	const struct policy_subject *sub;
	char *out;               /* rewritten text of the SQL being handled */
	size_t cap;
	int refused;
	char reason[4096];
	char *texts[ROUTE_MAX_SQL]; /* rewritten SQL per route_sql, NULL: unchanged */
	struct mask_set *row_mask;  /* tabledata.list of a masked table: mask its rows */
	char *schema_target;
	json_t *masked;             /* [{"table", "columns"}]: what the rewrite masked */
};

static pthread_mutex_t marked_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char id[17]; char *original; } marked[GATE_MARKED];
static unsigned marked_next;

/* Remember <original> under a fresh id for gate_restore; writes the id into <id>. */
static void mark(const char *original, size_t len, char id[17])
{
	unsigned char r[8];
	char *copy = strndup(original, len);
	int i;

	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	for (i = 0; i < 8; i++)
		snprintf(id + 2 * i, 3, "%02x", r[i]);
	pthread_mutex_lock(&marked_mu);
	free(marked[marked_next % GATE_MARKED].original);
	marked[marked_next % GATE_MARKED].original = copy;
	memcpy(marked[marked_next % GATE_MARKED].id, id, 17);
	marked_next++;
	pthread_mutex_unlock(&marked_mu);
}

static char *original_of(const char *id)
{
	char *s = NULL;
	unsigned i;

	pthread_mutex_lock(&marked_mu);
	for (i = 0; i < GATE_MARKED && !s; i++)
		if (marked[i].original && !strncmp(marked[i].id, id, 16))
			s = strdup(marked[i].original);
	pthread_mutex_unlock(&marked_mu);
	return s;
}

static int mask_lookup(void *ctx, const char *name, int wildcard, struct mask_set *out)
{
	struct masking *m = ctx;

	return mask_rules_for(m->rules, m->sub->cgroup, m->sub->groups, m->sub->n_groups, name,
			      wildcard, out);
}

/* Rewrite one analyzed SQL text; on success m->texts[k] is the marked, rewritten text. */
static void rewrite_sql(struct masking *m, int k, const char *text, size_t len,
			const struct sql_result *r, int legacy)
{
	struct mask_report rep;
	char id[17];
	int rc;

	if (!m || !m->rules || m->refused)
		return;
	if (!m->out || m->cap < len * 8 + 65536) {
		free(m->out);
		m->cap = len * 8 + 65536;
		m->out = malloc(m->cap);
		if (!m->out) {
			m->refused = 1;
			snprintf(m->reason, sizeof(m->reason), "out of memory while masking");
			return;
		}
	}
	rc = mask_rewrite(text, len, r, legacy, mask_lookup, m, m->out, m->cap, &rep);
	if (rc || rep.refused) {
		m->refused = 1;
		snprintf(m->reason, sizeof(m->reason), "%s", rc < 0 ? "the masked query is too long" :
			 rep.reason);
		return;
	}
	if (!rep.n_refs)
		return;
	if (!m->masked)
		m->masked = json_array();
	for (int t = 0; t < rep.n_tables && t < 16; t++)
		json_array_append_new(m->masked, json_pack("{s:s, s:s}", "table", rep.tables[t].name,
							   "columns", rep.tables[t].columns));
	mark(text, len, id);
	if (asprintf(&m->texts[k], GATE_MARK "%s*/ %.*s", id, (int)rep.out_len, m->out) < 0)
		m->texts[k] = NULL;
}

/* Set the string at dotted <path> ("configuration.query.query") of <root> to <v>. */
static int set_path(json_t *root, const char *path, const char *v)
{
	char key[128];
	const char *dot;
	json_t *o = root;

	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		if (!json_is_object(o))
			return -1;
		path = dot + 1;
	}
	return json_object_set_new(o, path, json_string(v));
}

/* Does <body> quote a marked rewrite? A scan for its '/' (rare in BigQuery's JSON) and a
 * compare: several times faster than memmem over a page of rows. */
static int has_mark(const char *body, size_t len)
{
	const char *p = body, *e = body + len;

	while ((size_t)(e - p) >= sizeof(GATE_MARK) - 1 && (p = memchr(p, '/', (size_t)(e - p)))) {
		if ((size_t)(e - p) < sizeof(GATE_MARK) - 1)
			return 0;
		if (!memcmp(p, GATE_MARK, sizeof(GATE_MARK) - 1))
			return 1;
		p++;
	}
	return 0;
}

char *gate_restore(const char *body, size_t len, size_t *outlen)
{
	json_t *root, *stack[64], *v;
	int depth = 0;
	char *out;

	if (!has_mark(body, len))
		return NULL;
	root = json_loadb(body, len, 0, NULL);
	if (!root)
		return strdup("{\"error\": {\"code\": 502, \"message\": \"sluice: a response "
			      "quoting a masked query could not be cleaned, so it is withheld\"}}");
	stack[depth++] = root;
	while (depth) { /* every string that is a marked rewrite, at any depth */
		json_t *o = stack[--depth];
		const char *k;
		void *tmp;
		size_t i;

		if (json_is_object(o)) {
			json_object_del(o, "queryPlan"); /* plan steps quote the rewrite */
			json_object_del(o, "timeline");
			json_object_foreach_safe(o, tmp, k, v) {
				const char *s = json_string_value(v);

				if (s && !strncmp(s, GATE_MARK, sizeof(GATE_MARK) - 1)) {
					char *orig = original_of(s + sizeof(GATE_MARK) - 1);

					json_object_set_new(o, k, json_string(orig ? orig :
						"(this query was rewritten by sluice for masking; the "
						"original text is no longer known)"));
					free(orig);
				} else if ((json_is_object(v) || json_is_array(v)) && depth < 64) {
					stack[depth++] = v;
				}
			}
		} else if (json_is_array(o)) {
			json_array_foreach(o, i, v)
				if ((json_is_object(v) || json_is_array(v)) && depth < 64)
					stack[depth++] = v;
		}
	}
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (out)
		*outlen = strlen(out);
	return out;
}

static enum policy_access access_of_route(enum route_access a)
{
	static const enum policy_access map[] = {
		[ROUTE_READ_DATA] = POLICY_READ_DATA, [ROUTE_READ_METADATA] = POLICY_READ_METADATA,
		[ROUTE_WRITE_DATA] = POLICY_WRITE_DATA, [ROUTE_DDL] = POLICY_DDL,
		[ROUTE_IAM] = POLICY_IAM, [ROUTE_JOB_CONTROL] = POLICY_JOB_CONTROL,
	};
	return map[a];
}

/* The access a statement's table reference implies. */
static enum policy_access access_of_ref(enum sql_kind k, unsigned char role)
{
	if (k == SQL_GRANT || k == SQL_REVOKE)
		return POLICY_IAM;
	switch (role) {
	case SQL_ROLE_WRITE: return POLICY_WRITE_DATA;
	case SQL_ROLE_DDL: return k == SQL_TRUNCATE_TABLE ? POLICY_WRITE_DATA : POLICY_DDL;
	default: return POLICY_READ_DATA;
	}
}

/* The access of a statement that names no table. */
static enum policy_access access_of_kind(enum sql_kind k)
{
	switch (k) {
	case SQL_SELECT: case SQL_DECLARE: case SQL_SET: case SQL_ASSERT: case SQL_RAISE:
	case SQL_BEGIN_TRANSACTION: case SQL_COMMIT_TRANSACTION: case SQL_ROLLBACK_TRANSACTION:
	case SQL_CONTROL:
		return POLICY_READ_DATA;
	case SQL_GRANT: case SQL_REVOKE:
		return POLICY_IAM;
	case SQL_INSERT: case SQL_UPDATE: case SQL_DELETE: case SQL_MERGE: case SQL_LOAD_DATA:
	case SQL_TRUNCATE_TABLE: case SQL_EXPORT_DATA: case SQL_EXPORT_MODEL:
		return POLICY_WRITE_DATA;
	default:
		return POLICY_DDL;
	}
}

/* Scratch memory of one thread, kept between requests: a request allocates nothing big. */
struct scratch {
	struct items items;
	struct sql_stmt stmts[1024];
	struct sql_table tables[4096];
	struct sql_token *toks;
	size_t max_toks;
	char *names;
	size_t names_cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
	struct scratch *sc = p;

	free(sc->toks);
	free(sc->names);
	free(sc);
}

static void scratch_key_init(void)
{
	pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch, with room for the tokens and names of a <len>-byte text. */
static struct scratch *scratch_get(size_t len)
{
	struct scratch *sc;
	size_t toks = len + 16, names = len * 2 + 4096;
	void *p;

	pthread_once(&scratch_once, scratch_key_init);
	sc = pthread_getspecific(scratch_key);
	if (!sc) {
		sc = calloc(1, sizeof(*sc));
		if (!sc || pthread_setspecific(scratch_key, sc)) {
			free(sc);
			return NULL;
		}
	}
	if (toks > sc->max_toks) {
		p = realloc(sc->toks, toks * sizeof(*sc->toks));
		if (!p)
			return NULL;
		sc->toks = p;
		sc->max_toks = toks;
	}
	if (names > sc->names_cap) {
		p = realloc(sc->names, names);
		if (!p)
			return NULL;
		sc->names = p;
		sc->names_cap = names;
	}
	return sc;
}

static json_t *describe_sql(const struct sql_result *r, const char *text)
{
	json_t *stmts = json_array();
	int i, j;

	for (i = 0; i < r->n_stmts; i++) {
		const struct sql_stmt *st = &r->stmts[i];
		json_t *o = json_object(), *tabs = json_array();

		if (st->kind == SQL_CONTROL)
			continue;
		for (j = st->first_table; j < st->first_table + st->n_tables; j++) {
			const struct sql_table *t = &r->tables[j];
			char role[2] = { (char)t->role, 0 };

			json_array_append_new(tabs, json_pack("{s:s, s:s, s:I}", "name", t->name,
				"role", role, "offset", (json_int_t)(t->p - text)));
		}
		json_object_set_new(o, "kind", json_string(sql_kind_name(st->kind)));
		json_object_set_new(o, "unbounded", json_boolean(st->unbounded));
		json_object_set_new(o, "offset", json_integer((json_int_t)st->off));
		json_object_set_new(o, "tables", tabs);
		json_array_append_new(stmts, o);
	}
	return stmts;
}

/* Analyze one SQL text and add its items. Returns its description or NULL. */
static json_t *sql_items(struct items *s, const char *op, const char *text, size_t len,
			 int legacy, int dry_run, const char *project, const char *dataset,
			 int stmt_base, int *n_stmts, int want, struct masking *m, int k)
{
	struct scratch *sc = len <= GATE_MAX_SQL_BYTES ? scratch_get(len) : NULL;
	struct sql_result r;
	struct policy_item *it;
	json_t *desc = NULL;
	int i, j;

	*n_stmts = 0;
	if (!sc) {
		it = add(s);
		if (it) {
			it->operation = op;
			it->kind = "UNKNOWN";
			it->statement = stmt_base;
		}
		goto out;
	}
	sql_result_init(&r, sc->stmts, 1024, sc->tables, 4096, sc->toks, (int)sc->max_toks,
			sc->names, sc->names_cap);
	sql_analyze(text, len, project, dataset && *dataset ? dataset : NULL, &r);
	rewrite_sql(m, k, text, len, &r, legacy);
	for (i = 0; i < r.n_stmts; i++) {
		const struct sql_stmt *st = &r.stmts[i];

		if (st->kind == SQL_CONTROL)
			continue;
		for (j = 0; j < (st->n_tables ? st->n_tables : 1); j++) {
			const struct sql_table *t = st->n_tables ? &r.tables[st->first_table + j] : NULL;

			if (!(it = add(s)))
				break;
			it->operation = op;
			it->kind = sql_kind_name(st->kind);
			/* CREATE OR REPLACE TABLE replaces every row of the table, like WRITE_TRUNCATE */
			it->unbounded = st->unbounded ||
					(st->replace && (st->kind == SQL_CREATE_TABLE ||
							 st->kind == SQL_CREATE_TABLE_AS_SELECT));
			it->legacy_sql = legacy;
			it->statement = stmt_base + i;
			it->access = t ? access_of_ref(st->kind, t->role) : access_of_kind(st->kind);
			if (dry_run) /* nothing runs: BigQuery only reports what would happen */
				it->access = POLICY_READ_METADATA;
			if (t)
				set_names(s, it, t->name, t->flags & SQL_TF_SCHEMA);
		}
	}
	*n_stmts = r.n_stmts;
	if (!want)
		goto out;
	desc = describe_sql(&r, text);
	if (r.error)
		json_array_append_new(desc, json_pack("{s:s, s:s, s:I}", "kind", "UNKNOWN",
			"error", r.error, "offset", (json_int_t)r.error_off));
out:
	return desc;
}

static void refuse(struct gate_verdict *out, int status, const char *why)
{
	out->d.verdict = POLICY_DENY;
	out->d.rule = "api-model";
	out->d.item = -1;
	snprintf(out->d.reason, sizeof(out->d.reason), "sluice: %s", why);
	out->status = status;
}

/* Items of a request that carries no SQL, and of a job's non-SQL parts. */
static void api_items(struct items *s, const struct route_result *rr)
{
	static const char *const job_ops[] = {
		[ROUTE_JOB_NONE] = NULL, [ROUTE_JOB_QUERY] = NULL,
		[ROUTE_JOB_LOAD] = "bigquery.jobs.insert.load",
		[ROUTE_JOB_COPY] = "bigquery.jobs.insert.copy",
		[ROUTE_JOB_EXTRACT] = "bigquery.jobs.insert.extract",
	};
	const char *op = job_ops[rr->job_type] ? job_ops[rr->job_type] : rr->method_id;
	struct policy_item *it;
	int i;

	if (rr->dest_table[0] && (rr->job_type != ROUTE_JOB_QUERY ||
				  rr->write_disposition != ROUTE_WD_NONE)) {
		if ((it = add(s))) {
			it->operation = op;
			it->access = rr->dry_run ? POLICY_READ_METADATA : POLICY_WRITE_DATA;
			set_names(s, it, rr->dest_table, 0);
			/* WRITE_TRUNCATE replaces every row, whatever the query, copy or load
			 * brings (SELECT ... WHERE FALSE empties the table): an unbounded write */
			it->unbounded = rr->write_disposition == ROUTE_WD_TRUNCATE && !rr->dry_run;
		}
	}
	for (i = 0; i < rr->n_sources; i++) {
		if (!(it = add(s)))
			return;
		it->operation = op;
		/* an extract sends the table out of BigQuery: like EXPORT DATA, not a read */
		it->access = rr->dry_run ? POLICY_READ_METADATA : rr->job_type == ROUTE_JOB_EXTRACT ?
			     POLICY_WRITE_DATA : POLICY_READ_DATA;
		set_names(s, it, rr->sources[i], 0);
	}
	/* a query job is what its SQL does; any other call carrying SQL (a view, a routine
	 * body, a row access policy's filter) is also the call itself, decided on its own */
	if (rr->dest_table[0] || rr->n_sources || (rr->n_sql && rr->job_type == ROUTE_JOB_QUERY))
		return;
	if ((it = add(s))) {
		it->operation = op;
		it->access = access_of_route(rr->access);
		it->project = rr->project;
		it->dataset = rr->dataset;
		it->table = rr->table;
	}
}

static json_t *describe_items(const struct items *s)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < s->n; i++) {
		const struct policy_item *it = &s->it[i];

		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:i}",
			"operation", it->operation ? it->operation : "", "access",
			policy_access_name(it->access), "kind", it->kind, "project", it->project,
			"dataset", it->dataset, "table", it->table, "unbounded", it->unbounded,
			"legacy_sql", it->legacy_sql, "statement", it->statement));
	}
	return a;
}

static void finish(const struct policy *policy, const struct policy_subject *subject,
		   struct items *s, json_t *statements, int want, struct gate_verdict *out)
{
	if (s->overflow) {
		refuse(out, 400, "the request touches more tables than sluice can check "
			  "(GATE_MAX_ITEMS); split it");
	} else if (policy) {
		policy_decide(policy, subject, s->it, s->n, &out->d);
		out->status = 403;
	}
	if (want) {
		json_t *a = json_object();

		json_object_set_new(a, "statements", statements ? statements : json_array());
		json_object_set_new(a, "items", describe_items(s));
		out->analysis = a;
	} else {
		json_decref(statements);
	}
}

/* Masking for this subject, or none (mk->rules NULL). */
static void masking_init(struct masking *mk, const struct policy *policy,
			 const struct policy_subject *sub)
{
	memset(mk, 0, sizeof(*mk));
	mk->rules = policy_masks(policy);
	mk->sub = sub;
	if (mk->rules && !mask_rules_any(mk->rules, sub->cgroup, sub->groups, sub->n_groups))
		mk->rules = NULL;
}

/* <name> ("project.dataset.table", a table id maybe with a decorator: "@-3600000" for a
 * snapshot, "$20250101" for a partition) has masked columns for this subject? A decorated
 * table is its base table's data. */
static int masked_table(struct masking *mk, const char *name, struct mask_set *set)
{
	char base[3 * ROUTE_ID_MAX + 8];
	const char *t = strrchr(name, '.');
	size_t n = t ? (size_t)(t - name) + strcspn(t, "@$") : strlen(name);

	if (n >= sizeof(base))
		n = sizeof(base) - 1;
	memcpy(base, name, n);
	base[n] = '\0';
	return mask_lookup(mk, base, 0, set);
}

/* Requests that would read a masked table without SQL to rewrite are refused. */
static void masked_api(struct masking *mk, const struct route_result *rr)
{
	struct mask_set set;
	char name[3 * ROUTE_ID_MAX + 8];
	int i;

	if (!mk->rules || mk->refused)
		return;
	if (!strcmp(rr->method_id, "bigquery.tabledata.list") && rr->dataset[0] == '_') {
		/* a job's anonymous result table: whose job, and whether its rows went through
		 * this identity's rewrite, is not known here */
		mk->refused = 1;
		snprintf(mk->reason, sizeof(mk->reason), "dataset %s holds query results that may "
			 "be unmasked: read a job's results with jobs.getQueryResults", rr->dataset);
		return;
	}
	if (!strcmp(rr->method_id, "bigquery.tabledata.list")) {
		snprintf(name, sizeof(name), "%s.%s.%s", rr->project, rr->dataset, rr->table);
		if (masked_table(mk, name, &set) > 0 && strcspn(rr->table, "@$") != strlen(rr->table)) {
			/* the schema fetch and the row masker know the base table only */
			mk->refused = 1;
			snprintf(mk->reason, sizeof(mk->reason), "%s has masked columns: listing a "
				 "partition or snapshot of it is refused; query it with SQL", name);
		} else if (mask_lookup(mk, name, 0, &set) > 0 && rr->selected_fields) {
			/* the rows would hold only the selected columns, which the masker maps by
			 * position in the whole schema: refused, never guessed */
			mk->refused = 1;
			snprintf(mk->reason, sizeof(mk->reason), "%s has masked columns: listing its "
				 "rows with selectedFields is refused; list them whole, or query the "
				 "columns with SQL", name);
		} else if (mask_lookup(mk, name, 0, &set) > 0) {
			/* no SQL to rewrite: the rows are masked in the response, by the table's
			 * schema (tables.get, fetched by sluiced first) */
			mk->row_mask = malloc(sizeof(set));
			if (mk->row_mask)
				*mk->row_mask = set;
			if (!mk->row_mask || asprintf(&mk->schema_target, "/bigquery/v2/projects/%s/"
					"datasets/%s/tables/%s", rr->project, rr->dataset, rr->table) < 0) {
				mk->refused = 1;
				snprintf(mk->reason, sizeof(mk->reason), "out of memory");
			}
		}
	}
	if (!strcmp(rr->method_id, "bigquery.jobs.getQueryResults") &&
	    !jobseen_has(mk->sub->identity ? mk->sub->identity : mk->sub->cgroup, rr->project,
			 rr->job_id)) {
		/* its rows were not computed through this identity's masking rewrite */
		mk->refused = 1;
		snprintf(mk->reason, sizeof(mk->reason), "job %s was not run through sluice by "
			 "this identity, so its results may hold unmasked values; run the query "
			 "again through sluice", rr->job_id);
	}
	for (i = 0; i < rr->n_sources && !mk->refused; i++) {
		if (masked_table(mk, rr->sources[i], &set) > 0) {
			mk->refused = 1;
			if (snprintf(mk->reason, sizeof(mk->reason), "%s has masked columns: copying, "
				     "snapshotting or extracting it would take the values out unmasked",
				     rr->sources[i]) < 0)
				mk->reason[0] = '\0';
		}
	}
}

/* After the decision: a masking refusal overrides it; rewritten SQL goes into the body. */
static void masking_finish(struct masking *mk, const struct gate_request *req,
			   const struct route_result *rr, struct gate_verdict *out)
{
	json_t *root = NULL;
	int k, any = 0;

	for (k = 0; k < ROUTE_MAX_SQL; k++)
		any |= mk->texts[k] != NULL;
	if (!mk->refused && any && req) {
		if (req->content_encoding && *req->content_encoding) {
			mk->refused = 1;
			snprintf(mk->reason, sizeof(mk->reason), "a query on masked tables must be "
				 "sent uncompressed (no Content-Encoding) so that it can be rewritten");
		} else if (!(root = json_loadb(req->body, req->body_len, 0, NULL))) {
			mk->refused = 1;
			snprintf(mk->reason, sizeof(mk->reason), "the request body could not be "
				 "rewritten for masking");
		}
		for (k = 0; root && k < rr->n_sql && !mk->refused; k++)
			if (mk->texts[k] && set_path(root, rr->sql[k].field, mk->texts[k])) {
				mk->refused = 1;
				snprintf(mk->reason, sizeof(mk->reason), "field %s could not be "
					 "rewritten for masking", rr->sql[k].field);
			}
		if (!mk->refused && root)
			out->body = json_dumps(root, JSON_COMPACT);
		json_decref(root);
	}
	if (mk->refused) {
		out->d.verdict = POLICY_DENY;
		out->d.rule = "masking";
		out->d.item = -1;
		if (snprintf(out->d.reason, sizeof(out->d.reason), "sluice: masking: %s",
			     mk->reason) >= (int)sizeof(out->d.reason))
			memcpy(out->d.reason + sizeof(out->d.reason) - 4, "...", 4);
		out->status = 403;
		free(out->body);
		out->body = NULL;
	}
	if (out->analysis && mk->masked) /* explain shows what was masked */
		json_object_set(out->analysis, "masked", mk->masked);
	json_decref(mk->masked);
	mk->masked = NULL;
	if (!mk->refused) {
		out->row_mask = mk->row_mask;
		out->schema_target = mk->schema_target;
	} else {
		free(mk->row_mask);
		free(mk->schema_target);
	}
	for (k = ROUTE_MAX_SQL - 1; k >= 0; k--) {
		if (mk->texts[k] && !out->rewritten_sql && !mk->refused)
			out->rewritten_sql = mk->texts[k];
		else
			free(mk->texts[k]);
	}
	free(mk->out);
}

int gate_decide(const struct policy *policy, const struct policy_subject *subject,
		const struct gate_request *req, int want, struct gate_verdict *out)
{
	struct scratch *sc = scratch_get(0);
	struct items *s = sc ? &sc->items : NULL;
	struct route_result rr;
	struct masking mk;
	json_t *statements = NULL, *d;
	const char *project;
	int i, n, base = 0;

	memset(out, 0, sizeof(*out));
	refuse(out, 403, "request not understood");
	if (!s)
		return -1;
	s->n = s->overflow = 0;
	s->used = 0;
	route_classify(req->host, req->method, req->target, req->target_len, req->method_override,
		       req->content_type, req->content_encoding, req->body, req->body_len, &rr);
	out->method_id = rr.method_id;
	if (rr.method_id && (!strcmp(rr.method_id, "bigquery.jobs.insert") ||
			     !strcmp(rr.method_id, "bigquery.jobs.query")) &&
	    !(out->job_project = strdup(rr.project))) {
		route_result_free(&rr);
		return -1;
	}
	if (rr.refusal || !rr.method_id) {
		refuse(out, 403, rr.refusal ? rr.refusal : "request not understood");
		route_result_free(&rr);
		return 0;
	}
	project = rr.default_project[0] ? rr.default_project : rr.project;
	masking_init(&mk, policy, subject);
	for (i = 0; i < rr.n_sql; i++) {
		if (rr.sql[i].non_sql)
			continue; /* a JAVASCRIPT/PYTHON routine body: the routine item decides */
		d = sql_items(s, rr.method_id, rr.sql[i].text, rr.sql[i].len, rr.sql[i].legacy,
			      rr.dry_run, project, rr.default_dataset, base, &n, want,
			      mk.rules ? &mk : NULL, i);
		base += n;
		if (d && !statements)
			statements = json_array();
		if (d)
			json_array_extend(statements, d);
		json_decref(d);
	}
	api_items(s, &rr);
	masked_api(&mk, &rr);
	finish(policy, subject, s, statements, want, out);
	masking_finish(&mk, req, &rr, out);
	route_result_free(&rr);
	return 0;
}

int gate_explain_sql(const struct policy *policy, const struct policy_subject *subject,
		     const char *sql, size_t len, const char *project, const char *dataset,
		     struct gate_verdict *out)
{
	struct scratch *sc = scratch_get(0);
	struct items *s = sc ? &sc->items : NULL;
	struct masking mk;
	json_t *statements;
	int n;

	memset(out, 0, sizeof(*out));
	if (!s) {
		refuse(out, 403, "out of memory");
		return -1;
	}
	masking_init(&mk, policy, subject);
	s->n = s->overflow = 0;
	s->used = 0;
	out->method_id = "bigquery.jobs.query";
	out->d.verdict = POLICY_DENY;
	out->d.rule = "";
	statements = sql_items(s, "bigquery.jobs.query", sql, len, 0, 0, project, dataset, 0, &n, 1,
			       mk.rules ? &mk : NULL, 0);
	finish(policy, subject, s, statements, 1, out);
	if (mk.texts[0] && !mk.refused) { /* explain shows the rewrite without its marker */
		const char *t = strstr(mk.texts[0], "*/ ");

		out->rewritten_sql = strdup(t ? t + 3 : mk.texts[0]);
		free(mk.texts[0]);
		mk.texts[0] = NULL;
	}
	masking_finish(&mk, NULL, NULL, out);
	return 0;
}

void gate_verdict_free(struct gate_verdict *v)
{
	json_decref(v->analysis);
	v->analysis = NULL;
	free(v->body);
	v->body = NULL;
	free(v->rewritten_sql);
	v->rewritten_sql = NULL;
	free(v->row_mask);
	v->row_mask = NULL;
	free(v->schema_target);
	v->schema_target = NULL;
	free(v->job_project);
	v->job_project = NULL;
}
