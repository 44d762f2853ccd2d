/* jobs.h - BigQuery's asynchronous job model, as sluice speaks it while a query waits for a
 * human: the pending answers a client polls, the job sluiced submits once approved, and the
 * error a refused job ends with. Pure functions over JSON (jansson); no sockets. */
#ifndef SLUICE_JOBS_H
#define SLUICE_JOBS_H

#include <stddef.h>

/* What a request asks about a job, from its path. */
enum jobs_poll { JOBS_NOT_A_POLL, JOBS_GET_QUERY_RESULTS, JOBS_GET, JOBS_CANCEL };

/* Parse a request target ("/bigquery/v2/projects/P/queries/J?location=US&timeoutMs=10000").
 * Fills project, job id, location and timeoutMs (-1 when absent). */
enum jobs_poll jobs_parse_poll(const char *method, const char *target, size_t len,
			       char *project, size_t plen, char *job_id, size_t jlen,
			       char *location, size_t llen, long *timeout_ms);

/* The job to submit once approved: a Job resource for jobs.insert under <job_id>, made from
 * the agent's jobs.query (QueryRequest) or jobs.insert (Job) body. Returns a malloc'd JSON
 * string, or NULL with <err> set. */
char *jobs_insert_body(const char *method_id, const char *body, size_t len, const char *project,
		       const char *job_id, const char *location, char *err, size_t errlen);

/* Answers while the job waits, as BigQuery shapes them (malloc'd JSON strings). */
char *jobs_pending_query_response(const char *project, const char *job_id, const char *location);
char *jobs_pending_job(const char *project, const char *job_id, const char *location,
		       const char *configuration_json /* may be NULL */);

/* A job that ended without running: DONE with errorResult {reason, message} (jobs.get). */
char *jobs_failed_job(const char *project, const char *job_id, const char *location,
		      const char *reason, const char *message);

#endif
