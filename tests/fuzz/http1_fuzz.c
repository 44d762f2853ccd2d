/* http1_fuzz.c - libFuzzer driver for the HTTP/1.1 parser and the chunked decoder.
 *
 * Input: byte 0 picks what is parsed (a request head, a response head and what it answers,
 * or a chunked body), byte 1 where the bytes are cut in two; the rest is the message, copied
 * to a buffer of its exact size so that AddressSanitizer catches any read past it.
 *
 * Besides memory errors it checks what a smuggling attack would exploit: the answer must not
 * depend on how the bytes arrived. A head parsed in two steps (the second with last_len)
 * gives the same length and fields as in one; a chunked body decoded in two pieces gives the
 * same bytes, the same end and the same following bytes as in one. Every slice lies inside
 * the buffer, header values carry no CR, LF or NUL, and a head with Transfer-Encoding is
 * never framed by Content-Length.
 *
 *   make fuzz (FUZZ_SECONDS=N), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *     tests/fuzz/http1_fuzz.c userspace/http1.c -o build/http1_fuzz
 *   build/http1_fuzz -max_total_time=60 tests/fuzz/corpus/http1 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

#define MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void slice_in(struct http1_slice s, const char *buf, size_t len)
{
	if (s.len && (s.p < buf || s.p + s.len > buf + len))
		abort();
}

static void header_checks(const struct http1_header *h, size_t n, const char *buf, size_t head)
{
	size_t i;

	if (n > MAX_HEADERS)
		abort();
	for (i = 0; i < n; i++) {
		slice_in(h[i].name, buf, head);
		slice_in(h[i].value, buf, head);
		if (!h[i].name.len || memchr(h[i].value.p, '\r', h[i].value.len) ||
		    memchr(h[i].value.p, '\n', h[i].value.len) ||
		    memchr(h[i].value.p, '\0', h[i].value.len))
			abort();
	}
}

/* Same head, field by field (slices compared by offset: the two parses share the buffer). */
static int same_request(const struct http1_request *a, const struct http1_request *b)
{
	size_t i;

	if (a->method.p != b->method.p || a->method.len != b->method.len ||
	    a->target.p != b->target.p || a->target.len != b->target.len ||
	    a->minor_version != b->minor_version || a->num_headers != b->num_headers ||
	    a->body != b->body || a->content_length != b->content_length ||
	    a->host.len != b->host.len || a->keep_alive != b->keep_alive ||
	    a->expect_continue != b->expect_continue || a->is_connect != b->is_connect)
		return 0;
	for (i = 0; i < a->num_headers; i++)
		if (a->headers[i].name.p != b->headers[i].name.p ||
		    a->headers[i].value.len != b->headers[i].value.len)
			return 0;
	return 1;
}

static void fuzz_request(const char *buf, size_t len, size_t cut)
{
	struct http1_header h1[MAX_HEADERS], h2[MAX_HEADERS];
	struct http1_limits lim = { 4096, MAX_HEADERS };
	struct http1_request one = { .headers = h1 }, two = { .headers = h2 };
	const char *why = NULL;
	int r1, r2;

	r1 = http1_parse_request(buf, len, 0, &lim, &one, &why);
	if (r1 == -1 && !why)
		abort();
	if (r1 > 0) {
		if ((size_t)r1 > len || (size_t)r1 > lim.max_head_bytes)
			abort();
		slice_in(one.method, buf, (size_t)r1);
		if (!one.is_connect)
			slice_in(one.target, buf, (size_t)r1);
		header_checks(one.headers, one.num_headers, buf, (size_t)r1);
		if (one.body == HTTP1_BODY_UNTIL_CLOSE || one.content_length > HTTP1_MAX_LENGTH ||
		    (http1_find(one.headers, one.num_headers, "transfer-encoding") &&
		     one.body != HTTP1_BODY_CHUNKED))
			abort();
	}
	/* the same bytes in two steps: the same answer (a prefix of bytes accepted whole is
	 * never refused) */
	r2 = http1_parse_request(buf, cut, 0, &lim, &two, NULL);
	if (r2 == -2)
		r2 = http1_parse_request(buf, len, cut, &lim, &two, NULL);
	if (r1 != r2 || (r1 > 0 && !same_request(&one, &two)))
		abort();
}

static void fuzz_response(const char *buf, size_t len, size_t cut, int kind)
{
	struct http1_header h1[MAX_HEADERS], h2[MAX_HEADERS];
	struct http1_limits lim = { 4096, MAX_HEADERS };
	struct http1_response one = { .headers = h1 }, two = { .headers = h2 };
	int r1, r2;

	r1 = http1_parse_response(buf, len, 0, &lim, kind, &one, NULL);
	if (r1 > 0) {
		if ((size_t)r1 > len || one.status < 100 || one.status > 599)
			abort();
		slice_in(one.reason, buf, (size_t)r1);
		header_checks(one.headers, one.num_headers, buf, (size_t)r1);
		if ((one.status < 200 || one.status == 204 || one.status == 304 ||
		     kind == HTTP1_REQ_HEAD) && one.body != HTTP1_BODY_NONE)
			abort();
	}
	r2 = http1_parse_response(buf, cut, 0, &lim, kind, &two, NULL);
	if (r2 == -2)
		r2 = http1_parse_response(buf, len, cut, &lim, kind, &two, NULL);
	if (r1 != r2 || (r1 > 0 && (one.status != two.status || one.body != two.body ||
				    one.content_length != two.content_length ||
				    one.num_headers != two.num_headers ||
				    one.keep_alive != two.keep_alive)))
		abort();
}

/* Decode <in> whole, then as in[0..cut) and in[cut..len): the same body, end and rest. */
static void fuzz_chunked(const char *in, size_t len, size_t cut, uint64_t max_body)
{
	struct http1_chunked d1, d2;
	char *a = malloc(len ? len : 1), *b = malloc(len ? len : 1);
	size_t n1 = len, n2 = cut, n3 = len - cut, body2;
	long r1, r2;

	memcpy(a, in, len);
	memcpy(b, in, len);
	http1_chunked_init(&d1, max_body);
	http1_chunked_init(&d2, max_body);
	r1 = http1_chunked_decode(&d1, a, &n1, NULL);
	if (n1 > len || (r1 >= 0 && n1 + (size_t)r1 > len) || d1.total > max_body)
		abort();
	r2 = http1_chunked_decode(&d2, b, &n2, NULL);
	body2 = n2;
	if (r2 == -2) {
		/* the first piece was all used: its decoded bytes are b[0..n2), then the rest */
		memmove(b + body2, in + cut, n3);
		r2 = http1_chunked_decode(&d2, b + body2, &n3, NULL);
		body2 += n3;
	} else if (r2 >= 0) {
		/* it ended in the first piece: what followed it in there, then the second piece */
		memcpy(b + n2 + (size_t)r2, in + cut, len - cut);
		r2 += (long)(len - cut);
	}
	if ((r1 == -1) != (r2 == -1))
		abort();
	if (r1 != -1 && (r1 != r2 || n1 != body2 || memcmp(a, b, n1) ||
			 (r1 > 0 && memcmp(a + n1, b + body2, (size_t)r1))))
		abort();
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;
	size_t len, cut;

	if (size < 2)
		return 0;
	len = size - 2;
	buf = malloc(len ? len : 1);
	memcpy(buf, data + 2, len);
	cut = len ? data[1] % (len + 1) : 0;
	switch (data[0] & 7) {
	case 0:
	case 1:
	case 2:
		fuzz_request(buf, len, cut);
		break;
	case 3:
		fuzz_response(buf, len, cut, HTTP1_REQ_OTHER);
		break;
	case 4:
		fuzz_response(buf, len, cut, HTTP1_REQ_HEAD);
		break;
	case 5:
		fuzz_response(buf, len, cut, HTTP1_REQ_CONNECT);
		break;
	default:
		fuzz_chunked(buf, len, cut, (data[0] & 8) ? 64 : 1 << 20);
		break;
	}
	free(buf);
	return 0;
}
