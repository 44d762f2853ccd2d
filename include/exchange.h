/* exchange.h - a request from the agent to BigQuery: read and bounded, checked (identity,
 * approvals, the gate's decision), recorded before it goes anywhere, and sent upstream. */
#ifndef SLUICE_EXCHANGE_H
#define SLUICE_EXCHANGE_H

#include <stddef.h>

struct conn;

/* Parse what the agent sent in state REQ; a complete request is decided and forwarded. */
void exchange_parse_request(struct conn *c);
/* Relay the current request to BigQuery once its record is durable. */
void exchange_forward(struct conn *c);
/* Queue the upstream request (the agent's, or what sluice sends in its place). */
int exchange_send_request(struct conn *c, const char *body, size_t body_len);
/* Record the current request (what it asks, its SQL and body) with <decision>, <rule> and
 * <reason> in the connection's recording. */
void exchange_record_request(struct conn *c, const char *decision, const char *rule,
			     const char *reason);

#endif
