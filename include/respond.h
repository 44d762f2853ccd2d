/* respond.h - a response from BigQuery to the agent: the job metadata put back to the SQL
 * the agent wrote, rows of masked tables masked by schema, the content detectors, the
 * response record. */
#ifndef SLUICE_RESPOND_H
#define SLUICE_RESPOND_H

struct conn;

/* Parse what BigQuery sent in state RESP and relay what is complete. */
void respond_parse(struct conn *c);
/* Free what a response in progress holds (the connection is going away). */
void respond_free(struct conn *c);

#endif
