/* respond.c - one response from BigQuery to the agent.
 *
 * A response up to limits.buffer_bytes is read whole: job metadata put back to the SQL the
 * agent wrote (gate_restore), rows of masked tables masked by schema (mask.c), every string
 * through the content detectors, then relayed with a Content-Length; a detector refusal is
 * a 403. A larger response streams: jsonseg.c cuts it into rows and members, each is
 * filtered the same way as it arrives and relayed chunked, so memory stays bounded by
 * limits.value_bytes whatever the size. The head is gone by then, so a failure or a refusal
 * mid-stream cuts the connection: the agent gets a broken response, never the value.
 *
 * gzip: BigQuery is asked for it when the agent accepts it (exchange.c); sluice inflates it
 * (bounded, so a small body cannot inflate without limit), filters, and compresses what it
 * relays again. The response record holds what the agent received, masked. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "conn.h"
#include "exchange.h"
#include "gate.h"
#include "hold.h"
#include "jobseen.h"
#include "jsonseg.h"
#include "log.h"
#include "record.h"
#include "respond.h"

#define FLUSH_BYTES (256 * 1024) /* filtered bytes relayed at once while streaming */
#define FIRST_BYTES 65536        /* the start of a streamed body kept for its record */
#define OUTCOME_HEAD 65536       /* bytes of a body's start searched for the outcome's keys */
#define OUTCOME_TAIL 4096        /* ... and of its end, read backwards */
#define OUTCOME_MEMBERS 32       /* trailing members read */
#define OUT_GAP 16               /* bytes kept before the filtered text for a chunk's size line */

struct respond_stream {
	int gunzip;            /* BigQuery's body is gzip: inflate it, gzip what is relayed */
	int z_end;             /* ... and its gzip stream has ended */
	int zi_ok, zo_ok;
	z_stream zi, zo;
	struct buf plain;      /* inflated body not yet filtered */
	int streaming;         /* the head is out: the body goes as it is filtered */
	int chunked;           /* ... in chunks (else until close, to an HTTP/1.0 agent) */
	struct jsonseg seg;
	struct mask_plan *plan; /* rows of a masked table */
	struct mask_buf out;   /* filtered text not yet relayed, after OUT_GAP bytes */
	EVP_MD_CTX *sha;       /* of all the filtered text relayed; of a whole body, of the
				* plain bytes as they arrive (while <hashing>) */
	int hashing;
	size_t hashed;         /* ... bytes of it hashed so far */
	uint64_t relayed;
	struct buf first;      /* its first FIRST_BYTES, for the record */
	char tail[OUTCOME_TAIL]; /* ... and its last bytes, for the outcome */
	size_t tail_len;
};

void respond_free(struct conn *c)
{
	struct respond_stream *rs = c->rs;

	if (!rs)
		return;
	if (rs->zi_ok)
		inflateEnd(&rs->zi);
	if (rs->zo_ok)
		deflateEnd(&rs->zo);
	buf_free(&rs->plain);
	buf_free(&rs->first);
	mask_plan_free(rs->plan);
	free(rs->out.p);
	EVP_MD_CTX_free(rs->sha);
	free(rs);
	c->rs = NULL;
}

static struct respond_stream *rs_get(struct conn *c)
{
	if (!c->rs)
		c->rs = calloc(1, sizeof(*c->rs));
	return c->rs;
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

/* --- the outcome, for the record ------------------------------------------------------------ */


/* The outcome's keys, in the order of struct respond_outcome's fields. */
static const struct {
	const char *pat; /* "\"key\":" */
	size_t len;
} outcome_keys[3] = {
	{ "\"jobId\":", 8 }, { "\"totalRows\":", 12 }, { "\"totalBytesProcessed\":", 22 },
};

static char *outcome_slot(struct respond_outcome *o, int i)
{
	return i == 0 ? o->job_id : i == 1 ? o->rows : o->bytes_processed;
}

/* The value that starts at <p> (before <e>) into <out>: a string's text up to its quote, or
 * a scalar, at most 150 bytes (as the records have always shown it). Returns 1, or 0 when
 * there is none or it does not fit. */
static int outcome_value(const char *p, const char *e, char *out, size_t outlen)
{
	const char *v;
	size_t n;

	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '"'))
		p++;
	for (v = p; v < e && *v != '"' && *v != ',' && *v != '}' && v - p < 150; v++)
		;
	n = (size_t)(v - p);
	if (!n || n >= outlen)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return 1;
}

static int json_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* The opening quote of the string whose closing quote is at t[end], not before t[lo]: the
 * nearest quote before it that no odd run of backslashes escapes. Returns its index, or -1. */
static long string_start(const char *t, size_t lo, size_t end)
{
	const char *q;
	size_t k;

	while (end > lo && (q = memrchr(t + lo, '"', end - lo))) {
		end = (size_t)(q - t);
		for (k = 0; k < end && t[end - 1 - k] == '\\'; k++)
			;
		if (!(k & 1))
			return (long)end;
	}
	return -1;
}

/* The members at the end of the document t[0..len), read backwards while their values are
 * strings or scalars; fills the outcome's empty fields. */
static void outcome_tail(const char *t, size_t len, struct respond_outcome *o)
{
	size_t lo = len > OUTCOME_TAIL ? len - OUTCOME_TAIL : 0, i = len, v, ve;
	long j;
	int m, k;

	while (i > lo && json_ws(t[i - 1]))
		i--;
	if (i <= lo || t[i - 1] != '}')
		return;
	i--;
	for (m = 0; m < OUTCOME_MEMBERS; m++) {
		while (i > lo && json_ws(t[i - 1]))
			i--;
		if (i <= lo)
			return;
		ve = i;
		if (t[i - 1] == '"') {
			if ((j = string_start(t, lo, i - 1)) < 0)
				return;
			i = (size_t)j;
		} else {
			while (i > lo && (isalnum((unsigned char)t[i - 1]) || t[i - 1] == '-' ||
					  t[i - 1] == '+' || t[i - 1] == '.'))
				i--;
			if (i == ve)
				return; /* an array or object: the rows are before it */
		}
		v = i;
		while (i > lo && json_ws(t[i - 1]))
			i--;
		if (i <= lo || t[i - 1] != ':')
			return;
		i--;
		while (i > lo && json_ws(t[i - 1]))
			i--;
		if (i <= lo || t[i - 1] != '"' || (j = string_start(t, lo, i - 1)) < 0)
			return;
		for (k = 1; k < 3; k++) /* "jobId" is not a top-level member */
			if (!*outcome_slot(o, k) && i - (size_t)j == outcome_keys[k].len - 1 &&
			    !memcmp(t + j, outcome_keys[k].pat, outcome_keys[k].len - 1))
				outcome_value(t + v, t + ve, outcome_slot(o, k), 160);
		i = (size_t)j;
		while (i > lo && json_ws(t[i - 1]))
			i--;
		if (i <= lo || t[i - 1] != ',')
			return;
		i--;
	}
}

void respond_outcome(const char *head, size_t head_len, const char *tail, size_t tail_len,
		     struct respond_outcome *o)
{
	size_t h = head_len < OUTCOME_HEAD ? head_len : OUTCOME_HEAD;
	const char *p = memmem(head, h, "\"rows\":", 7);
	int i;

	memset(o, 0, sizeof(*o));
	if (p)
		h = (size_t)(p - head);
	for (i = 0; i < 3; i++)
		if ((p = memmem(head, h, outcome_keys[i].pat, outcome_keys[i].len)))
			outcome_value(p + outcome_keys[i].len, head + head_len, outcome_slot(o, i),
				      160);
	if (!*o->rows || !*o->bytes_processed)
		outcome_tail(tail, tail_len, o);
}

/* What the agent is told when a detector's finding is refused by the policy. */
static void refusal(const struct conn *c, char *msg, size_t len)
{
	const struct detect_rules *r = policy_detect(c->env->policy);
	static const char *const names[5] = { "email addresses", "card numbers", "SSNs",
					      "phone numbers", "IBANs" };
	int i, n = snprintf(msg, len, "sluice: the response was withheld: it contains");

	for (i = 0; i < 5; i++)
		if (c->found.count[i] && r->action[i] == DETECT_REFUSE && n < (int)len)
			n += snprintf(msg + n, len - (size_t)n, " %s", names[i]);
	if (n < (int)len)
		snprintf(msg + n, len - (size_t)n, ", which the policy does not let through");
}

/* Content detectors over the response about to be relayed (every string, error messages
 * included): values are masked in place, or the response is withheld. Returns 0 to relay it,
 * -1 when it was refused (the agent got an error instead). */
static int detect_response(struct conn *c, char *body, size_t len)
{
	const struct detect_rules *r = policy_detect(c->env->policy);
	char msg[300];

	memset(&c->found, 0, sizeof(c->found));
	if (!r || !len)
		return 0;
	detect_json(body, len, r, &c->found);
	if (!c->found.refuse)
		return 0;
	refusal(c, msg, sizeof(msg));
	conn_deny(c, 403, "PERMISSION_DENIED", "accessDenied", msg); /* policy, not a fault: no retry */
	return -1;
}

/* --- the body as framed: after the head in s[UP].in -------------------------------------- */

/* De-chunk, in place, what arrived since the last call. Returns 0, or -1 with *why. */
static int dechunk(struct conn *c, const char **why)
{
	struct side *u = &c->s[UP];
	size_t n;
	long rc;

	if (c->res.body != HTTP1_BODY_CHUNKED || c->res_chunk_end)
		return 0;
	n = u->in.len - c->res_head_len - c->res_body_have;
	rc = http1_chunked_decode(&c->res_chunk, u->in.p + c->res_head_len + c->res_body_have, &n,
				  why);
	if (rc == -1)
		return -1;
	c->res_body_have += n;
	u->in.len = c->res_head_len + c->res_body_have + (rc > 0 ? (size_t)rc : 0);
	c->res_chunk_end = rc >= 0;
	return 0;
}

/* Body bytes at hand right after the head; *done when that is the rest of the body. */
static size_t body_avail(const struct conn *c, int *done)
{
	const struct side *u = &c->s[UP];
	size_t have = u->in.len - c->res_head_len;
	uint64_t left = c->res.content_length - c->res_taken;

	switch (c->res.body) {
	case HTTP1_BODY_NONE:
		*done = 1;
		return 0;
	case HTTP1_BODY_LENGTH:
		*done = have >= left;
		return *done ? (size_t)left : have;
	case HTTP1_BODY_CHUNKED:
		*done = c->res_chunk_end;
		return c->res_body_have;
	default: /* until the close, which over TLS must be close_notify: a bare TCP close may
		  * be anyone cutting the body short */
		*done = u->eof && (!u->tls || u->closed_clean);
		return have;
	}
}

/* The first <k> body bytes have been used: drop them, keeping the head and what follows. */
static void body_drop(struct conn *c, size_t k)
{
	struct buf *in = &c->s[UP].in;
	size_t at = c->res_head_len;

	if (!k)
		return;
	memmove(in->p + at, in->p + at + k, in->len - at - k);
	in->len -= k;
	c->res_taken += k;
	if (c->res.body == HTTP1_BODY_CHUNKED)
		c->res_body_have -= k;
}

/* --- gzip ------------------------------------------------------------------------------------ */

/* Inflate the <avail> body bytes at hand into rs->plain while it holds less than <room>.
 * Returns 0, or -1 with *why. */
static int inflate_more(struct conn *c, size_t avail, size_t room, const char **why)
{
	struct respond_stream *rs = c->rs;
	z_stream *z = &rs->zi;
	int zr = Z_OK;

	if (!rs->zi_ok) {
		if (inflateInit2(z, 16 + MAX_WBITS) != Z_OK)
			return *why = "sluice: out of memory", -1;
		rs->zi_ok = 1;
	}
	z->next_in = (Bytef *)c->s[UP].in.p + c->res_head_len;
	z->avail_in = (uInt)(avail < (1u << 30) ? avail : (1u << 30));
	while (z->avail_in && !rs->z_end && rs->plain.len < room) {
		size_t want = room - rs->plain.len < 65536 ? room - rs->plain.len : 65536;

		if (buf_reserve(&rs->plain, want))
			return *why = "sluice: out of memory", -1;
		z->next_out = (Bytef *)rs->plain.p + rs->plain.len;
		z->avail_out = (uInt)want;
		zr = inflate(z, Z_NO_FLUSH);
		rs->plain.len += want - z->avail_out;
		if (zr == Z_STREAM_END)
			rs->z_end = 1;
		else if (zr != Z_OK)
			break;
	}
	if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
		return *why = "sluice: BigQuery's gzip body is corrupt; nothing more is relayed", -1;
	if (rs->z_end && z->avail_in)
		return *why = "sluice: bytes after the end of BigQuery's gzip body", -1;
	body_drop(c, (size_t)(z->next_in - (Bytef *)c->s[UP].in.p - c->res_head_len));
	return 0;
}

/* Compress in[0..n) onto <out> as gzip, flushed (Z_SYNC_FLUSH: the agent can read all of it)
 * or finished (Z_FINISH). Returns 0 or -1. */
static int deflate_to(struct respond_stream *rs, const char *in, size_t n, int flush,
		      struct buf *out)
{
	z_stream *z = &rs->zo;
	int zr;

	if (!rs->zo_ok) {
		/* fastest level: this is on the path of every compressed response */
		if (deflateInit2(z, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
		rs->zo_ok = 1;
	}
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)n;
	do {
		if (buf_reserve(out, 65536))
			return -1;
		z->next_out = (Bytef *)out->p + out->len;
		z->avail_out = 65536;
		zr = deflate(z, flush);
		out->len += 65536 - z->avail_out;
		if (zr == Z_STREAM_ERROR)
			return -1;
	} while (z->avail_out == 0 || z->avail_in);
	return 0;
}

/* --- relaying ------------------------------------------------------------------------------ */

/* The response head for the agent onto <b>: BigQuery's end-to-end headers, then how sluice
 * frames the body: a Content-Length of <len>, or (len < 0) chunked, or until close. Returns
 * 0 or -1 (out of memory). */
static int head_text(struct conn *c, long long len, struct buf *b)
{
	const struct http1_response *r = &c->res;
	struct respond_stream *rs = c->rs;
	int gz = rs && rs->gunzip, close_after = !c->req.keep_alive || !r->keep_alive;
	char line[128];
	size_t i;

	snprintf(line, sizeof(line), "HTTP/1.1 %d ", r->status);
	out_str(b, line);
	out_append(b, r->reason.p, r->reason.len);
	out_str(b, "\r\n");
	for (i = 0; i < r->num_headers; i++) {
		if (conn_hop_by_hop(r->headers[i].name) ||
		    (gz && http1_slice_ieq(r->headers[i].name, "content-encoding")))
			continue;
		out_append(b, r->headers[i].name.p, r->headers[i].name.len);
		out_str(b, ": ");
		out_append(b, r->headers[i].value.p, r->headers[i].value.len);
		out_str(b, "\r\n");
	}
	if (gz)
		out_str(b, "Content-Encoding: gzip\r\n");
	if (!(r->status < 200 || r->status == 204 || r->status == 304)) {
		if (len >= 0) {
			snprintf(line, sizeof(line), "Content-Length: %llu\r\n", c->head_is_head ?
				 (unsigned long long)r->content_length : (unsigned long long)len);
			out_str(b, line);
		} else if (rs->chunked) {
			out_str(b, "Transfer-Encoding: chunked\r\n");
		} else {
			close_after = 1;
		}
	}
	if (close_after)
		out_str(b, "Connection: close\r\n");
	out_str(b, "\r\n");
	return b->p ? 0 : -1;
}

/* The head of a streamed response (chunked, or until close). Returns 0 or -1. */
static int send_head(struct conn *c)
{
	struct buf b = { 0 };
	int rc = head_text(c, -1, &b) || conn_write(c, CLI, b.p, b.len) ? -1 : 0;

	buf_free(&b);
	return rc;
}

/* Relay head and body in one write (one run of TLS records, the head not a record of its
 * own): the head is put in the <room> bytes just before body[0..len), which the caller has
 * done with, when it fits; else it goes first on its own. Returns 0 or -1. */
static int send_with_head(struct conn *c, char *body, size_t len, size_t room)
{
	struct buf h = { 0 };
	int rc = head_text(c, (long long)len, &h);

	if (!rc && h.len <= room) {
		memcpy(body - h.len, h.p, h.len);
		rc = conn_write(c, CLI, body - h.len, h.len + len);
	} else if (!rc) {
		rc = conn_write(c, CLI, h.p, h.len) || conn_write(c, CLI, body, len);
	}
	buf_free(&h);
	return rc ? -1 : 0;
}

/* Relay a whole filtered body, compressed again when BigQuery's was. A body still where it
 * arrived, right after BigQuery's head, takes the agent's head in that head's place (nothing
 * reads BigQuery's head any more). */
static int send_response(struct conn *c, char *body, size_t len)
{
	struct buf z = { 0 };
	size_t room;
	int rc;

	if (c->rs && c->rs->gunzip) {
		/* room for the head before the compressed body: BigQuery's head and what sluice
		 * adds to it (the encoding, a longer length, Connection: close) */
		room = c->res_head_len + 128;
		rc = buf_reserve(&z, room);
		z.len = room;
		rc = rc || deflate_to(c->rs, body, len, Z_FINISH, &z) ||
		     send_with_head(c, z.p + room, z.len - room, room);
		buf_free(&z);
		return rc ? -1 : 0;
	}
	room = body == c->s[UP].in.p + c->res_head_len ? c->res_head_len : 0;
	return send_with_head(c, body, len, room);
}

/* The response record: what the agent received (<first> bytes of it, <total> in all and
 * its SHA-256, NULL to hash <first>, which is then all of it; <tail>: its last bytes, for
 * the outcome), and <error> if it failed. */
static void record_response(struct conn *c, const char *first, size_t first_len,
			    const char *tail, size_t tail_len, uint64_t total,
			    const unsigned char *sha, const char *error)
{
	struct respond_outcome oc;
	json_t *f;

	if (!c->env->rec)
		return;
	f = json_object();
	if (!f)
		return;
	json_object_set_new(f, "status", json_integer(c->res.status));
	json_object_set_new(f, "path", json_stringn(c->req.target.p, c->req.target.len));
	json_object_set_new(f, "latency_ms",
			    json_integer((json_int_t)(worker_now_ms(c->w) - c->forwarded_ms)));
	/* the outcome an auditor looks for first, read off the body without parsing it */
	respond_outcome(first, first_len, tail, tail_len, &oc);
	if (*oc.job_id)
		json_object_set_new(f, "job_id", json_string(oc.job_id));
	if (*oc.rows)
		json_object_set_new(f, "rows", json_string(oc.rows));
	if (*oc.bytes_processed)
		json_object_set_new(f, "bytes_processed", json_string(oc.bytes_processed));
	if (c->found.found)
		json_object_set_new(f, "detected", json_pack("{s:i, s:i, s:i, s:i, s:i}",
			"email", c->found.count[0], "card", c->found.count[1], "ssn",
			c->found.count[2], "phone", c->found.count[3], "iban", c->found.count[4]));
	if (c->rs && c->rs->streaming)
		json_object_set_new(f, "streamed", json_true());
	if (error)
		json_object_set_new(f, "error", json_string(error));
	if (sha)
		rec_put_body_digest(f, "body", first, first_len, total, sha,
				    c->env->conf->record_body_bytes);
	else
		rec_put_body(f, "body", first, first_len, c->env->conf->record_body_bytes);
	conn_record(c, "response", f);
}

void respond_upstream_reset(struct conn *c)
{
	struct side *u = &c->s[UP];

	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	tls_conn_free(u->tls);
	u->tls = NULL;
	u->hs_done = u->eof = u->connected = u->closed_clean = 0;
	u->in.len = 0;
}

/* The exchange is over: drop the response (the head and <raw_left> body bytes still in
 * s[UP].in) and the request, and wait for the agent's next request. Bytes BigQuery sent
 * beyond the response answer nothing that was asked (sluice sends one request at a time):
 * kept, they would be read as the answer to the next request, so this response is the
 * connection's last. */
static void finish_exchange(struct conn *c, size_t raw_left)
{
	int extra;

	buf_consume(&c->s[UP].in, c->res_head_len + raw_left);
	extra = c->s[UP].in.len > 0;
	if (extra) {
		log_warn("respond", "%s: BigQuery sent %zu bytes beyond its response; the "
			 "connection ends after it", c->sni, c->s[UP].in.len);
		if (!c->reason)
			c->reason = "BigQuery sent bytes beyond its response";
	}
	if (!c->res.keep_alive)
		respond_upstream_reset(c);
	c->res_interim = 0;
	buf_consume(&c->s[CLI].in, c->head_len + c->body_len);
	if (!c->req.keep_alive || extra) {
		c->close_after_send = 1;
		c->s[CLI].eof = 1;
	}
	c->res_in_body = 0;
	respond_free(c);
	c->st = C_REQ;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
}

/* --- a whole response ------------------------------------------------------------------------ */

/* A whole body's digest is taken as its plain bytes arrive, while they are still in the
 * cache, not in a pass of its own at the end: plain[0..len) is the body so far (it only
 * grows). Not for rows masked into a new body, nor when nothing is recorded; on any
 * failure the body is hashed at the end as it was relayed. */
static void hash_arrived(struct conn *c, const char *plain, size_t len)
{
	struct respond_stream *rs = c->rs;

	if (!c->env->rec || (c->row_mask && c->res.status == 200))
		return;
	if (!rs || !rs->sha) {
		if (!(rs = rs_get(c)) || (!rs->sha && !(rs->sha = EVP_MD_CTX_new())) ||
		    !EVP_DigestInit_ex(rs->sha, EVP_sha256(), NULL))
			return;
		rs->hashing = 1;
		rs->hashed = 0;
	}
	if (rs->hashing && len > rs->hashed) {
		if (!EVP_DigestUpdate(rs->sha, plain + rs->hashed, len - rs->hashed))
			rs->hashing = 0;
		rs->hashed = len;
	}
}

/* The masked rows of whole responses are written into one buffer per worker thread, kept
 * between responses up to SCRATCH_KEEP bytes: its pages are touched once, not on every
 * response (a fresh buffer's first touch is about 40% of the row masker's time). */
#define SCRATCH_KEEP (2u << 20)
static __thread struct mask_buf scratch;

/* The kept buffer (or none), empty, for output bounded by <max>. */
static struct mask_buf scratch_take(size_t max)
{
	struct mask_buf b = scratch;

	memset(&scratch, 0, sizeof(scratch));
	if (b.cap > max) { /* the masker bounds a buffer only as it grows it */
		free(b.p);
		memset(&b, 0, sizeof(b));
	}
	b.len = 0;
	b.max = max;
	return b;
}

/* A body sluice relayed is done with: <cap> > 0 when it is the scratch buffer. */
static void body_release(char *p, size_t cap)
{
	if (cap && cap <= SCRATCH_KEEP && !scratch.p) {
		scratch.p = p;
		scratch.cap = cap;
	} else {
		free(p);
	}
}

/* Did the detectors mask something in place (the body is not what arrived any more)? */
static int detect_masked(const struct conn *c)
{
	const struct detect_rules *r = policy_detect(c->env->policy);
	int i;

	for (i = 0; r && i < 5; i++)
		if (c->found.count[i] && r->action[i] == DETECT_MASK)
			return 1;
	return 0;
}

/* A complete body[0..body_len) (plain: de-chunked and inflated); <raw_left> of its bytes are
 * still in s[UP].in after the head. */
static void respond_whole(struct conn *c, char *body, size_t body_len, size_t raw_left)
{
	struct side *u = &c->s[UP];
	char *done_body = NULL; /* what was relayed, when sluice changed it */
	size_t done_cap = 0;    /* ... the scratch buffer's size, when it is that */
	const char *relayed = body;
	const unsigned char *sha = NULL;
	unsigned char h[32];
	size_t relayed_len = body_len;

	if (c->fetching_schema) {
		c->fetching_schema = 0;
		if (c->res.status == 200) {
			/* the schema is in: now the agent's own tabledata.list goes up */
			json_t *t = json_loadb(body, body_len, 0, NULL);

			free(c->schema);
			c->schema = json_object_get(t, "schema") ?
				json_dumps(json_object_get(t, "schema"), JSON_COMPACT) : NULL;
			json_decref(t);
			buf_consume(&u->in, c->res_head_len + raw_left);
			c->res_in_body = 0;
			respond_free(c);
			if (!c->schema) {
				conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the table's "
					  "schema was not in BigQuery's answer, so its rows cannot be masked");
				return;
			}
			if (!c->res.keep_alive)
				respond_upstream_reset(c);
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
		struct mask_buf mb = scratch_take(c->env->conf->max_body_bytes * 2 + 65536);
		json_t *schema = c->schema ? json_loads(c->schema, 0, NULL) : NULL;
		char err[256];
		struct mask_plan *plan = schema ? mask_plan_new(schema, c->row_mask, err, sizeof(err))
					 : NULL;
		long masked = plan ? mask_rows(plan, body, body_len, &mb) : -1;

		json_decref(schema);
		mask_plan_free(plan);
		free(c->row_mask);
		c->row_mask = NULL;
		if (masked < 0) {
			body_release(mb.p, mb.cap);
			conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: the rows of a table "
				  "with masked columns could not be masked, so they are withheld");
			return;
		}
		done_body = mb.p;
		done_cap = mb.cap;
		relayed_len = mb.len;
	} else {
		if (c->submit_body && (c->res.status == 200 || c->res.status == 409)) {
			/* the approved job is in BigQuery (409: already, from before a restart); the
			 * poll that carried it is answered as a job still running, the next goes on */
			hold_mark_submitted(c->poll_job);
			jobseen_add(conn_identity(c), c->poll_project, c->poll_job);
			free(c->submit_body);
			c->submit_body = NULL;
			if (c->poll == JOBS_GET_QUERY_RESULTS || c->res.status == 409) {
				char *s = c->poll == JOBS_GET_QUERY_RESULTS ?
					jobs_pending_query_response(c->poll_project, c->poll_job,
								    c->poll_loc) :
					jobs_pending_job(c->poll_project, c->poll_job, c->poll_loc, NULL);

				buf_consume(&u->in, c->res_head_len + raw_left);
				c->res_in_body = 0;
				respond_free(c);
				conn_reply(c, 200, s);
				free(s);
				return;
			}
		}
		free(c->submit_body); /* a failed submit: the agent gets BigQuery's error */
		c->submit_body = NULL;
		free(c->up_body);
		c->up_body = NULL;
		if (c->res.status == 200 && c->job_project) {
			/* a job created through sluice (jobs.insert, jobs.query; not any POST that
			 * answers with a job, like jobs.cancel): its results may go to this identity */
			char jid[160];

			if (json_field(body, body_len, "\"jobId\":", jid, sizeof(jid)))
				jobseen_add(conn_identity(c), c->job_project, jid);
		}
		/* job metadata must show the agent its own query, never the masking rewrite */
		done_body = gate_restore(body, body_len, &relayed_len);
	}
	if (done_body)
		relayed = done_body;
	else
		relayed_len = body_len;
	if (detect_response(c, (char *)relayed, relayed_len)) {
		body_release(done_body, done_cap);
		return;
	}
	if (send_response(c, (char *)relayed, relayed_len)) {
		body_release(done_body, done_cap);
		conn_close(c, "out of memory");
		return;
	}
	/* the digest taken as the body arrived, when what was relayed is still those bytes */
	if (c->rs && c->rs->hashing && !done_body && c->rs->hashed == relayed_len &&
	    !detect_masked(c) && EVP_DigestFinal_ex(c->rs->sha, h, NULL))
		sha = h;
	record_response(c, relayed, relayed_len, relayed, relayed_len, relayed_len, sha, NULL);
	body_release(done_body, done_cap);
	finish_exchange(c, raw_left);
}

/* --- a streamed response ---------------------------------------------------------------------- */

/* Append p[0..n) to the filtered text, within its bound. */
static int out_put(struct mask_buf *b, const char *p, size_t n)
{
	size_t cap;
	char *q;

	if (b->len + n > b->max)
		return -1;
	if (b->len + n > b->cap) {
		for (cap = b->cap ? b->cap : 65536; cap < b->len + n; cap *= 2)
			;
		if (!(q = realloc(b->p, cap)))
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Filter one part onto rs->out: a row masked by schema, job metadata put back to the agent's
 * SQL, the detectors over what comes out. Returns 0, or -1 with *why. */
static int filter_part(struct conn *c, const char *p, const struct jsonseg_part *part,
		       const char **why)
{
	struct respond_stream *rs = c->rs;
	const struct detect_rules *r = policy_detect(c->env->policy);
	size_t mark = rs->out.len, rl = 0;
	char *restored = NULL;
	int bad;

	if (part->kind == JSONSEG_ELEMENT && rs->plan && !strcmp(part->key, "rows")) {
		if (mask_row(rs->plan, p, part->len, &rs->out) < 0)
			return *why = "sluice: a row of a table with masked columns could not be "
				      "masked, so the rest is withheld", -1;
	} else {
		restored = gate_restore(p, part->len, &rl); /* NULL: nothing to put back */
		bad = (restored && part->kind == JSONSEG_GLUE) ||
		      out_put(&rs->out, restored ? restored : p, restored ? rl : part->len);
		free(restored);
		if (bad)
			return *why = "sluice: a part of the response could not be filtered, so the "
				      "rest is withheld", -1;
	}
	if (r)
		detect_json(rs->out.p + mark, rs->out.len - mark, r, &c->found);
	if (c->found.refuse)
		return *why = "sluice: the response contains values the policy does not let "
			      "through; the rest is withheld", -1;
	return 0;
}

/* Make room for <n> bytes after the filtered text, past its bound (the chunk's framing). */
static int out_room(struct mask_buf *b, size_t n)
{
	char *q;

	if (b->len + n <= b->cap)
		return 0;
	if (!(q = realloc(b->p, b->len + n)))
		return -1;
	b->p = q;
	b->cap = b->len + n;
	return 0;
}

/* Relay d[0..n) in one write: as a chunk, its size line written into the OUT_GAP bytes
 * before <d>, its CRLF and (<last>) the last chunk into the 7 bytes of room after it; or as
 * it is, to an agent that reads until close. Returns 0 or -1. */
static int relay_framed(struct conn *c, char *d, size_t n, int last)
{
	char size[OUT_GAP + 1];
	size_t k = 0, e = n;

	if (!c->rs->chunked)
		return n ? conn_write(c, CLI, d, n) : 0;
	if (n) {
		k = (size_t)snprintf(size, sizeof(size), "%zx\r\n", n);
		memcpy(d - k, size, k);
		memcpy(d + e, "\r\n", 2);
		e += 2;
	}
	if (last) {
		memcpy(d + e, "0\r\n\r\n", 5);
		e += 5;
	}
	return k + e ? conn_write(c, CLI, d - k, k + e) : 0;
}

/* Relay what is filtered (rs->out after its OUT_GAP bytes): a chunk (compressed again when
 * BigQuery's body was), and the end of the body when <last>. Returns 0 or -1. */
static int flush(struct conn *c, int last)
{
	struct respond_stream *rs = c->rs;
	struct buf z = { 0 };
	char *d = rs->out.p + OUT_GAP;
	size_t n = rs->out.len - OUT_GAP, keep, take;
	int rc = 0;

	if (n && !rs->relayed && c->res.status == 200 && c->job_project) {
		/* a job created through sluice: its results may go to this (masked) identity */
		char jid[160];

		if (json_field(d, n, "\"jobId\":", jid, sizeof(jid)))
			jobseen_add(conn_identity(c), c->job_project, jid);
	}
	if (n) {
		EVP_DigestUpdate(rs->sha, d, n);
		keep = rs->first.len < FIRST_BYTES ? FIRST_BYTES - rs->first.len : 0;
		if (keep && buf_append(&rs->first, d, n < keep ? n : keep, FIRST_BYTES))
			return -1;
		take = n < OUTCOME_TAIL ? n : OUTCOME_TAIL; /* the last bytes relayed */
		keep = OUTCOME_TAIL - take < rs->tail_len ? OUTCOME_TAIL - take : rs->tail_len;
		memmove(rs->tail, rs->tail + rs->tail_len - keep, keep);
		memcpy(rs->tail + keep, d + n - take, take);
		rs->tail_len = keep + take;
		rs->relayed += n;
	}
	if (rs->gunzip) {
		z.len = OUT_GAP; /* the size line goes there */
		if ((n || last) && (buf_reserve(&z, OUT_GAP) ||
				    deflate_to(rs, d, n, last ? Z_FINISH : Z_SYNC_FLUSH, &z)))
			rc = -1;
		d = z.p + OUT_GAP;
		n = z.len - OUT_GAP;
		rc = rc || buf_reserve(&z, 7);
	} else {
		rc = out_room(&rs->out, 7);
		d = rs->out.p + OUT_GAP;
	}
	if (!rc)
		rc = relay_framed(c, d, n, last);
	rs->out.len = OUT_GAP;
	buf_free(&z);
	return rc ? -1 : 0;
}

/* Filter every whole part at hand; <eof>: the plain body is all here. Returns 0 or -1. */
static int stream_round(struct conn *c, int eof, const char **why)
{
	struct respond_stream *rs = c->rs;
	struct jsonseg_part part;
	const char *base;
	size_t avail, used = 0;
	int rc, done;

	if (rs->gunzip) {
		base = rs->plain.p;
		avail = rs->plain.len;
	} else {
		base = c->s[UP].in.p + c->res_head_len;
		avail = body_avail(c, &done);
	}
	while ((rc = jsonseg_next(&rs->seg, base, avail, eof, &part, why)) == 1) {
		if (filter_part(c, base + part.off, &part, why))
			return -1;
		used = part.off + part.len;
		if (rs->streaming && rs->out.len >= FLUSH_BYTES && flush(c, 0))
			return *why = "sluice: out of memory", -1;
	}
	if (rc < 0)
		return -1;
	/* drop what was filtered at once: one move per round, not one per row */
	if (rs->gunzip)
		buf_consume(&rs->plain, used);
	else
		body_drop(c, used);
	jsonseg_consumed(&rs->seg, used);
	return 0;
}

/* Stop a stream that cannot go on: the agent gets a cut response, never the value. */
static void stream_abort(struct conn *c, const char *why)
{
	unsigned char h[32];

	log_warn("proxy", "%s: %s", c->sni, why);
	EVP_DigestFinal_ex(c->rs->sha, h, NULL);
	record_response(c, c->rs->first.p ? c->rs->first.p : "", c->rs->first.len, c->rs->tail,
			c->rs->tail_len, c->rs->relayed, h, why);
	conn_close(c, why);
}

/* The body has outgrown limits.buffer_bytes: from now on it streams. Returns 0, or -1 with
 * *why when nothing has been sent yet (the agent can still get an error). */
static int stream_start(struct conn *c, const char **why)
{
	const struct sluice_conf *conf = c->env->conf;
	struct respond_stream *rs = rs_get(c);
	char err[256];

	if (!rs || (!rs->sha && !(rs->sha = EVP_MD_CTX_new())) ||
	    !EVP_DigestInit_ex(rs->sha, EVP_sha256(), NULL))
		return *why = "sluice: out of memory", -1;
	rs->hashing = 0; /* the digest is of the filtered text from now on */
	if (c->row_mask && c->res.status == 200) {
		json_t *schema = c->schema ? json_loads(c->schema, 0, NULL) : NULL;

		rs->plan = schema ? mask_plan_new(schema, c->row_mask, err, sizeof(err)) : NULL;
		json_decref(schema);
		if (!rs->plan)
			return *why = "sluice: the rows of a table with masked columns could not be "
				      "masked, so they are withheld", -1;
	}
	free(c->row_mask);
	c->row_mask = NULL;
	free(c->up_body);
	c->up_body = NULL;
	jsonseg_init(&rs->seg, conf->value_bytes, rs->plan ? "rows" : NULL);
	rs->out.max = OUT_GAP + 2 * (conf->value_bytes + conf->buffer_bytes) + FLUSH_BYTES;
	if (!rs->out.p && !(rs->out.p = malloc(65536)))
		return *why = "sluice: out of memory", -1;
	rs->out.cap = 65536;
	rs->out.len = OUT_GAP;
	rs->chunked = c->req.minor_version >= 1;
	memset(&c->found, 0, sizeof(c->found));
	return 0;
}

/* More of a streamed body, or its end. */
static void stream_more(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct respond_stream *rs = c->rs;
	const char *why = NULL;
	unsigned char h[32];
	size_t avail;
	int done, eof;

	if (dechunk(c, &why))
		return stream_abort(c, why);
	avail = body_avail(c, &done);
	if (rs->gunzip && inflate_more(c, avail, conf->value_bytes + 65536, &why))
		return stream_abort(c, why);
	avail = body_avail(c, &done);
	eof = done && (!rs->gunzip || (rs->z_end && !avail));
	if (!done && c->s[UP].eof)
		return stream_abort(c, "sluice: BigQuery's response was cut short");
	if (done && rs->gunzip && !rs->z_end && !avail)
		return stream_abort(c, "sluice: BigQuery's gzip body was cut short");
	if (stream_round(c, eof, &why))
		return stream_abort(c, why);
	if (!eof || !jsonseg_done(&rs->seg)) {
		if (rs->out.len > OUT_GAP && flush(c, 0))
			stream_abort(c, "sluice: out of memory");
		return;
	}
	if (flush(c, 1))
		return stream_abort(c, "sluice: out of memory");
	EVP_DigestFinal_ex(rs->sha, h, NULL);
	record_response(c, rs->first.p ? rs->first.p : "", rs->first.len, rs->tail, rs->tail_len,
			rs->relayed, h, NULL);
	finish_exchange(c, 0);
}

/* --- parsing --------------------------------------------------------------------------------- */

/* Could p[0..len), a head not yet complete, still become a status line "HTTP/1.x NNN "? Lets
 * an answer that is not HTTP fail at once instead of when the idle timeout ends it. */
static int status_line_may_be(const char *p, size_t len)
{
	static const char pat[] = "HTTP/1.d ddd "; /* d: a digit; the last: ' ' or '\r' */
	size_t i;

	for (i = 0; i < len && i < sizeof(pat) - 1; i++)
		if (pat[i] == 'd' ? (unsigned char)(p[i] - '0') > 9 :
		    p[i] != pat[i] && !(pat[i] == ' ' && i == 12 && p[i] == '\r'))
			return 0;
	return 1;
}

/* The head of BigQuery's response. Returns 1 when it is in (the body follows), 0 otherwise. */
static int parse_head(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *u = &c->s[UP];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	const struct http1_header *ce;
	const char *why = NULL;
	long rc;

	if (!c->res_h && !(c->res_h = calloc((size_t)conf->max_headers, sizeof(*c->res_h)))) {
		conn_close(c, "out of memory");
		return 0;
	}
	c->res.headers = c->res_h;
	rc = http1_parse_response(u->in.p, u->in.len, c->res_last, &lim,
				  c->head_is_head ? HTTP1_REQ_HEAD : HTTP1_REQ_OTHER, &c->res, &why);
	if (rc == -2) {
		c->res_last = u->in.len;
		if (!status_line_may_be(u->in.p, u->in.len))
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
				  "sluice: BigQuery's answer does not start with an HTTP/1.x status "
				  "line; nothing is relayed");
		else if (u->eof)
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
				  "sluice: BigQuery closed the connection without a response");
		return 0;
	}
	c->res_last = 0;
	if (rc < 0) {
		conn_deny(c, 502, "UNAVAILABLE", "backendError", why);
		return 0;
	}
	if (c->res.status == 101) { /* sluice never asks to switch (Upgrade is not relayed) */
		conn_deny(c, 502, "UNAVAILABLE", "backendError",
			  "sluice: BigQuery switched protocols (101) unasked; nothing is relayed");
		return 0;
	}
	if (c->res.status < 200) { /* interim: drop it, wait for the final one */
		if (++c->res_interim > RESPOND_MAX_INTERIM) {
			char msg[128];

			snprintf(msg, sizeof(msg), "sluice: BigQuery sent more than %d interim (1xx) "
				 "answers; nothing is relayed", RESPOND_MAX_INTERIM);
			conn_deny(c, 502, "UNAVAILABLE", "backendError", msg);
			return 0;
		}
		buf_consume(&u->in, (size_t)rc);
		return parse_head(c);
	}
	respond_free(c);
	ce = http1_find(c->res.headers, c->res.num_headers, "content-encoding");
	if (ce && !http1_slice_ieq(ce->value, "identity") && c->res.body != HTTP1_BODY_NONE) {
		/* sluice reads every response it relays: only the gzip it asked for is inflated */
		if (!c->asked_gzip || !http1_slice_ieq(ce->value, "gzip") || !rs_get(c)) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: BigQuery answered "
				  "with a compressed body it was not asked for; nothing is relayed");
			return 0;
		}
		c->rs->gunzip = 1;
	}
	c->res_head_len = (size_t)rc;
	c->res_body_have = 0;
	c->res_taken = 0;
	c->res_chunk_end = 0;
	c->res_in_body = 1;
	if (c->res.body == HTTP1_BODY_CHUNKED) /* the bound is applied as the body is handled */
		http1_chunked_init(&c->res_chunk, HTTP1_MAX_LENGTH);
	return 1;
}

void respond_parse(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *u = &c->s[UP];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	/* what sluice must see whole (its own requests' answers), and up to what size */
	int must_whole = c->fetching_schema || c->submit_body;
	size_t whole_limit = must_whole ? conf->max_body_bytes : conf->buffer_bytes;
	const char *why = NULL;
	char msg[400];
	size_t avail, plain_len;
	int done, plain_done;

	if (!c->res_in_body && !parse_head(c))
		return;
	if (c->rs && c->rs->streaming)
		return stream_more(c);
	if (must_whole && c->res.body == HTTP1_BODY_LENGTH &&
	    c->res.content_length > conf->max_body_bytes) {
		conn_deny(c, 502, "UNAVAILABLE", "backendError",
			  "sluice: response larger than limits.body_bytes");
		return;
	}
	if (dechunk(c, &why)) {
		conn_deny(c, 502, "UNAVAILABLE", "backendError", why);
		return;
	}
	avail = body_avail(c, &done);
	plain_len = avail;
	plain_done = done;
	if (c->rs && c->rs->gunzip) {
		if (inflate_more(c, avail, whole_limit + 1, &why)) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError", why);
			return;
		}
		avail = body_avail(c, &done);
		plain_len = c->rs->plain.len;
		plain_done = done && c->rs->z_end && !avail;
		if (done && !c->rs->z_end && !avail) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
				  "sluice: BigQuery's gzip body was cut short");
			return;
		}
	}
	if (!must_whole && plain_len <= whole_limit && (!plain_done || (c->rs && c->rs->hashing)))
		hash_arrived(c, c->rs && c->rs->gunzip ? c->rs->plain.p : u->in.p + c->res_head_len,
			     plain_len);
	if (!plain_done && plain_len <= whole_limit) {
		if (u->eof)
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
				  "sluice: BigQuery's response was cut short");
		return;
	}
	if (!plain_done || plain_len > whole_limit) {
		if (must_whole) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
				  "sluice: response larger than limits.body_bytes");
			return;
		}
		/* too big to hold: filtered and relayed as it comes */
		if (stream_start(c, &why) || stream_round(c, 0, &why)) {
			if (c->found.refuse)
				refusal(c, msg, sizeof(msg));
			else
				snprintf(msg, sizeof(msg), "%s", why);
			respond_free(c);
			conn_deny(c, c->found.refuse ? 403 : 502, c->found.refuse ?
				  "PERMISSION_DENIED" : "UNAVAILABLE", c->found.refuse ?
				  "accessDenied" : "backendError", msg);
			return;
		}
		if (send_head(c)) {
			conn_close(c, "out of memory");
			return;
		}
		c->rs->streaming = 1;
		/* the head is out: its slices are not needed any more */
		buf_consume(&u->in, c->res_head_len);
		c->res_head_len = 0;
		return stream_more(c);
	}
	/* whole: as for requests, the head's slices must point where the head is now */
	c->res.headers = c->res_h;
	if (http1_parse_response(u->in.p, c->res_head_len, 0, &lim, c->head_is_head ?
				 HTTP1_REQ_HEAD : HTTP1_REQ_OTHER, &c->res, NULL) !=
	    (int)c->res_head_len) {
		conn_close(c, "response head changed while its body arrived");
		return;
	}
	if (c->rs && c->rs->gunzip)
		respond_whole(c, c->rs->plain.p ? c->rs->plain.p : "", plain_len, avail);
	else
		respond_whole(c, u->in.p + c->res_head_len, plain_len, plain_len);
}
