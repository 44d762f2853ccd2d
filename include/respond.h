/* respond.h - a response from BigQuery to the agent: the job metadata put back to the SQL
 * the agent wrote, rows of masked tables masked by schema, the content detectors, the
 * response record. */
#ifndef SLUICE_RESPOND_H
#define SLUICE_RESPOND_H

#include <stddef.h>

struct conn;

#define RESPOND_MAX_INTERIM 8 /* 1xx answers skipped before the final one; more is a 502 */

/* What a response record shows first, as BigQuery wrote it ("" when it is not there). */
struct respond_outcome {
	char job_id[160];          /* "jobId", e.g. of jobReference */
	char rows[160];            /* "totalRows" */
	char bytes_processed[160]; /* "totalBytesProcessed" */
};

/* Parse what BigQuery sent in state RESP and relay what is complete. */
void respond_parse(struct conn *c);
/* Free what a response in progress holds (the connection is going away). */
void respond_free(struct conn *c);
/* Close and forget the upstream connection; the next request opens another. */
void respond_upstream_reset(struct conn *c);

/* Read the outcome off the JSON text of a response, for its record only (never for a
 * decision): <head> is the body's first <head_len> bytes, <tail> its last <tail_len> (the
 * same bytes as <head> for a body held whole). A key is taken at its first occurrence in the
 * first 64 KiB before a "rows" member, else from the top-level members that end the
 * document (read backwards over at most its last 4 KiB, up to the first non-scalar value),
 * so the rows themselves are never scanned. */
void respond_outcome(const char *head, size_t head_len, const char *tail, size_t tail_len,
		     struct respond_outcome *o);

#endif
