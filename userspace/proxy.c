/* proxy.c - the life of one agent connection inside a worker.
 *
 * Every completion lands in advance(), which moves the connection as far as the bytes at
 * hand allow, then pump() posts the sends and receives that are now due. One receive and one
 * send at most per socket: a side is read again only when what it sent before has been
 * passed on, which is the backpressure in both directions.
 *
 *   PEEK -> SPLICE                      not an intercepted host: bytes pass unchanged
 *        -> DENY (error, close)         by configuration, or fail closed
 *        -> TLS handshake -> REQ -> UPSTREAM -> RESP -> REQ ...   intercepted host
 *                             \-> HOLD (an approval) -/
 *
 * A complete request goes through request_ready(): the identity step (access.c: token
 * endpoints answered here, the agent's bearer checked, sluiced's credential chosen), polls
 * of jobs that waited for approval, the decision (gate.c: API model, analyzer, policy,
 * masking rewrite), and forward(), which waits for the request's record to be durable
 * before anything goes upstream. Responses are read whole (bounded), put back to the SQL the
 * agent wrote, masked by schema where needed, passed through the content detectors,
 * recorded, and relayed.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access.h"
#include "approve.h"
#include "gate.h"
#include "jobs.h"
#include "detect.h"
#include "mask.h"
#include "http1.h"
#include "log.h"
#include "proxy.h"
#include "record.h"
#include "redirect.h"
#include "resolve.h"
#include "tls.h"
#include "tlshello.h"

#define CLI 0
#define UP 1
#define MAX_HEADERS_CAP 1000
#define SPLICE_WINDOW (256 * 1024) /* bytes queued toward one side before reading stops */

enum cstate { C_PEEK, C_SPLICE, C_TLS, C_REQ, C_HOLD, C_UPSTREAM, C_RESP, C_CLOSING };

/* Why a request is held (C_HOLD) for an approval. */
enum hold_kind { HOLD_NONE, HOLD_OP, HOLD_POLL };

struct buf {
	char *p;
	size_t len, off, cap;
};

struct side {
	struct op rop, sop, cop;
	int fd;
	struct tls_conn *tls;
	int hs_done, eof, connected, connecting;
	struct buf in;  /* plaintext received (raw bytes when not terminated) */
	struct buf out; /* bytes of the send in flight: never moved while the kernel reads them */
	struct buf q;   /* bytes queued behind it; swapped into <out> when the send completes */
	uint64_t bytes_in, bytes_out;
};

struct conn {
	struct conn *next, *prev;
	struct worker *w;
	const struct loop_env *env;
	struct side s[2];
	enum cstate st;
	struct sluice_origin origin;
	int have_origin;
	uint64_t netns, opened_ms, deadline, requests;
	uint64_t active_ms;      /* last completion: buffers are given back after a quiet second */
	int trimmed;
	char sni[256], connect_host[256];
	char cgroup[512];        /* the agent's cgroup path, read once at accept */
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
	const char *rule;        /* the rule that allowed the request */
	struct resolve_job rj;   /* looking up connect_host (a CONNECT target) */
	int resolving;
	const char *route, *reason;
	char reason_buf[512]; /* owns a deny() message built on the caller's stack */
	struct sockaddr_storage up_addr;
	socklen_t up_len;
	struct tls_client *up_tls;
	int close_after_send;
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
	int res_in_body;
};

static struct conn **head_of(struct worker *w)
{
	return (struct conn **)worker_conns(w);
}

static _Atomic int count_conns; /* across workers: limits.connections */

int proxy_count(struct worker *w)
{
	struct conn *c;
	int n = 0;

	for (c = *head_of(w); c; c = c->next)
		n++;
	return n;
}

/* --- buffers ------------------------------------------------------------------------------ */

static int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
	size_t need = b->len + n, cap;
	char *np;

	if (need > limit)
		return -1;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	if (n) /* p may be NULL with nothing to copy (a request without a body) */
		memcpy(b->p + b->len, p, n);
	b->len = need;
	return 0;
}

/* Bytes a side still has to send, in flight or queued. */
static size_t unsent(const struct side *s)
{
	return s->out.len - s->out.off + s->q.len;
}

/* Drop the first <n> bytes (a finished request) keeping what follows (pipelined ones). */
static void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->off = b->cap = 0;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

static void pump(struct conn *c);
static void advance(struct conn *c);
static json_t *request_fields(struct conn *c, const char *decision, const char *rule,
			      const char *reason);
static void record_note(struct conn *c, const char *type, json_t *fields);
static void drive_tls(struct conn *c, int i);

static int ops_pending(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++)
		if (c->s[i].rop.pending || c->s[i].sop.pending || c->s[i].cop.pending)
			return 1;
	return c->resolving || c->recording;
}

static void conn_free(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct record_conn rc = {
		.origin = c->have_origin ? &c->origin : NULL, .cgroup = c->cgroup, .sni = c->sni,
		.route = c->route, .reason = c->reason ? c->reason : "",
		.bytes_in = c->s[CLI].bytes_in, .bytes_out = c->s[CLI].bytes_out,
		.requests = c->requests, .duration_ms = worker_now_ms(c->w) - c->opened_ms,
	};
	int i;

	if (c->have_origin)
		record_conn(conf->record_dir, &rc);
	if (c->prev)
		c->prev->next = c->next;
	else
		*head_of(c->w) = c->next;
	if (c->next)
		c->next->prev = c->prev;
	for (i = 0; i < 2; i++) {
		if (c->s[i].fd >= 0)
			close(c->s[i].fd);
		tls_conn_free(c->s[i].tls);
		buf_free(&c->s[i].in);
		buf_free(&c->s[i].out);
		buf_free(&c->s[i].q);
	}
	access_result_free(&c->access);
	free(c->req_h);
	free(c->res_h);
	free(c->submit_body);
	free(c->up_body);
	free(c->rewritten_sql);
	free(c->row_mask);
	free(c->schema_target);
	free(c->schema);
	free(c);
	count_conns--;
}

/* Start closing: wake pending operations by shutting the sockets down; the connection is
 * freed once none is left. <why> is recorded. */
static void conn_close(struct conn *c, const char *why)
{
	int i;

	if (c->st == C_CLOSING)
		return;
	if (why && !c->reason)
		c->reason = why;
	c->st = C_CLOSING;
	for (i = 0; i < 2; i++)
		if (c->s[i].fd >= 0)
			shutdown(c->s[i].fd, SHUT_RDWR);
}

/* Make room for <n> more bytes at the end of <b>. Returns 0 or -1. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *np;

	if (b->len + n <= b->cap)
		return 0;
	while (cap < b->len + n)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np)
		return -1;
	b->p = np;
	b->cap = cap;
	return 0;
}

/* Queue plaintext for side <i>: encrypted when that side is terminated, the ciphertext
 * read straight into the send queue. */
static int side_write(struct conn *c, int i, const void *p, size_t n)
{
	struct side *s = &c->s[i];
	size_t pend;
	long k;

	if (!s->tls)
		return buf_append(&s->q, p, n, SIZE_MAX);
	if (n && tls_conn_write(s->tls, p, n) != (long)n)
		return -1;
	while ((pend = tls_conn_out_pending(s->tls)) > 0) {
		if (buf_reserve(&s->q, pend))
			return -1;
		k = tls_conn_take_out(s->tls, s->q.p + s->q.len, pend);
		if (k <= 0)
			break;
		s->q.len += (size_t)k;
	}
	return 0;
}

/* Send the agent a BigQuery-shaped error and close once it is out. */
static void deny(struct conn *c, int status, const char *status_text, const char *reason,
		 const char *msg)
{
	char out[4096];
	int n = http1_write_json_error(out, sizeof(out), status, status_text, reason, msg, 0);

	if (!c->reason) { /* msg may be the caller's stack buffer: keep a copy */
		snprintf(c->reason_buf, sizeof(c->reason_buf), "%s", msg);
		c->reason = c->reason_buf;
	}
	log_info("proxy", "%s%s%s: %d %s", c->sni[0] ? "" : "", c->sni, c->sni[0] ? "" : "-",
		 status, msg);
	if (n > 0)
		side_write(c, CLI, out, (size_t)n);
	c->close_after_send = 1;
	c->s[CLI].eof = 1; /* read nothing more from the agent */
}

/* --- upstream ----------------------------------------------------------------------------- */

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	char host[128];
	const char *colon = strrchr(s, ':');
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

/* Where the origin was going, as a sockaddr. */
static void origin_addr(struct conn *c)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&c->up_addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->up_addr;

	memset(&c->up_addr, 0, sizeof(c->up_addr));
	if (c->origin.family == AF_INET) {
		a4->sin_family = AF_INET;
		memcpy(&a4->sin_addr, &c->origin.addr[12], 4);
		a4->sin_port = htons(c->origin.port);
		c->up_len = sizeof(*a4);
	} else {
		a6->sin6_family = AF_INET6;
		memcpy(&a6->sin6_addr, c->origin.addr, 16);
		a6->sin6_port = htons(c->origin.port);
		c->up_len = sizeof(*a6);
	}
}

static int upstream_connect(struct conn *c)
{
	struct side *u = &c->s[UP];
	int one = 1;

	u->fd = socket(c->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0)
		return -1;
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->connecting = 1;
	return worker_connect(c->w, &u->cop, u->fd, (struct sockaddr *)&c->up_addr, c->up_len);
}

/* The upstream address is known: connect, and set up TLS toward an intercepted host. */
static void upstream_open(struct conn *c)
{
	if (upstream_connect(c)) {
		if (c->st == C_SPLICE)
			conn_close(c, "cannot connect to the original destination");
		else
			deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: cannot connect to the BigQuery endpoint");
		return;
	}
	if (c->st == C_SPLICE)
		return; /* bytes already read stay in s[CLI].in and go out once connected */
	c->s[UP].tls = tls_conn_client(c->up_tls, c->sni);
	if (!c->s[UP].tls)
		deny(c, 502, "UNAVAILABLE", "backendError", "sluice: upstream TLS setup failed");
}

/* A CONNECT target was looked up (on this worker's thread, from the resolver). */
static void on_resolved(void *arg)
{
	struct conn *c = arg;
	char msg[400];

	c->resolving = 0;
	if (c->st != C_CLOSING) {
		if (c->rj.err) {
			snprintf(msg, sizeof(msg), "sluice: cannot resolve %s: %s", c->rj.host,
				 gai_strerror(c->rj.err));
			if (c->st == C_SPLICE)
				conn_close(c, "cannot resolve the CONNECT target");
			else
				deny(c, 502, "UNAVAILABLE", "backendError", msg);
		} else {
			memcpy(&c->up_addr, &c->rj.addr, c->rj.addr_len);
			c->up_len = c->rj.addr_len;
			upstream_open(c);
			advance(c);
		}
	}
	pump(c);
}

/* Choose the upstream: a configured override for an intercepted host, the CONNECT target
 * (looked up off the worker), else the address the agent was connecting to (it resolved the
 * name; TLS verification checks the name). Returns 0 when the address is known, 1 while it
 * is being resolved (on_resolved goes on), -1 on failure. */
static int choose_upstream(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	int i;

	c->up_tls = c->env->tls_clients[0];
	for (i = 0; c->st != C_SPLICE && i < conf->n_overrides; i++) {
		if (!strcasecmp(conf->overrides[i].host, c->sni)) {
			c->up_tls = c->env->tls_clients[1 + i];
			return parse_addr(conf->overrides[i].address, &c->up_addr, &c->up_len);
		}
	}
	if (c->connect_host[0]) {
		memset(&c->rj, 0, sizeof(c->rj));
		snprintf(c->rj.host, sizeof(c->rj.host), "%s", c->connect_host);
		c->rj.port = c->connect_port;
		c->rj.w = c->w;
		c->rj.done = on_resolved;
		c->rj.arg = c;
		if (resolve_start(&c->rj))
			return -1;
		c->resolving = 1;
		return 1;
	}
	origin_addr(c);
	return 0;
}

/* --- peek: what is the agent trying to do? ------------------------------------------------ */

static int inspected_port(const struct sluice_conf *conf, uint16_t port)
{
	int i;

	for (i = 0; i < conf->n_inspect_ports; i++)
		if (conf->inspect_ports[i] == port)
			return 1;
	return 0;
}

static void start_splice(struct conn *c)
{
	int rc;

	c->route = "splice";
	c->st = C_SPLICE;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	rc = choose_upstream(c);
	if (rc < 0)
		conn_close(c, "cannot resolve the CONNECT target");
	else if (rc == 0)
		upstream_open(c);
}

static void start_tls(struct conn *c)
{
	struct side *a = &c->s[CLI];

	c->route = "intercept";
	a->tls = tls_conn_server(c->env->tls_server, c->sni);
	if (!a->tls || tls_conn_feed(a->tls, a->in.p, a->in.len)) {
		conn_close(c, "TLS setup failed");
		return;
	}
	a->in.len = 0;
	c->st = C_TLS;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->handshake_timeout_ms;
	drive_tls(c, CLI);
}

/* Strip ":port" from an authority into <out>. */
static void host_of(struct http1_slice a, char *out, size_t outlen)
{
	size_t n = a.len;
	const char *close = memchr(a.p, ']', a.len);
	const char *colon = memrchr(a.p, ':', a.len);

	if (colon && (!close || colon > close))
		n = (size_t)(colon - a.p);
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, a.p, n);
	out[n] = '\0';
}

static void peek(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *a = &c->s[CLI];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	struct tlshello h;
	const char *why = NULL;
	int rc = tlshello_parse((const uint8_t *)a->in.p, a->in.len, &h, &why);
	char host[256];

	if (rc == -2)
		return;
	if (rc == -1) {
		conn_close(c, "malformed TLS ClientHello");
		return;
	}
	if (rc == 1) {
		if (!h.has_sni) {
			c->route = "deny";
			if (conf->no_sni == CONF_SPLICE)
				start_splice(c);
			else
				conn_close(c, "TLS without SNI refused (intercept.no_sni)");
			return;
		}
		snprintf(c->sni, sizeof(c->sni), "%s", h.sni);
		if (c->connect_host[0] && strcasecmp(c->connect_host, c->sni)) {
			c->route = "deny";
			conn_close(c, "SNI does not match the CONNECT target");
			return;
		}
		if (conf_host_matches(&conf->hosts, c->sni)) {
			start_tls(c);
		} else if (conf->other_tls == CONF_SPLICE) {
			start_splice(c);
		} else {
			c->route = "deny";
			conn_close(c, c->connect_host[0] ? "CONNECT to a host that is not "
				   "intercepted: not supported" : "TLS to a host that is not "
				   "intercepted refused (intercept.other_tls)");
		}
		return;
	}
	/* Not TLS: an HTTP proxy request (CONNECT) or plain HTTP. */
	if (!c->req_h && !(c->req_h = calloc((size_t)conf->max_headers, sizeof(*c->req_h)))) {
		conn_close(c, "out of memory");
		return;
	}
	c->req.headers = c->req_h;
	rc = http1_parse_request(a->in.p, a->in.len, c->req_last, &lim, &c->req, &why);
	if (rc == -2) {
		c->req_last = a->in.len;
		return;
	}
	c->req_last = 0;
	c->route = "deny";
	if (rc < 0) {
		deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
		return;
	}
	if (c->req.is_connect) {
		const char *colon = memrchr(c->req.target.p, ':', c->req.target.len);

		host_of(c->req.target, host, sizeof(host));
		if (c->connect_host[0] || (!conf_host_matches(&conf->hosts, host) &&
					   conf->other_tls != CONF_SPLICE)) {
			deny(c, 403, "PERMISSION_DENIED", "accessDenied",
			     "sluice: CONNECT is relayed only to intercepted Google API hosts "
			     "(intercept.other_tls is deny)");
			return;
		}
		snprintf(c->connect_host, sizeof(c->connect_host), "%s", host);
		c->connect_port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 443;
		buf_consume(&a->in, (size_t)rc);
		side_write(c, CLI, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
		return; /* the TLS ClientHello follows: peek again */
	}
	host_of(c->req.host, host, sizeof(host));
	if (conf_host_matches(&conf->hosts, host) || conf->plain_http == CONF_DENY) {
		deny(c, 403, "PERMISSION_DENIED", "accessDenied",
		     "sluice: plain HTTP to Google APIs is refused; use https://");
		return;
	}
	start_splice(c);
}

/* --- HTTP relay ---------------------------------------------------------------------------- */

/* Headers that do not go upstream: hop-by-hop ones, those sluice rewrites, and
 * Accept-Encoding: sluice reads every response (to put back the agent's own SQL, to mask,
 * to record), so BigQuery answers it uncompressed. */
static int is_hop_by_hop(struct http1_slice n)
{
	static const char *const hop[] = { "connection", "keep-alive", "proxy-connection",
		"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
		"content-length", "expect", "accept-encoding", NULL };
	int i;

	for (i = 0; hop[i]; i++)
		if (http1_slice_ieq(n, hop[i]))
			return 1;
	return 0;
}

static int out_append(struct buf *b, const char *s, size_t n)
{
	return buf_append(b, s, n, SIZE_MAX);
}

static int out_str(struct buf *b, const char *s)
{
	return out_append(b, s, strlen(s));
}

/* Build the upstream request: same method, target and end-to-end headers; the body (now
 * contiguous and de-chunked) with a Content-Length. */
static int send_request(struct conn *c, const char *body, size_t body_len)
{
	struct buf b = { 0 };
	char num[64];
	size_t i;
	int rc = 0;
	const struct http1_request *r = &c->req;

	if (c->up_body) { /* the same request, its SQL rewritten for masking */
		body = c->up_body;
		body_len = strlen(c->up_body);
	}
	if (c->fetching_schema) { /* tables.get first: the schema that masks the rows */
		out_str(&b, "GET ");
		out_str(&b, c->schema_target);
		out_str(&b, " HTTP/1.1\r\n");
		body = NULL;
		body_len = 0;
	} else if (c->submit_body) { /* the approved job goes up in place of the agent's poll */
		snprintf(num, sizeof(num), "POST /bigquery/v2/projects/");
		out_str(&b, num);
		out_str(&b, c->poll_project);
		out_str(&b, "/jobs HTTP/1.1\r\nContent-Type: application/json\r\n");
		body = c->submit_body;
		body_len = strlen(c->submit_body);
	} else {
		out_append(&b, r->method.p, r->method.len);
		out_str(&b, " ");
		out_append(&b, r->target.p, r->target.len);
		out_str(&b, " HTTP/1.1\r\n");
	}
	for (i = 0; i < r->num_headers; i++) {
		if (is_hop_by_hop(r->headers[i].name) ||
		    http1_slice_ieq(r->headers[i].name, "authorization") ||
		    ((c->submit_body || c->fetching_schema) &&
		     (http1_slice_ieq(r->headers[i].name, "content-type") ||
					http1_slice_ieq(r->headers[i].name, "content-encoding"))))
			continue;
		out_append(&b, r->headers[i].name.p, r->headers[i].name.len);
		out_str(&b, ": ");
		out_append(&b, r->headers[i].value.p, r->headers[i].value.len);
		out_str(&b, "\r\n");
	}
	if (c->access.authorization[0]) { /* decided by access_request: sluiced's or as it was */
		out_str(&b, "Authorization: ");
		out_str(&b, c->access.authorization);
		out_str(&b, "\r\n");
	}
	out_str(&b, "Via: 1.1 sluice\r\n");
	if (!c->fetching_schema && (body_len || r->body != HTTP1_BODY_NONE || c->submit_body)) {
		snprintf(num, sizeof(num), "Content-Length: %zu\r\n", body_len);
		out_str(&b, num);
	}
	out_str(&b, "\r\n");
	out_append(&b, body, body_len);
	if (!b.p || side_write(c, UP, b.p, b.len))
		rc = -1;
	buf_free(&b);
	return rc;
}

/* Copy header <name>'s value into <out> ("" when absent or too long: then it is refused
 * upstream of here by the route model as an unknown form). */
static const char *header(const struct http1_request *r, const char *name, char *out, size_t n)
{
	const struct http1_header *h = http1_find(r->headers, r->num_headers, name);

	out[0] = '\0';
	if (h && h->value.len < n) {
		memcpy(out, h->value.p, h->value.len);
		out[h->value.len] = '\0';
	}
	return h ? out : NULL;
}

/* --- approvals: risky requests wait for a human --------------------------------------------- */

/* Answer the agent's current request ourselves (keep-alive kept), with a JSON body. */
static void reply(struct conn *c, int status, const char *json)
{
	char head[256];
	size_t n = json ? strlen(json) : 0;
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json; "
			  "charset=UTF-8\r\nContent-Length: %zu\r\n%s\r\n", status,
			  http1_status_text(status), n, c->req.keep_alive ? "" : "Connection: close\r\n");

	if (!json || side_write(c, CLI, head, (size_t)hl) || side_write(c, CLI, json, n)) {
		conn_close(c, "out of memory");
		return;
	}
	buf_consume(&c->s[CLI].in, c->head_len + c->body_len);
	c->st = C_REQ;
	c->hold = HOLD_NONE;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	if (!c->req.keep_alive) {
		c->close_after_send = 1;
		c->s[CLI].eof = 1;
	}
}

/* A BigQuery-shaped error for the current request, keeping the connection. */
static void reply_error(struct conn *c, int status, const char *reason, const char *msg)
{
	char out[2048], *body;
	int n = http1_write_json_error(out, sizeof(out), status, status == 403 ?
				       "PERMISSION_DENIED" : "INVALID_ARGUMENT", reason, msg, 1);

	body = n > 0 ? strstr(out, "\r\n\r\n") : NULL;
	reply(c, status, body ? body + 4 : NULL);
}

/* Jobs sluiced submitted after an approval, so that later polls are forwarded. */
static pthread_mutex_t submitted_mu = PTHREAD_MUTEX_INITIALIZER;
static char submitted[1024][APPROVE_JOB_ID_LEN];
static unsigned submitted_next;

static int was_submitted(const char *job)
{
	unsigned i;
	int hit = 0;

	pthread_mutex_lock(&submitted_mu);
	for (i = 0; i < 1024 && !hit; i++)
		hit = !strcmp(submitted[i], job);
	pthread_mutex_unlock(&submitted_mu);
	return hit;
}

static void mark_submitted(const char *job)
{
	pthread_mutex_lock(&submitted_mu);
	snprintf(submitted[submitted_next++ % 1024], APPROVE_JOB_ID_LEN, "%s", job);
	pthread_mutex_unlock(&submitted_mu);
}

static void forward(struct conn *c);

static void hold(struct conn *c, const char *id, enum hold_kind kind, int ms)
{
	snprintf(c->hold_id, sizeof(c->hold_id), "%s", id);
	c->hold = kind;
	c->st = C_HOLD;
	c->hold_until = worker_now_ms(c->w) + (uint64_t)(ms > 0 ? ms : 0);
	c->deadline = c->hold_until + 5000;
}

/* Is this request a poll about a job that waited for approval? Answers it (1), lets it go
 * on to BigQuery (0), or sends the approved job in its place (2: forward, no new decision). */
static int approval_poll(struct conn *c, int timed_out)
{
	struct approve *a = c->env->approve;
	struct approve_status st;
	char method[16], id[APPROVE_ID_LEN], msg[700], *s = NULL;
	long tmo;

	if (!a || c->req.method.len >= sizeof(method))
		return 0;
	memcpy(method, c->req.method.p, c->req.method.len);
	method[c->req.method.len] = '\0';
	c->poll = jobs_parse_poll(method, c->req.target.p, c->req.target.len, c->poll_project,
				  sizeof(c->poll_project), c->poll_job, sizeof(c->poll_job),
				  c->poll_loc, sizeof(c->poll_loc), &tmo);
	if (c->poll == JOBS_NOT_A_POLL || approve_find_job(a, c->poll_job, id, sizeof(id)) ||
	    approve_state(a, id, &st))
		return 0;
	if (st.state == APPROVE_PENDING && c->poll == JOBS_CANCEL)
		approve_decide(a, id, 0, "the agent", "cancelled by the agent", 0, &st);
	switch (st.state) {
	case APPROVE_PENDING:
		if (c->poll == JOBS_GET)
			s = jobs_pending_job(c->poll_project, c->poll_job, c->poll_loc, NULL);
		else if (!timed_out) /* getQueryResults long-polls: wait here for the decision */
			return hold(c, id, HOLD_POLL, tmo >= 0 && tmo < 10000 ? (int)tmo : 10000), 1;
		else
			s = jobs_pending_query_response(c->poll_project, c->poll_job, c->poll_loc);
		reply(c, 200, s);
		free(s);
		return 1;
	case APPROVE_APPROVED:
		if (was_submitted(c->poll_job) || c->poll == JOBS_CANCEL)
			return 0;
		if (approve_payload(a, id, &c->submit_body)) {
			reply_error(c, 500, "backendError", "sluice: the approved job was lost");
			return 1;
		}
		return 2;
	default:
		if (st.state == APPROVE_DENIED)
			snprintf(msg, sizeof(msg), "denied by %s%s%s", st.approver,
				 st.reason[0] ? ": " : "", st.reason);
		else
			snprintf(msg, sizeof(msg), "approval %s expired: %s", id,
				 st.reason[0] ? st.reason : "no approver decided in time");
		if (c->poll == JOBS_GET || c->poll == JOBS_CANCEL) {
			s = jobs_failed_job(c->poll_project, c->poll_job, c->poll_loc, "accessDenied", msg);
			reply(c, 200, s);
			free(s);
		} else {
			reply_error(c, 403, "accessDenied", msg);
		}
		return 1;
	}
}

/* Who asks, for approvals: the verified OIDC subject when there is one (so that a window
 * or a retry is that agent's), else the container. */
static const char *who(const struct conn *c)
{
	return c->access.subject[0] ? c->access.subject : c->cgroup;
}

/* Fingerprint of a request for "the identical request": method, path and body, minus what
 * clients make unique per attempt (requestId, a client-chosen jobReference, insertAll's
 * per-row insertId). */
static void fingerprint(struct conn *c, const char *identity, unsigned char out[APPROVE_FP_LEN])
{
	struct buf b = { 0 };
	const char *q = memchr(c->req.target.p, '?', c->req.target.len);
	json_t *o = json_loadb(c->s[CLI].in.p + c->head_len, c->body_len, 0, NULL);
	char *body = NULL;

	if (json_is_object(o)) {
		json_t *row;
		size_t i;

		json_object_del(o, "requestId");
		json_object_del(o, "jobReference");
		json_array_foreach(json_object_get(o, "rows"), i, row) /* insertAll dedup ids */
			json_object_del(row, "insertId");
		body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	}
	out_append(&b, c->req.method.p, c->req.method.len);
	out_str(&b, " ");
	out_append(&b, c->req.target.p, q ? (size_t)(q - c->req.target.p) : c->req.target.len);
	out_str(&b, "\n");
	if (body)
		out_str(&b, body);
	else
		out_append(&b, c->s[CLI].in.p + c->head_len, c->body_len);
	approve_fingerprint(identity, b.p, b.len, out);
	buf_free(&b);
	free(body);
	json_decref(o);
}

/* The policy says a human decides. Returns 1 when an approval already covers the request
 * (a window, or the one retry an approved operation gets), 0 when it was answered or held. */
static int approval_request(struct conn *c, const struct gate_request *g,
			    const struct policy_subject *sub, const struct gate_verdict *v)
{
	struct approve *a = c->env->approve;
	const char *identity = who(c), *kinds[64], *tables[256], *sql = "";
	int is_job = v->method_id && (!strcmp(v->method_id, "bigquery.jobs.query") ||
				      !strcmp(v->method_id, "bigquery.jobs.insert"));
	struct approve_info info = { .kind = is_job ? APPROVE_JOB : APPROVE_OP,
				     .container = c->cgroup, .identity = identity,
				     .method = v->method_id ? v->method_id : "",
				     .rule = v->d.rule, .reason = v->d.reason };
	char id[APPROVE_ID_LEN], job[APPROVE_JOB_ID_LEN], project[128] = "", loc[64] = "US";
	char err[256], msg[1024], *s = NULL;
	struct gate_verdict full;
	struct approve_status st;
	json_t *it, *o;
	size_t i;
	int rc;

	fingerprint(c, identity, info.fingerprint);
	if (approve_check_window(a, identity, info.fingerprint, time(NULL)))
		return 1;
	if (!is_job && approve_consume(a, identity, info.fingerprint))
		return 1;
	/* what approvers see: statement kinds, tables, the SQL */
	gate_decide(c->env->policy, sub, g, 1, &full);
	json_array_foreach(json_object_get(full.analysis, "statements"), i, it)
		if (info.n_statements < 64)
			kinds[info.n_statements++] = json_string_value(json_object_get(it, "kind"));
	json_array_foreach(json_object_get(full.analysis, "items"), i, it) {
		if (info.n_tables < 256 && *json_string_value(json_object_get(it, "table"))) {
			char *t = NULL;

			if (asprintf(&t, "%s.%s.%s", json_string_value(json_object_get(it, "project")),
				     json_string_value(json_object_get(it, "dataset")),
				     json_string_value(json_object_get(it, "table"))) > 0)
				tables[info.n_tables++] = t;
		}
		if (!project[0])
			snprintf(project, sizeof(project), "%s",
				 json_string_value(json_object_get(it, "project")));
	}
	info.statements = kinds;
	info.tables = tables;
	o = json_loadb(g->body, g->body_len, 0, NULL);
	if (json_is_string(json_object_get(o, "query")))
		sql = json_string_value(json_object_get(o, "query"));
	else if (json_is_string(json_object_get(json_object_get(json_object_get(o, "configuration"),
							"query"), "query")))
		sql = json_string_value(json_object_get(json_object_get(json_object_get(o,
			"configuration"), "query"), "query"));
	if (json_is_string(json_object_get(o, "location")))
		snprintf(loc, sizeof(loc), "%s", json_string_value(json_object_get(o, "location")));
	info.sql = sql;
	{ /* the job's project is the one in the path: /bigquery/v2/projects/P/... */
		const char *p = memmem(g->target, g->target_len, "/projects/", 10), *e;

		if (p && (e = memchr(p + 10, '/', (size_t)(g->target + g->target_len - p - 10))) &&
		    (size_t)(e - p - 10) < sizeof(project)) {
			memcpy(project, p + 10, (size_t)(e - p - 10));
			project[e - p - 10] = '\0';
		}
	}
	info.project = project;
	if (is_job) {
		approve_job_id(job, sizeof(job));
		info.job_id = job;
		info.payload = jobs_insert_body(v->method_id, g->body, g->body_len, project, job, loc,
						err, sizeof(err));
	}
	rc = is_job && !info.payload ? -EINVAL : approve_request(a, &info, id, sizeof(id));
	if (rc == 1 && approve_state(a, id, &st) == 0) /* the identical request already waits */
		snprintf(job, sizeof(job), "%s", st.job_id);
	free((char *)info.payload);
	for (i = 0; i < (size_t)info.n_tables; i++)
		free((char *)tables[i]);
	json_decref(o);
	gate_verdict_free(&full);
	if (rc < 0) {
		if (snprintf(msg, sizeof(msg), "%s. sluice could not hold it for an approver (%s); "
			     "try again later", v->d.reason, rc == -ENOSPC ?
			     "too many approvals are pending" : rc == -EINVAL ? err : strerror(-rc)) < 0)
			msg[0] = '\0';
		deny(c, 403, "PERMISSION_DENIED", "accessDenied", msg);
		return 0;
	}
	log_info("proxy", "approval %s requested by %s (%s): %s", id, c->origin.comm, c->cgroup,
		 v->d.reason);
	if (!is_job) {
		memcpy(c->hold_fp, info.fingerprint, sizeof(c->hold_fp));
		hold(c, id, HOLD_OP, c->env->conf->approval_hold_ms);
		return 0;
	}
	if (!strcmp(v->method_id, "bigquery.jobs.query")) {
		s = jobs_pending_query_response(project, job, loc);
		if (s && (o = json_loads(s, 0, NULL))) {
			json_object_set_new(o, "kind", json_string("bigquery#queryResponse"));
			free(s);
			s = json_dumps(o, JSON_COMPACT);
			json_decref(o);
		}
	} else {
		o = json_loadb(g->body, g->body_len, 0, NULL);
		s = json_object_get(o, "configuration") ?
			json_dumps(json_object_get(o, "configuration"), JSON_COMPACT) : NULL;
		json_decref(o);
		o = NULL;
		{
			char *conf_json = s;

			s = jobs_pending_job(project, job, loc, conf_json);
			free(conf_json);
		}
	}
	reply(c, 200, s);
	free(s);
	return 0;
}

/* A held request looks again: decided, or its time is up (<timed_out>). */
static void hold_recheck(struct conn *c, int timed_out)
{
	struct approve_status st;
	char msg[700];
	int rc;

	if (c->st != C_HOLD)
		return;
	if (c->hold == HOLD_POLL) {
		c->st = C_REQ;
		rc = approval_poll(c, timed_out);
		if (rc == 0 || rc == 2)
			forward(c);
		else if (c->st == C_REQ && c->hold != HOLD_NONE)
			c->st = C_HOLD; /* still pending, still within its wait */
		return;
	}
	if (approve_state(c->env->approve, c->hold_id, &st) ||
	    (st.state == APPROVE_PENDING && !timed_out))
		return;
	c->st = C_REQ;
	c->hold = HOLD_NONE;
	if (st.state == APPROVE_APPROVED &&
	    approve_consume(c->env->approve, who(c), c->hold_fp)) {
		forward(c);
		return;
	}
	if (st.state == APPROVE_PENDING)
		snprintf(msg, sizeof(msg), "sluice: this request waits for approval %s: ask an "
			 "approver to run 'sluicectl approve %s', then send the identical request "
			 "again", c->hold_id, c->hold_id);
	else if (st.state == APPROVE_DENIED)
		snprintf(msg, sizeof(msg), "denied by %s%s%s", st.approver, st.reason[0] ? ": " : "",
			 st.reason);
	else
		snprintf(msg, sizeof(msg), "approval %s expired: %s", c->hold_id,
			 st.reason[0] ? st.reason : "no approver decided in time");
	reply_error(c, 403, "accessDenied", msg);
}

void proxy_approvals_changed(void *worker)
{
	struct worker *w = worker;
	struct conn *c, *next;

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (c->st == C_HOLD) {
			hold_recheck(c, 0);
			pump(c);
		}
	}
}

/* Decide the request (API model, SQL analyzer, policy). Returns 1 when it may go on. */
static int decide(struct conn *c)
{
	const char *groups[POLICY_MAX_LIST];
	struct policy_subject sub = { .cgroup = c->cgroup, .groups = groups };
	struct gate_request g = { .host = c->sni, .target = c->req.target.p,
				  .target_len = c->req.target.len,
				  .body = c->s[CLI].in.p + c->head_len, .body_len = c->body_len };
	char method[32], override[32], ctype[256], cenc[64], msg[700];
	struct gate_verdict v;
	int i;

	if (c->req.method.len >= sizeof(method))
		return deny(c, 405, "INVALID_ARGUMENT", "badRequest", "sluice: unknown method"), 0;
	memcpy(method, c->req.method.p, c->req.method.len);
	method[c->req.method.len] = '\0';
	/* Token endpoints without identity are relayed as they are. */
	if (!strcasecmp(c->sni, "oauth2.googleapis.com") || !strcasecmp(c->sni, "sts.googleapis.com") ||
	    !strcasecmp(c->sni, "iamcredentials.googleapis.com"))
		return 1;
	g.method = method;
	g.method_override = header(&c->req, "x-http-method-override", override, sizeof(override));
	g.content_type = header(&c->req, "content-type", ctype, sizeof(ctype));
	g.content_encoding = header(&c->req, "content-encoding", cenc, sizeof(cenc));
	sub.n_groups = policy_groups_of(c->env->policy, c->cgroup, groups, POLICY_MAX_LIST);
	for (i = 0; i < c->access.n_groups && sub.n_groups < POLICY_MAX_LIST; i++)
		groups[sub.n_groups++] = c->access.groups[i];
	sub.claims = c->access.claims.claims;
	gate_decide(c->env->policy, &sub, &g, 0, &v);
	c->rule = v.d.rule;
	free(c->up_body);
	free(c->rewritten_sql);
	c->up_body = v.body; /* masking: what goes upstream instead of the agent's body */
	c->rewritten_sql = v.rewritten_sql;
	free(c->row_mask);
	free(c->schema_target);
	free(c->schema);
	c->row_mask = v.row_mask;
	c->schema_target = v.schema_target;
	c->schema = NULL;
	v.body = v.rewritten_sql = v.schema_target = NULL;
	v.row_mask = NULL;
	if (v.d.verdict == POLICY_ALLOW)
		return 1;
	if (v.d.verdict == POLICY_APPROVE && c->env->approve) {
		if (c->up_body) { /* the job to submit once approved is the masked one */
			g.body = c->up_body;
			g.body_len = strlen(c->up_body);
		}
		return approval_request(c, &g, &sub, &v);
	}
	snprintf(msg, sizeof(msg), "%s", v.d.reason);
	log_info("proxy", "refused %s from %s (%s): %s", v.method_id ? v.method_id : method,
		 c->origin.comm, c->cgroup, msg);
	record_note(c, "request", request_fields(c, "deny", v.d.rule, msg));
	deny(c, v.status, v.status == 400 ? "INVALID_ARGUMENT" : "PERMISSION_DENIED",
	     v.status == 400 ? "badRequest" : "accessDenied", msg);
	return 0;
}

/* The identity step (access.c): token exchanges answered here, the agent's bearer checked,
 * the Authorization that goes upstream chosen. Returns 1 when the request may go on. */
static int access_step(struct conn *c)
{
	const struct http1_header *h = http1_find(c->req.headers, c->req.num_headers,
						  "authorization");
	char method[32], *az;

	if (c->req.method.len >= sizeof(method))
		return deny(c, 405, "INVALID_ARGUMENT", "badRequest", "sluice: unknown method"), 0;
	memcpy(method, c->req.method.p, c->req.method.len);
	method[c->req.method.len] = '\0';
	az = h ? strndup(h->value.p, h->value.len) : NULL;
	access_result_free(&c->access);
	access_request(c->env, c->sni, method, c->req.target.p, c->req.target.len, az,
		       c->s[CLI].in.p + c->head_len, c->body_len, c->origin.cgroup_id, time(NULL),
		       &c->access);
	free(az);
	switch (c->access.action) {
	case ACCESS_ANSWER:
		record_note(c, "request", request_fields(c, "answered", "identity", NULL));
		reply(c, c->access.status, c->access.body);
		return 0;
	case ACCESS_REFUSE:
		log_info("proxy", "refused %s %s from %s (%s): %s", method, c->sni, c->origin.comm,
			 c->cgroup, c->access.message);
		record_note(c, "request", request_fields(c, "deny", "identity", c->access.message));
		deny(c, c->access.status, c->access.status_name, c->access.reason, c->access.message);
		return 0;
	default:
		return 1;
	}
}

/* The request is complete in s[CLI].in: check it and relay it. */
static void request_ready(struct conn *c)
{
	struct http1_limits lim = { c->env->conf->max_header_bytes,
				    (size_t)c->env->conf->max_headers };
	char host[256];

	/* The head's slices point into s[CLI].in, which may have been moved (realloc) while
	 * the body arrived: parse the head again where it now is (cheap: the head only). */
	c->req.headers = c->req_h;
	if (http1_parse_request(c->s[CLI].in.p, c->head_len, 0, &lim, &c->req, NULL) !=
	    (int)c->head_len) {
		conn_close(c, "request head changed while its body arrived");
		return;
	}
	host_of(c->req.host, host, sizeof(host));
	if (strcasecmp(host, c->sni)) {
		deny(c, 400, "INVALID_ARGUMENT", "badRequest",
		     "sluice: the Host header does not match the TLS server name");
		return;
	}
	if (!access_step(c))
		return;
	switch (approval_poll(c, 0)) {
	case 1:
		return;
	case 2:
		break; /* the approved job: no new decision */
	default:
		if (!decide(c))
			return;
	}
	forward(c);
}

/* --- session recording ----------------------------------------------------------------------- */

/* The fields every request record carries: who, what, and the body as the agent sent it. */
static json_t *request_fields(struct conn *c, const char *decision, const char *rule,
			      const char *reason)
{
	const struct sluice_conf *conf = c->env->conf;
	json_t *o = json_pack("{s:s, s:s%, s:s%, s:s, s:s, s:s, s:s, s:i, s:s}",
		"host", c->sni, "method", c->req.method.p, (size_t)c->req.method.len,
		"path", c->req.target.p, (size_t)c->req.target.len, "identity", c->cgroup,
		"decision", decision, "rule", rule ? rule : "", "reason", reason ? reason : "",
		"pid", (int)c->origin.tgid, "comm", c->origin.comm);

	if (o && c->body_len) {
		json_t *b = json_loadb(c->s[CLI].in.p + c->head_len, c->body_len, 0, NULL), *q;

		/* the SQL as the agent sent it, whole, for replay and audit */
		q = json_object_get(b, "query");
		if (!json_is_string(q))
			q = json_object_get(json_object_get(json_object_get(b, "configuration"),
							    "query"), "query");
		if (json_is_string(q))
			json_object_set(o, "sql", q);
		json_decref(b);
		rec_put_body(o, "body", c->s[CLI].in.p + c->head_len, c->body_len,
			     conf->record_body_bytes);
	}
	if (o && c->access.subject[0]) /* the verified OIDC subject, besides the container */
		json_object_set_new(o, "subject", json_string(c->access.subject));
	if (o && c->submit_body)
		json_object_set_new(o, "submitted_job", json_string(c->submit_body));
	if (o && c->rewritten_sql)
		json_object_set_new(o, "rewritten_sql", json_string(c->rewritten_sql));
	return o;
}

/* Record something that does not hold the request up (a refusal, a response). */
static void record_note(struct conn *c, const char *type, json_t *fields)
{
	if (c->env->rec && fields)
		rec_submit(c->env->rec, c->cgroup[0] ? c->cgroup : NULL, c->origin.cgroup_id, type,
			   fields, NULL, NULL);
	else
		json_decref(fields);
}

static void upstream_go(struct conn *c);

/* The request's record is durable (or failed), on the worker's thread again. */
static void recorded(void *arg)
{
	struct conn *c = arg;
	char msg[300];

	c->recording = 0;
	if (c->st != C_CLOSING) {
		if (c->rec_status) {
			snprintf(msg, sizeof(msg), "sluice: this request could not be recorded (%s), "
				 "so it was not sent: no record, no query. The operator must free space "
				 "or fix the recordings disk", strerror(-c->rec_status));
			log_err("proxy", "%s", msg);
			deny(c, 503, "UNAVAILABLE", "backendError", msg);
		} else {
			c->forwarded_ms = worker_now_ms(c->w);
			upstream_go(c);
			advance(c);
		}
	}
	pump(c);
}

/* From the recorder's thread: hand the outcome back to the connection's worker. */
static void recorded_cb(void *arg, int status)
{
	struct conn *c = arg;

	c->rec_status = status;
	while (worker_post(c->w, recorded, c))
		usleep(1000);
}

/* Relay the current request (or the approved job standing in for it) to BigQuery, once
 * its record is on disk: nothing is forwarded that was not recorded first. */
static void forward(struct conn *c)
{
	json_t *f;
	int rc;

	c->requests++;
	c->st = C_UPSTREAM;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	c->forwarded_ms = worker_now_ms(c->w);
	c->fetching_schema = c->row_mask && c->schema_target;
	if (!c->env->rec) {
		upstream_go(c);
		return;
	}
	f = request_fields(c, c->submit_body ? "approved" : "allow", c->rule, NULL);
	c->recording = 1;
	rc = f ? rec_submit(c->env->rec, c->cgroup[0] ? c->cgroup : NULL, c->origin.cgroup_id,
			    "request", f, recorded_cb, c) : -ENOMEM;
	if (rc) {
		c->recording = 0;
		c->rec_status = rc;
		recorded(c); /* refuses with the reason (rec_submit consumed or freed <f>) */
	}
}

/* Connect (or reuse) the upstream and let the state machine send the request. */
static void upstream_go(struct conn *c)
{
	c->st = C_UPSTREAM;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	if (c->s[UP].fd < 0 && !c->resolving) {
		int rc = choose_upstream(c);

		if (rc < 0) {
			deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: no upstream address for this host");
			return;
		}
		if (rc == 1)
			return; /* on_resolved goes on */
		upstream_open(c);
	}
	advance(c);
}

static void parse_request(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *a = &c->s[CLI];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	const char *why = NULL;
	size_t n;
	long rc;

	if (!c->in_body) {
		if (!a->in.len)
			return;
		if (!c->req_h && !(c->req_h = calloc((size_t)conf->max_headers, sizeof(*c->req_h)))) {
			conn_close(c, "out of memory");
			return;
		}
		c->req.headers = c->req_h;
		rc = http1_parse_request(a->in.p, a->in.len, c->req_last, &lim, &c->req, &why);
		if (rc == -2) {
			c->req_last = a->in.len;
			if (c->deadline > worker_now_ms(c->w) + (uint64_t)conf->header_timeout_ms)
				c->deadline = worker_now_ms(c->w) + (uint64_t)conf->header_timeout_ms;
			return;
		}
		c->req_last = 0;
		if (rc < 0) {
			deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
			return;
		}
		if (c->req.is_connect) {
			deny(c, 400, "INVALID_ARGUMENT", "badRequest", "CONNECT inside TLS");
			return;
		}
		c->head_len = (size_t)rc;
		c->body_have = 0;
		c->in_body = 1;
		if (c->req.body == HTTP1_BODY_LENGTH && c->req.content_length > conf->max_body_bytes) {
			deny(c, 413, "INVALID_ARGUMENT", "badRequest",
			     "sluice: request body larger than limits.body_bytes");
			return;
		}
		if (c->req.body == HTTP1_BODY_CHUNKED)
			http1_chunked_init(&c->chunk, conf->max_body_bytes);
		if (c->req.expect_continue)
			side_write(c, CLI, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	switch (c->req.body) {
	case HTTP1_BODY_NONE:
		c->body_len = 0;
		break;
	case HTTP1_BODY_LENGTH:
		if (a->in.len - c->head_len < c->req.content_length)
			return;
		c->body_len = c->req.content_length;
		break;
	case HTTP1_BODY_CHUNKED:
		/* decode the bytes not yet decoded, in place, right after the decoded ones */
		n = a->in.len - c->head_len - c->body_have;
		rc = http1_chunked_decode(&c->chunk, a->in.p + c->head_len + c->body_have, &n, &why);
		if (rc == -1) {
			deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
			return;
		}
		c->body_have += n;
		if (rc == -2) {
			a->in.len = c->head_len + c->body_have;
			return;
		}
		/* pipelined bytes after the body: keep them right behind it */
		c->body_len = c->body_have;
		a->in.len = c->head_len + c->body_have + (size_t)rc;
		break;
	default:
		deny(c, 400, "INVALID_ARGUMENT", "badRequest", "unsupported request framing");
		return;
	}
	c->in_body = 0;
	request_ready(c);
}

/* The string value of the first <key> (e.g. "\"jobId\":") in JSON text <b>: a bounded scan
 * of the first 64 KiB, for recording only (never for a decision). */
static int json_field(const char *b, size_t len, const char *key, char *out, size_t outlen)
{
	const char *p = memmem(b, len < 65536 ? len : 65536, key, strlen(key)), *e;
	size_t n;

	if (!p)
		return 0;
	p += strlen(key);
	while (p < b + len && (*p == ' ' || *p == '"'))
		p++;
	for (e = p; e < b + len && *e != '"' && *e != ',' && *e != '}' && e - p < 150; e++)
		;
	n = (size_t)(e - p);
	if (!n || n >= outlen)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return 1;
}

/* Content detectors over the response about to be relayed (every string, error messages
 * included): values are masked in place, or the response is withheld. Returns 0 to relay it,
 * -1 when it was refused (the agent got an error instead). */
static int detect_response(struct conn *c, char *body, size_t len)
{
	const struct detect_rules *r = policy_detect(c->env->policy);
	static const char *const names[5] = { "email addresses", "card numbers", "SSNs",
					      "phone numbers", "IBANs" };
	char msg[300];
	int i, n = 0;

	memset(&c->found, 0, sizeof(c->found));
	if (!r || !len)
		return 0;
	detect_json(body, len, r, &c->found);
	if (!c->found.refuse)
		return 0;
	n = snprintf(msg, sizeof(msg), "sluice: the response was withheld: it contains");
	for (i = 0; i < 5; i++)
		if (c->found.count[i] && r->action[i] == DETECT_REFUSE && n < (int)sizeof(msg))
			n += snprintf(msg + n, sizeof(msg) - (size_t)n, " %s", names[i]);
	if (n < (int)sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ", which the policy does not let through");
	deny(c, 403, "PERMISSION_DENIED", "accessDenied", msg); /* policy, not a fault: no retry */
	return -1;
}

/* Rebuild the response head for the agent around a complete, de-chunked body. */
static int send_response(struct conn *c, const char *body, size_t body_len)
{
	const struct http1_response *r = &c->res;
	struct buf b = { 0 };
	char line[128];
	size_t i;
	int rc = 0;

	snprintf(line, sizeof(line), "HTTP/1.1 %d ", r->status);
	out_str(&b, line);
	out_append(&b, r->reason.p, r->reason.len);
	out_str(&b, "\r\n");
	for (i = 0; i < r->num_headers; i++) {
		if (is_hop_by_hop(r->headers[i].name))
			continue;
		out_append(&b, r->headers[i].name.p, r->headers[i].name.len);
		out_str(&b, ": ");
		out_append(&b, r->headers[i].value.p, r->headers[i].value.len);
		out_str(&b, "\r\n");
	}
	if (!(r->status < 200 || r->status == 204 || r->status == 304)) {
		snprintf(line, sizeof(line), "Content-Length: %zu\r\n",
			 c->head_is_head ? (size_t)r->content_length : body_len);
		out_str(&b, line);
	}
	if (!c->req.keep_alive || !r->keep_alive)
		out_str(&b, "Connection: close\r\n");
	out_str(&b, "\r\n");
	if (!b.p || side_write(c, CLI, b.p, b.len) || side_write(c, CLI, body, body_len))
		rc = -1;
	buf_free(&b);
	return rc;
}

static void parse_response(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *u = &c->s[UP];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	const char *why = NULL;
	size_t n, body_len = 0;
	long rc;

	if (!c->res_in_body) {
		if (!c->res_h)
			c->res_h = calloc((size_t)conf->max_headers, sizeof(*c->res_h));
		c->res.headers = c->res_h;
		rc = http1_parse_response(u->in.p, u->in.len, c->res_last, &lim,
					  c->head_is_head ? HTTP1_REQ_HEAD : HTTP1_REQ_OTHER,
					  &c->res, &why);
		if (rc == -2) {
			c->res_last = u->in.len;
			if (u->eof)
				deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: BigQuery closed the connection without a response");
			return;
		}
		c->res_last = 0;
		if (rc < 0) {
			deny(c, 502, "UNAVAILABLE", "backendError", why);
			return;
		}
		if (c->res.status < 200) { /* interim: drop it, wait for the final one */
			buf_consume(&u->in, (size_t)rc);
			parse_response(c);
			return;
		}
		{
			const struct http1_header *ce = http1_find(c->res.headers, c->res.num_headers,
								   "content-encoding");

			if (ce && !http1_slice_ieq(ce->value, "identity")) {
				/* sluice asked for no encoding: it reads every response it relays */
				deny(c, 502, "UNAVAILABLE", "backendError", "sluice: BigQuery answered "
				     "with a compressed body it was not asked for; nothing is relayed");
				return;
			}
		}
		c->res_head_len = (size_t)rc;
		c->res_body_have = 0;
		c->res_in_body = 1;
		if (c->res.body == HTTP1_BODY_CHUNKED)
			http1_chunked_init(&c->res_chunk, conf->max_body_bytes);
	}
	switch (c->res.body) {
	case HTTP1_BODY_NONE:
		break;
	case HTTP1_BODY_LENGTH:
		if (c->res.content_length > conf->max_body_bytes) {
			deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: response larger than limits.body_bytes");
			return;
		}
		if (u->in.len - c->res_head_len < c->res.content_length) {
			if (u->eof)
				deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: BigQuery's response was cut short");
			return;
		}
		body_len = c->res.content_length;
		break;
	case HTTP1_BODY_CHUNKED:
		n = u->in.len - c->res_head_len - c->res_body_have;
		rc = http1_chunked_decode(&c->res_chunk, u->in.p + c->res_head_len + c->res_body_have,
					  &n, &why);
		if (rc == -1) {
			deny(c, 502, "UNAVAILABLE", "backendError", why);
			return;
		}
		c->res_body_have += n;
		u->in.len = c->res_head_len + c->res_body_have + (rc > 0 ? (size_t)rc : 0);
		if (rc == -2) {
			if (u->eof)
				deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: BigQuery's response was cut short");
			return;
		}
		body_len = c->res_body_have;
		break;
	case HTTP1_BODY_UNTIL_CLOSE:
		if (!u->eof)
			return;
		body_len = u->in.len - c->res_head_len;
		c->res.keep_alive = 0;
		break;
	}
	c->res_in_body = 0;
	/* as for requests: the head's slices must point where the head is now */
	c->res.headers = c->res_h;
	if (http1_parse_response(u->in.p, c->res_head_len, 0, &lim, c->head_is_head ?
				 HTTP1_REQ_HEAD : HTTP1_REQ_OTHER, &c->res, NULL) !=
	    (int)c->res_head_len) {
		conn_close(c, "response head changed while its body arrived");
		return;
	}
	if (c->fetching_schema) {
		c->fetching_schema = 0;
		if (c->res.status == 200) {
			/* the schema is in: now the agent's own tabledata.list goes up */
			json_t *t = json_loadb(u->in.p + c->res_head_len, body_len, 0, NULL);

			free(c->schema);
			c->schema = json_object_get(t, "schema") ?
				json_dumps(json_object_get(t, "schema"), JSON_COMPACT) : NULL;
			json_decref(t);
			buf_consume(&u->in, c->res_head_len + body_len);
			if (!c->schema) {
				deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the table's schema "
				     "was not in BigQuery's answer, so its rows cannot be masked");
				return;
			}
			if (!c->res.keep_alive) {
				close(u->fd);
				u->fd = -1;
				tls_conn_free(u->tls);
				u->tls = NULL;
				u->hs_done = u->eof = u->connected = 0;
				u->in.len = 0;
			}
			c->st = C_UPSTREAM;
			if (u->fd < 0)
				upstream_go(c);
			advance(c);
			return;
		}
		/* BigQuery's error about the table (404...) is the agent's answer */
		free(c->row_mask);
		c->row_mask = NULL;
	}
	if (c->row_mask && c->res.status == 200) {
		/* rows of a masked table: masked here by the schema, or withheld */
		struct mask_buf mb = { .max = c->env->conf->max_body_bytes * 2 + 65536 };
		json_t *schema = c->schema ? json_loads(c->schema, 0, NULL) : NULL;
		char err[256];
		struct mask_plan *plan = schema ? mask_plan_new(schema, c->row_mask, err, sizeof(err))
					 : NULL;
		long masked = plan ? mask_rows(plan, u->in.p + c->res_head_len, body_len, &mb) : -1;
		int failed;

		json_decref(schema);
		mask_plan_free(plan);
		free(c->row_mask);
		c->row_mask = NULL;
		if (masked < 0) {
			free(mb.p);
			deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the rows of a table with "
			     "masked columns could not be masked, so they are withheld");
			return;
		}
		if (detect_response(c, mb.p, mb.len)) {
			free(mb.p);
			return;
		}
		failed = send_response(c, mb.p, mb.len);
		free(mb.p);
		if (failed) {
			conn_close(c, "out of memory");
			return;
		}
		goto sent;
	}
	if (c->submit_body && (c->res.status == 200 || c->res.status == 409)) {
		/* the approved job is in BigQuery (409: already, from before a restart); the poll
		 * that carried it is answered as a job still running, and the next goes through */
		mark_submitted(c->poll_job);
		gate_job_seen(c->poll_job);
		free(c->submit_body);
		c->submit_body = NULL;
		if (c->poll == JOBS_GET_QUERY_RESULTS || c->res.status == 409) {
			char *s = c->poll == JOBS_GET_QUERY_RESULTS ?
				jobs_pending_query_response(c->poll_project, c->poll_job, c->poll_loc) :
				jobs_pending_job(c->poll_project, c->poll_job, c->poll_loc, NULL);

			buf_consume(&u->in, c->res_head_len + body_len);
			reply(c, 200, s);
			free(s);
			return;
		}
	}
	free(c->submit_body); /* a failed submit: the agent gets BigQuery's error */
	c->submit_body = NULL;
	free(c->up_body);
	c->up_body = NULL;
	if (c->res.status == 200 && http1_slice_ieq(c->req.method, "POST")) {
		/* a job created through sluice: its results may go to a masked identity */
		char jid[160];

		if (json_field(u->in.p + c->res_head_len, body_len, "\"jobId\":", jid, sizeof(jid)))
			gate_job_seen(jid);
	}
	{
		/* job metadata must show the agent its own query, never the masking rewrite */
		size_t rlen = 0;
		char *restored = gate_restore(u->in.p + c->res_head_len, body_len, &rlen);

		if (restored) {
			int failed;

			if (detect_response(c, restored, rlen)) {
				free(restored);
				return;
			}
			failed = send_response(c, restored, rlen);

			free(restored);
			if (failed) {
				conn_close(c, "out of memory");
				return;
			}
			goto sent;
		}
	}
	if (detect_response(c, u->in.p + c->res_head_len, body_len))
		return;
	if (send_response(c, u->in.p + c->res_head_len, body_len)) {
		conn_close(c, "out of memory");
		return;
	}
sent:
	if (c->env->rec) {
		json_t *f = json_pack("{s:i, s:s%, s:I}", "status", c->res.status, "path",
				      c->req.target.p, (size_t)c->req.target.len, "latency_ms",
				      (json_int_t)(worker_now_ms(c->w) - c->forwarded_ms));
		const char *b = u->in.p + c->res_head_len;
		char v[160];

		/* the outcome an auditor looks for first, read off the body without parsing it */
		if (f && json_field(b, body_len, "\"jobId\":", v, sizeof(v)))
			json_object_set_new(f, "job_id", json_string(v));
		if (f && json_field(b, body_len, "\"totalRows\":", v, sizeof(v)))
			json_object_set_new(f, "rows", json_string(v));
		if (f && json_field(b, body_len, "\"totalBytesProcessed\":", v, sizeof(v)))
			json_object_set_new(f, "bytes_processed", json_string(v));
		if (f && c->found.found)
			json_object_set_new(f, "detected", json_pack("{s:i, s:i, s:i, s:i, s:i}",
				"email", c->found.count[0], "card", c->found.count[1], "ssn",
				c->found.count[2], "phone", c->found.count[3], "iban", c->found.count[4]));
		if (f)
			rec_put_body(f, "body", b, body_len, c->env->conf->record_body_bytes);
		record_note(c, "response", f);
	}
	buf_consume(&u->in, c->res_head_len + body_len);
	if (!c->res.keep_alive) {
		/* the upstream connection is done; a later request opens a new one */
		close(u->fd);
		u->fd = -1;
		tls_conn_free(u->tls);
		u->tls = NULL;
		u->hs_done = u->eof = u->connected = 0;
		u->in.len = 0;
	}
	buf_consume(&c->s[CLI].in, c->head_len + c->body_len);
	if (!c->req.keep_alive) {
		c->close_after_send = 1;
		c->s[CLI].eof = 1;
	}
	c->st = C_REQ;
	c->deadline = worker_now_ms(c->w) + (uint64_t)conf->idle_timeout_ms;
}

/* --- the state machine -------------------------------------------------------------------- */

static void drive_tls(struct conn *c, int i)
{
	struct side *s = &c->s[i];
	const char *why = NULL;
	char tmp[16384];
	long k;
	int rc;

	if (!s->hs_done) {
		rc = tls_conn_handshake(s->tls, &why);
		side_write(c, i, NULL, 0); /* flush handshake records */
		if (rc < 0) {
			if (i == UP) {
				char msg[512];

				snprintf(msg, sizeof(msg), "sluice: upstream TLS verification failed "
					 "for %s: %s; nothing was forwarded", c->sni,
					 why ? why : "handshake failed");
				log_warn("proxy", "%s", msg);
				deny(c, 502, "UNAVAILABLE", "backendError", msg);
				c->st = C_RESP; /* keep the agent's side writable */
			} else {
				conn_close(c, why ? why : "TLS handshake with the agent failed");
			}
			return;
		}
		if (rc == 0)
			return;
		s->hs_done = 1;
		if (i == CLI) {
			c->st = C_REQ;
			c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->header_timeout_ms;
		}
	}
	while ((k = tls_conn_read(s->tls, tmp, sizeof(tmp))) > 0) {
		if (buf_append(&s->in, tmp, (size_t)k,
			       c->env->conf->max_header_bytes + c->env->conf->max_body_bytes)) {
			if (i == CLI)
				deny(c, 413, "INVALID_ARGUMENT", "badRequest",
				     "sluice: request larger than the configured limits");
			else
				deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: response larger than limits.body_bytes");
			return;
		}
	}
	if (k == -2 && !c->reason)
		c->reason = i == CLI ? "TLS error reading from the agent" :
			    "TLS error reading from BigQuery";
	if (k == -1 || k == -2)
		s->eof = 1;
}

static void advance(struct conn *c)
{
	struct side *a = &c->s[CLI], *u = &c->s[UP];

	if (c->st == C_CLOSING)
		return;
	if (a->tls && !c->close_after_send)
		drive_tls(c, CLI);
	if (u->tls && u->connected && c->st != C_CLOSING)
		drive_tls(c, UP);
	switch (c->st) {
	case C_PEEK:
		peek(c);
		break;
	case C_SPLICE:
		if (u->connected && a->in.len && unsent(u) < SPLICE_WINDOW) {
			buf_append(&u->q, a->in.p, a->in.len, SIZE_MAX);
			a->in.len = 0;
		}
		if (u->in.len && unsent(a) < SPLICE_WINDOW) {
			buf_append(&a->q, u->in.p, u->in.len, SIZE_MAX);
			u->in.len = 0;
		}
		if ((a->eof && !unsent(u)) || (u->eof && !unsent(a)))
			c->close_after_send = 1;
		break;
	case C_TLS:
	case C_HOLD: /* waiting for an approver; the tick and proxy_approvals_changed go on */
		break;
	case C_REQ:
		if (!c->close_after_send)
			parse_request(c);
		else if (a->eof && !unsent(a))
			conn_close(c, NULL);
		break;
	case C_UPSTREAM:
		if (u->hs_done) {
			c->head_is_head = http1_slice_ieq(c->req.method, "HEAD");
			if (send_request(c, a->in.p + c->head_len, c->body_len)) {
				conn_close(c, "out of memory");
				break;
			}
			c->st = C_RESP;
		}
		break;
	case C_RESP:
		if (!c->close_after_send)
			parse_response(c);
		break;
	case C_CLOSING:
		break;
	}
	if (c->st != C_CLOSING && a->eof && !c->close_after_send &&
	    (c->st == C_PEEK || c->st == C_TLS || (c->st == C_REQ && !c->in_body && !a->in.len)))
		conn_close(c, NULL);
	if (c->st != C_CLOSING && a->eof && c->st != C_SPLICE && c->st != C_REQ &&
	    !c->close_after_send)
		conn_close(c, "the agent closed the connection mid-request");
}

/* Post what is due: sends of queued bytes, receives where more input is wanted. */
static void pump(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct side *s = &c->s[i];

		if (s->fd < 0 || c->st == C_CLOSING)
			continue;
		if (s->sop.pending || (i == UP && !s->connected))
			continue;
		if (s->out.off == s->out.len && s->q.len) {
			struct buf t = s->out;

			s->out = s->q;
			s->q = t;
			s->q.len = s->q.off = 0;
		}
		if (s->out.len > s->out.off)
			worker_send(c->w, &s->sop, s->fd, s->out.p + s->out.off, s->out.len - s->out.off);
	}
	if (c->close_after_send && !unsent(&c->s[CLI]) && !c->s[CLI].sop.pending &&
	    c->st != C_CLOSING)
		conn_close(c, NULL);
	if (c->st != C_CLOSING) {
		struct side *a = &c->s[CLI], *u = &c->s[UP];
		int want_a = !a->eof && !a->rop.pending && !c->close_after_send &&
			     (c->st != C_SPLICE || unsent(u) < SPLICE_WINDOW) &&
			     (c->st != C_RESP && c->st != C_UPSTREAM && c->st != C_HOLD);
		int want_u = u->fd >= 0 && u->connected && !u->eof && !u->rop.pending &&
			     (c->st == C_UPSTREAM || c->st == C_RESP ||
			      (c->st == C_SPLICE && unsent(a) < SPLICE_WINDOW));

		if (want_a)
			worker_recv(c->w, &a->rop, a->fd);
		if (want_u)
			worker_recv(c->w, &u->rop, u->fd);
	}
	if (c->st == C_CLOSING && !ops_pending(c))
		conn_free(c);
}

/* --- completions -------------------------------------------------------------------------- */

/* The agent's cgroup v2 path ("0::/path" in /proc/TGID/cgroup); "" if it is gone. */
static void read_cgroup(struct conn *c)
{
	char path[64], line[sizeof(c->cgroup) + 3];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/cgroup", c->origin.tgid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(c->cgroup, sizeof(c->cgroup), "%s", line + 3);
		}
	}
	if (f)
		fclose(f);
}

/* The connection_open record: who connected where, before anything is read from it. */
static void record_open(struct conn *c)
{
	char path[64], exe[512] = "", ip[INET6_ADDRSTRLEN] = "";
	ssize_t n;

	if (!c->env->rec)
		return;
	snprintf(path, sizeof(path), "/proc/%u/exe", c->origin.tgid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (c->origin.family == AF_INET)
		inet_ntop(AF_INET, &c->origin.addr[12], ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, c->origin.addr, ip, sizeof(ip));
	record_note(c, "conn_open", json_pack("{s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:s, s:i}",
		"pid", (int)c->origin.pid, "tgid", (int)c->origin.tgid, "uid", (int)c->origin.uid,
		"gid", (int)c->origin.gid, "comm", c->origin.comm, "exe", exe, "cgroup", c->cgroup,
		"netns_cookie", (json_int_t)c->origin.netns_cookie, "dst_addr", ip,
		"dst_port", (int)c->origin.port));
}

void proxy_accepted(struct worker *w, int fd, uint64_t netns)
{
	const struct loop_env *env = worker_env(w);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct conn *c;
	int i, one = 1;

	if (count_conns >= env->conf->max_connections || worker_stopping(w) ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen)) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	count_conns++;
	c->w = w;
	c->env = env;
	c->netns = netns;
	c->opened_ms = c->active_ms = worker_now_ms(w);
	c->route = "deny";
	for (i = 0; i < 2; i++) {
		c->s[i].fd = -1;
		c->s[i].rop.owner = c->s[i].sop.owner = c->s[i].cop.owner = c;
		c->s[i].rop.side = c->s[i].sop.side = c->s[i].cop.side = (uint8_t)i;
	}
	c->s[CLI].fd = fd;
	c->next = *head_of(w);
	if (c->next)
		c->next->prev = c;
	*head_of(w) = c;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->have_origin = redirect_origin(env->redirect, netns, (struct sockaddr *)&peer,
					 &c->origin) == 0;
	if (!c->have_origin) {
		/* Not redirected by sluice (someone dialled the listener): nothing to serve. */
		log_warn("proxy", "connection not made through the redirect: closed");
		conn_close(c, "not redirected");
		pump(c);
		return;
	}
	read_cgroup(c);
	record_open(c);
	c->deadline = c->opened_ms + (uint64_t)env->conf->handshake_timeout_ms;
	if (!inspected_port(env->conf, c->origin.port))
		start_splice(c); /* server-speaks-first protocols must not wait for the agent */
	pump(c);
}

void proxy_on_recv(struct worker *w, struct op *op, int res, const char *data, size_t len)
{
	struct conn *c = op->owner;
	struct side *s = &c->s[op->side];

	c->active_ms = worker_now_ms(w);
	c->trimmed = 0;
	if (c->st != C_CLOSING) {
		if (res <= 0) {
			if (res < 0 && !c->reason)
				c->reason = op->side == CLI ? "receive error from the agent" :
					    "receive error from BigQuery";
			else if (!c->reason && op->side == UP && c->st != C_SPLICE)
				c->reason = "BigQuery closed the connection";
			s->eof = 1;
		} else {
			if (op->side == CLI)
				s->bytes_in += len;
			if (c->st == C_SPLICE) /* spliced: any traffic keeps it alive */
				c->deadline = worker_now_ms(w) + (uint64_t)c->env->conf->idle_timeout_ms;
			if (s->tls) {
				if (tls_conn_feed(s->tls, data, len))
					conn_close(c, "TLS input error");
			} else if (c->st == C_SPLICE && c->s[!op->side].fd >= 0 &&
				   (op->side == UP || c->s[UP].connected) && !s->in.len) {
				buf_append(&c->s[!op->side].q, data, len, SIZE_MAX); /* one copy */
			} else if (buf_append(&s->in, data, len, c->env->conf->max_header_bytes +
							 c->env->conf->max_body_bytes)) {
				conn_close(c, "input larger than the configured limits");
			}
		}
		advance(c);
	}
	pump(c);
}

/* Between requests a connection keeps no buffers: idle agents cost little memory. */
static void idle_trim(struct conn *c)
{
	int i;

	if (c->trimmed || c->st != C_REQ || c->in_body || c->close_after_send)
		return;
	for (i = 0; i < 2; i++) {
		struct side *s = &c->s[i];

		if (s->sop.pending || unsent(s) || s->in.len)
			return;
	}
	for (i = 0; i < 2; i++) {
		buf_free(&c->s[i].in);
		buf_free(&c->s[i].out);
		buf_free(&c->s[i].q);
		if (c->s[i].tls)
			tls_conn_trim(c->s[i].tls);
	}
	free(c->req_h);
	c->req_h = NULL;
	free(c->res_h);
	c->res_h = NULL;
	c->trimmed = 1;
}

void proxy_on_send(struct worker *w, struct op *op, int res)
{
	struct conn *c = op->owner;
	struct side *s = &c->s[op->side];

	if (res < 0) {
		conn_close(c, "send failed");
	} else {
		s->out.off += (size_t)res;
		if (op->side == CLI)
			s->bytes_out += (size_t)res;
		if (s->out.off == s->out.len)
			s->out.off = s->out.len = 0;
		advance(c);
	}
	pump(c);
}

void proxy_on_connect(struct worker *w, struct op *op, int res)
{
	struct conn *c = op->owner;
	struct side *u = &c->s[UP];

	u->connecting = 0;
	if (c->st != C_CLOSING) {
		if (res < 0) {
			if (c->st == C_SPLICE) {
				conn_close(c, "original destination refused the connection");
			} else {
				deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: cannot connect to the BigQuery endpoint");
				c->st = C_RESP;
			}
		} else {
			u->connected = 1;
			advance(c);
		}
	}
	pump(c);
}

void proxy_tick(struct worker *w)
{
	struct conn *c, *next;
	uint64_t now = worker_now_ms(w);

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (c->st == C_REQ && !c->trimmed && now - c->active_ms > 1000)
			idle_trim(c);
		if (c->st == C_HOLD && now >= c->hold_until) {
			hold_recheck(c, 1);
			pump(c);
			continue;
		}
		if (c->st != C_CLOSING && c->deadline && now > c->deadline) {
			conn_close(c, c->st == C_PEEK || c->st == C_TLS ? "handshake timeout"
				      : c->st == C_REQ ? "idle or header timeout" : "timeout");
			pump(c);
		}
	}
}

void proxy_shutdown(struct worker *w, int force)
{
	struct conn *c, *next;

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (force || c->st == C_PEEK || c->st == C_TLS ||
		    (c->st == C_REQ && !c->in_body && !c->s[CLI].in.len)) {
			conn_close(c, "sluiced is stopping");
			pump(c);
		} else {
			c->req.keep_alive = 0; /* finish this request, then close */
		}
	}
}
