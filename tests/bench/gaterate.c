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

#include "gate.h"
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
	record_rate(0, 32);
	record_rate(2, 32);
	return 0;
}
