/* hold.h - requests that wait for a human: the approval asked for, the request held or
 * answered as a pending BigQuery job, and the polls about such jobs. */
#ifndef SLUICE_HOLD_H
#define SLUICE_HOLD_H

#include <jansson.h>

#include "gate.h"

struct conn;

/* The SQL that request body <o> runs under <method_id> (jobs.query: "query"; jobs.insert:
 * configuration.query.query), never a field the method ignores; "" when none. */
const char *body_sql(json_t *o, const char *method_id);

/* Is this request a poll about a job that waited for approval? Answers it (1), lets it go
 * on to BigQuery (0), or sends the approved job in its place (2: forward, no new decision). */
int hold_poll(struct conn *c, int timed_out);
/* The policy says a human decides. Returns 1 when an approval already covers the request,
 * 0 when it was answered or held. */
int hold_request(struct conn *c, const struct gate_request *g, const struct policy_subject *sub,
		 const struct gate_verdict *v);
/* A held request looks again: decided, or its time is up (<timed_out>). */
void hold_recheck(struct conn *c, int timed_out);
/* An approved job is in BigQuery: its later polls are forwarded. */
void hold_mark_submitted(const char *job);

#endif
