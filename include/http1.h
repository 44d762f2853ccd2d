/* http1.h - a strict, zero-copy, incremental HTTP/1.1 parser (picohttpparser's mould), an
 * in-place chunked decoder and the writer of BigQuery-shaped JSON error responses.
 *
 * The parser owns nothing: the caller passes the bytes and the header array, and every token
 * is a slice of the caller's buffer, valid while that buffer is. A parse returns the length of
 * the head (> 0), -2 when the head is not complete yet, or -1 when the message is malformed,
 * with a constant reason string ("Content-Length with Transfer-Encoding") for a precise 400.
 * Anything a proxy could read two ways (RFC 9112 request smuggling) is refused, not guessed. */
#ifndef SLUICE_HTTP1_H
#define SLUICE_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_CHUNK_EXT 1024      /* bytes of extensions on one chunk-size line */
#define HTTP1_MAX_TRAILER 8192        /* bytes of the trailer section of a chunked body */
#define HTTP1_MAX_LENGTH (1ULL << 62) /* largest Content-Length accepted */

/* A piece of the caller's buffer; not NUL-terminated. */
struct http1_slice {
	const char *p;
	size_t len;
};

/* One header field; the value has its surrounding whitespace (OWS) trimmed. */
struct http1_header {
	struct http1_slice name, value;
};

/* How the body after the head is framed. */
enum http1_body {
	HTTP1_BODY_NONE,        /* no body: the next message follows the head */
	HTTP1_BODY_LENGTH,      /* content_length bytes (possibly 0) */
	HTTP1_BODY_CHUNKED,     /* chunked: use http1_chunked_decode */
	HTTP1_BODY_UNTIL_CLOSE, /* responses only: everything until the server closes */
};

/* Hard limits set by the caller; both must be > 0. */
struct http1_limits {
	size_t max_head_bytes; /* request/status line + headers + final empty line */
	size_t max_headers;    /* header lines; also the capacity of the headers array */
};

/* A parsed request head. Set <headers> before parsing; the rest is filled in. */
struct http1_request {
	struct http1_slice method, target;
	int minor_version;            /* 0 or 1 */
	struct http1_header *headers; /* caller's array of limits.max_headers entries */
	size_t num_headers;
	enum http1_body body;         /* never HTTP1_BODY_UNTIL_CLOSE */
	uint64_t content_length;      /* when body is HTTP1_BODY_LENGTH */
	struct http1_slice host;      /* Host, or the authority of an absolute-form target */
	int keep_alive;               /* the connection may carry another request */
	int expect_continue;          /* "Expect: 100-continue" on an HTTP/1.1 request */
	int is_connect;               /* CONNECT host:port; the target is the authority */
};

/* What the response answers, for http1_parse_response (0 for any other request). */
enum http1_req_kind { HTTP1_REQ_OTHER, HTTP1_REQ_HEAD, HTTP1_REQ_CONNECT };

/* A parsed response head. Set <headers> before parsing; the rest is filled in. */
struct http1_response {
	int minor_version;
	int status;                   /* 100..599 */
	struct http1_slice reason;    /* may be empty */
	struct http1_header *headers;
	size_t num_headers;
	enum http1_body body;
	uint64_t content_length;      /* Content-Length when present, even if body is NONE */
	int keep_alive;               /* 0 after a CONNECT 2xx or a 101: the connection is gone */
};

/* Parse a request head in buf[0..len). <last_len> is the <len> of the previous call on the
 * same (grown) buffer that returned -2, or 0: only the new bytes are searched for the end of
 * the head. Returns the head length, -2 (need more) or -1 with *why (<why> may be NULL). */
int http1_parse_request(const char *buf, size_t len, size_t last_len,
			const struct http1_limits *lim, struct http1_request *req,
			const char **why);

/* Parse a response head, as http1_parse_request. <req_kind> says whether it answers a HEAD
 * (no body) or a CONNECT (no body on 2xx); 1xx, 204 and 304 never have a body. */
int http1_parse_response(const char *buf, size_t len, size_t last_len,
			 const struct http1_limits *lim, int req_kind,
			 struct http1_response *res, const char **why);

/* The first header named <name> (case-insensitive) among <h>[0..n), or NULL. */
const struct http1_header *http1_find(const struct http1_header *h, size_t n, const char *name);

/* Does an Accept-Encoding value accept content coding <coding> (e.g. "gzip")? Not when it is
 * absent, or listed with q=0. */
int http1_accepts_coding(struct http1_slice value, const char *coding);

/* Is <s> equal to the C string <lit>, ignoring ASCII case? */
int http1_slice_ieq(struct http1_slice s, const char *lit);

/* State of one chunked body being decoded; set up by http1_chunked_init. */
struct http1_chunked {
	uint64_t max_body;  /* decoded bytes allowed */
	uint64_t total;     /* decoded so far */
	uint64_t remaining; /* size being read, then data bytes left in the chunk */
	unsigned state;
	unsigned count;     /* size digits, extension or trailer bytes seen */
};

/* Start decoding a chunked body of at most <max_body> decoded bytes. */
void http1_chunked_init(struct http1_chunked *d, uint64_t max_body);

/* Decode buf[0..*len) in place (the bytes that arrived since the previous call) and set *len
 * to the number of body bytes now at buf[0..*len). Returns -2 (need more: all input used),
 * -1 with *why, or N >= 0 when the body ended: the N bytes that followed it (a pipelined
 * message) are moved to buf[*len..*len + N). Trailers are checked and dropped. After the end,
 * a call decodes nothing and returns all of its input as following bytes. */
long http1_chunked_decode(struct http1_chunked *d, char *buf, size_t *len, const char **why);
/* The <why> of a chunked body that passed its bound (the same pointer): a 413, not a 400. */
extern const char http1_body_too_large[];

/* Standard reason phrase of <status> ("Forbidden"), "Unknown" if it has none here. */
const char *http1_status_text(int status);

/* Write a complete HTTP/1.1 JSON error response in BigQuery's shape to out[0..cap):
 * {"error": {"code": STATUS, "message": MESSAGE, "errors": [{"message": MESSAGE,
 * "domain": "global", "reason": REASON}], "status": STATUS_TEXT}}, with Content-Length and,
 * unless <keep_alive>, "Connection: close". Strings are JSON-escaped; invalid UTF-8 becomes
 * U+FFFD; NULL strings are empty. Returns the bytes written, or -1 if they do not fit or the
 * status is not 100..599. */
int http1_write_json_error(char *out, size_t cap, int status, const char *status_text,
			   const char *reason, const char *message, int keep_alive);

#endif
