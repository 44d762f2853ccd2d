/* jobs.c - the JSON of BigQuery's job model for approvals. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"

/* Copy a path segment [p, end) into out (bounded); 0 or -1 when it does not fit or is empty. */
static int segment(const char *p, const char *end, char *out, size_t outlen)
{
	size_t n = (size_t)(end - p);

	if (!n || n >= outlen || memchr(p, '%', n))
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* The value of query parameter <name> in [q, end), copied into out; 0 or -1. */
static int param(const char *q, const char *end, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	while (q && q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));

		if (!amp)
			amp = end;
		if ((size_t)(amp - q) > nl && !strncmp(q, name, nl) && q[nl] == '=')
			return segment(q + nl + 1, amp, out, outlen);
		q = amp + 1;
	}
	return -1;
}

enum jobs_poll jobs_parse_poll(const char *method, const char *target, size_t len,
			       char *project, size_t plen, char *job_id, size_t jlen,
			       char *location, size_t llen, long *timeout_ms)
{
	static const char base[] = "/bigquery/v2/projects/";
	const char *end = target + len, *q = memchr(target, '?', len), *p, *slash, *kind;
	char tmo[32];
	enum jobs_poll what;

	*timeout_ms = -1;
	location[0] = '\0';
	if (q)
		end = q;
	if ((size_t)(end - target) <= sizeof(base) - 1 || strncmp(target, base, sizeof(base) - 1))
		return JOBS_NOT_A_POLL;
	p = target + sizeof(base) - 1;
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash || segment(p, slash, project, plen))
		return JOBS_NOT_A_POLL;
	kind = slash + 1;
	if (!strcmp(method, "GET") && (size_t)(end - kind) > 8 && !strncmp(kind, "queries/", 8))
		what = JOBS_GET_QUERY_RESULTS, p = kind + 8;
	else if (!strcmp(method, "GET") && (size_t)(end - kind) > 5 && !strncmp(kind, "jobs/", 5))
		what = JOBS_GET, p = kind + 5;
	else if (!strcmp(method, "POST") && (size_t)(end - kind) > 5 && !strncmp(kind, "jobs/", 5))
		what = JOBS_CANCEL, p = kind + 5;
	else
		return JOBS_NOT_A_POLL;
	slash = memchr(p, '/', (size_t)(end - p));
	if (what == JOBS_CANCEL) {
		if (!slash || (size_t)(end - slash) != 7 || strncmp(slash, "/cancel", 7))
			return JOBS_NOT_A_POLL;
	} else if (slash) {
		return JOBS_NOT_A_POLL;
	}
	if (segment(p, slash ? slash : end, job_id, jlen))
		return JOBS_NOT_A_POLL;
	if (q) {
		param(q + 1, target + len, "location", location, llen);
		if (!param(q + 1, target + len, "timeoutMs", tmo, sizeof(tmo)))
			*timeout_ms = strtol(tmo, NULL, 10);
	}
	return what;
}

static json_t *job_ref(const char *project, const char *job_id, const char *location)
{
	return json_pack("{s:s, s:s, s:s}", "projectId", project, "jobId", job_id, "location",
			 location && *location ? location : "US");
}

static char *dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

char *jobs_pending_query_response(const char *project, const char *job_id, const char *location)
{
	return dump(json_pack("{s:s, s:o, s:b}", "kind", "bigquery#getQueryResultsResponse",
			      "jobReference", job_ref(project, job_id, location), "jobComplete", 0));
}

static json_t *job(const char *project, const char *job_id, const char *location, json_t *status)
{
	char id[1200];

	snprintf(id, sizeof(id), "%s:%s.%s", project, location && *location ? location : "US",
		 job_id);
	return json_pack("{s:s, s:s, s:o, s:o}", "kind", "bigquery#job", "id", id,
			 "jobReference", job_ref(project, job_id, location), "status", status);
}

char *jobs_pending_job(const char *project, const char *job_id, const char *location,
		       const char *configuration_json)
{
	json_t *o = job(project, job_id, location, json_pack("{s:s}", "state", "PENDING"));
	json_t *conf = configuration_json ? json_loads(configuration_json, 0, NULL) : NULL;

	if (o && conf)
		json_object_set_new(o, "configuration", conf);
	else
		json_decref(conf);
	return dump(o);
}

char *jobs_failed_job(const char *project, const char *job_id, const char *location,
		      const char *reason, const char *message)
{
	json_t *err = json_pack("{s:s, s:s, s:s}", "reason", reason, "location", "sluice",
				"message", message);
	json_t *st = json_pack("{s:s, s:O, s:[O]}", "state", "DONE", "errorResult", err, "errors",
			       err);

	json_decref(err);
	return dump(job(project, job_id, location, st));
}

/* Fields of a QueryRequest (jobs.query) that a query job configuration carries too. */
static const char *const query_fields[] = {
	"query", "useLegacySql", "defaultDataset", "queryParameters", "parameterMode",
	"connectionProperties", "createSession", "useQueryCache", "maximumBytesBilled",
	"continuous", NULL,
};

char *jobs_insert_body(const char *method_id, const char *body, size_t len, const char *project,
		       const char *job_id, const char *location, char *err, size_t errlen)
{
	json_t *in = json_loadb(body, len, 0, NULL), *out = NULL, *q, *v;
	int i;

	if (!json_is_object(in)) {
		snprintf(err, errlen, "the request body is not a JSON object");
		goto done;
	}
	if (!strcmp(method_id, "bigquery.jobs.insert")) {
		out = json_incref(in);
	} else if (!strcmp(method_id, "bigquery.jobs.query")) {
		q = json_object();
		for (i = 0; query_fields[i]; i++)
			if ((v = json_object_get(in, query_fields[i])))
				json_object_set(q, query_fields[i], v);
		out = json_pack("{s:{s:o}}", "configuration", "query", q);
		if ((v = json_object_get(in, "labels")))
			json_object_set(json_object_get(out, "configuration"), "labels", v);
		if ((v = json_object_get(in, "dryRun")))
			json_object_set(json_object_get(out, "configuration"), "dryRun", v);
	} else {
		snprintf(err, errlen, "%s is not a job", method_id);
		goto done;
	}
	json_object_set_new(out, "jobReference", job_ref(project, job_id, location));
done:
	json_decref(in);
	return out ? dump(out) : NULL;
}
