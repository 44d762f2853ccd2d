/* exchange.c - one request from the agent to BigQuery. A complete, bounded request goes
 * through the identity step (access.c: token endpoints answered here, the agent's bearer
 * checked, sluiced's credential chosen), polls of jobs that waited for approval (hold.c),
 * the decision (gate.c: API model, analyzer, policy, masking rewrite), and
 * exchange_forward(), which waits for the request's record to be durable before anything
 * goes upstream. */
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

static json_t *request_fields(struct conn *c, const char *decision, const char *rule,
			      const char *reason);


/* Build the upstream request: same method, target and end-to-end headers; the body (now
 * contiguous and de-chunked) with a Content-Length. */
int exchange_send_request(struct conn *c, const char *body, size_t body_len)
{
	/* written in place where conn_write would copy it to (see conn_plain) */
	struct buf *bp = conn_plain(c, UP), b = *bp;
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
		if (conn_hop_by_hop(r->headers[i].name) ||
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
	{
		/* BigQuery compresses for agents that accept gzip; sluice inflates to read the
		 * response and compresses what it relays again (respond.c) */
		const struct http1_header *ae = http1_find(r->headers, r->num_headers,
							   "accept-encoding");

		c->asked_gzip = ae && (http1_accepts_coding(ae->value, "gzip") ||
				       http1_accepts_coding(ae->value, "x-gzip"));
		if (c->asked_gzip)
			out_str(&b, "Accept-Encoding: gzip\r\n");
	}
	out_str(&b, "Via: 1.1 sluice\r\n");
	if (!c->fetching_schema && (body_len || r->body != HTTP1_BODY_NONE || c->submit_body)) {
		snprintf(num, sizeof(num), "Content-Length: %zu\r\n", body_len);
		out_str(&b, num);
	}
	out_str(&b, "\r\n");
	out_append(&b, body, body_len);
	if (!b.p)
		rc = -1;
	*bp = b;
	return rc;
}

/* The token endpoints: their requests carry credentials and are answered by access.c. */
static int is_token_host(const char *sni)
{
	return !strcasecmp(sni, "oauth2.googleapis.com") || !strcasecmp(sni, "sts.googleapis.com") ||
	       !strcasecmp(sni, "iamcredentials.googleapis.com");
}

/* Headers Google's front end acts on that the API model would have to guess about: a
 * method override given twice (which one wins?), a response field mask (responses are
 * relayed whole, like fields=). Returns why the request is refused, or NULL. */
static const char *header_refusal(const struct http1_request *r)
{
	size_t i, overrides = 0;

	for (i = 0; i < r->num_headers; i++) {
		if (http1_slice_ieq(r->headers[i].name, "x-http-method-override"))
			overrides++;
		if (http1_slice_ieq(r->headers[i].name, "x-goog-fieldmask"))
			return "sluice: header X-Goog-FieldMask is refused (responses are returned "
			       "whole): leave it out";
	}
	return overrides > 1 ? "sluice: X-HTTP-Method-Override appears more than once; send it "
			       "once" : NULL;
}

/* Decide the request (API model, SQL analyzer, policy). Returns 1 when it may go on. */
static int decide(struct conn *c)
{
	const char *groups[POLICY_MAX_LIST];
	struct policy_subject sub = { .cgroup = c->cgroup, .identity = conn_identity(c),
				       .groups = groups };
	struct gate_request g = { .host = c->sni, .target = c->req.target.p,
				  .target_len = c->req.target.len,
				  .body = c->s[CLI].in.p + c->head_len, .body_len = c->body_len };
	char method[32], override[32], ctype[256], cenc[64], msg[700];
	const char *refusal;
	struct gate_verdict v;
	int i;

	if (c->req.method.len >= sizeof(method))
		return conn_deny(c, 405, "INVALID_ARGUMENT", "badRequest", "sluice: unknown method"), 0;
	memcpy(method, c->req.method.p, c->req.method.len);
	method[c->req.method.len] = '\0';
	/* Token endpoints without identity are relayed as they are. */
	if (is_token_host(c->sni))
		return 1;
	if ((refusal = header_refusal(&c->req))) {
		conn_record(c, "request", request_fields(c, "deny", "api-model", refusal));
		conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", refusal);
		return 0;
	}
	g.method = method;
	g.method_override = conn_header(&c->req, "x-http-method-override", override, sizeof(override));
	g.content_type = conn_header(&c->req, "content-type", ctype, sizeof(ctype));
	g.content_encoding = conn_header(&c->req, "content-encoding", cenc, sizeof(cenc));
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
	free(c->job_project);
	c->row_mask = v.row_mask;
	c->schema_target = v.schema_target;
	c->job_project = v.job_project;
	c->schema = NULL;
	v.body = v.rewritten_sql = v.schema_target = v.job_project = NULL;
	v.row_mask = NULL;
	if (v.d.verdict == POLICY_ALLOW)
		return 1;
	if (v.d.verdict == POLICY_APPROVE && c->env->approve) {
		if (c->up_body) { /* the job to submit once approved is the masked one */
			g.body = c->up_body;
			g.body_len = strlen(c->up_body);
		}
		return hold_request(c, &g, &sub, &v);
	}
	snprintf(msg, sizeof(msg), "%s", v.d.reason);
	log_info("proxy", "refused %s from %s (%s): %s", v.method_id ? v.method_id : method,
		 c->origin.comm, c->cgroup, msg);
	conn_record(c, "request", request_fields(c, "deny", v.d.rule, msg));
	conn_deny(c, v.status, v.status == 400 ? "INVALID_ARGUMENT" : "PERMISSION_DENIED",
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
		return conn_deny(c, 405, "INVALID_ARGUMENT", "badRequest", "sluice: unknown method"), 0;
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
		if (c->access.status != 200 && !c->access.message[0]) {
			/* the refusal's own words: OAuth's error_description, else the status */
			json_t *b = json_loads(c->access.body ? c->access.body : "", 0, NULL);
			const char *d = json_string_value(json_object_get(b, "error_description"));

			snprintf(c->access.message, sizeof(c->access.message), "%s%s%d",
				 d ? d : "", d ? "; answered " : "answered ", c->access.status);
			json_decref(b);
		}
		conn_record(c, "request", request_fields(c, c->access.status == 200 ? "answered" :
							 "deny", "identity", c->access.message));
		conn_reply(c, c->access.status, c->access.body);
		return 0;
	case ACCESS_REFUSE:
		log_info("proxy", "refused %s %s from %s (%s): %s", method, c->sni, c->origin.comm,
			 c->cgroup, c->access.message);
		conn_record(c, "request", request_fields(c, "deny", "identity", c->access.message));
		conn_deny(c, c->access.status, c->access.status_name, c->access.reason, c->access.message);
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
	conn_host_of(c->req.host, host, sizeof(host));
	if (strcasecmp(host, c->sni)) {
		conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest",
		     "sluice: the Host header does not match the TLS server name");
		return;
	}
	if (!access_step(c))
		return;
	switch (hold_poll(c, 0)) {
	case 1:
		return;
	case 2:
		break; /* the approved job: no new decision */
	default:
		if (!decide(c))
			return;
	}
	exchange_forward(c);
}

/* --- session recording ----------------------------------------------------------------------- */

/* Set <key> of <o> to the string s[0..n). Returns 0 or -1. */
static int rf_str(json_t *o, const char *key, const char *s, size_t n)
{
	return json_object_set_new_nocheck(o, key, json_stringn_nocheck(s, n));
}

/* The fields every request record carries: who, what, and the body as the agent sent it. */
static json_t *request_fields(struct conn *c, const char *decision, const char *rule,
			      const char *reason)
{
	const struct sluice_conf *conf = c->env->conf;
	/* Built member by member, without json_pack's format parsing and UTF-8 checks: the
	 * record's serializer (recjson) refuses a string that is not UTF-8, and the record
	 * with it, as json_pack did. */
	json_t *o = json_object();

	if (o && (rf_str(o, "host", c->sni, strlen(c->sni)) ||
		  rf_str(o, "method", c->req.method.p, c->req.method.len) ||
		  rf_str(o, "path", c->req.target.p, c->req.target.len) ||
		  rf_str(o, "identity", c->cgroup, strlen(c->cgroup)) ||
		  rf_str(o, "decision", decision, strlen(decision)) ||
		  rf_str(o, "rule", rule ? rule : "", rule ? strlen(rule) : 0) ||
		  rf_str(o, "reason", reason ? reason : "", reason ? strlen(reason) : 0) ||
		  json_object_set_new_nocheck(o, "pid", json_integer((json_int_t)c->origin.tgid)) ||
		  rf_str(o, "comm", c->origin.comm, strnlen(c->origin.comm,
							    sizeof(c->origin.comm))))) {
		json_decref(o);
		return NULL;
	}

	if (o && c->body_len && is_token_host(c->sni)) {
		/* a token exchange's body holds a live credential (the agent's OIDC token, a
		 * refresh token): what was asked is recorded, never the secret */
		json_object_set_new(o, "body_withheld", json_string("a credential exchange"));
	} else if (o && c->body_len) {
		json_t *b = json_loadb(c->s[CLI].in.p + c->head_len, c->body_len, 0, NULL), *q;

		/* the SQL as the agent sent it, whole, for replay and audit: a job's own
		 * (configuration.query.query) before any top-level "query" beside it */
		q = json_object_get(json_object_get(json_object_get(b, "configuration"), "query"),
				    "query");
		if (!json_is_string(q))
			q = json_object_get(b, "query");
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


void exchange_record_request(struct conn *c, const char *decision, const char *rule,
			     const char *reason)
{
	conn_record(c, "request", request_fields(c, decision, rule, reason));
}

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
			conn_deny(c, 503, "UNAVAILABLE", "backendError", msg);
		} else {
			c->forwarded_ms = worker_now_ms(c->w);
			conn_upstream_go(c);
			conn_advance(c);
		}
	}
	conn_pump(c);
}

/* From the recorder's thread: hand the outcome back to the connection's worker. */
static void recorded_cb(void *arg, int status)
{
	struct conn *c = arg;

	c->rec_status = status;
	worker_post_call(c->w, &c->rec_call, recorded, c);
}

/* Relay the current request (or the approved job standing in for it) to BigQuery, once
 * its record is on disk: nothing is forwarded that was not recorded first. */
void exchange_forward(struct conn *c)
{
	json_t *f;
	int rc;

	if (c->recording) { /* one request at a time; never reached, and never let through */
		conn_close(c, "internal: a request while the last one's record was pending");
		return;
	}
	c->requests++;
	c->st = C_UPSTREAM;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	c->forwarded_ms = worker_now_ms(c->w);
	c->fetching_schema = c->row_mask && c->schema_target;
	if (!c->env->rec) {
		conn_upstream_go(c);
		return;
	}
	f = request_fields(c, c->submit_body ? "approved" : "allow", c->rule, NULL);
	c->recording = 1;
	rc = f ? rec_submit_stream(c->env->rec, c->stream, c->origin.cgroup_id, "request", f,
				   recorded_cb, c) : -ENOMEM;
	if (rc) {
		c->recording = 0;
		c->rec_status = rc;
		recorded(c); /* refuses with the reason (rec_submit consumed or freed <f>) */
	}
}

void exchange_parse_request(struct conn *c)
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
			conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
			return;
		}
		if (c->req.is_connect) {
			conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", "CONNECT inside TLS");
			return;
		}
		c->head_len = (size_t)rc;
		c->body_have = 0;
		c->in_body = 1;
		if (c->req.body == HTTP1_BODY_LENGTH && c->req.content_length > conf->max_body_bytes) {
			conn_deny(c, 413, "INVALID_ARGUMENT", "badRequest",
			     "sluice: request body larger than limits.body_bytes");
			return;
		}
		if (c->req.body == HTTP1_BODY_CHUNKED)
			http1_chunked_init(&c->chunk, conf->max_body_bytes);
		if (c->req.expect_continue)
			conn_write(c, CLI, "HTTP/1.1 100 Continue\r\n\r\n", 25);
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
		if (rc == -1 && why == http1_body_too_large) {
			conn_deny(c, 413, "INVALID_ARGUMENT", "badRequest",
				  "sluice: request body larger than limits.body_bytes");
			return;
		}
		if (rc == -1) {
			conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
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
		conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", "unsupported request framing");
		return;
	}
	c->in_body = 0;
	request_ready(c);
}

