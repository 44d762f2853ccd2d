/* gate.h - the decision for one BigQuery request: the API model says what the request is
 * (route), the analyzer what its SQL does (sql), and the policy whether that is allowed
 * (policy). Used by the proxy for every request and by `sluicectl explain` offline. */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include <stddef.h>

#include "policy.h"

#define GATE_MAX_ITEMS 4096
#define GATE_MAX_SQL_BYTES (1 << 20) /* BigQuery's own limit on a query's text */

/* An HTTP request to an intercepted BigQuery host (strings NUL-terminated, may be NULL). */
struct gate_request {
	const char *host, *method, *target;
	size_t target_len;
	const char *method_override, *content_type, *content_encoding;
	const char *body;
	size_t body_len;
};

/* What was decided, and what it was decided on. */
struct gate_verdict {
	struct policy_decision d;
	int status;               /* HTTP status to refuse with (403 or 400) */
	const char *method_id;    /* BigQuery method, or NULL when the request was not understood */
	void *analysis;           /* json_t *: statements, tables, items (when asked for) */
	char *body;               /* the request body to send instead (SQL rewritten for masking);
				   * NULL: send the agent's own. Freed by gate_verdict_free */
	char *rewritten_sql;      /* the last rewritten SQL text (for explain and recordings) */
	void *row_mask;           /* struct mask_set *: mask the response's rows by schema */
	char *schema_target;      /* ... whose schema tables.get at this path gives */
	char *job_project;        /* jobs.insert/jobs.query: the project the job is made in */
};

/* Decide <req> for <subject> under <policy>. With <want_analysis>, out->analysis is a JSON
 * object the caller frees with gate_verdict_free. Returns 0, or -1 on out of memory (then
 * the verdict is deny). */
int gate_decide(const struct policy *policy, const struct policy_subject *subject,
		const struct gate_request *req, int want_analysis, struct gate_verdict *out);

/* Decide a bare SQL text as jobs.query would carry it (for `sluicectl explain`): the default
 * project and dataset complete table names; <policy> may be NULL (analysis only). */
int gate_explain_sql(const struct policy *policy, const struct policy_subject *subject,
		     const char *sql, size_t len, const char *project, const char *dataset,
		     struct gate_verdict *out);

void gate_verdict_free(struct gate_verdict *v);

/* A response body with the SQL sluice rewrote put back as the agent wrote it (and query
 * plans, which quote the rewrite, removed): malloc'd, length in *outlen; NULL when the body
 * carries no rewritten SQL. A rewrite whose original is no longer known is replaced by a
 * placeholder, never shown. */
char *gate_restore(const char *body, size_t len, size_t *outlen);

#endif
