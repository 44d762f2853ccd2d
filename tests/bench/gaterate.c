/* gaterate.c - make bench: how fast sluice decides, per core. Runs the GoogleSQL analyzer
 * over a mix of realistic statements, then whole jobs.query requests through the gate (API
 * model + analyzer + policy), each for about a second, and prints the rates. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "detect.h"
#include "gate.h"
#include "jsonseg.h"
#include "mask.h"
#include "record.h"
#include "sql.h"

static const char *const mix[] = {
	"SELECT name, email FROM `demo-project.crm.customers` WHERE customer_id = 42",
	"SELECT status, COUNT(*) AS n, SUM(amount) FROM sales.orders WHERE ordered_at >= "
	"TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY) GROUP BY status ORDER BY n DESC",
	"WITH recent AS (SELECT customer_id, MAX(ordered_at) AS last FROM sales.orders GROUP BY 1) "
	"SELECT c.name, r.last FROM crm.customers c JOIN recent r USING (customer_id) "
	"WHERE r.last < '2026-01-01' LIMIT 100",
	"INSERT INTO sales.orders (order_id, customer_id, amount, status) VALUES (1, 2, 3.5, 'new')",
	"UPDATE sales.orders SET status = 'shipped' WHERE order_id IN (SELECT order_id FROM "
	"sales.shipments WHERE shipped_at IS NOT NULL)",
	"DELETE FROM sales.orders WHERE status = 'cancelled' AND ordered_at < '2020-01-01'",
	"SELECT * FROM `demo-project.sales.events_*` WHERE _TABLE_SUFFIX BETWEEN '20260101' AND "
	"'20260131' AND event_type = 'click'",
	"MERGE sales.orders t USING sales.staging s ON t.order_id = s.order_id WHEN MATCHED THEN "
	"UPDATE SET amount = s.amount WHEN NOT MATCHED THEN INSERT ROW",
};
#define N_MIX (sizeof(mix) / sizeof(mix[0]))

static double now(void);
static atomic_long durable;

static int lookup(void *ctx, const char *name, int wildcard, struct mask_set *out)
{
	return mask_rules_for(ctx, "/a", NULL, 0, name, wildcard, out);
}

/* The streaming path as respond.c runs it over a large response: cut into rows and members
 * (jsonseg), each row masked (mask_row), every string of the output through all five
 * content detectors, the output relayed every 256 KiB. */
static void stream_filter(const struct mask_plan *plan, const char *rows, size_t len)
{
	static const struct detect_rules dr = { DETECT_ALL, { DETECT_MASK, DETECT_MASK,
		DETECT_MASK, DETECT_MASK, DETECT_MASK } };
	struct detect_report rep = { 0 };
	struct mask_buf ob = { .max = 64u << 20 };
	struct jsonseg seg;
	struct jsonseg_part p;
	const char *why = NULL;
	double t0 = now(), t;
	long cells = 0;
	int rc;

	jsonseg_init(&seg, 16u << 20, "rows");
	while ((rc = jsonseg_next(&seg, rows, len, 1, &p, &why)) == 1) {
		size_t mark = ob.len;

		if (p.kind == JSONSEG_ELEMENT) {
			cells += mask_row(plan, rows + p.off, p.len, &ob);
		} else {
			if (ob.len + p.len > ob.cap && !(ob.p = realloc(ob.p, ob.cap = ob.len + p.len)))
				break;
			memcpy(ob.p + ob.len, rows + p.off, p.len);
			ob.len += p.len;
		}
		detect_json(ob.p + mark, ob.len - mark, &dr, &rep);
		if (ob.len >= 256 * 1024)
			ob.len = 0; /* relayed */
	}
	t = now() - t0;
	printf("streamed filtering: %.2f GB/s on one core (segmenter, row masking, all five detectors; "
	       "%ld values masked%s%s)\n", len / t / 1e9, cells, rc < 0 ? ", FAILED: " : "",
	       rc < 0 ? why : "");
	free(ob.p);
}

/* The streaming path's first and last passes alone: the segmenter over the response <rows>,
 * and the five detectors over each part of the masked response <masked> as the stream runs
 * them (one call per row, the glue between rows included). */
static void stream_passes(const char *rows, size_t len, const char *masked, size_t mlen)
{
	static const struct detect_rules dr = { DETECT_ALL, { DETECT_MASK, DETECT_MASK,
		DETECT_MASK, DETECT_MASK, DETECT_MASK } };
	struct detect_report rep = { 0 };
	struct jsonseg seg;
	struct jsonseg_part p, *parts = NULL;
	const char *why = NULL;
	size_t n = 0, cap = 0, i;
	char *copy = malloc(mlen);
	double t0, t;
	long found = 0;

	jsonseg_init(&seg, 16u << 20, "rows");
	t0 = now();
	while (jsonseg_next(&seg, rows, len, 1, &p, &why) == 1)
		;
	t = now() - t0;
	printf("response segmenter: %.2f GB/s on one core (rows and members, %s)\n", len / t / 1e9,
	       jsonseg_done(&seg) ? "whole" : why);
	jsonseg_init(&seg, 16u << 20, "rows");
	while (copy && jsonseg_next(&seg, masked, mlen, 1, &p, &why) == 1) {
		if (n == cap && !(parts = realloc(parts, (cap = cap ? 2 * cap : 65536) * sizeof(p))))
			break;
		parts[n++] = p;
	}
	if (!copy || !parts) {
		free(copy);
		return;
	}
	memcpy(copy, masked, mlen);
	t0 = now();
	for (i = 0; i < n; i++)
		found += detect_json(copy + parts[i].off, parts[i].len, &dr, &rep);
	t = now() - t0;
	printf("content detectors: %.2f GB/s on one core (all five, one call per part; %ld "
	       "findings)\n", mlen / t / 1e9, found);
	free(parts);
	free(copy);
}

/* Masking: the rewrite's added latency on a typical query, and the response row masker's
 * rate over BigQuery row JSON (about 64 MB of six-column rows, one column masked). */
static void mask_rates(void)
{
	static struct sql_stmt stmts[64];
	static struct sql_table tables[256];
	static struct sql_token toks[4096];
	static char names[65536], out[65536];
	const char *q = "SELECT c.name, c.email, o.amount FROM crm.customers c JOIN sales.orders o "
			"USING (customer_id) WHERE c.ssn LIKE '123%' AND o.status = 'shipped'";
	char err[256];
	json_t *rules = json_loads("[{\"name\": \"pii\", \"tables\": [\"demo-project.crm.customers\"],"
		" \"columns\": {\"ssn\": \"sha256\", \"email\": \"email\"}}]", 0, NULL);
	json_t *schema = json_loads("{\"fields\": [{\"name\": \"id\", \"type\": \"INTEGER\"},"
		" {\"name\": \"name\", \"type\": \"STRING\"}, {\"name\": \"email\", \"type\": \"STRING\"},"
		" {\"name\": \"phone\", \"type\": \"STRING\"}, {\"name\": \"city\", \"type\": \"STRING\"},"
		" {\"name\": \"amount\", \"type\": \"FLOAT\"}]}", 0, NULL);
	struct mask_rules *mr = NULL;
	struct mask_set set;
	struct mask_report rep;
	struct mask_plan *plan;
	struct mask_buf mb = { 0 };
	struct sql_result r;
	size_t cap = 64u << 20, len = 0;
	char *rows = malloc(cap);
	double t0, t;
	long n = 0;

	if (!rules || !schema || !rows || mask_rules_load(rules, &mr, err, sizeof(err))) {
		fprintf(stderr, "gaterate: masking setup failed: %s\n", err);
		return;
	}
	sql_result_init(&r, stmts, 64, tables, 256, toks, 4096, names, sizeof(names));
	sql_analyze(q, strlen(q), "demo-project", NULL, &r);
	t0 = now();
	do {
		for (int i = 0; i < 1000; i++, n++) {
			sql_result_init(&r, stmts, 64, tables, 256, toks, 4096, names, sizeof(names));
			sql_analyze(q, strlen(q), "demo-project", NULL, &r);
			mask_rewrite(q, strlen(q), &r, 0, lookup, mr, out, sizeof(out), &rep);
		}
	} while ((t = now() - t0) < 1.0);
	printf("masking rewrite: %.1f µs per typical query (analysis included)\n", t / n * 1e6);

	mask_rules_for(mr, "/a", NULL, 0, "demo-project.crm.customers", 0, &set);
	for (int i = 0; i < set.n; i++) /* email only: one column of six */
		if (!strcmp(set.c[i].name, "email"))
			set.c[0] = set.c[i];
	set.n = 1;
	plan = mask_plan_new(schema, &set, err, sizeof(err));
	len = (size_t)snprintf(rows, cap, "{\"kind\": \"bigquery#tableDataList\", \"rows\": [");
	while (len < cap - 512)
		len += (size_t)snprintf(rows + len, cap - len, "%s{\"f\": [{\"v\": \"%ld\"}, {\"v\": "
			"\"Customer %ld\"}, {\"v\": \"c%ld@example.com\"}, {\"v\": \"+1-555-0100\"}, "
			"{\"v\": \"Springfield\"}, {\"v\": \"12.5\"}]}", len > 60 ? "," : "", n, n, n), n++;
	len += (size_t)snprintf(rows + len, cap - len, "]}");
	mb.max = 2 * cap;
	t0 = now();
	n = plan ? mask_rows(plan, rows, len, &mb) : -1;
	t = now() - t0;
	printf("row masking: %.2f GB/s on one core (%.0f MB of row JSON, %ld values masked)\n",
	       len / t / 1e9, len / 1e6, n);
	if (plan) {
		stream_passes(rows, len, mb.p, mb.len);
		stream_filter(plan, rows, len);
	}
	mask_plan_free(plan);
	mask_rules_free(mr);
	json_decref(rules);
	json_decref(schema);
	free(rows);
	free(mb.p);
}

static void on_durable(void *arg, int status)
{
	if (!status)
		atomic_fetch_add(&durable, 1);
}

/* Requests/s the recorder makes durable (fsync'd, chained, signed checkpoints) when
 * <conc> requests wait at a time, with a group-commit window of <sync_ms>. */
static void record_rate(int sync_ms, int conc)
{
	char dir[] = "/tmp/sluice-bench-rec-XXXXXX", err[512], cmd[600];
	struct rec_opts o = { .dir = dir, .sync_ms = sync_ms };
	const int total = 20000;
	struct rec *r;
	double t0, t;
	long sent = 0;

	if (!mkdtemp(dir) || !(r = rec_open(&o, err, sizeof(err)))) {
		fprintf(stderr, "gaterate: recorder: %s\n", err);
		return;
	}
	atomic_store(&durable, 0);
	t0 = now();
	while (atomic_load(&durable) < total) {
		while (sent < total && sent - atomic_load(&durable) < conc) {
			json_t *f = json_pack("{s:s, s:s, s:s}", "method", "POST", "path",
				"/bigquery/v2/projects/demo-project/queries", "sql", mix[sent % N_MIX]);

			if (rec_submit(r, "/agents/a", 4242, "request", f, on_durable, NULL) == 0)
				sent++;
		}
		usleep(50);
	}
	t = now() - t0;
	printf("recording: %.0f requests/s durable before forwarding (%d waiting at a time, "
	       "sync_ms %d; %.0f µs each on average)\n", total / t, conc, sync_ms,
	       t / total * conc * 1e6);
	rec_close(r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "gaterate: could not remove %s\n", dir);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	static struct sql_stmt stmts[64];
	static struct sql_table tables[256];
	static struct sql_token toks[4096];
	static char names[65536], body[4096];
	struct sql_result r;
	struct policy_subject sub = { .cgroup = "/agents/a" };
	struct gate_verdict v;
	struct policy *p;
	double t0, t;
	long n = 0, allowed = 0;
	char err[512];
	size_t i;

	t0 = now();
	do {
		for (i = 0; i < N_MIX; i++, n++) {
			sql_result_init(&r, stmts, 64, tables, 256, toks, 4096, names, sizeof(names));
			sql_analyze(mix[i], strlen(mix[i]), "demo-project", "sales", &r);
		}
	} while ((t = now() - t0) < 1.0);
	printf("analyzer: %.0f statements/s on one core (a mix of %zu typical statements)\n",
	       n / t, N_MIX);

	p = policy_load("policies/production.json", err, sizeof(err));
	if (!p) {
		fprintf(stderr, "gaterate: %s\n", err);
		return 1;
	}
	n = 0;
	t0 = now();
	do {
		for (i = 0; i < N_MIX; i++, n++) {
			struct gate_request g = { .host = "bigquery.googleapis.com", .method = "POST",
				.target = "/bigquery/v2/projects/demo-project/queries?prettyPrint=false",
				.content_type = "application/json", .body = body };
			int len = snprintf(body, sizeof(body), "{\"query\": \"%s\", \"useLegacySql\": "
					   "false, \"defaultDataset\": {\"projectId\": \"demo-project\", "
					   "\"datasetId\": \"sales\"}}", mix[i]);

			g.target_len = strlen(g.target);
			g.body_len = (size_t)len;
			gate_decide(p, &sub, &g, 0, &v);
			allowed += v.d.verdict == POLICY_ALLOW;
		}
	} while ((t = now() - t0) < 1.0);
	printf("gate: %.0f jobs.query requests/s decided on one core (route + analyzer + policy; "
	       "%ld allowed)\n", n / t, allowed);
	policy_free(p);
	mask_rates();
	record_rate(0, 32);
	record_rate(2, 32);
	return 0;
}
