/* record.h - per-container recordings. This first version appends one JSON line per
 * connection (origin, process, SNI, route decision, bytes) to <dir>/<cgroup id>.conn.jsonl;
 * the tamper-evident session format builds on it. */
#ifndef SLUICE_RECORD_H
#define SLUICE_RECORD_H

#include <stdint.h>

#include "sluice-bpf.h"

/* What is known of a connection when it closes. */
struct record_conn {
	const struct sluice_origin *origin; /* NULL when the peer was not redirected */
	const char *sni;                    /* "" when none */
	const char *route;                  /* "intercept", "splice" or "deny" */
	const char *reason;                 /* why it ended or was denied ("" when normal) */
	uint64_t bytes_in, bytes_out;       /* from and to the agent */
	uint64_t requests;
	uint64_t duration_ms;
};

/* Append the record for one closed connection. Returns 0 or -errno. */
int record_conn(const char *dir, const struct record_conn *rc);

#endif
