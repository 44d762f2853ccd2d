/* record.h - the session-recording store: one tamper-evident stream of JSON lines per
 * container, hash-chained and periodically signed (Ed25519), written by one writer thread
 * with group commit, so that the proxy can forward a request only once its record is on
 * disk. The format is described at the top of userspace/record.c; verification, export and
 * the auditors' sluicectl commands are in recverify.h.
 *
 * Threading: rec_submit may be called from any thread and never touches the disk; the
 * completion callback runs on the writer thread and must not block. */
#ifndef SLUICE_RECORD_H
#define SLUICE_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice-bpf.h"

#define REC_MAX_LINE (1024 * 1024)          /* bytes in one record line, newline included */
#define REC_STREAM_MAX 160                  /* bytes in a stream id, NUL included */
#define REC_DEFAULT_SEGMENT_BYTES (64u << 20)
#define REC_DEFAULT_SEGMENT_SECS 3600
#define REC_DEFAULT_CHECKPOINT_EVERY 1000
#define REC_DEFAULT_CHECKPOINT_SECS 60
#define REC_DEFAULT_MAX_QUEUE 65536
#define REC_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define REC_CHECKPOINT_TAG "sluice-checkpoint-v1"

struct rec;
struct evp_pkey_st;

/* Store settings; a zero field takes the default. */
struct rec_opts {
	const char *dir;        /* the store directory (created 0700 when missing) */
	const char *key_path;   /* Ed25519 private key; default <dir>/record.key (created when
				 * absent, 0600; the public key beside it, 0644) */
	size_t segment_bytes;   /* rotate a segment at this size (default 64 MiB) */
	int segment_secs;       /* ... or at this age (default 3600) */
	int sync_ms;            /* group-commit window: 0 fsyncs as soon as the queue is
				 * written; N waits up to N ms for more records first */
	int checkpoint_every;   /* a signed checkpoint after this many records (default 1000) */
	int checkpoint_secs;    /* ... or once an unsigned record is this old (default 60) */
	size_t max_queue;       /* records waiting for the writer (default 65536) */
	size_t wal_bytes;       /* size of a new durability log <dir>/wal (default 64 MiB) */
	int syncer_ms;          /* its syncer's period (default 40); -1: no syncer, the
				 * writer catches up when the log is full (tests) */
};

/* Completion of a submitted record, called once on the writer thread: <status> 0 when the
 * record is durable (written and fsynced), else -errno: -ENOSPC/-EDQUOT/-EFBIG (no space:
 * the record was not written, later ones may be), -EMSGSIZE (over REC_MAX_LINE), -EIO (the
 * store failed an fsync and stopped), -ESHUTDOWN (closed before it was written). */
typedef void (*rec_done_fn)(void *arg, int status);

/* Open the store: load or create the signing key, recover every stream (cut a torn tail,
 * append a recovery record and checkpoint when the last run did not close cleanly) and
 * start the writer thread. Returns the store (rec_close it), or NULL with <err>. */
struct rec *rec_open(const struct rec_opts *o, char *err, size_t errlen);

/* Write what is queued, a final checkpoint per stream, fsync, join the writer and free the
 * store; callbacks of queued records run before it returns. NULL is fine. */
void rec_close(struct rec *r);

/* Queue one record of <type> ([a-z_]{1,31}; not "checkpoint" or "recovery") with payload
 * <fields> (a JSON object or NULL; stolen in every case) for the stream of the cgroup
 * <cgroup_path> (NULL: resolved from <cgroup_id> by the writer) and <cgroup_id>. The time
 * is taken now. Returns 0 (then <done>, which may be NULL, is called exactly once), or
 * -EINVAL, -EAGAIN (queue full), -EIO (the store has failed), -ESHUTDOWN, -ENOMEM (then
 * <done> is not called). Thread-safe, never blocks on disk. */
int rec_submit(struct rec *r, const char *cgroup_path, uint64_t cgroup_id, const char *type,
	       json_t *fields, rec_done_fn done, void *arg);

/* From now on, the records this thread submits wake the writer only at its next rec_flush():
 * an event loop hands over what one round of completions recorded with one wake-up. */
void rec_defer(void);

/* Wake the writer for what this thread submitted since rec_defer() or the last flush. A
 * deferring thread must call it before it blocks. */
void rec_flush(void);

/* rec_submit to the stream id <stream> (rec_stream_name of the cgroup, computed once by a
 * caller that records often; "" or NULL: resolved from <cgroup_id> by the writer). */
int rec_submit_stream(struct rec *r, const char *stream, uint64_t cgroup_id, const char *type,
		      json_t *fields, rec_done_fn done, void *arg);

/* The failure that stopped the store (-EIO after an fsync error), or 0. */
int rec_failed(struct rec *r);

/* Stream id of a cgroup into <out>: "<name>--<cgroup_id>", where <name> is the container
 * id found in the deepest component of <cgroup_path> (docker-, cri-containerd-, crio-,
 * libpod-<64 hex>[.scope] or a bare 64-hex directory), else "pod-<uid>" for a Kubernetes
 * pod, else the path with anything but [A-Za-z0-9._-] made '_' (its last 100 bytes;
 * "root" for "/"). Returns <out>. */
const char *rec_stream_name(const char *cgroup_path, uint64_t cgroup_id, char *out,
			    size_t outlen);

/* The cgroup v2 path ("/a/b") of <cgroup_id>, found with open_by_handle_at (needs
 * CAP_DAC_READ_SEARCH). Returns 0 or -errno. */
int rec_cgroup_path(uint64_t cgroup_id, char *out, size_t outlen);

/* Put a body into <fields> under <key> as {"bytes": total length, "sha256": hex of the
 * whole body, "text": the first <max> bytes (when valid UTF-8) or "base64": them, and
 * "truncated": true when cut}. Returns 0 or -ENOMEM. */
int rec_put_body(json_t *fields, const char *key, const void *body, size_t len, size_t max);
/* The same for a body that was relayed as it streamed: its first head_len bytes, its total
 * length and the SHA-256 of all of it. */
int rec_put_body_digest(json_t *fields, const char *key, const void *head, size_t head_len,
			uint64_t total, const unsigned char sha256[32], size_t max);

/* --- the line format, shared with the verifier ------------------------------------------ */

/* Kinds of damage rec_line_check finds. */
enum rec_line_fault { REC_LINE_OK, REC_LINE_MALFORMED, REC_LINE_NOT_CANONICAL, REC_LINE_HASH };

/* Check one record line (<len> bytes, no newline; the buffer is modified and restored):
 * the hash suffix, the canonical serialization of the rest and the hash over it. Returns
 * REC_LINE_OK with *rec (the parsed record without "hash", caller decrefs; may be NULL)
 * and <hash> set, or the fault with <why>. */
enum rec_line_fault rec_line_check(char *line, size_t len, json_t **rec, unsigned char hash[32],
				   char *why, size_t whylen);

/* The message a checkpoint signs:
 * "sluice-checkpoint-v1\n<stream>\n<signed_seq>\n<signed_hash hex>\n<time>". Returns its
 * length (truncated to <outlen> - 1). */
int rec_checkpoint_msg(char *out, size_t outlen, const char *stream, uint64_t seq,
		       const char *hash_hex, const char *time);

/* The cgroup id of stream id <stream> (the digits after its last "--"). Returns 0 or -1
 * when <stream> is not a stream id. */
int rec_stream_cgid(const char *stream, uint64_t *cgid);

/* SHA-256 of p[0..n) into <out> (the digest is fetched once, not on every call). */
void rec_sha256(const void *p, size_t n, unsigned char out[32]);

/* Lowercase hex of <n> bytes into <out> (2n + 1 bytes). */
void rec_hex(const unsigned char *p, size_t n, char *out);

/* Parse "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" or unix seconds into *t. Returns 0
 * or -EINVAL. */
int rec_time_parse(const char *s, double *t);

/* --- the legacy connection log ---------------------------------------------------------- */

/* What is known of a connection when it closes. */
struct record_conn {
	const struct sluice_origin *origin; /* NULL when the peer was not redirected */
	const char *cgroup;                 /* the agent's cgroup path; NULL: found from the id */
	const char *sni;                    /* "" when none */
	const char *route;                  /* "intercept", "splice" or "deny" */
	const char *reason;                 /* why it ended or was denied ("" when normal) */
	const char *splice;                 /* spliced: "kernel", "copy" or "mixed" (the kernel
					       forwarded one direction); NULL otherwise */
	uint64_t bytes_in, bytes_out;       /* from and to the agent */
	uint64_t requests;
	uint64_t duration_ms;
};

/* Route record_conn into <r> (NULL: back to the legacy file). Not thread-safe against
 * concurrent record_conn calls: set it before the workers start. */
void rec_set_default(struct rec *r);

/* Record one closed connection: a "conn_close" record in the default store when one is set
 * (not waited for), else one JSON line appended to <dir>/<cgroup id>.conn.jsonl. Returns
 * 0 or -errno. */
int record_conn(const char *dir, const struct record_conn *rc);

#endif
