/* conn.h - one agent connection inside a worker, shared by the proxy's modules: proxy.c
 * (lifecycle, peek, splice, the state machine), exchange.c (a request from the agent to
 * BigQuery), hold.c (requests that wait for an approver) and respond.c (a response from
 * BigQuery to the agent). conn.c has the buffers and the replies every one of them sends.
 * Private to the proxy: nothing outside those files includes it. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <jansson.h>
#include <linux/time_types.h>
#include <stdint.h>
#include <sys/socket.h>

#include "access.h"
#include "buf.h"
#include "approve.h"
#include "detect.h"
#include "http1.h"
#include "jobs.h"
#include "loop.h"
#include "mask.h"
#include "record.h"
#include "redirect.h"
#include "resolve.h"
#include "sockdiag.h"
#include "splice.h"
#include "tls.h"

#define CLI 0
#define UP 1
#define SPLICE_WINDOW (256 * 1024) /* bytes queued toward one side before reading stops */
#define STREAM_WINDOW (256 * 1024) /* response bytes queued to the agent before BigQuery waits */
#define CONN_RECORD 16384          /* a TLS record's plaintext: larger writes skip <pt> */
#define CONN_LINGER_MS 2000        /* how long a refused agent's bytes are dropped at most */
#define CONN_LINGER_BYTES (64u << 20) /* ... and how many */

enum cstate { C_PEEK, C_SPLICE, C_TLS, C_REQ, C_HOLD, C_UPSTREAM, C_RESP, C_CLOSING };

/* How a spliced connection's bytes pass (proxy.c): copied by sluiced, or, once the upstream
 * is connected and what sluiced already read has been sent, forwarded by the kernel's socket
 * hash (intercept.splice_via "sockmap"). */
enum splice_mode {
	SPL_COPY,    /* sluiced receives and sends (splice_via "copy", or no other way) */
	SPL_WANT,    /* to be handed over once the upstream is connected */
	SPL_DRAIN,   /* receives cancelled, sends finishing: hand over when both are done */
	SPL_SOCKMAP, /* in the kernel's socket hash (c->pair; per side: krx) */
};

/* Why a request is held (C_HOLD) for an approval. */
enum hold_kind { HOLD_NONE, HOLD_OP, HOLD_POLL };

struct side {
	struct op rop, sop, cop;
	int fd;
	struct tls_conn *tls;
	int hs_done, eof, connected, connecting;
	int closed_clean; /* TLS: the peer ended with close_notify, not a bare TCP close */
	struct buf in;  /* plaintext received (raw bytes when not terminated) */
	struct buf out; /* bytes of the send in flight: never moved while the kernel reads them */
	struct buf q;   /* bytes queued behind it; swapped into <out> when the send completes */
	struct buf pt;  /* plaintext written for a terminated side, encrypted by conn_pump in
			 * one go: a response's head and body, or a chunk's size line, data and
			 * CRLF, become one TLS record, not one each */
	uint64_t bytes_in, bytes_out;
	/* splice: */
	int krx;        /* the kernel forwards what this side receives; rop watches it (poll) */
	int shut;       /* SHUT_WR passed on: the other side ended and all it sent is here */
};

struct conn {
	struct conn *next, *prev;
	struct worker *w;
	const struct loop_env *env;
	struct side s[2];
	enum cstate st;
	enum splice_mode spl;
	struct splice_pair pair; /* SPL_SOCKMAP: the sockets as the kernel forwards them */
	uint64_t spl_seen;       /* bytes the kernel had forwarded at the last idle check */
	uint64_t spl_active;     /* ... when they last changed (or the hand-over) */
	struct op top;           /* a retry timer: a half-close waits for the kernel's queue */
	struct __kernel_timespec top_ts;
	unsigned top_ms;
	struct sluice_origin origin;
	int have_origin;
	struct sockdiag_sock agent_sock; /* the kernel's view of the agent's socket; cookie 0:
					  * not known (no check, or no such socket) */
	uint64_t netns, opened_ms, deadline, requests;
	uint64_t active_ms;      /* last completion: buffers are given back after a quiet second */
	int trimmed;
	char sni[256], connect_host[256];
	char cgroup[512];        /* the agent's cgroup path, read once at accept */
	char stream[REC_STREAM_MAX]; /* its recording stream id ("": the writer resolves it) */
	uint16_t connect_port;
	/* approvals: a held request, and a poll about a job that waited for one */
	enum hold_kind hold;
	char hold_id[APPROVE_ID_LEN];
	uint64_t hold_until;
	unsigned char hold_fp[APPROVE_FP_LEN];
	enum jobs_poll poll;
	char poll_project[128], poll_job[APPROVE_JOB_ID_LEN], poll_loc[64];
	char *submit_body;       /* the approved job, sent instead of the agent's poll */
	char *up_body;           /* the request body with its SQL rewritten for masking */
	struct mask_set *row_mask; /* tabledata.list of a masked table: its rows are masked */
	char *schema_target;     /* ... by the schema tables.get at this path gives, */
	char *schema;            /* ... fetched first (JSON) */
	int fetching_schema;
	struct detect_report found; /* what the content detectors saw in the last response */
	char *rewritten_sql;     /* ... that SQL, for the recording */
	int recording;           /* the request's record is on its way to disk */
	uint64_t forwarded_ms;   /* when the request left for BigQuery (for the latency) */
	int rec_status;          /* its outcome, from the recorder's thread */
	struct loop_call rec_call; /* ... handed back to this worker with it */
	const char *rule;        /* the rule that allowed the request */
	struct resolve_job rj;   /* looking up connect_host (a CONNECT target) */
	int resolving;
	const char *route, *reason;
	char reason_buf[512]; /* owns a deny() message built on the caller's stack */
	struct sockaddr_storage up_addr;
	socklen_t up_len;
	struct tls_client *up_tls;
	int close_after_send;
	/* a refusal: once it is out, what the agent still sends (the rest of a refused upload)
	 * is read and dropped for a moment before the close, so that it reads the answer
	 * instead of a reset. <linger> 1 once that has begun. */
	int linger_wanted, linger;
	uint64_t linger_bytes;
	/* the identity step of the request being relayed (access.c): the Authorization header
	 * that goes upstream, the identity's groups; kept until the next request */
	struct access_result access;
	/* the request being relayed */
	struct http1_request req;
	struct http1_header *req_h;
	size_t req_last, head_len, body_len, body_have;
	struct http1_chunked chunk;
	int in_body, head_is_head;
	/* the response being relayed */
	struct http1_response res;
	struct http1_header *res_h;
	size_t res_last, res_head_len, res_body_have;
	struct http1_chunked res_chunk;
	int res_in_body, res_chunk_end;
	int res_interim;           /* 1xx answers skipped in this exchange */
	uint64_t res_taken;        /* body bytes already taken out of s[UP].in */
	int asked_gzip;            /* BigQuery was asked for gzip: the agent accepts it */
	struct respond_stream *rs; /* a response being inflated, streamed or re-compressed */
	char *job_project;         /* the request makes a job in this project (jobs.insert/query) */
};

/* --- conn.c: buffers ------------------------------------------------------------------------ */

/* Unbounded appends, for heads being built. */
int out_append(struct buf *b, const char *s, size_t n);
int out_str(struct buf *b, const char *s);
/* Bytes side <s> still has to send, in flight or queued. */
size_t unsent(const struct side *s);

/* --- conn.c: what a connection sends and records -------------------------------------------- */

/* Queue plaintext for side <i> (encrypted when that side is terminated, all that was queued
 * at once when conn_pump sends; n == 0: now, with the handshake's records). Returns 0 or
 * -1. */
int conn_write(struct conn *c, int i, const void *p, size_t n);
/* The buffer conn_write appends side <i>'s plaintext to, for a message built in place
 * (then sent by conn_pump as if conn_write had been given it). */
struct buf *conn_plain(struct conn *c, int i);
/* The tls_sink_fn of a terminated side: appends ciphertext to its send queue <q> (a
 * struct buf), which is never in flight (out is). Returns 0 or -1. */
int conn_sink(void *q, const void *p, size_t n);
/* Encrypt what conn_write queued for side <i> into its send queue. Returns 0 or -1 (the
 * TLS connection failed or memory ran out). */
int conn_seal(struct conn *c, int i);
/* A BigQuery-shaped error to the agent, then close once it is out. */
void conn_deny(struct conn *c, int status, const char *status_text, const char *reason,
	       const char *msg);
/* Answer the current request with a JSON body, keeping the connection. */
void conn_reply(struct conn *c, int status, const char *json);
/* A BigQuery-shaped error for the current request, keeping the connection. */
void conn_reply_error(struct conn *c, int status, const char *reason, const char *msg);
/* Record something that does not hold the request up (a refusal, a response). */
void conn_record(struct conn *c, const char *type, json_t *fields);
/* Who asks: the verified OIDC subject, else the container's cgroup. */
const char *conn_identity(const struct conn *c);
/* Header <name> of <r> copied into out[0..n) ("" when too long); NULL when absent. */
const char *conn_header(const struct http1_request *r, const char *name, char *out, size_t n);
/* Strip ":port" from an authority into <out>. */
void conn_host_of(struct http1_slice a, char *out, size_t outlen);
/* Headers that are not relayed as they are (hop-by-hop, or rewritten by sluice). */
int conn_hop_by_hop(struct http1_slice n);

/* --- proxy.c ---------------------------------------------------------------------------------- */

/* Start closing; <why> is recorded. The connection is freed once no operation is pending. */
void conn_close(struct conn *c, const char *why);
/* Move the connection as far as the bytes at hand allow. */
void conn_advance(struct conn *c);
/* Post the sends and receives that are now due (and free a closed connection). */
void conn_pump(struct conn *c);
/* Connect (or reuse) the upstream and let the state machine send the request. */
void conn_upstream_go(struct conn *c);

#endif
