/* Description: the gate decides whole requests: API model, SQL analyzer and policy together,
 * as the proxy calls it, and as sluicectl explain calls it for bare SQL. */
#include <jansson.h>

#include "gate.h"
#include "tap.h"

static struct policy *prod;

static enum policy_verdict post(const char *target, const char *body, struct gate_verdict *v)
{
	struct policy_subject sub = { .cgroup = "/agents/a1" };
	struct gate_request r = { .host = "bigquery.googleapis.com", .method = "POST",
				  .target = target, .target_len = strlen(target),
				  .content_type = "application/json", .body = body,
				  .body_len = strlen(body) };

	gate_verdict_free(v);
	gate_decide(prod, &sub, &r, 1, v);
	return v->d.verdict;
}

static enum policy_verdict call(const char *method, const char *target, struct gate_verdict *v)
{
	struct policy_subject sub = { .cgroup = "/agents/a1" };
	struct gate_request r = { .host = "bigquery.googleapis.com", .method = method,
				  .target = target, .target_len = strlen(target) };

	gate_verdict_free(v);
	gate_decide(prod, &sub, &r, 1, v);
	return v->d.verdict;
}

int main(void)
{
	struct gate_verdict v = { 0 };
	struct policy_subject sub = { .cgroup = "/agents/a1" };
	const char *q = "/bigquery/v2/projects/demo-project/queries";
	char err[512], *s;

	prod = policy_load("policies/production.json", err, sizeof(err));
	if (!ok(prod != NULL, "production policy loads (%s)", err))
		return tap_done();

	is_int(post(q, "{\"query\": \"SELECT * FROM crm.customers\", \"useLegacySql\": false, "
		    "\"defaultDataset\": {\"projectId\": \"demo-project\", \"datasetId\": \"crm\"}}", &v),
	       POLICY_ALLOW, "jobs.query SELECT allowed");
	is_str(v.method_id, "bigquery.jobs.query", "method identified");
	s = json_dumps(v.analysis, JSON_COMPACT);
	ok(s && strstr(s, "\"project\":\"demo-project\",\"dataset\":\"crm\",\"table\":\"customers\""),
	   "table resolved against the request's project and dataset: %s", s);
	free(s);
	is_int(post(q, "{\"query\": \"SELECT 1; DROP TABLE sales.orders\", \"useLegacySql\": false}", &v),
	       POLICY_DENY, "a DROP after a SELECT is refused");
	ok(strstr(v.d.reason, "DROP_TABLE on demo-project.sales.orders (statement 2)") &&
		   strstr(v.d.reason, "no-destructive-ddl"),
	   "reason names statement, table and rule: %s", v.d.reason);
	is_int(post(q, "{\"query\": \"DELETE FROM sales.orders WHERE 1=1\", \"useLegacySql\": false}", &v),
	       POLICY_DENY, "unbounded DELETE refused");
	is_int(post(q, "{\"query\": \"DELETE FROM sales.orders WHERE order_id = 7\", \"useLegacySql\": false}", &v),
	       POLICY_ALLOW, "bounded DELETE on sales allowed");
	is_int(post(q, "{\"query\": \"SELECT * FROM crm.customers\"}", &v), POLICY_DENY,
	       "useLegacySql absent: legacy SQL, refused");
	ok(strstr(v.d.reason, "legacy"), "... saying so: %s", v.d.reason);
	is_int(post("/bigquery/v2/projects/demo-project/jobs", "{\"configuration\": {\"query\": "
		    "{\"query\": \"SELECT 1\", \"useLegacySql\": false, \"destinationTable\": "
		    "{\"projectId\": \"demo-project\", \"datasetId\": \"crm\", \"tableId\": \"customers\"}, "
		    "\"writeDisposition\": \"WRITE_TRUNCATE\"}}}", &v),
	       POLICY_DENY, "SELECT with a WRITE_TRUNCATE destination in crm: replaces every row, refused");
	ok(strstr(v.d.reason, "WRITE_TRUNCATE") && strstr(v.d.reason, "no-unbounded-writes"),
	   "... saying so: %s", v.d.reason);
	is_int(post("/bigquery/v2/projects/demo-project/jobs", "{\"configuration\": {\"query\": "
		    "{\"query\": \"SELECT 1\", \"useLegacySql\": false, \"destinationTable\": "
		    "{\"projectId\": \"demo-project\", \"datasetId\": \"crm\", \"tableId\": \"customers\"}, "
		    "\"writeDisposition\": \"WRITE_APPEND\"}}}", &v),
	       POLICY_APPROVE, "SELECT appending to a crm table is a write needing approval");
	is_int(post(q, "{\"query\": \"CREATE OR REPLACE TABLE sales.orders AS SELECT * FROM "
		    "sales.orders WHERE FALSE\", \"useLegacySql\": false}", &v),
	       POLICY_DENY, "CREATE OR REPLACE TABLE in sales: replaces every row, refused");
	ok(strstr(v.d.reason, "replacing the whole table"), "... saying so: %s", v.d.reason);
	is_int(post(q, "{\"query\": \"CREATE TABLE sales.t2 AS SELECT * FROM sales.orders\", "
		    "\"useLegacySql\": false}", &v),
	       POLICY_ALLOW, "CREATE TABLE AS SELECT in sales (no replace) allowed");
	is_int(call("DELETE", "/bigquery/v2/projects/demo-project/datasets/sales/tables/orders", &v),
	       POLICY_DENY, "tables.delete refused");
	is_int(call("GET", "/bigquery/v2/projects/demo-project/datasets/sales/tables/orders/data", &v),
	       POLICY_ALLOW, "tabledata.list allowed");
	is_int(call("GET", "/bigquery/v2/projects/demo-project/datasets?fields=datasets", &v),
	       POLICY_DENY, "fields= refused by the API model");
	is_int(call("GET", "/bigquery/v2/projects/demo-project/nope", &v), POLICY_DENY,
	       "unknown path refused (fail closed)");
	is_int(post("/bigquery/v2/projects/demo-project/datasets/crm/tables/customers/insertAll",
		    "{\"rows\": [{\"json\": {\"name\": \"x\"}}]}", &v),
	       POLICY_APPROVE, "insertAll into crm: a write without SQL, needs approval");
	is_int(post("/bigquery/v2/projects/demo-project/datasets/sales/tables/orders/insertAll",
		    "{\"rows\": [{\"json\": {\"order_id\": 1}}]}", &v),
	       POLICY_ALLOW, "insertAll into sales allowed by sales-api-writes");
	is_int(call("DELETE", "/bigquery/v2/projects/demo-project/datasets/sales?deleteContents=true", &v),
	       POLICY_DENY, "datasets.delete with deleteContents refused");
	is_int(post("/bigquery/v2/projects/demo-project/jobs", "{\"configuration\": {\"copy\": {"
		    "\"sourceTable\": {\"projectId\": \"demo-project\", \"datasetId\": \"sales\", "
		    "\"tableId\": \"orders\"}, \"destinationTable\": {\"projectId\": \"demo-project\", "
		    "\"datasetId\": \"crm\", \"tableId\": \"customers\"}, \"writeDisposition\": "
		    "\"WRITE_TRUNCATE\"}}}", &v),
	       POLICY_DENY, "a copy job overwriting (WRITE_TRUNCATE) a crm table is refused");
	is_int(post("/bigquery/v2/projects/demo-project/jobs", "{\"configuration\": {\"extract\": {"
		    "\"sourceTable\": {\"projectId\": \"demo-project\", \"datasetId\": \"hr\", "
		    "\"tableId\": \"salaries\"}, \"destinationUris\": [\"gs://x/y\"]}}}", &v),
	       POLICY_DENY, "an extract job (data leaves BigQuery) is not allowed by read rules");
	ok(strstr(v.d.reason, "bigquery.jobs.insert.extract"), "... and is named as an extract: %s",
	   v.d.reason);
	is_int(post("/bigquery/v2/projects/demo-project/datasets/sales/tables/orders:setIamPolicy",
		    "{\"policy\": {\"bindings\": []}}", &v),
	       POLICY_DENY, "setIamPolicy refused");
	gate_verdict_free(&v);

	gate_explain_sql(prod, &sub, "CREATE OR REPLACE TABLE crm.customers AS SELECT 1 AS x", 52,
			 "demo-project", NULL, &v);
	is_int(v.d.verdict, POLICY_APPROVE, "explain: CREATE OR REPLACE in crm needs approval");
	gate_verdict_free(&v);
	policy_free(prod);

	/* tabledata.list of a masked table: rows masked by schema, never a column subset */
	prod = policy_load("policies/pii-masking.json", err, sizeof(err));
	if (!ok(prod != NULL, "pii-masking policy loads (%s)", err))
		return tap_done();
	is_int(call("GET", "/bigquery/v2/projects/demo-project/datasets/crm/tables/customers/data",
		     &v), POLICY_ALLOW, "tabledata.list of a masked table: allowed");
	ok(v.row_mask && v.schema_target, "... with its rows masked by the table's schema");
	is_int(call("GET", "/bigquery/v2/projects/demo-project/datasets/crm/tables/customers/data"
		    "?selectedFields=email", &v), POLICY_DENY, "... with selectedFields: refused");
	ok(strstr(v.d.reason, "selectedFields"), "... saying why: %s", v.d.reason);
	is_int(call("GET", "/bigquery/v2/projects/demo-project/datasets/crm/tables/customers/data"
		    "?selected%46ields=email", &v), POLICY_DENY, "... however the name is escaped");
	gate_verdict_free(&v);
	policy_free(prod);

	/* gate_restore finds a marked rewrite wherever it sits, and reads nothing past the body */
	{
		static const char *const bodies[] = {
			"{\"query\":\"/*sluice-masked:0123456789abcdef*/ SELECT 1\"}",
			"{\"a\":\"//x/*/*sluice-maske\",\"query\":\"/*sluice-masked:0123456789abcdef*/\"}",
		};
		static const char *const clean[] = {
			"{\"rows\":[]}", "{\"q\":\"/*sluice-maske\"}", "{\"u\":\"https://x/y/\"}/",
			"/*sluice-masked", "",
		};
		size_t i, n;

		for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			s = gate_restore(tap_guarded(bodies[i], strlen(bodies[i])), strlen(bodies[i]), &n);
			ok(s && strstr(s, "rewritten by sluice") && !strstr(s, "sluice-masked:"),
			   "gate_restore replaces the marked query in body %zu: %s", i, s ? s : "(none)");
			free(s);
		}
		for (i = 0; i < sizeof(clean) / sizeof(clean[0]); i++)
			ok(!gate_restore(tap_guarded(clean[i], strlen(clean[i])), strlen(clean[i]), &n),
			   "gate_restore leaves a body without the mark alone: %s", clean[i]);
	}
	return tap_done();
}
