/* Description: HTTP/1.1 parser: valid heads at every split point, a request-smuggling corpus
 * refused with precise reasons, linear work on trickled input, chunked bodies, JSON errors. */
#include <jansson.h>
#include <stdint.h>

#include "http1.h"
#include "tap.h"

#define H "Host: bigquery.googleapis.com\r\n"
#define TE_REASON "unsupported Transfer-Encoding (only \"chunked\" is accepted)"

static struct http1_header hdrs[128];
static struct http1_limits lim = { 8192, 64 };
static int want_n; /* length of the last input given to REQ or res() */

static int slice_is(struct http1_slice s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

/* Parse a request that ends at a guard page; its slices live until the next tap_guarded. */
static int req(const char *s, size_t len, struct http1_request *r, const char **why)
{
	memset(r, 0, sizeof(*r));
	r->headers = hdrs;
	return http1_parse_request(tap_guarded(s, len), len, 0, &lim, r, why);
}

static int res(const char *s, int kind, struct http1_response *r, const char **why)
{
	want_n = (int)strlen(s);
	memset(r, 0, sizeof(*r));
	r->headers = hdrs;
	return http1_parse_response(tap_guarded(s, strlen(s)), strlen(s), 0, &lim, kind, r, why);
}

/* Parse a string literal (which may hold NULs) as a request. */
#define REQ(s, r, why) req(s, (size_t)(want_n = (int)sizeof(s) - 1), r, why)

/* <s> must be refused with <want>: whole, and fed one byte at a time with last_len. */
static void refused(const char *what, const char *s, size_t len, const char *want)
{
	struct http1_request r;
	const char *why = NULL;
	int n = req(s, len, &r, &why);
	size_t i;

	ok(n == -1 && why && !strcmp(why, want), "%s: refused, \"%s\" (got %d, \"%s\")", what, want,
	   n, why ? why : "");
	for (i = 1, n = -2; i <= len && n == -2; i++) {
		memset(&r, 0, sizeof(r));
		r.headers = hdrs;
		n = http1_parse_request(tap_guarded(s, i), i, i - 1, &lim, &r, &why);
	}
	ok(n == -1 && why && !strcmp(why, want), "%s: the same fed byte by byte", what);
}

#define REFUSED(what, s, want) refused(what, s, sizeof(s) - 1, want)

static void valid_requests(void)
{
	static const char get[] = "GET /bigquery/v2/projects/p/queries?x=1 HTTP/1.1\r\n"
				  "Host: bigquery.googleapis.com\r\nUser-Agent:  agent/1 \t\r\n"
				  "Accept: */*\r\n\r\n";
	static const char post[] = "POST /upload HTTP/1.1\r\n" H "Content-Length: 11\r\n"
				   "Connection: TE, close\r\nExpect: 100-Continue\r\n\r\nhello world";
	struct http1_request r;
	const char *why;
	int n;

	n = req(get, sizeof(get) - 1, &r, &why);
	is_int(n, sizeof(get) - 1, "GET: whole head consumed");
	ok(slice_is(r.method, "GET"), "GET: method");
	ok(slice_is(r.target, "/bigquery/v2/projects/p/queries?x=1"), "GET: target");
	is_int(r.minor_version, 1, "GET: HTTP/1.1");
	is_int(r.num_headers, 3, "GET: three headers");
	ok(slice_is(r.headers[1].name, "User-Agent") && slice_is(r.headers[1].value, "agent/1"),
	   "GET: value trimmed of OWS on both sides");
	ok(slice_is(r.host, "bigquery.googleapis.com"), "GET: host");
	ok(r.keep_alive && r.body == HTTP1_BODY_NONE && !r.is_connect && !r.expect_continue,
	   "GET: keep-alive, no body");
	ok(http1_find(r.headers, r.num_headers, "accept") == &r.headers[2] &&
		   !http1_find(r.headers, r.num_headers, "accept-encoding"),
	   "http1_find: case-insensitive, NULL when absent");

	n = req(post, sizeof(post) - 1, &r, &why);
	is_int(n, sizeof(post) - 1 - 11, "POST: head length, body left to the caller");
	ok(r.body == HTTP1_BODY_LENGTH && r.content_length == 11, "POST: Content-Length 11");
	ok(!r.keep_alive, "POST: Connection list with close");
	ok(r.expect_continue, "POST: Expect: 100-continue (any case)");

	n = REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n", &r, &why);
	ok(n == want_n && r.body == HTTP1_BODY_CHUNKED, "POST chunked (%d %s)", n, why);

	n = REQ("CONNECT bigquery.googleapis.com:443 HTTP/1.1\r\n" H "\r\n", &r, &why);
	ok(n == want_n && r.is_connect && slice_is(r.target, "bigquery.googleapis.com:443") &&
		   r.body == HTTP1_BODY_NONE, "CONNECT host:port (%d %s)", n, why);
	n = REQ("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n", &r, &why);
	ok(n == want_n && r.is_connect, "CONNECT [IPv6]:port (%d %s)", n, why);

	n = REQ("GET / HTTP/1.0\r\n\r\n", &r, &why);
	ok(n == want_n && r.minor_version == 0 && !r.keep_alive && !r.host.p,
	   "HTTP/1.0 without Host, not keep-alive");
	n = REQ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nExpect: 100-continue\r\n\r\n", &r, &why);
	ok(n == want_n && r.keep_alive && !r.expect_continue,
	   "HTTP/1.0 keep-alive on request; Expect ignored in 1.0 (%d %s)", n, why);
	n = REQ("GET http://Bigquery.googleapis.com:80/x HTTP/1.1\r\n"
		"Host: bigquery.googleapis.com:80\r\n\r\n", &r, &why);
	ok(n == want_n && slice_is(r.host, "Bigquery.googleapis.com:80"),
	   "absolute-form: host is the target's authority (%d %s)", n, why);
	n = REQ("GET http://a.example/x HTTP/1.0\r\n\r\n", &r, &why);
	ok(n == want_n && slice_is(r.host, "a.example"), "absolute-form without Host (1.0)");
	n = REQ("OPTIONS * HTTP/1.1\r\n" H "\r\n", &r, &why);
	ok(n == want_n && slice_is(r.target, "*"), "OPTIONS * (%d %s)", n, why);
	n = REQ("GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n", &r, &why);
	ok(n == want_n && r.num_headers == 3 && r.headers[1].value.len == 0 &&
		   slice_is(r.headers[2].value, "v"), "empty value, tab OWS (%d %s)", n, why);
	n = REQ("GET / HTTP/1.1\r\n" H "Content-Length: 4611686018427387904\r\n\r\n", &r, &why);
	ok(n == want_n && r.content_length == 1ULL << 62, "Content-Length 2^62 accepted (%d %s)", n,
	   why);
	n = REQ("GET / HTTP/1.1\r\n" H "Content-Length:  007 \r\n\r\n", &r, &why);
	ok(n == want_n && r.content_length == 7, "Content-Length with leading zeros and OWS");
	n = REQ("GET / HTTP/1.1\r\n" H "\r\nGET", &r, &why);
	is_int(n, want_n - 3, "only the head is consumed");
}

/* The same request at every split point: -2 until complete, then the same result, with each
 * prefix ending at a guard page and last_len carried over. Then pipelining. */
static void split_and_pipeline(void)
{
	static const char s[] = "POST /q?a=b HTTP/1.1\r\n" H "Content-Type: application/json\r\n"
				"Content-Length: 2\r\n\r\n{}";
	static const char two[] = "GET /1 HTTP/1.1\r\n" H "\r\n"
				  "POST /2 HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"
				  "GET /3 HTTP/1.1\r\n" H "Connection: close\r\n\r\n";
	size_t head = sizeof(s) - 3, i, last = 0, bad = 0, bad0 = 0;
	struct http1_request r;
	const char *why;
	int n;

	for (i = 0; i < sizeof(s); i++) {
		memset(&r, 0, sizeof(r));
		r.headers = hdrs;
		n = http1_parse_request(tap_guarded(s, i), i, last, &lim, &r, &why);
		if (i < head ? n != -2 : (n != (int)head || r.content_length != 2 ||
					  r.num_headers != 3 || !slice_is(r.target, "/q?a=b")))
			bad++;
		if (n == -2)
			last = i;
		if (http1_parse_request(tap_guarded(s, i), i, 0, &lim, &r, &why) !=
		    (i < head ? -2 : (int)head))
			bad0++;
	}
	is_int(bad, 0, "every split point, last_len carried: -2 then the same request");
	is_int(bad0, 0, "every prefix from scratch: -2 then the same request");

	n = req(two, sizeof(two) - 1, &r, &why);
	i = (size_t)n;
	ok(n > 0 && slice_is(r.target, "/1"), "pipelined: first request");
	memset(&r, 0, sizeof(r));
	r.headers = hdrs;
	n = http1_parse_request(tap_guarded(two + i, sizeof(two) - 1 - i), sizeof(two) - 1 - i, 0,
				&lim, &r, &why);
	ok(n > 0 && slice_is(r.target, "/2") && r.content_length == 3, "pipelined: second");
	i += (size_t)n + 3;
	memset(&r, 0, sizeof(r));
	r.headers = hdrs;
	n = http1_parse_request(tap_guarded(two + i, sizeof(two) - 1 - i), sizeof(two) - 1 - i, 0,
				&lim, &r, &why);
	ok(n == (int)(sizeof(two) - 1 - i) && slice_is(r.target, "/3") && !r.keep_alive,
	   "pipelined: third, after the second's body");
}

static void smuggling(void)
{
	REFUSED("CL.TE", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: "
		"chunked\r\n\r\n", "Content-Length with Transfer-Encoding");
	REFUSED("TE.CL", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: "
		"5\r\n\r\n", "Content-Length with Transfer-Encoding");
	REFUSED("CL with CL: 0 and TE", "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n"
		"Transfer-Encoding: chunked\r\n\r\n", "Content-Length with Transfer-Encoding");
	REFUSED("two equal CL", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: "
		"5\r\n\r\n", "duplicate Content-Length");
	REFUSED("CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL +5", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL -1", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL 0x5", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL 5 5", "POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL empty", "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n",
		"invalid Content-Length");
	REFUSED("CL 2^62+1", "POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387905\r\n\r\n",
		"Content-Length too large");
	REFUSED("CL overflowing 64 bits", "POST / HTTP/1.1\r\n" H "Content-Length: "
		"184467440737095516160\r\n\r\n", "Content-Length too large");
	REFUSED("TE xchunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n",
		TE_REASON);
	REFUSED("TE chunked ,", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked ,\r\n\r\n",
		TE_REASON);
	REFUSED("TE chunked, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, "
		"chunked\r\n\r\n", TE_REASON);
	REFUSED("TE gzip, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n"
		"\r\n", TE_REASON);
	REFUSED("TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n",
		TE_REASON);
	REFUSED("TE chunked;x", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;x\r\n\r\n",
		TE_REASON);
	REFUSED("TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", TE_REASON);
	REFUSED("TE with a vertical tab", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \x0b"
		"chunked\r\n\r\n", "control character in header value");
	REFUSED("two TE lines", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
		"Transfer-Encoding: chunked\r\n\r\n", "duplicate Transfer-Encoding");
	REFUSED("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"Transfer-Encoding in HTTP/1.0 request");
	REFUSED("space before colon", "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n"
		"\r\n", "whitespace between header name and colon");
	REFUSED("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
		"whitespace between header name and colon");
	REFUSED("whitespace before the first header", "POST / HTTP/1.1\r\n Transfer-Encoding: "
		"chunked\r\n" H "\r\n", "obs-fold (header line starts with whitespace)");
	REFUSED("obs-fold", "GET / HTTP/1.1\r\n" H "X-A: a\r\n\tb\r\n\r\n",
		"obs-fold (header line starts with whitespace)");
	REFUSED("bare LF in request line", "GET / HTTP/1.1\n" H "\r\n",
		"bare LF in header section");
	REFUSED("bare LF ending the head", "GET / HTTP/1.1\r\n" H "\n\r\n",
		"bare LF in header section");
	REFUSED("LF LF", "GET / HTTP/1.1\n\n", "bare LF in header section");
	REFUSED("bare CR in a value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n",
		"bare CR in header section");
	REFUSED("CR CR LF", "GET / HTTP/1.1\r\r\n" H "\r\n", "bare CR in header section");
	REFUSED("NUL in a value", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", "NUL in header value");
	REFUSED("DEL in a value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n",
		"control character in header value");
	REFUSED("NUL in a name", "GET / HTTP/1.1\r\n" H "X\0: a\r\n\r\n",
		"invalid character in header name");
	REFUSED("empty header name", "GET / HTTP/1.1\r\n" H ": a\r\n\r\n",
		"empty or invalid header name");
	REFUSED("non-ASCII header name", "GET / HTTP/1.1\r\n" H "X-\xc3\xa9: a\r\n\r\n",
		"invalid character in header name");
	REFUSED("header without colon", "GET / HTTP/1.1\r\n" H "X-A\r\n\r\n",
		"invalid character in header name");
	REFUSED("missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "missing Host");
	REFUSED("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "duplicate Host");
	REFUSED("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host");
	REFUSED("Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host");
	REFUSED("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "invalid Host");
	REFUSED("Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid Host");
	REFUSED("Host port 65536", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", "invalid Host");
	REFUSED("Host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", "invalid Host");
	REFUSED("HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", "unsupported HTTP version");
	REFUSED("HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", "unsupported HTTP version");
	REFUSED("http/1.1", "GET / http/1.1\r\n" H "\r\n", "invalid HTTP version");
	REFUSED("HTTP/1.1 then space", "GET / HTTP/1.1 \r\n" H "\r\n",
		"invalid request line (text after HTTP version)");
	REFUSED("HTTP/1.10", "GET / HTTP/1.10\r\n" H "\r\n",
		"invalid request line (text after HTTP version)");
	REFUSED("no version", "GET /\r\n" H "\r\n", "missing HTTP version");
	REFUSED("two SPs after method", "GET  / HTTP/1.1\r\n" H "\r\n",
		"empty request target (or more than one SP)");
	REFUSED("two SPs before version", "GET /  HTTP/1.1\r\n" H "\r\n", "invalid HTTP version");
	REFUSED("tab as separator", "GET\t/ HTTP/1.1\r\n" H "\r\n", "invalid method");
	REFUSED("method with '('", "G(T / HTTP/1.1\r\n" H "\r\n", "invalid method");
	REFUSED("control character in target", "GET /a\x01 HTTP/1.1\r\n" H "\r\n",
		"invalid character in request target");
	REFUSED("non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n",
		"invalid character in request target");
	REFUSED("fragment", "GET /a#b HTTP/1.1\r\n" H "\r\n", "fragment in request target");
	REFUSED("relative target", "GET a/b HTTP/1.1\r\n" H "\r\n", "invalid request target");
	REFUSED("* outside OPTIONS", "GET * HTTP/1.1\r\n" H "\r\n",
		"\"*\" target outside OPTIONS");
	REFUSED("absolute-form with userinfo", "GET http://u@evil/ HTTP/1.1\r\nHost: evil\r\n\r\n",
		"userinfo in request target");
	REFUSED("absolute-form against Host", "GET http://evil.example/ HTTP/1.1\r\n" H "\r\n",
		"Host does not match request target");
	REFUSED("CONNECT without port", "CONNECT bigquery.googleapis.com HTTP/1.1\r\n" H "\r\n",
		"CONNECT target must be host:port");
	REFUSED("CONNECT with a body", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n"
		"Content-Length: 5\r\n\r\n", "CONNECT with a body");
	REFUSED("empty line first", "\r\nGET / HTTP/1.1\r\n" H "\r\n",
		"empty line before request line");
}

/* Limits, and a head trickled one byte at a time: the pages holding bytes that an earlier
 * call already examined are made unreadable, so any re-scan from byte 0 would crash. */
static void limits_and_slowloris(void)
{
	struct http1_limits small = { 64, 3 }, big = { 65536, 128 };
	static const char three[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
	static const char four[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	static char head[40000];
	struct http1_request r = { .headers = hdrs };
	size_t len = 0, i, pg = (size_t)sysconf(_SC_PAGESIZE), last = 0, bad = 0;
	char *g, *base, *prot;
	const char *why;
	int n;

	n = http1_parse_request(tap_guarded(three, sizeof(three) - 1), sizeof(three) - 1, 0, &small,
				&r, &why);
	ok(n == sizeof(three) - 1 && r.num_headers == 3, "exactly max_headers headers");
	n = http1_parse_request(tap_guarded(four, sizeof(four) - 1), sizeof(four) - 1, 0, &small,
				&r, &why);
	ok(n == -1 && !strcmp(why, "too many headers"), "one header too many");
	memset(head, 'a', 100);
	memcpy(head, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	memcpy(head + 60, "\r\n\r\n", 4);
	n = http1_parse_request(tap_guarded(head, 64), 64, 0, &small, &r, &why);
	is_int(n, 64, "head of exactly max_head_bytes");
	memcpy(head + 60, "a\r\n\r\n", 5);
	n = http1_parse_request(tap_guarded(head, 65), 65, 0, &small, &r, &why);
	ok(n == -1 && !strcmp(why, "header section too large"), "head one byte too large");
	n = http1_parse_request(tap_guarded(head, 63), 63, 0, &small, &r, &why);
	is_int(n, -2, "incomplete head below the limit: need more");
	memset(head, 'a', 100);
	memcpy(head, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	n = http1_parse_request(tap_guarded(head, 100), 100, 0, &small, &r, &why);
	ok(n == -1 && !strcmp(why, "header section too large"),
	   "no end within max_head_bytes: refused before the end arrives");

	len = (size_t)sprintf(head, "POST /upload HTTP/1.1\r\n" H "Content-Length: 1\r\n");
	for (i = 0; i < 100; i++)
		len += (size_t)sprintf(head + len, "X-Pad-%03zu: %0300d\r\n", i, 0);
	len += (size_t)sprintf(head + len, "\r\n");
	g = (char *)tap_guarded(head, len);
	prot = base = (char *)((uintptr_t)g & ~(uintptr_t)(pg - 1));
	for (i = 1; i < len; i++) {
		char *upto = (char *)((uintptr_t)(g + (last > 3 ? last - 3 : 0)) &
				      ~(uintptr_t)(pg - 1));

		if (upto > prot) {
			mprotect(prot, (size_t)(upto - prot), PROT_NONE);
			prot = upto;
		}
		if (http1_parse_request(g, i, last, &big, &r, &why) != -2)
			bad++;
		last = i;
	}
	ok(prot - base >= (long)(len - 2 * pg), "slowloris: %ld of %zu bytes made unreadable",
	   (long)(prot - base), len);
	is_int(bad, 0, "slowloris: -2 at every one of %zu prefixes, no byte re-read", len - 1);
	mprotect(base, (size_t)(prot - base), PROT_READ | PROT_WRITE);
	n = http1_parse_request(g, len, last, &big, &r, &why);
	ok(n == (int)len && r.num_headers == 102, "slowloris: complete head parsed once");
}

static void responses(void)
{
	static const char chunked[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				      "Transfer-Encoding: chunked\r\n\r\n";
	struct http1_response r;
	const char *why;
	size_t i, last = 0, bad = 0;
	int n;

	n = res("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 0, &r, &why);
	ok(n == want_n && r.status == 200 && slice_is(r.reason, "OK") && r.body == HTTP1_BODY_LENGTH &&
		   r.content_length == 12 && r.keep_alive, "200 with Content-Length");
	n = res("HTTP/1.1 204 No Content\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_NONE && r.keep_alive, "204: no body, keep-alive");
	n = res("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_NONE && r.content_length == 50, "304: no body");
	n = res("HTTP/1.1 100 Continue\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.status == 100 && r.body == HTTP1_BODY_NONE, "100 Continue: no body");
	n = res("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", HTTP1_REQ_HEAD, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_NONE && r.content_length == 99 && r.keep_alive,
	   "response to HEAD: no body, length kept");
	n = res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_REQ_HEAD, &r,
		&why);
	ok(n > 0 && r.body == HTTP1_BODY_NONE, "chunked response to HEAD: no body");
	n = res("HTTP/1.1 200 Connection established\r\n\r\n", HTTP1_REQ_CONNECT, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_NONE && !r.keep_alive, "CONNECT 200: tunnel, no body");
	n = res("HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n", HTTP1_REQ_CONNECT, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_LENGTH && r.keep_alive, "CONNECT 407: has a body");
	n = res("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.body == HTTP1_BODY_UNTIL_CLOSE && !r.keep_alive, "no framing: until close");
	n = res("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.minor_version == 0 && !r.keep_alive, "HTTP/1.0: close by default");
	n = res("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 0, &r,
		&why);
	ok(n > 0 && r.keep_alive, "HTTP/1.0 with Connection: keep-alive");
	n = res("HTTP/1.1 503\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 0, &r, &why);
	ok(n > 0 && r.status == 503 && r.reason.len == 0 && !r.keep_alive,
	   "status without reason phrase, Connection: close");

	for (i = 0; i < sizeof(chunked); i++) {
		memset(&r, 0, sizeof(r));
		r.headers = hdrs;
		n = http1_parse_response(tap_guarded(chunked, i), i, last, &lim, 0, &r, &why);
		if (i < sizeof(chunked) - 1 ? n != -2 : n != (int)i || r.body != HTTP1_BODY_CHUNKED)
			bad++;
		last = i;
	}
	is_int(bad, 0, "chunked response at every split point");

	n = res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
		&r, &why);
	ok(n == -1 && !strcmp(why, "Content-Length with Transfer-Encoding"), "response CL + TE");
	n = res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "duplicate Content-Length"), "response with two CL");
	n = res("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, TE_REASON), "response TE gzip");
	n = res("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "Transfer-Encoding in HTTP/1.0 response"), "1.0 response TE");
	n = res("HTTP/1.1 2000 OK\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "invalid status code"), "four-digit status");
	n = res("HTTP/1.1 20 OK\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "invalid status code"), "two-digit status");
	n = res("HTTP/1.1 600 X\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "invalid status code"), "status 600");
	n = res("HTTP/1.1 200 O\x01K\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "control character in reason phrase"), "CTL in reason");
	n = res("HTTP/2 200 OK\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "invalid HTTP version"), "HTTP/2 status line");
	n = res("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 0, &r, &why);
	ok(n == -1 && !strcmp(why, "bare LF in header section"), "response with bare LF");
}

/* Decode <enc> fed in pieces (each through a guard page): one cut at <split>, or byte by byte
 * when <split> is 0. Decoded bytes go to <out>, what followed the body to <rest>. Returns the
 * last decoder result (-2, -1, or the count of bytes after the body in the piece). */
static long dechunk(const char *enc, size_t len, size_t split, uint64_t max, char *out,
		    size_t *outlen, char *rest, size_t *restlen, const char **why)
{
	struct http1_chunked d;
	size_t pos = 0, end, n;
	long ret = -2;
	char *g;

	http1_chunked_init(&d, max);
	*outlen = *restlen = 0;
	while (pos < len) {
		end = split ? (pos < split ? split : len) : pos + 1;
		if (ret >= 0) {
			memcpy(rest + *restlen, enc + pos, end - pos);
			*restlen += end - pos;
		} else {
			n = end - pos;
			g = (char *)tap_guarded(enc + pos, n);
			ret = http1_chunked_decode(&d, g, &n, why);
			memcpy(out + *outlen, g, n);
			*outlen += n;
			if (ret == -1)
				return -1;
			if (ret >= 0) {
				memcpy(rest, g + n, (size_t)ret);
				*restlen = (size_t)ret;
			}
		}
		pos = end;
	}
	return ret;
}

static void chunk_refused(const char *what, const char *enc, size_t len, uint64_t max,
			  const char *want)
{
	char out[HTTP1_MAX_TRAILER + 64], rest[256];
	size_t outlen, restlen;
	const char *why = NULL;
	long r = dechunk(enc, len, len, max, out, &outlen, rest, &restlen, &why);

	ok(r == -1 && why && !strcmp(why, want), "chunked %s: \"%s\" (got %ld, \"%s\")", what, want,
	   r, why ? why : "");
}

#define CHUNK_REFUSED(what, enc, max, want) chunk_refused(what, enc, sizeof(enc) - 1, max, want)

static void chunked(void)
{
	static const char enc[] = "5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n"
				  "1A ; x=1\t;y\r\n abcdefghijklmnopqrstuvwxy\r\n"
				  "0\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\nGET / HTTP/1.1\r\n";
	static const char want[] = "hello world abcdefghijklmnopqrstuvwxy";
	char out[256], rest[256], big[HTTP1_MAX_TRAILER + 64];
	size_t outlen, restlen, i, bad = 0;
	const char *why;
	long r;

	r = dechunk(enc, sizeof(enc) - 1, sizeof(enc) - 1, 1000, out, &outlen, rest, &restlen,
		    &why);
	ok(r == 16 && outlen == sizeof(want) - 1 && !memcmp(out, want, outlen),
	   "chunked: extensions, trailers, body decoded (%ld %s)", r, why);
	ok(restlen == 16 && !memcmp(rest, "GET / HTTP/1.1\r\n", 16),
	   "chunked: pipelined bytes moved right after the body");
	for (i = 0; i <= sizeof(enc) - 1; i++) {
		r = dechunk(enc, sizeof(enc) - 1, i, 1000, out, &outlen, rest, &restlen, &why);
		if (r < 0 || outlen != sizeof(want) - 1 || memcmp(out, want, outlen) ||
		    restlen != 16 || memcmp(rest, "GET / HTTP/1.1\r\n", 16))
			bad++;
	}
	is_int(bad, 0, "chunked: same result at every split point");
	r = dechunk(enc, sizeof(enc) - 1, 0, 1000, out, &outlen, rest, &restlen, &why);
	ok(outlen == sizeof(want) - 1 && !memcmp(out, want, outlen) && restlen == 16,
	   "chunked: byte by byte");
	r = dechunk("0\r\n\r\n", 5, 5, 0, out, &outlen, rest, &restlen, &why);
	ok(r == 0 && outlen == 0, "chunked: empty body, nothing after it");
	r = dechunk("000A\r\n0123456789\r\n0\r\n\r", 22, 22, 10, out, &outlen, rest, &restlen,
		    &why);
	ok(r == -2 && outlen == 10, "chunked: -2 until the final LF, exactly max_body decoded");
	r = dechunk("fFfFfFfFfFfFfFfF\r\n", 18, 18, UINT64_MAX, out, &outlen, rest, &restlen,
		    &why);
	is_int(r, -2, "chunked: 16 hex digits are a valid size");

	CHUNK_REFUSED("size 0x5", "0x5\r\nhello\r\n0\r\n\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("size -1", "-1\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("empty size", "\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("size with leading space", " 5\r\nhello\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("size with trailing space", "5 \r\nhello\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("17 hex digits", "00000000000000005\r\nhello\r\n", 100,
		      "chunk size has more than 16 hex digits");
	CHUNK_REFUSED("huge size", "ffffffffffffffff\r\n", 1 << 20, "body too large");
	CHUNK_REFUSED("body too large", "5\r\nhello\r\n6\r\n world\r\n", 10, "body too large");
	CHUNK_REFUSED("data longer than its size", "5\r\nhelloX\r\n", 100,
		      "missing CRLF after chunk data");
	CHUNK_REFUSED("LF only after data", "5\r\nhello\n0\r\n\r\n", 100,
		      "missing CRLF after chunk data");
	CHUNK_REFUSED("bare LF after size", "5\nhello\r\n", 100, "invalid chunk size");
	CHUNK_REFUSED("bare CR after size", "5\rhello\r\n", 100, "bare CR in chunk size line");
	CHUNK_REFUSED("LF in extension", "5;a\nb\r\nhello\r\n", 100,
		      "control character in chunk extension");
	CHUNK_REFUSED("NUL in extension", "5;a\0", 100, "control character in chunk extension");
	CHUNK_REFUSED("obs-fold in trailer", "0\r\nX: a\r\n b\r\n\r\n", 100,
		      "invalid trailer field");
	CHUNK_REFUSED("space before colon in trailer", "0\r\nX : a\r\n\r\n", 100,
		      "invalid trailer field name");
	CHUNK_REFUSED("CTL in trailer", "0\r\nX: a\x01\r\n\r\n", 100,
		      "control character in trailer field");
	CHUNK_REFUSED("bare LF in trailer", "0\r\nX: a\n\r\n", 100,
		      "control character in trailer field");
	CHUNK_REFUSED("bare CR ending trailers", "0\r\n\rX", 100, "bare CR in trailer section");

	memset(big, 'a', sizeof(big));
	memcpy(big, "5;", 2);
	big[HTTP1_MAX_CHUNK_EXT + 3] = '\0';
	chunk_refused("extension too long", big, strlen(big), 100, "chunk extension too long");
	big[HTTP1_MAX_CHUNK_EXT + 2] = '\r';
	r = dechunk(big, HTTP1_MAX_CHUNK_EXT + 3, 0, 100, out, &outlen, rest, &restlen, &why);
	is_int(r, -2, "extension of exactly the maximum length");
	memset(big, 'a', sizeof(big));
	memcpy(big, "0\r\nX: ", 6);
	big[HTTP1_MAX_TRAILER + 8] = '\0';
	chunk_refused("trailers too large", big, strlen(big), 100, "trailer section too large");
}

static json_t *error_json(const char *msg, char *out, int *n, struct http1_response *r)
{
	const char *why;
	int h;

	*n = http1_write_json_error(out, 4096, 403, "PERMISSION_DENIED", "accessDenied", msg, 0);
	memset(r, 0, sizeof(*r));
	r->headers = hdrs;
	h = http1_parse_response(tap_guarded(out, (size_t)*n), (size_t)*n, 0, &lim, 0, r, &why);
	if (h <= 0 || r->content_length != (uint64_t)(*n - h))
		return NULL;
	return json_loadb(out + h, (size_t)(*n - h), 0, NULL);
}

static void json_errors(void)
{
	static const char msg[] = "Query \"DROP TABLE\" refused\\\n\ttab \x01 \x7f caf\xc3\xa9 "
				  "\xf0\x9f\x90\x8d bad:\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80.";
	static const char want[] = "Query \"DROP TABLE\" refused\\\n\ttab \x01 \x7f caf\xc3\xa9 "
				   "\xf0\x9f\x90\x8d bad:\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
				   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
				   "\xef\xbf\xbd\xef\xbf\xbd.";
	struct http1_response r;
	char out[4096], small[4096];
	json_t *j, *e, *e0;
	int n, m, i, bad = 0;

	j = error_json(msg, out, &n, &r);
	ok(j != NULL, "JSON error: a valid response whose body is valid JSON");
	e = json_object_get(j, "error");
	e0 = json_array_get(json_object_get(e, "errors"), 0);
	ok(r.status == 403 && slice_is(r.reason, "Forbidden") && !r.keep_alive,
	   "JSON error: 403 Forbidden, Connection: close");
	ok(http1_find(r.headers, r.num_headers, "content-type") &&
		   slice_is(http1_find(r.headers, r.num_headers, "content-type")->value,
			    "application/json; charset=UTF-8"), "JSON error: content type");
	is_int(json_integer_value(json_object_get(e, "code")), 403, "JSON error: code");
	is_str(json_string_value(json_object_get(e, "status")), "PERMISSION_DENIED",
	       "JSON error: status");
	is_str(json_string_value(json_object_get(e0, "reason")), "accessDenied",
	       "JSON error: reason");
	is_str(json_string_value(json_object_get(e0, "domain")), "global", "JSON error: domain");
	is_str(json_string_value(json_object_get(e, "message")), want,
	       "JSON error: quotes, backslash, controls kept; invalid UTF-8 -> U+FFFD");
	is_str(json_string_value(json_object_get(e0, "message")), want,
	       "JSON error: message repeated in errors[0]");
	ok(!memmem(out, (size_t)n, "\xff", 1) && memmem(out, (size_t)n, "\\u0001", 6),
	   "JSON error: no raw invalid byte, control as \\u0001");
	json_decref(j);

	n = http1_write_json_error(out, sizeof(out), 400, "INVALID_ARGUMENT", "badRequest",
				   NULL, 1);
	memset(&r, 0, sizeof(r));
	r.headers = hdrs;
	m = http1_parse_response(tap_guarded(out, (size_t)n), (size_t)n, 0, &lim, 0, &r, NULL);
	ok(m > 0 && r.keep_alive && !http1_find(r.headers, r.num_headers, "connection"),
	   "JSON error: keep-alive leaves out Connection");
	j = json_loadb(out + m, (size_t)(n - m), 0, NULL);
	is_str(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "",
	       "JSON error: NULL message is empty");
	json_decref(j);

	for (i = 0; i < n; i++)
		if (http1_write_json_error(small, (size_t)i, 400, "INVALID_ARGUMENT", "badRequest",
					   NULL, 1) != -1)
			bad++;
	is_int(bad, 0, "JSON error: -1 for every capacity that is too small");
	is_int(http1_write_json_error(small, (size_t)n, 400, "INVALID_ARGUMENT", "badRequest",
				      NULL, 1), n, "JSON error: fits exactly");
	ok(!memcmp(small, out, (size_t)n), "JSON error: same bytes");
	is_int(http1_write_json_error(out, sizeof(out), 99, "X", "x", "m", 0), -1,
	       "JSON error: status out of range");
	is_str(http1_status_text(431), "Request Header Fields Too Large", "status text 431");
}

int main(void)
{
	valid_requests();
	split_and_pipeline();
	smuggling();
	limits_and_slowloris();
	responses();
	chunked();
	json_errors();
	return tap_done();
}
