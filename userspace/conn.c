/* conn.c - what every part of a connection uses: its buffers, writing to a side (through
 * TLS when that side is terminated), the replies sluice sends in BigQuery's shape, and
 * notes to the session recording. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "record.h"

/* Bytes a side still has to send, in flight or queued. */
size_t unsent(const struct side *s)
{
	return s->out.len - s->out.off + s->q.len + s->pt.len;
}

/* Queue plaintext for side <i>. A terminated side keeps it in <pt> until conn_seal: every
 * SSL_write costs a record (header, tag, a cipher setup) however little it carries, and the
 * pieces of one message (a head, its body) are written one after the other. A write of a
 * record or more with nothing before it is encrypted at once from where it is: copying it
 * into <pt> first would cost a pass over every byte of a large response and gain nothing. */
int conn_write(struct conn *c, int i, const void *p, size_t n)
{
	struct side *s = &c->s[i];

	if (!s->tls)
		return buf_append(&s->q, p, n, SIZE_MAX);
	if (!n) /* the handshake's records go out now */
		return conn_seal(c, i);
	if (n >= CONN_RECORD && !s->pt.len && s->hs_done)
		return tls_conn_write(s->tls, p, n) == (long)n ? 0 : -1;
	return buf_append(&s->pt, p, n, SIZE_MAX);
}

struct buf *conn_plain(struct conn *c, int i)
{
	return c->s[i].tls ? &c->s[i].pt : &c->s[i].q;
}

int conn_sink(void *q, const void *p, size_t n)
{
	return buf_append(q, p, n, SIZE_MAX);
}

/* Encrypt <pt> with one SSL_write (records of up to 16 KiB). The ciphertext, with any
 * record OpenSSL wrote by itself before it (handshake, tickets), is in the send queue: by
 * the sink as it was written, else taken out here. */
int conn_seal(struct conn *c, int i)
{
	struct side *s = &c->s[i];
	size_t pend;
	long k;

	if (!s->tls)
		return 0;
	if (s->pt.len) {
		pend = s->pt.len;
		s->pt.len = 0;
		if (tls_conn_write(s->tls, s->pt.p, pend) != (long)pend)
			return -1;
	}
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
void conn_deny(struct conn *c, int status, const char *status_text, const char *reason,
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
		conn_write(c, CLI, out, (size_t)n);
	c->close_after_send = 1;
	c->linger_wanted = 1;
	c->s[CLI].eof = 1; /* read nothing more from the agent */
}

/* Strip ":port" from an authority into <out>. */
void conn_host_of(struct http1_slice a, char *out, size_t outlen)
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

/* --- HTTP relay ---------------------------------------------------------------------------- */

/* Headers that do not go upstream: hop-by-hop ones, those sluice rewrites, and
 * Accept-Encoding: sluice reads every response (to put back the agent's own SQL, to mask,
 * to record), so BigQuery answers it uncompressed. Nor any credential or account choice of
 * the agent's: requests go as sluiced's own credential, billed where it says (an API key,
 * cookies, a user project to bill, an IAM token). */
int conn_hop_by_hop(struct http1_slice n)
{
	static const char *const hop[] = { "connection", "keep-alive", "proxy-connection",
		"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
		"content-length", "expect", "accept-encoding", "cookie", "x-goog-api-key",
		"x-goog-authuser", "x-goog-user-project", "x-goog-iam-authorization-token",
		"x-goog-iam-authority-selector", NULL };
	int i;

	for (i = 0; hop[i]; i++)
		if (http1_slice_ieq(n, hop[i]))
			return 1;
	return 0;
}

int out_append(struct buf *b, const char *s, size_t n)
{
	return buf_append(b, s, n, SIZE_MAX);
}

int out_str(struct buf *b, const char *s)
{
	return out_append(b, s, strlen(s));
}

/* Copy header <name>'s value into <out> ("" when absent or too long: then it is refused
 * upstream of here by the route model as an unknown form). */
const char *conn_header(const struct http1_request *r, const char *name, char *out, size_t n)
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
void conn_reply(struct conn *c, int status, const char *json)
{
	char head[256];
	size_t n = json ? strlen(json) : 0;
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json; "
			  "charset=UTF-8\r\nContent-Length: %zu\r\n%s\r\n", status,
			  http1_status_text(status), n, c->req.keep_alive ? "" : "Connection: close\r\n");

	if (!json || conn_write(c, CLI, head, (size_t)hl) || conn_write(c, CLI, json, n)) {
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
void conn_reply_error(struct conn *c, int status, const char *reason, const char *msg)
{
	char out[2048], *body;
	int n = http1_write_json_error(out, sizeof(out), status, status == 403 ?
				       "PERMISSION_DENIED" : "INVALID_ARGUMENT", reason, msg, 1);

	body = n > 0 ? strstr(out, "\r\n\r\n") : NULL;
	conn_reply(c, status, body ? body + 4 : NULL);
}


/* Record something that does not hold the request up (a refusal, a response). */
void conn_record(struct conn *c, const char *type, json_t *fields)
{
	if (c->env->rec && fields)
		rec_submit_stream(c->env->rec, c->stream, c->origin.cgroup_id, type, fields,
				  NULL, NULL);
	else
		json_decref(fields);
}


/* Who asks: the verified OIDC subject when there is one (so that an approval window, a
 * retry or a job is that agent's), else the container. */
const char *conn_identity(const struct conn *c)
{
	return c->access.subject[0] ? c->access.subject : c->cgroup;
}
