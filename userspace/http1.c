/* http1.c - strict zero-copy HTTP/1.1 head parser, chunked decoder, JSON error writer.
 *
 * A head is handled in two steps. find_end() looks for the empty line that ends it, starting
 * where the previous call stopped (so a client trickling one byte at a time costs linear
 * work), and refuses bare CR and bare LF on the way. Once the end is known the head is parsed
 * exactly once, every line being known to end in CRLF. Framing headers are then judged as a
 * whole: anything two HTTP implementations might read differently is refused. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "http1.h"

#define FAIL(msg) return (*why = (msg), -1)

const char http1_body_too_large[] = "body too large";

/* What the framing-relevant headers said; filled by parse_fields. */
struct fields {
	int n_cl, n_te, n_host;
	uint64_t cl;
	int conn_close, conn_keep_alive, expect_continue;
	struct http1_slice host;
};

static int is_alpha(int c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int is_alnum(int c)
{
	return (c >= '0' && c <= '9') || is_alpha(c);
}

/* tchar of RFC 9110: the bytes of methods and header names. */
static int is_tchar(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A byte allowed in a field value or reason phrase: VCHAR, obs-text, SP, HTAB. */
static int is_vchar(unsigned char c)
{
	return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int http1_slice_ieq(struct http1_slice s, const char *lit)
{
	return ieq(s.p, s.len, lit, strlen(lit));
}

const struct http1_header *http1_find(const struct http1_header *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (http1_slice_ieq(h[i].name, name))
			return &h[i];
	return NULL;
}

/* Find the end of the head in buf[0..len): the index just past the first CRLFCRLF. Bytes
 * before last_len - 3 were examined by an earlier call and are not read again. Refuses bare
 * CR and bare LF. Returns the head length, -2 if it is not complete and may still fit in
 * <max> bytes, or -1. */
static int find_end(const char *buf, size_t len, size_t last_len, size_t max, const char **why)
{
	size_t lim, i = last_len > 3 ? last_len - 3 : 0;

	if (max > INT_MAX)
		max = INT_MAX;
	lim = len < max ? len : max;
	for (; i < lim; i++) {
		if (buf[i] == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				FAIL("bare CR in header section");
		} else if (buf[i] == '\n') {
			if (i == 0 || buf[i - 1] != '\r')
				FAIL("bare LF in header section");
			if (i >= 3 && buf[i - 2] == '\n')
				return (int)i + 1;
		}
	}
	if (len >= max)
		FAIL("header section too large");
	return -2;
}

/* Is p[0..len) a valid authority, host [":" port]? The host is a reg-name or IPv4 address,
 * or an IPv6 address in brackets; the port, when present, is 1..65535. */
static int valid_authority(const char *p, size_t len, int need_port)
{
	size_t i = 0, digits;
	unsigned long port = 0;

	if (len && p[0] == '[') {
		for (i = 1; i < len && p[i] != ']'; i++)
			if (!strchr("0123456789abcdefABCDEF:.", p[i]) || !p[i])
				return 0;
		if (i == len || i == 1)
			return 0;
		i++;
	} else {
		for (; i < len && p[i] != ':'; i++)
			if (!is_alnum(p[i]) && !(p[i] && strchr("-._~%!$&'()*+,;=", p[i])))
				return 0;
		if (i == 0)
			return 0;
	}
	if (i == len)
		return !need_port;
	if (p[i++] != ':')
		return 0;
	for (digits = 0; i < len && digits < 5 && p[i] >= '0' && p[i] <= '9'; i++, digits++)
		port = port * 10 + (unsigned long)(p[i] - '0');
	return i == len && digits && port >= 1 && port <= 65535;
}

/* Does the comma-separated list <v> contain the token <tok> (case-insensitive)? */
static int list_has(struct http1_slice v, const char *tok)
{
	const char *p = v.p, *end = v.p + v.len, *s, *e;

	while (p < end) {
		for (s = p; s < end && *s != ','; s++)
			;
		e = s;
		while (p < e && is_ows(*p))
			p++;
		while (e > p && is_ows(e[-1]))
			e--;
		if (ieq(p, (size_t)(e - p), tok, strlen(tok)))
			return 1;
		p = s + 1;
	}
	return 0;
}

/* Parse "HTTP/1.0" or "HTTP/1.1" at *pp, leaving *pp after it. Returns the minor version or
 * -1 with *why. */
static int parse_version(const char **pp, const char *end, const char **why)
{
	const char *p = *pp;

	if (end - p < 8 || memcmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
	    p[7] < '0' || p[7] > '9')
		FAIL("invalid HTTP version");
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		FAIL("unsupported HTTP version");
	*pp = p + 8;
	return p[7] - '0';
}

/* Parse the header lines from <p> to the end of the head (<end>, just past CRLFCRLF) into
 * h[0..cap), setting *n, and note the framing headers in <f>. Host and Expect count only in
 * a request. Returns 0 or -1 with *why. */
static int parse_fields(const char *p, const char *end, struct http1_header *h, size_t cap,
			size_t *n, struct fields *f, int request, const char **why)
{
	const char *name, *v, *ve;
	struct http1_slice nm, val;

	memset(f, 0, sizeof(*f));
	for (*n = 0; p < end && *p != '\r'; p += 2) {
		for (name = p; is_tchar((unsigned char)*p); p++)
			;
		if (p == name && is_ows(*p))
			FAIL("obs-fold (header line starts with whitespace)");
		if (p == name)
			FAIL("empty or invalid header name");
		if (*p != ':')
			FAIL(is_ows(*p) ? "whitespace between header name and colon"
					: "invalid character in header name");
		nm = (struct http1_slice){ name, (size_t)(p - name) };
		for (v = ++p; is_ows(*v); v++)
			;
		for (p = v; *p != '\r'; p++) {
			if (!*p)
				FAIL("NUL in header value");
			if (!is_vchar((unsigned char)*p))
				FAIL("control character in header value");
		}
		for (ve = p; ve > v && is_ows(ve[-1]); ve--)
			;
		val = (struct http1_slice){ v, (size_t)(ve - v) };
		if (*n == cap)
			FAIL("too many headers");
		h[(*n)++] = (struct http1_header){ nm, val };

		if (http1_slice_ieq(nm, "content-length")) {
			size_t i;

			if (f->n_cl++)
				FAIL("duplicate Content-Length");
			if (!val.len)
				FAIL("invalid Content-Length");
			for (i = 0; i < val.len; i++) {
				if (val.p[i] < '0' || val.p[i] > '9')
					FAIL("invalid Content-Length");
				if (f->cl > (HTTP1_MAX_LENGTH - (uint64_t)(val.p[i] - '0')) / 10)
					FAIL("Content-Length too large");
				f->cl = f->cl * 10 + (uint64_t)(val.p[i] - '0');
			}
		} else if (http1_slice_ieq(nm, "transfer-encoding")) {
			if (f->n_te++)
				FAIL("duplicate Transfer-Encoding");
			if (!http1_slice_ieq(val, "chunked"))
				FAIL("unsupported Transfer-Encoding (only \"chunked\" is accepted)");
		} else if (http1_slice_ieq(nm, "connection")) {
			f->conn_close |= list_has(val, "close");
			f->conn_keep_alive |= list_has(val, "keep-alive");
		} else if (request && http1_slice_ieq(nm, "host")) {
			if (f->n_host++)
				FAIL("duplicate Host");
			if (!valid_authority(val.p, val.len, 0))
				FAIL("invalid Host");
			f->host = val;
		} else if (request && http1_slice_ieq(nm, "expect")) {
			f->expect_continue |= http1_slice_ieq(val, "100-continue");
		}
	}
	if (f->n_cl && f->n_te)
		FAIL("Content-Length with Transfer-Encoding");
	return 0;
}

/* Check the request target against the method. Origin-form ("/path"), absolute-form
 * ("scheme://authority/path": *auth is set to the authority), authority-form for CONNECT
 * only, "*" for OPTIONS only. Returns 0 or -1 with *why. */
static int check_target(const struct http1_request *req, struct http1_slice *auth,
			const char **why)
{
	const char *t = req->target.p, *end = t + req->target.len, *p;

	auth->p = NULL;
	auth->len = 0;
	if (memchr(t, '#', req->target.len))
		FAIL("fragment in request target");
	if (req->is_connect) {
		if (!valid_authority(t, req->target.len, 1))
			FAIL("CONNECT target must be host:port");
		return 0;
	}
	if (t[0] == '/')
		return 0;
	if (req->target.len == 1 && t[0] == '*') {
		if (!http1_slice_ieq(req->method, "OPTIONS"))
			FAIL("\"*\" target outside OPTIONS");
		return 0;
	}
	for (p = t; p < end && (is_alpha(*p) || (p > t && (is_alnum(*p) || strchr("+-.", *p))));
	     p++)
		;
	if (p == t || end - p < 3 || memcmp(p, "://", 3))
		FAIL("invalid request target");
	for (auth->p = p += 3; p < end && *p != '/' && *p != '?'; p++)
		if (*p == '@')
			FAIL("userinfo in request target");
	auth->len = (size_t)(p - auth->p);
	if (!valid_authority(auth->p, auth->len, 0))
		FAIL("invalid authority in request target");
	return 0;
}

int http1_parse_request(const char *buf, size_t len, size_t last_len,
			const struct http1_limits *lim, struct http1_request *req,
			const char **why)
{
	const char *p = buf, *end, *dummy;
	struct http1_slice auth;
	struct fields f;
	int n;

	if (!why)
		why = &dummy;
	*why = NULL;
	n = find_end(buf, len, last_len, lim->max_head_bytes, why);
	if (n < 0)
		return n;
	end = buf + n;

	if (*p == '\r')
		FAIL("empty line before request line");
	for (req->method.p = p; is_tchar((unsigned char)*p); p++)
		;
	req->method.len = (size_t)(p - buf);
	if (!req->method.len || *p++ != ' ')
		FAIL("invalid method");
	for (req->target.p = p; (unsigned char)*p > ' ' && (unsigned char)*p < 0x7f; p++)
		;
	req->target.len = (size_t)(p - req->target.p);
	if (!req->target.len)
		FAIL("empty request target (or more than one SP)");
	if (*p++ != ' ')
		FAIL(p[-1] == '\r' ? "missing HTTP version" : "invalid character in request target");
	req->minor_version = parse_version(&p, end, why);
	if (req->minor_version < 0)
		return -1;
	if (*p != '\r')
		FAIL("invalid request line (text after HTTP version)");
	req->is_connect = req->method.len == 7 && !memcmp(req->method.p, "CONNECT", 7);
	if (check_target(req, &auth, why))
		return -1;

	if (parse_fields(p + 2, end, req->headers, lim->max_headers, &req->num_headers, &f, 1,
			 why))
		return -1;
	if (f.n_te && req->minor_version == 0)
		FAIL("Transfer-Encoding in HTTP/1.0 request");
	if (!f.n_host && req->minor_version == 1)
		FAIL("missing Host");
	if (auth.p && f.n_host && !ieq(auth.p, auth.len, f.host.p, f.host.len))
		FAIL("Host does not match request target");
	if (req->is_connect && (f.n_te || f.cl))
		FAIL("CONNECT with a body");
	req->host = auth.p ? auth : f.host;
	req->body = f.n_te ? HTTP1_BODY_CHUNKED : f.n_cl ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	req->content_length = f.cl;
	req->keep_alive = !f.conn_close && (req->minor_version == 1 || f.conn_keep_alive);
	req->expect_continue = f.expect_continue && req->minor_version == 1;
	return n;
}

int http1_parse_response(const char *buf, size_t len, size_t last_len,
			 const struct http1_limits *lim, int req_kind,
			 struct http1_response *res, const char **why)
{
	const char *p = buf, *end, *dummy;
	struct fields f;
	int n, s, tunnel;

	if (!why)
		why = &dummy;
	*why = NULL;
	n = find_end(buf, len, last_len, lim->max_head_bytes, why);
	if (n < 0)
		return n;
	end = buf + n;

	res->minor_version = parse_version(&p, end, why);
	if (res->minor_version < 0)
		return -1;
	if (end - p < 5 || p[0] != ' ' || p[1] < '1' || p[1] > '5' || p[2] < '0' ||
	    p[2] > '9' || p[3] < '0' || p[3] > '9' || (p[4] != ' ' && p[4] != '\r'))
		FAIL("invalid status code");
	s = res->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
	p += 4;
	if (*p == ' ')
		p++;
	for (res->reason.p = p; *p != '\r'; p++)
		if (!is_vchar((unsigned char)*p))
			FAIL("control character in reason phrase");
	res->reason.len = (size_t)(p - res->reason.p);

	if (parse_fields(p + 2, end, res->headers, lim->max_headers, &res->num_headers, &f, 0,
			 why))
		return -1;
	if (f.n_te && res->minor_version == 0)
		FAIL("Transfer-Encoding in HTTP/1.0 response");
	tunnel = s == 101 || (req_kind == HTTP1_REQ_CONNECT && s / 100 == 2);
	res->content_length = f.cl;
	if (s / 100 == 1 || s == 204 || s == 304 || req_kind == HTTP1_REQ_HEAD || tunnel)
		res->body = HTTP1_BODY_NONE;
	else if (f.n_te)
		res->body = HTTP1_BODY_CHUNKED;
	else if (f.n_cl)
		res->body = HTTP1_BODY_LENGTH;
	else
		res->body = HTTP1_BODY_UNTIL_CLOSE;
	res->keep_alive = !f.conn_close && !tunnel && res->body != HTTP1_BODY_UNTIL_CLOSE &&
			  (res->minor_version == 1 || f.conn_keep_alive);
	return n;
}

/* --- chunked bodies ---------------------------------------------------------------------- */

enum {
	CH_SIZE, CH_SIZE_WS, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER, CH_TRAILER_NAME, CH_TRAILER_VALUE, CH_TRAILER_LF, CH_END_LF, CH_DONE,
};

void http1_chunked_init(struct http1_chunked *d, uint64_t max_body)
{
	memset(d, 0, sizeof(*d));
	d->max_body = max_body;
	d->state = CH_SIZE;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* The byte-at-a-time part of the chunked grammar: sizes, extensions, the CRLFs and the
 * trailer section. Returns 0 with the state advanced past <c>, or -1 with *why. */
static int chunked_step(struct http1_chunked *d, unsigned char c, const char **why)
{
	int x;

	if (d->state >= CH_TRAILER && ++d->count > HTTP1_MAX_TRAILER)
		FAIL("trailer section too large");
	switch (d->state) {
	case CH_SIZE:
		if ((x = hexval(c)) >= 0) {
			if (++d->count > 16)
				FAIL("chunk size has more than 16 hex digits");
			d->remaining = d->remaining << 4 | (uint64_t)x;
			return 0;
		}
		if (!d->count)
			FAIL("invalid chunk size");
		if (d->remaining > d->max_body - d->total)
			FAIL(http1_body_too_large);
		d->count = 0;
		if (c == '\r')
			d->state = CH_SIZE_LF;
		else if (c == ';')
			d->state = CH_EXT;
		else if (is_ows((char)c))
			d->state = CH_SIZE_WS;
		else
			FAIL("invalid chunk size");
		return 0;
	case CH_SIZE_WS:
		if (c == ';')
			d->state = CH_EXT;
		else if (!is_ows((char)c))
			FAIL("invalid chunk size");
		return 0;
	case CH_EXT:
		if (c == '\r')
			d->state = CH_SIZE_LF;
		else if (!is_vchar(c))
			FAIL("control character in chunk extension");
		else if (++d->count > HTTP1_MAX_CHUNK_EXT)
			FAIL("chunk extension too long");
		return 0;
	case CH_SIZE_LF:
		if (c != '\n')
			FAIL("bare CR in chunk size line");
		d->count = 0;
		d->state = d->remaining ? CH_DATA : CH_TRAILER;
		return 0;
	case CH_DATA_CR:
	case CH_DATA_LF:
		if (c != (d->state == CH_DATA_CR ? '\r' : '\n'))
			FAIL("missing CRLF after chunk data");
		d->state = d->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
		return 0;
	case CH_TRAILER:
		if (c == '\r')
			d->state = CH_END_LF;
		else if (is_tchar(c))
			d->state = CH_TRAILER_NAME;
		else
			FAIL("invalid trailer field");
		return 0;
	case CH_TRAILER_NAME:
		if (c == ':')
			d->state = CH_TRAILER_VALUE;
		else if (!is_tchar(c))
			FAIL("invalid trailer field name");
		return 0;
	case CH_TRAILER_VALUE:
		if (c == '\r')
			d->state = CH_TRAILER_LF;
		else if (!is_vchar(c))
			FAIL("control character in trailer field");
		return 0;
	case CH_TRAILER_LF:
	case CH_END_LF:
		if (c != '\n')
			FAIL("bare CR in trailer section");
		d->state = d->state == CH_END_LF ? CH_DONE : CH_TRAILER;
		return 0;
	}
	FAIL("chunked decoder in a bad state");
}

/* Decode in place; see http1.h. Chunk data is moved down over the framing bytes with
 * memmove, so the decoded body is always a prefix of what was passed in. */
long http1_chunked_decode(struct http1_chunked *d, char *buf, size_t *len, const char **why)
{
	size_t src = 0, dst = 0, n = *len, take;
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	while (src < n && d->state != CH_DONE) {
		if (d->state != CH_DATA) {
			if (chunked_step(d, (unsigned char)buf[src++], why)) {
				*len = dst;
				return -1;
			}
			continue;
		}
		take = n - src < d->remaining ? n - src : (size_t)d->remaining;
		if (dst != src)
			memmove(buf + dst, buf + src, take);
		dst += take;
		src += take;
		d->total += take;
		d->remaining -= take;
		if (!d->remaining)
			d->state = CH_DATA_CR;
	}
	*len = dst;
	if (d->state != CH_DONE)
		return -2;
	if (dst != src)
		memmove(buf + dst, buf + src, n - src);
	return (long)(n - src);
}

/* --- JSON error responses ---------------------------------------------------------------- */

const char *http1_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* Output that counts what it could not store: n > cap means it did not fit. */
struct out {
	char *p;
	size_t cap, n;
};

static void put(struct out *o, const char *s, size_t len)
{
	if (o->n + len <= o->cap)
		memcpy(o->p + o->n, s, len);
	o->n += len;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at <s> (NUL-terminated), 0 if it is not one: overlong
 * forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[0] == 0xe0 && s[1] < 0xa0) ||
		    (s[0] == 0xed && s[1] > 0x9f))
			return 0;
		return (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[0] == 0xf0 && s[1] < 0x90) ||
		    (s[0] == 0xf4 && s[1] > 0x8f))
			return 0;
		return (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* Write <s> (NULL: "") as a JSON string: quotes, backslashes and control characters escaped,
 * valid UTF-8 copied, each invalid byte replaced by \ufffd. */
static void put_json_str(struct out *o, const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	char esc[8];
	size_t k;

	put(o, "\"", 1);
	for (; *u; u += k) {
		k = utf8_len(u);
		if (!k) {
			puts_(o, "\\ufffd");
			k = 1;
		} else if (*u == '"' || *u == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*u;
			put(o, esc, 2);
		} else if (*u == '\n') {
			puts_(o, "\\n");
		} else if (*u == '\r') {
			puts_(o, "\\r");
		} else if (*u == '\t') {
			puts_(o, "\\t");
		} else if (*u < 0x20 || *u == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *u);
			put(o, esc, 6);
		} else {
			put(o, (const char *)u, k);
		}
	}
	put(o, "\"", 1);
}

/* The body, into <o> (which may be a counter only: cap 0). */
static void put_error_body(struct out *o, int status, const char *status_text,
			   const char *reason, const char *message)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", status);
	puts_(o, "{\"error\": {\"code\": ");
	puts_(o, num);
	puts_(o, ", \"message\": ");
	put_json_str(o, message);
	puts_(o, ", \"errors\": [{\"message\": ");
	put_json_str(o, message);
	puts_(o, ", \"domain\": \"global\", \"reason\": ");
	put_json_str(o, reason);
	puts_(o, "}], \"status\": ");
	put_json_str(o, status_text);
	puts_(o, "}}\n");
}

int http1_write_json_error(char *out, size_t cap, int status, const char *status_text,
			   const char *reason, const char *message, int keep_alive)
{
	struct out body = { NULL, 0, 0 }, o = { out, cap, 0 };
	char head[256];

	if (status < 100 || status > 599)
		return -1;
	put_error_body(&body, status, status_text, reason, message);
	snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json; "
		 "charset=UTF-8\r\nContent-Length: %zu\r\n%s\r\n", status,
		 http1_status_text(status), body.n, keep_alive ? "" : "Connection: close\r\n");
	puts_(&o, head);
	put_error_body(&o, status, status_text, reason, message);
	return o.n <= cap && o.n <= INT_MAX ? (int)o.n : -1;
}

int http1_accepts_coding(struct http1_slice v, const char *coding)
{
	const char *p = v.p, *e = v.p + v.len;
	size_t n = strlen(coding);

	while (p < e) {
		const char *end = memchr(p, ',', (size_t)(e - p)), *q, *t;

		if (!end)
			end = e;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		for (t = p; t < end && *t != ';' && *t != ' ' && *t != '\t'; t++)
			;
		if ((size_t)(t - p) == n && !strncasecmp(p, coding, n)) {
			/* ";q=0", ";q=0.0"...: explicitly not acceptable */
			q = memmem(t, (size_t)(end - t), "q=", 2);
			if (!q)
				q = memmem(t, (size_t)(end - t), "Q=", 2);
			if (!q)
				return 1;
			for (q += 2; q < end && (*q == '0' || *q == '.'); q++)
				;
			return q < end && *q >= '1' && *q <= '9';
		}
		p = end + 1;
	}
	return 0;
}
