/* respond.c - one response from BigQuery to the agent: read (bounded), put back to the SQL
 * the agent wrote, rows of masked tables masked by schema, passed through the content
 * detectors, recorded, and relayed. */
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
#include "exchange.h"
#include "gate.h"
#include "hold.h"
#include "log.h"
#include "record.h"
#include "respond.h"

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
	conn_deny(c, 403, "PERMISSION_DENIED", "accessDenied", msg); /* policy, not a fault: no retry */
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
		if (conn_hop_by_hop(r->headers[i].name))
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
	if (!b.p || conn_write(c, CLI, b.p, b.len) || conn_write(c, CLI, body, body_len))
		rc = -1;
	buf_free(&b);
	return rc;
}

void respond_parse(struct conn *c)
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
				conn_deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: BigQuery closed the connection without a response");
			return;
		}
		c->res_last = 0;
		if (rc < 0) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError", why);
			return;
		}
		if (c->res.status < 200) { /* interim: drop it, wait for the final one */
			buf_consume(&u->in, (size_t)rc);
			respond_parse(c);
			return;
		}
		{
			const struct http1_header *ce = http1_find(c->res.headers, c->res.num_headers,
								   "content-encoding");

			if (ce && !http1_slice_ieq(ce->value, "identity")) {
				/* sluice asked for no encoding: it reads every response it relays */
				conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: BigQuery answered "
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
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: response larger than limits.body_bytes");
			return;
		}
		if (u->in.len - c->res_head_len < c->res.content_length) {
			if (u->eof)
				conn_deny(c, 502, "UNAVAILABLE", "backendError",
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
			conn_deny(c, 502, "UNAVAILABLE", "backendError", why);
			return;
		}
		c->res_body_have += n;
		u->in.len = c->res_head_len + c->res_body_have + (rc > 0 ? (size_t)rc : 0);
		if (rc == -2) {
			if (u->eof)
				conn_deny(c, 502, "UNAVAILABLE", "backendError",
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
				conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the table's schema "
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
				conn_upstream_go(c);
			conn_advance(c);
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
			conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the rows of a table with "
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
		hold_mark_submitted(c->poll_job);
		gate_job_seen(c->poll_job);
		free(c->submit_body);
		c->submit_body = NULL;
		if (c->poll == JOBS_GET_QUERY_RESULTS || c->res.status == 409) {
			char *s = c->poll == JOBS_GET_QUERY_RESULTS ?
				jobs_pending_query_response(c->poll_project, c->poll_job, c->poll_loc) :
				jobs_pending_job(c->poll_project, c->poll_job, c->poll_loc, NULL);

			buf_consume(&u->in, c->res_head_len + body_len);
			conn_reply(c, 200, s);
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
		conn_record(c, "response", f);
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

