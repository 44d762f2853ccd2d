/* Description: the job model of approvals: which polls ask about which job, the job
 * submitted once approved, and the pending and failed answers a client sees. */
#include <jansson.h>

#include "jobs.h"
#include "tap.h"

static enum jobs_poll poll_of(const char *m, const char *t, char *p, char *j, char *l, long *tmo)
{
	return jobs_parse_poll(m, tap_guarded(t, strlen(t)), strlen(t), p, 128, j, 128, l, 64, tmo);
}

int main(void)
{
	char p[128], j[128], l[64], err[256], *s;
	long tmo;
	json_t *o;

	is_int(poll_of("GET", "/bigquery/v2/projects/demo-project/queries/sluice_approval_x?"
		       "location=EU&timeoutMs=9000&maxResults=5", p, j, l, &tmo),
	       JOBS_GET_QUERY_RESULTS, "getQueryResults recognized");
	ok(!strcmp(p, "demo-project") && !strcmp(j, "sluice_approval_x") && !strcmp(l, "EU") &&
		   tmo == 9000, "project, job id, location and timeoutMs read");
	is_int(poll_of("GET", "/bigquery/v2/projects/p/jobs/J1", p, j, l, &tmo), JOBS_GET,
	       "jobs.get recognized");
	ok(tmo == -1 && !*l, "no query string: no location, no timeout");
	is_int(poll_of("POST", "/bigquery/v2/projects/p/jobs/J1/cancel", p, j, l, &tmo), JOBS_CANCEL,
	       "jobs.cancel recognized");
	is_int(poll_of("GET", "/bigquery/v2/projects/p/jobs", p, j, l, &tmo), JOBS_NOT_A_POLL,
	       "jobs.list is not a poll");
	is_int(poll_of("GET", "/bigquery/v2/projects/p/queries/J/x", p, j, l, &tmo), JOBS_NOT_A_POLL,
	       "a longer path is not a poll");
	is_int(poll_of("GET", "/bigquery/v2/projects/p/queries/a%2Fb", p, j, l, &tmo),
	       JOBS_NOT_A_POLL, "an encoded job id is not taken");

	const char *q1 = "{\"query\": \"SELECT 1\", \"useLegacySql\": false, \"timeoutMs\": 10000, "
			 "\"defaultDataset\": {\"datasetId\": \"d\"}}";
	const char *q2 = "{\"jobReference\": {\"jobId\": \"theirs\"}, \"configuration\": "
			 "{\"query\": {\"query\": \"SELECT 2\"}}}";

	s = jobs_insert_body("bigquery.jobs.query", q1, strlen(q1), "p", "J2", "US", err, sizeof(err));
	o = s ? json_loads(s, 0, NULL) : NULL;
	ok(o && !strcmp(json_string_value(json_object_get(json_object_get(json_object_get(o,
		   "configuration"), "query"), "query")), "SELECT 1"),
	   "jobs.query becomes a query job: %s", s ? s : "(null)");
	ok(o && !json_object_get(json_object_get(json_object_get(o, "configuration"), "query"),
				 "timeoutMs"), "... without the polling fields");
	ok(o && !strcmp(json_string_value(json_object_get(json_object_get(o, "jobReference"),
							   "jobId")), "J2"), "... under the approval's job id");
	json_decref(o);
	free(s);
	s = jobs_insert_body("bigquery.jobs.insert", q2, strlen(q2), "p", "J3", "US", err, sizeof(err));
	ok(s && strstr(s, "\"jobId\":\"J3\"") && !strstr(s, "theirs") && strstr(s, "SELECT 2"),
	   "jobs.insert keeps its configuration under the approval's job id: %s", s);
	free(s);
	ok(!jobs_insert_body("bigquery.jobs.query", "[", 1, "p", "J", "US", err, sizeof(err)) &&
		   strstr(err, "JSON"), "a body that is not JSON: %s", err);

	s = jobs_pending_query_response("p", "J4", "");
	ok(s && strstr(s, "\"jobComplete\":false") && strstr(s, "\"location\":\"US\""),
	   "pending getQueryResults answer: %s", s);
	free(s);
	s = jobs_pending_job("p", "J5", "EU", "{\"query\": {\"query\": \"SELECT 3\"}}");
	ok(s && strstr(s, "\"state\":\"PENDING\"") && strstr(s, "\"id\":\"p:EU.J5\"") &&
		   strstr(s, "SELECT 3"), "pending job resource: %s", s);
	free(s);
	s = jobs_failed_job("p", "J6", "US", "accessDenied", "denied by alice: too wide");
	ok(s && strstr(s, "\"state\":\"DONE\"") && strstr(s, "\"errorResult\":{") &&
		   strstr(s, "denied by alice: too wide"), "failed job resource: %s", s);
	free(s);
	return tap_done();
}
