/* Description: BigQuery API route table: every row of methods.tsv classified, hosts, query
 * parameter and path refusals, SQL fields and dialects, job details, override, gzip, uploads,
 * batch, hostile JSON, and the data-driven cases of tests/data/route/. */
#include <jansson.h>
#include <zlib.h>

#include "route.h"
#include "tap.h"

#define HOST "bigquery.googleapis.com"
#define JSON_CT "application/json; charset=UTF-8"
#define TSV "tests/data/bigquery-methods.tsv"
#define CASES "tests/data/route/requests.cases"

/* A second guarded buffer (tap_guarded keeps one): the target goes here, the body there. */
static const char *guarded_target(const char *src, size_t len)
{
	static char *region;
	static size_t region_len;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t need = ((len + pg - 1) / pg + 1) * pg;

	if (region)
		munmap(region, region_len);
	region_len = need + pg;
	region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	mprotect(region + need, pg, PROT_NONE);
	memcpy(region + need - len, src, len);
	return region + need - len;
}

/* Classify with every raw buffer ending at a guard page. <r> must be freed by the caller. */
static int classify_full(struct route_result *r, const char *host, const char *method,
			 const char *target, const char *ovr, const char *ctype, const char *cenc,
			 const char *body, size_t blen)
{
	return route_classify(host, method, guarded_target(target, strlen(target)),
			      strlen(target), ovr, ctype, cenc, blen ? tap_guarded(body, blen) : NULL,
			      blen, r);
}

/* The common case: bigquery.googleapis.com, a JSON body (or none when <body> is NULL). */
static int classify(struct route_result *r, const char *method, const char *target,
		    const char *body)
{
	return classify_full(r, HOST, method, target, NULL, body ? JSON_CT : NULL, NULL, body,
			     body ? strlen(body) : 0);
}

/* Is the request classified as <id>? Prints the refusal when not. */
static int is_method(struct route_result *r, const char *id, const char *what)
{
	return ok(r->method_id && !strcmp(r->method_id, id) && !r->refusal, "%s: %s (%s)", what,
		  id, r->refusal ? r->refusal : r->method_id ? r->method_id : "?");
}

/* Is it refused with <want> in the reason? */
static int is_refused(struct route_result *r, const char *want, const char *what)
{
	return ok(r->refusal && strstr(r->refusal, want) && !r->method_id && !r->json,
		  "%s: refused, \"%s\" (%s)", what, want, r->refusal ? r->refusal : "not refused");
}

/* Split a tab-separated line in place into at most <max> fields; returns the count. */
static int split_tabs(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = 0;
	while (n < max) {
		f[n++] = p;
		p = strchr(p, '\t');
		if (!p)
			break;
		*p++ = 0;
	}
	return n;
}

/* Fill the flatPath <flat> with sample values into <out>: projectsId -> proj-1, ... */
static void fill_path(const char *flat, char *out, size_t cap)
{
	static const struct { const char *name, *value; } samples[] = {
		{ "projectsId", "proj-1" },    { "datasetsId", "ds_1" },
		{ "tablesId", "tbl_1" },       { "jobsId", "job_1" },
		{ "queriesId", "job_1" },      { "modelsId", "obj_1" },
		{ "routinesId", "obj_1" },     { "rowAccessPoliciesId", "obj_1" },
	};
	size_t o = (size_t)snprintf(out, cap, "/bigquery/v2/"), i;

	while (*flat && o + 32 < cap) {
		if (*flat == '{') {
			const char *e = strchr(flat, '}');

			for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
				if (strlen(samples[i].name) == (size_t)(e - flat - 1) &&
				    !memcmp(samples[i].name, flat + 1, (size_t)(e - flat - 1)))
					o += (size_t)snprintf(out + o, cap - o, "%s", samples[i].value);
			flat = e + 1;
		} else {
			out[o++] = *flat++;
		}
	}
	out[o] = 0;
}

/* A minimal valid body for a request type. */
static const char *sample_body(const char *type)
{
	if (!strcmp(type, "QueryRequest"))
		return "{\"query\": \"SELECT 1\", \"useLegacySql\": false}";
	if (!strcmp(type, "Job"))
		return "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\"}}}";
	return "{}";
}

/* Every row of methods.tsv is in the table, verbatim, and a request built from its flatPath
 * is classified as that method: directly and through X-HTTP-Method-Override. */
static void table_covers_tsv(void)
{
	FILE *f = fopen(TSV, "r");
	char line[2048], target[512], *col[8];
	int rows = 0, bad_table = 0, bad_route = 0, bad_override = 0, bad_params = 0;
	struct route_result r;

	if (!f) {
		ok(0, "open %s", TSV);
		return;
	}
	if (!fgets(line, sizeof(line), f) || strncmp(line, "id\thttpMethod\tpath", 18))
		ok(0, "tsv header");
	while (fgets(line, sizeof(line), f)) {
		const struct route_method *m;
		const char *body;

		if (split_tabs(line, col, 8) != 8) {
			ok(0, "tsv row has 8 columns: %s", line);
			continue;
		}
		rows++;
		m = route_method_find(col[0]);
		if (!m || strcmp(m->http_method, col[1]) || strcmp(m->path, col[2]) ||
		    strcmp(m->flat, col[3]) ||
		    strcmp(m->request ? m->request : "-", col[4]) ||
		    strcmp(m->params[0] ? m->params : "-", col[6])) {
			printf("# table differs from the tsv: %s\n", col[0]);
			bad_table++;
			continue;
		}
		fill_path(col[3], target, sizeof(target));
		body = strcmp(col[4], "-") ? sample_body(col[4]) : NULL;
		classify(&r, col[1], target, body);
		if (!r.method_id || strcmp(r.method_id, col[0]) ||
		    strcmp(r.project, strstr(col[3], "{projectsId}") ? "proj-1" : "") ||
		    (strstr(col[3], "{datasetsId}") && strcmp(r.dataset, "ds_1")) ||
		    (strstr(col[3], "{tablesId}") && strcmp(r.table, "tbl_1")) ||
		    ((strstr(col[3], "{jobsId}") || strstr(col[3], "{queriesId}")) &&
		     strcmp(r.job_id, "job_1")) ||
		    ((strstr(col[3], "{modelsId}") || strstr(col[3], "{routinesId}") ||
		      strstr(col[3], "{rowAccessPoliciesId}")) && strcmp(r.object, "obj_1"))) {
			printf("# %s %s -> %s\n", col[1], target,
			       r.refusal ? r.refusal : r.method_id ? r.method_id : "?");
			bad_route++;
		}
		route_result_free(&r);
		classify_full(&r, HOST, "POST", target, col[1], body ? JSON_CT : NULL, NULL, body,
			      body ? strlen(body) : 0);
		if (!r.method_id || strcmp(r.method_id, col[0]))
			bad_override++;
		route_result_free(&r);
		/* each of the method's own query parameters is accepted */
		if (strcmp(col[6], "-")) {
			char *p = col[6], *e;
			size_t o = strlen(target);

			target[o++] = '?';
			for (; p; p = e) {
				e = strchr(p, ',');
				if (e)
					*e++ = 0;
				o += (size_t)snprintf(target + o, sizeof(target) - o, "%s=1%s", p,
						      e ? "&" : "");
			}
			classify(&r, col[1], target, body);
			if (!r.method_id || strcmp(r.method_id, col[0])) {
				printf("# %s %s -> %s\n", col[1], target,
				       r.refusal ? r.refusal : "?");
				bad_params++;
			}
			route_result_free(&r);
		}
	}
	fclose(f);
	is_int(rows, 47, "methods.tsv has 47 rows");
	is_int(route_method_count(), rows, "the route table has as many methods as the tsv");
	is_int(bad_table, 0, "every tsv row is in the table verbatim (method, path, flatPath, "
	       "request, parameters)");
	is_int(bad_route, 0, "the route table covers every row: each classified with its path "
	       "parameters");
	is_int(bad_override, 0, "every row also through POST + X-HTTP-Method-Override");
	is_int(bad_params, 0, "every method accepts all of its own query parameters");
	ok(!route_method_at(-1) && !route_method_at(rows) && route_method_at(0),
	   "route_method_at bounds");
	is_str(route_access_name(ROUTE_JOB_CONTROL), "job-control", "route_access_name");
}

/* tests/data/route/requests.cases: host, method, target, body, expected. */
static void data_cases(void)
{
	FILE *f = fopen(CASES, "r");
	char line[4096], *col[5];
	int n = 0, lineno = 0;
	struct route_result r;

	if (!f) {
		ok(0, "open %s", CASES);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (split_tabs(line, col, 5) != 5) {
			ok(0, "%s:%d: five tab-separated fields", CASES, lineno);
			continue;
		}
		classify_full(&r, strcmp(col[0], "-") ? col[0] : HOST, col[1], col[2], NULL,
			      strcmp(col[3], "-") ? JSON_CT : NULL, NULL, col[3],
			      strcmp(col[3], "-") ? strlen(col[3]) : 0);
		if (!strncmp(col[4], "refused: ", 9)) {
			char what[160];

			snprintf(what, sizeof(what), "%s:%d %s %.80s", CASES, lineno, col[1], col[2]);
			is_refused(&r, col[4] + 9, what);
		} else {
			ok(r.method_id && !strcmp(r.method_id, col[4]) && !r.refusal,
			   "%s:%d %s %.80s: %s (%s)", CASES, lineno, col[1], col[2], col[4],
			   r.refusal ? r.refusal : r.method_id ? r.method_id : "?");
		}
		route_result_free(&r);
		n++;
	}
	fclose(f);
	ok(n > 50, "%d data-driven cases", n);
}

/* The SQL of each kind of request, its field name and dialect. */
static void sql_fields(void)
{
	struct route_result r;

	classify(&r, "POST", "/bigquery/v2/projects/p/queries", "{\"query\": \"SELECT 1\"}");
	is_method(&r, "bigquery.jobs.query", "jobs.query");
	ok(r.n_sql == 1 && r.sql[0].len == 8 && !memcmp(r.sql[0].text, "SELECT 1", 8),
	   "jobs.query: the query text");
	is_str(r.sql[0].field, "query", "jobs.query: field \"query\"");
	is_int(r.sql[0].legacy, 1, "jobs.query: legacy SQL when useLegacySql is absent");
	is_int(r.access, ROUTE_READ_DATA, "jobs.query: read-data");
	is_int(r.job_type, ROUTE_JOB_QUERY, "jobs.query: a query job");
	is_str(r.default_project, "p", "jobs.query: default project is the path's");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"SELECT 1\", \"useLegacySql\": null}");
	is_int(r.sql[0].legacy, 1, "jobs.query: useLegacySql null is absent: legacy");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"SELECT 1\", \"useLegacySql\": false}");
	is_int(r.sql[0].legacy, 0, "jobs.query: useLegacySql false");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"SELECT 1\", \"useLegacySql\": \"false\"}");
	is_int(r.sql[0].legacy, 0, "jobs.query: useLegacySql \"false\" (string, as Google reads it)");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"  #StandardSQL\\nSELECT 1\"}");
	is_int(r.sql[0].legacy, 0, "jobs.query: #standardSQL prefix without the flag");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"#standardSQLx\\nSELECT 1\"}");
	is_int(r.sql[0].legacy, 1, "jobs.query: #standardSQLx is only a comment: legacy");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"#standardSQL\\nSELECT 1\", \"useLegacySql\": true}");
	is_refused(&r, "contradicts useLegacySql", "jobs.query: #standardSQL with useLegacySql true");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"query\": {\"query\": \"SELECT 2\"}}}");
	is_method(&r, "bigquery.jobs.insert", "jobs.insert query");
	is_str(r.sql[0].field, "configuration.query.query", "jobs.insert: field name");
	is_int(r.sql[0].legacy, 1, "jobs.insert: legacy SQL when useLegacySql is absent");
	is_int(r.access, ROUTE_READ_DATA, "jobs.insert query without destination: read-data");
	is_int(r.write_disposition, ROUTE_WD_NONE, "jobs.insert query: no disposition");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/datasets/d/tables",
		 "{\"tableReference\": {\"projectId\": \"p\", \"datasetId\": \"d\", \"tableId\": "
		 "\"v\"}, \"view\": {\"query\": \"SELECT 3\"}, \"materializedView\": {\"query\": "
		 "\"SELECT 4\"}}");
	is_method(&r, "bigquery.tables.insert", "tables.insert view");
	ok(r.n_sql == 2 && !strcmp(r.sql[0].field, "view.query") && r.sql[0].legacy &&
		   !strcmp(r.sql[1].field, "materializedView.query") && !r.sql[1].legacy &&
		   r.sql[1].len == 8 && !memcmp(r.sql[1].text, "SELECT 4", 8),
	   "tables.insert: view.query (legacy by omission), materializedView.query (standard)");
	is_str(r.table, "v", "tables.insert: the table created, from tableReference");
	is_int(r.access, ROUTE_DDL, "tables.insert: ddl");
	route_result_free(&r);
	classify(&r, "PATCH", "/bigquery/v2/projects/p/datasets/d/tables/v",
		 "{\"view\": {\"query\": \"SELECT 3\", \"useLegacySql\": false}}");
	ok(r.n_sql == 1 && !r.sql[0].legacy && !strcmp(r.sql[0].field, "view.query"),
	   "tables.patch: view.query standard");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/datasets/d/routines",
		 "{\"routineReference\": {\"projectId\": \"p\", \"datasetId\": \"d\", "
		 "\"routineId\": \"f\"}, \"definitionBody\": \"x * 2\"}");
	is_method(&r, "bigquery.routines.insert", "routines.insert SQL");
	ok(r.n_sql == 1 && !strcmp(r.sql[0].field, "definitionBody") && !r.sql[0].non_sql &&
		   !r.sql[0].legacy, "routines.insert: definitionBody is SQL by default");
	is_str(r.object, "f", "routines.insert: routine id from routineReference");
	route_result_free(&r);
	classify(&r, "PUT", "/bigquery/v2/projects/p/datasets/d/routines/f",
		 "{\"definitionBody\": \"return 1;\", \"language\": \"JAVASCRIPT\"}");
	ok(r.n_sql == 1 && r.sql[0].non_sql, "routines.update: a JAVASCRIPT body is non-SQL");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t/rowAccessPolicies",
		 "{\"filterPredicate\": \"region = 'EU'\", \"grantees\": [\"user:a@b.c\"]}");
	is_method(&r, "bigquery.rowAccessPolicies.insert", "rowAccessPolicies.insert");
	ok(r.n_sql == 1 && !strcmp(r.sql[0].field, "filterPredicate") && r.sql[0].len == 13,
	   "rowAccessPolicies.insert: filterPredicate");
	route_result_free(&r);

	classify(&r, "PATCH", "/bigquery/v2/projects/p/datasets/d",
		 "{\"access\": [{\"role\": \"READER\", \"userByEmail\": \"x@y.z\"}]}");
	is_int(r.access, ROUTE_IAM, "datasets.patch with an access list: iam");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/datasets",
		 "{\"datasetReference\": {\"datasetId\": \"nd\"}}");
	ok(r.access == ROUTE_DDL && !strcmp(r.dataset, "nd"),
	   "datasets.insert: ddl, the dataset created from datasetReference");
	route_result_free(&r);
	classify(&r, "PATCH", "/bigquery/v2/projects/p/datasets/d", "{\"description\": \"x\"}");
	is_int(r.access, ROUTE_DDL, "datasets.patch without access: ddl");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t:setIamPolicy",
		 "{\"policy\": {}}");
	ok(r.access == ROUTE_IAM && !strcmp(r.project, "p") && !strcmp(r.dataset, "d") &&
		   !strcmp(r.table, "t"), "tables.setIamPolicy: iam, resource parsed");
	route_result_free(&r);
	classify(&r, "POST",
		 "/bigquery/v2/projects/p/datasets/d/tables/t/rowAccessPolicies/rp:getIamPolicy",
		 "{}");
	ok(r.access == ROUTE_READ_METADATA && !strcmp(r.table, "t") && !strcmp(r.object, "rp"),
	   "rowAccessPolicies.getIamPolicy: metadata, resource parsed");
	route_result_free(&r);
}

/* Job details: destinations, dispositions, copy kinds, extract, defaults, sessions. */
static void job_details(void)
{
	struct route_result r;

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"jobReference\": {\"projectId\": \"p\", \"jobId\": \"j1\", \"location\": \"EU\"},"
		 " \"configuration\": {\"query\": {\"query\": \"SELECT 1\", \"useLegacySql\": "
		 "false, \"destinationTable\": {\"projectId\": \"q\", \"datasetId\": \"d\", "
		 "\"tableId\": \"t\"}, \"writeDisposition\": \"WRITE_TRUNCATE\", "
		 "\"defaultDataset\": {\"datasetId\": \"dd\"}}}}");
	is_method(&r, "bigquery.jobs.insert", "query job with destination");
	is_str(r.dest_table, "q.d.t", "query job: dest_table");
	is_int(r.write_disposition, ROUTE_WD_TRUNCATE, "query job: WRITE_TRUNCATE");
	is_int(r.access, ROUTE_WRITE_DATA, "query job with destination: write-data");
	is_str(r.job_id, "j1", "query job: jobReference.jobId");
	ok(!strcmp(r.default_project, "p") && !strcmp(r.default_dataset, "dd"),
	   "query job: default dataset p.dd (project defaults to the path's)");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\", \"destinationTable\": "
		 "{\"datasetId\": \"d\", \"tableId\": \"t\"}, \"writeDisposition\": "
		 "\"WRITE_APPEND\"}}}");
	ok(r.write_disposition == ROUTE_WD_APPEND && !strcmp(r.dest_table, "p.d.t"),
	   "query job: WRITE_APPEND, destination project defaults to the path's");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\", \"destinationTable\": "
		 "{\"datasetId\": \"d\", \"tableId\": \"t\"}}}}");
	is_int(r.write_disposition, ROUTE_WD_EMPTY, "query job: WRITE_EMPTY by default");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"dryRun\": true, \"query\": {\"query\": \"SELECT 1\"}}}");
	ok(r.dry_run && r.access == ROUTE_READ_METADATA, "configuration.dryRun: read-metadata");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"SELECT 1\", \"dryRun\": true, \"createSession\": true, "
		 "\"defaultDataset\": {\"projectId\": \"dp\", \"datasetId\": \"dd\"}}");
	ok(r.dry_run && r.create_session && r.access == ROUTE_READ_METADATA &&
		   !strcmp(r.default_project, "dp") && !strcmp(r.default_dataset, "dd"),
	   "jobs.query: dryRun, createSession, defaultDataset");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/queries",
		 "{\"query\": \"SELECT 1\", \"connectionProperties\": [{\"key\": \"session_id\", "
		 "\"value\": \"CgwI\"}, {\"key\": \"time_zone\", \"value\": \"UTC\"}, {\"key\": "
		 "\"dataset_project_id\", \"value\": \"other\"}]}");
	ok(!strcmp(r.session_id, "CgwI") && !strcmp(r.default_project, "other"),
	   "jobs.query: connectionProperties session_id, dataset_project_id");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\", \"connectionProperties\":"
		 " [{\"key\": \"session_id\", \"value\": \"S1\"}]}}}");
	is_str(r.session_id, "S1", "jobs.insert: configuration.query.connectionProperties");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"load\": {\"sourceUris\": [\"gs://b/x.csv\"], "
		 "\"destinationTable\": {\"projectId\": \"p\", \"datasetId\": \"d\", \"tableId\": "
		 "\"t\"}}}}");
	ok(r.job_type == ROUTE_JOB_LOAD && r.access == ROUTE_WRITE_DATA &&
		   r.write_disposition == ROUTE_WD_APPEND && !strcmp(r.dest_table, "p.d.t"),
	   "load job: write-data, WRITE_APPEND by default");
	route_result_free(&r);

	static const struct { const char *op; enum route_copy kind; } ops[] = {
		{ "", ROUTE_COPY_COPY }, { "\"operationType\": \"COPY\", ", ROUTE_COPY_COPY },
		{ "\"operationType\": \"SNAPSHOT\", ", ROUTE_COPY_SNAPSHOT },
		{ "\"operationType\": \"RESTORE\", ", ROUTE_COPY_RESTORE },
		{ "\"operationType\": \"CLONE\", ", ROUTE_COPY_CLONE },
	};
	size_t i;
	char body[512];

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		snprintf(body, sizeof(body),
			 "{\"configuration\": {\"copy\": {%s\"sourceTables\": [{\"projectId\": "
			 "\"s\", \"datasetId\": \"d\", \"tableId\": \"a\"}, {\"datasetId\": \"d\", "
			 "\"tableId\": \"b\"}], \"destinationTable\": {\"datasetId\": \"e\", "
			 "\"tableId\": \"c\"}, \"writeDisposition\": \"WRITE_TRUNCATE\"}}}",
			 ops[i].op);
		classify(&r, "POST", "/bigquery/v2/projects/p/jobs", body);
		ok(r.job_type == ROUTE_JOB_COPY && r.copy_kind == ops[i].kind &&
			   r.access == ROUTE_WRITE_DATA && r.n_sources == 2 &&
			   !strcmp(r.sources[0], "s.d.a") && !strcmp(r.sources[1], "p.d.b") &&
			   !strcmp(r.dest_table, "p.e.c") && r.write_disposition == ROUTE_WD_TRUNCATE,
		   "copy job %s: kind %d, two sources, destination (%s)", ops[i].op, ops[i].kind,
		   r.refusal ? r.refusal : "");
		route_result_free(&r);
	}
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"copy\": {\"sourceTable\": {\"datasetId\": \"d\", "
		 "\"tableId\": \"a\"}, \"destinationTable\": {\"datasetId\": \"d\", \"tableId\": "
		 "\"b\"}}}}");
	ok(r.n_sources == 1 && !strcmp(r.sources[0], "p.d.a") && r.write_disposition == ROUTE_WD_EMPTY,
	   "copy job: one sourceTable, WRITE_EMPTY by default");
	route_result_free(&r);
	strcpy(body, "{\"configuration\": {\"copy\": {\"destinationTable\": {\"datasetId\": \"d\", "
		     "\"tableId\": \"b\"}, \"sourceTables\": [");
	for (i = 0; i < 9; i++)
		strcat(body, i ? ", {\"datasetId\": \"d\", \"tableId\": \"a\"}"
			       : "{\"datasetId\": \"d\", \"tableId\": \"a\"}");
	strcat(body, "]}}}");
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs", body);
	is_refused(&r, "more than 8 source tables", "copy job with nine sources");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"extract\": {\"sourceTable\": {\"datasetId\": \"d\", "
		 "\"tableId\": \"t\"}, \"destinationUris\": [\"gs://b/out-*.csv\"]}}}");
	ok(r.job_type == ROUTE_JOB_EXTRACT && r.access == ROUTE_READ_DATA && r.n_sources == 1 &&
		   !strcmp(r.sources[0], "p.d.t") && !r.dest_table[0],
	   "extract job: read-data, job type EXTRACT, the source table");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/jobs",
		 "{\"configuration\": {\"extract\": {\"sourceModel\": {\"projectId\": \"p\", "
		 "\"datasetId\": \"d\", \"modelId\": \"m\"}, \"destinationUris\": [\"gs://b/m\"]}}}");
	is_refused(&r, "needs datasetId and tableId", "extract of a model: modelId, not tableId");
	route_result_free(&r);

	classify(&r, "POST", "/bigquery/v2/projects/p/jobs/j%2Dx/cancel?location=EU", NULL);
	ok(r.access == ROUTE_JOB_CONTROL && !strcmp(r.job_id, "j-x") && !strcmp(r.location, "EU"),
	   "jobs.cancel: job-control, job id decoded, location");
	route_result_free(&r);
	classify(&r, "GET", "/bigquery/v2/projects/p/datasets/d/tables/t/data?startIndex=0", NULL);
	ok(r.access == ROUTE_READ_DATA && !strcmp(r.table, "t"), "tabledata.list: read-data");
	route_result_free(&r);
	classify(&r, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t/insertAll",
		 "{\"rows\": [{\"json\": {\"a\": 1}}]}");
	is_int(r.access, ROUTE_WRITE_DATA, "tabledata.insertAll: write-data");
	route_result_free(&r);
}

/* X-HTTP-Method-Override: the override is the method, only on POST. */
static void method_override(void)
{
	struct route_result r;

	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t", "DELETE",
		      NULL, NULL, NULL, 0);
	is_method(&r, "bigquery.tables.delete", "POST overriding to DELETE is a DELETE");
	is_int(r.access, ROUTE_DDL, "override: ddl");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t", "GET",
		      NULL, NULL, NULL, 0);
	is_method(&r, "bigquery.tables.get", "POST overriding to GET");
	route_result_free(&r);
	classify_full(&r, HOST, "GET", "/bigquery/v2/projects/p/datasets/d/tables/t", "DELETE",
		      NULL, NULL, NULL, 0);
	is_refused(&r, "accepted on POST only", "GET with an override");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t", "delete",
		      NULL, NULL, NULL, 0);
	is_refused(&r, "override \"delete\"", "lower-case override");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t", "",
		      NULL, NULL, NULL, 0);
	is_refused(&r, "override", "empty override");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/datasets/d/tables/t", "PATCH",
		      JSON_CT, NULL, "{}", 2);
	is_method(&r, "bigquery.tables.patch", "POST overriding to PATCH, with a body");
	route_result_free(&r);
}

/* gzip-compress src into a malloc'd buffer. */
static char *gzip(const char *src, size_t len, size_t *outlen)
{
	z_stream z;
	size_t cap = compressBound((uLong)len) + 64;
	char *out = malloc(cap);

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)src;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* Content-Encoding: gzip bodies, bounded. */
static void gzip_bodies(void)
{
	static const char q[] = "{\"query\": \"SELECT 42\", \"useLegacySql\": false}";
	struct route_result r;
	size_t n, big = 40u << 20, i;
	char *z = gzip(q, sizeof(q) - 1, &n), *two, *zeros;

	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "gzip", z,
		      n);
	is_method(&r, "bigquery.jobs.query", "gzip body");
	ok(r.n_sql == 1 && r.sql[0].len == 9 && !memcmp(r.sql[0].text, "SELECT 42", 9) &&
		   !r.sql[0].legacy, "gzip body: the query read after decompression");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "GZIP", z,
		      n - 4);
	is_refused(&r, "not one complete gzip stream", "truncated gzip");
	route_result_free(&r);
	two = malloc(2 * n);
	memcpy(two, z, n);
	memcpy(two + n, z, n);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "gzip",
		      two, 2 * n);
	is_refused(&r, "not one complete gzip stream", "two gzip members");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "gzip",
		      q, sizeof(q) - 1);
	is_refused(&r, "not one complete gzip stream", "plain JSON labelled gzip");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "br", q,
		      sizeof(q) - 1);
	is_refused(&r, "Content-Encoding \"br\" is refused", "br");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT,
		      "gzip, gzip", z, n);
	is_refused(&r, "Content-Encoding \"gzip, gzip\" is refused", "two codings");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT,
		      "identity", q, sizeof(q) - 1);
	is_method(&r, "bigquery.jobs.query", "Content-Encoding identity");
	route_result_free(&r);
	free(two);
	free(z);

	zeros = calloc(1, big);
	for (i = 0; i < 10; i++)
		zeros[i] = " {}"[i % 3];
	z = gzip(zeros, big, &n);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, "gzip", z,
		      n);
	is_refused(&r, "decompresses to more than allowed", "gzip bomb (40 MiB of zeros)");
	route_result_free(&r);
	free(z);
	free(zeros);
}

/* Media uploads: multipart and resumable, on both upload paths. */
static void uploads(void)
{
	static const char cfg[] =
		"{\"configuration\": {\"load\": {\"destinationTable\": {\"projectId\": \"p\", "
		"\"datasetId\": \"d\", \"tableId\": \"t\"}, \"writeDisposition\": "
		"\"WRITE_TRUNCATE\", \"sourceFormat\": \"CSV\"}}}";
	static const char mp_ct[] = "multipart/related; boundary=\"===b0und==\"";
	struct route_result r;
	char body[2048];
	int n;

	n = snprintf(body, sizeof(body),
		     "--===b0und==\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n%s\r\n"
		     "--===b0und==\r\ncontent-type: */*\r\n\r\na,b\n1,2\n\r\n--===b0und==--", cfg);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, mp_ct, NULL, body, (size_t)n);
	is_method(&r, "bigquery.jobs.insert", "multipart upload");
	ok(r.upload == ROUTE_UPLOAD_MULTIPART && r.job_type == ROUTE_JOB_LOAD &&
		   r.access == ROUTE_WRITE_DATA && !strcmp(r.dest_table, "p.d.t") &&
		   r.write_disposition == ROUTE_WD_TRUNCATE,
	   "multipart upload: load into p.d.t, WRITE_TRUNCATE, from the first part");
	route_result_free(&r);

	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, "multipart/related; boundary=other", NULL, body, (size_t)n);
	is_refused(&r, "does not start with its boundary", "multipart: wrong boundary");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, "application/json", NULL, body, (size_t)n);
	is_refused(&r, "needs Content-Type multipart/related", "multipart: JSON content type");
	route_result_free(&r);
	n = snprintf(body, sizeof(body),
		     "--===b0und==\r\ncontent-type: text/csv\r\n\r\na,b\r\n--===b0und==\r\n"
		     "content-type: application/json\r\n\r\n%s\r\n--===b0und==--", cfg);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, mp_ct, NULL, body, (size_t)n);
	is_refused(&r, "first part must be one application/json", "multipart: data part first");
	route_result_free(&r);
	n = snprintf(body, sizeof(body), "--===b0und==\r\ncontent-type: application/json\r\n\r\n%s",
		     cfg);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, mp_ct, NULL, body, (size_t)n);
	is_refused(&r, "not terminated", "multipart: unterminated configuration part");
	route_result_free(&r);
	n = snprintf(body, sizeof(body),
		     "--===b0und==\r\ncontent-type: application/json\r\n\r\n%s\r\n--===b0und==--",
		     "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\"}}}");
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart",
		      NULL, mp_ct, NULL, body, (size_t)n);
	is_refused(&r, "an upload must carry a load job", "multipart: a query job");
	route_result_free(&r);

	classify_full(&r, HOST, "POST",
		      "/upload/bigquery/v2/projects/p/jobs?uploadType=resumable&alt=json", NULL,
		      JSON_CT, NULL, cfg, sizeof(cfg) - 1);
	is_method(&r, "bigquery.jobs.insert", "resumable upload start");
	ok(r.upload == ROUTE_UPLOAD_RESUMABLE && r.access == ROUTE_WRITE_DATA &&
		   !strcmp(r.dest_table, "p.d.t"), "resumable start: the load configuration");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/resumable/upload/bigquery/v2/projects/p/jobs?uploadType="
		      "resumable", NULL, JSON_CT, NULL, cfg, sizeof(cfg) - 1);
	is_method(&r, "bigquery.jobs.insert", "resumable upload start on /resumable/upload/");
	route_result_free(&r);
	classify_full(&r, HOST, "PUT",
		      "/upload/bigquery/v2/projects/p/jobs?uploadType=resumable&upload_id=ADPyc-x",
		      NULL, "text/csv", NULL, "a,b\n1,2\n", 8);
	is_method(&r, "bigquery.jobs.insert", "resumable data chunk (PUT)");
	ok(r.upload == ROUTE_UPLOAD_RESUMABLE_DATA && r.access == ROUTE_WRITE_DATA &&
		   r.job_type == ROUTE_JOB_LOAD && !r.n_sql && !strcmp(r.project, "p"),
	   "resumable data chunk: write-data continuation, body not read");
	route_result_free(&r);
	classify_full(&r, HOST, "POST",
		      "/upload/bigquery/v2/projects/p/jobs?uploadType=resumable&upload_id=ADPyc-x",
		      NULL, NULL, NULL, "\x00\x01", 2);
	is_method(&r, "bigquery.jobs.insert", "resumable data chunk (POST, as Go sends)");
	route_result_free(&r);
	classify_full(&r, HOST, "PUT", "/upload/bigquery/v2/projects/p/jobs?uploadType=resumable",
		      NULL, JSON_CT, NULL, cfg, sizeof(cfg) - 1);
	is_refused(&r, "starts with a POST", "resumable PUT without upload_id");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs?uploadType=media",
		      NULL, "text/csv", NULL, "a,b\n", 4);
	is_refused(&r, "uploadType=media is refused", "media upload");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/jobs", NULL, JSON_CT, NULL,
		      cfg, sizeof(cfg) - 1);
	is_refused(&r, "needs uploadType", "upload without uploadType");
	route_result_free(&r);
	classify_full(&r, HOST, "POST",
		      "/upload/bigquery/v2/projects/p/jobs?uploadType=multipart&upload_id=x", NULL,
		      mp_ct, NULL, body, (size_t)n);
	is_refused(&r, "upload_id belongs to resumable", "upload_id on multipart");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/upload/bigquery/v2/projects/p/queries?uploadType=resumable",
		      NULL, JSON_CT, NULL, cfg, sizeof(cfg) - 1);
	is_refused(&r, "unknown BigQuery API path \"upload: ", "upload to another path");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/jobs?upload_id=x", NULL, JSON_CT,
		      NULL, cfg, sizeof(cfg) - 1);
	is_refused(&r, "unknown query parameter \"upload_id\"", "upload_id off the upload path");
	route_result_free(&r);
}

/* Hostile JSON: depth, size, content types, bodies where none belong. */
static void hostile_json(void)
{
	struct route_result r;
	char *deep;
	size_t i, n = 0;

	deep = malloc(400);
	n = (size_t)sprintf(deep, "{\"query\": \"SELECT 1\", \"x\": ");
	for (i = 0; i < 64; i++)
		deep[n++] = '[';
	for (i = 0; i < 64; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL, deep,
		      n);
	is_refused(&r, "nested deeper than 64", "JSON nested 65 deep");
	route_result_free(&r);
	n = (size_t)sprintf(deep, "{\"query\": \"SELECT 1\", \"x\": \"");
	for (i = 0; i < 100; i++)
		deep[n++] = '[';
	deep[n++] = '"';
	deep[n++] = '}';
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL, deep,
		      n);
	is_method(&r, "bigquery.jobs.query", "100 brackets inside a string do not count as depth");
	route_result_free(&r);
	free(deep);

	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, "text/plain",
		      NULL, "{\"query\": \"SELECT 1\"}", 21);
	is_refused(&r, "must be Content-Type application/json", "text/plain body");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL,
		      "application/x-www-form-urlencoded", NULL, "query=SELECT+1", 14);
	is_refused(&r, "must be Content-Type application/json", "form-encoded body");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL,
		      "application/json; charset=latin1", NULL, "{\"query\": \"SELECT 1\"}", 21);
	is_refused(&r, "must be Content-Type application/json", "JSON in latin1");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, NULL, NULL,
		      "{\"query\": \"SELECT 1\"}", 21);
	is_refused(&r, "must be Content-Type application/json", "JSON without Content-Type");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL,
		      "{\"query\": \"SELECT 1\\u0000\"}", 26);
	is_refused(&r, "invalid JSON", "\\u0000 in a string");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL,
		      "{\"query\": \"SELECT 1\"}\0", 22);
	is_refused(&r, "invalid JSON", "NUL after the JSON");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL,
		      "\xef\xbb\xbf{\"query\": \"SELECT 1\"}", 24);
	is_refused(&r, "invalid JSON", "UTF-8 BOM");
	route_result_free(&r);
	classify_full(&r, HOST, "POST", "/bigquery/v2/projects/p/queries", NULL, JSON_CT, NULL,
		      "{\"query\": \"SELECT \xff\"}", 20);
	is_refused(&r, "invalid JSON", "invalid UTF-8");
	route_result_free(&r);

	is_int(route_classify(HOST, "GET", "/x", 2, NULL, NULL, NULL, NULL, 1, &r), -1,
	       "NULL body with a length: internal error");
	route_result_free(&r);
	is_int(route_classify(NULL, "GET", "/x", 2, NULL, NULL, NULL, NULL, 0, &r), -1,
	       "NULL host: internal error");
	route_result_free(&r);
}

int main(void)
{
	table_covers_tsv();
	data_cases();
	sql_fields();
	job_details();
	method_override();
	gzip_bodies();
	uploads();
	hostile_json();
	return tap_done();
}
