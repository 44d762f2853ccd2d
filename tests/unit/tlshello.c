/* Description: ClientHello peeking: real OpenSSL hellos at every truncation, fragmented and
 * oversized hellos, corrupted lengths, hand-built edge cases, non-TLS input. */
#include <openssl/ssl.h>
#include <stdint.h>

#include "tap.h"
#include "tlshello.h"

#define BIG (64 * 1024)

static size_t pad_len;
static unsigned char pad_data[32 * 1024];

static int pad_add(SSL *s, unsigned int type, const unsigned char **out, size_t *outlen,
		   int *al, void *arg)
{
	*out = pad_data;
	*outlen = pad_len;
	return 1;
}

/* The first flight of an OpenSSL client: its ClientHello record(s). <frag>: records of at
 * most that many bytes (0: default); <pad>: add a private extension of that many bytes. */
static size_t openssl_hello(uint8_t *out, size_t cap, const char *sni, const char *alpn_wire,
			    unsigned frag, size_t pad)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	int n;

	if (frag)
		SSL_CTX_set_max_send_fragment(ctx, frag);
	pad_len = pad;
	if (pad)
		SSL_CTX_add_client_custom_ext(ctx, 0xfe01, pad_add, NULL, NULL, NULL, NULL);
	ssl = SSL_new(ctx);
	SSL_set_bio(ssl, r, w);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	if (alpn_wire)
		SSL_set_alpn_protos(ssl, (const unsigned char *)alpn_wire,
				    (unsigned)strlen(alpn_wire));
	SSL_connect(ssl);
	n = BIO_read(w, out, (int)cap);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return n > 0 ? (size_t)n : 0;
}

/* The last parse's reason: an array, so that a message printing it is formatted after the
 * parse even though the order in which arguments are evaluated is unspecified. */
static char why[160];

static int parse(const void *buf, size_t len, struct tlshello *h)
{
	const char *reason;
	int rc = tlshello_parse((const uint8_t *)tap_guarded(buf, len), len, h, &reason);

	snprintf(why, sizeof(why), "%s", reason);
	return rc;
}

/* Every strict prefix needs more bytes; the whole parses. Returns the first failing length
 * or -1 when all passed. */
static long truncations(const uint8_t *buf, size_t len)
{
	struct tlshello h;
	size_t i;

	for (i = 0; i < len; i++)
		if (parse(buf, i, &h) != -2)
			return (long)i;
	return parse(buf, len, &h) == 1 ? -1 : (long)len;
}

/* A single-record ClientHello carrying <exts> (<elen> bytes, -1: no extensions block). */
static size_t build(uint8_t *out, const void *exts, long elen)
{
	size_t n = 9;

	memset(out, 0, 9 + 2 + 32);
	out[9] = 3, out[10] = 3; /* legacy_version */
	n = 9 + 2 + 32;
	out[n++] = 0;                               /* session id */
	out[n++] = 0, out[n++] = 2, out[n++] = 0x13, out[n++] = 0x01; /* one cipher suite */
	out[n++] = 1, out[n++] = 0;                 /* compression: null */
	if (elen >= 0) {
		out[n++] = (uint8_t)(elen >> 8), out[n++] = (uint8_t)elen;
		memcpy(out + n, exts, (size_t)elen);
		n += (size_t)elen;
	}
	out[0] = 22, out[1] = 3, out[2] = 1;
	out[3] = (uint8_t)((n - 5) >> 8), out[4] = (uint8_t)(n - 5);
	out[5] = 1, out[6] = 0, out[7] = (uint8_t)((n - 9) >> 8), out[8] = (uint8_t)(n - 9);
	return n;
}

/* server_name extension with the given entries "\0<len16>name..." written raw. */
static size_t sni_ext(uint8_t *out, const void *list, size_t llen)
{
	out[0] = 0, out[1] = 0;
	out[2] = (uint8_t)((llen + 2) >> 8), out[3] = (uint8_t)(llen + 2);
	out[4] = (uint8_t)(llen >> 8), out[5] = (uint8_t)llen;
	memcpy(out + 6, list, llen);
	return 6 + llen;
}

static size_t host_entry(uint8_t *out, const char *name, size_t len)
{
	out[0] = 0, out[1] = (uint8_t)(len >> 8), out[2] = (uint8_t)len;
	memcpy(out + 3, name, len);
	return 3 + len;
}

static int parse_sni_list(const void *list, size_t llen, struct tlshello *h)
{
	uint8_t ext[1024], hello[2048];

	return parse(hello, build(hello, ext, (long)sni_ext(ext, list, llen)), h);
}

static int parse_host(const char *name, size_t len, struct tlshello *h)
{
	uint8_t entry[512];

	return parse_sni_list(entry, host_entry(entry, name, len), h);
}

/* Re-cut the handshake message of single-record <in> into records of <k> bytes. */
static size_t resplit(uint8_t *out, const uint8_t *in, size_t len, size_t k)
{
	size_t off, n = 0, c;

	for (off = 5; off < len; off += c) {
		c = len - off < k ? len - off : k;
		out[n++] = 22, out[n++] = 3, out[n++] = 1;
		out[n++] = (uint8_t)(c >> 8), out[n++] = (uint8_t)c;
		memcpy(out + n, in + off, c);
		n += c;
	}
	return n;
}

/* Bump the big-endian number of <bytes> bytes at <p> by <d>. */
static void bump(uint8_t *p, int bytes, int d)
{
	long v = 0;
	int i;

	for (i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	v += d;
	for (i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static int corrupted(const uint8_t *hello, size_t len, size_t at, int bytes, int d)
{
	static uint8_t copy[BIG];
	struct tlshello h;

	memcpy(copy, hello, len);
	bump(copy + at, bytes, d);
	return parse(copy, len, &h);
}

static void real_hellos(void)
{
	static uint8_t buf[BIG], buf2[BIG];
	const char *alpn2 = "\x02h2\x08http/1.1";
	struct tlshello h;
	size_t n, m, sni_at, alpn_at;
	long bad;

	n = openssl_hello(buf, sizeof(buf), "bigquery.googleapis.com", alpn2, 0, 0);
	ok(n > 100 && buf[0] == 22, "OpenSSL produced a ClientHello (%zu bytes)", n);
	is_int(parse(buf, n, &h), 1, "it parses (%s)", why);
	is_str(h.sni, "bigquery.googleapis.com", "SNI read");
	ok(h.has_sni && h.is_tls, "has_sni and is_tls set");
	is_int(h.n_alpn, 2, "two ALPN names");
	is_str(h.alpn[0], "h2", "first ALPN name in the client's order");
	is_str(h.alpn[1], "http/1.1", "second ALPN name");
	is_int(h.legacy_version, 0x0303, "legacy_version 1.2");
	bad = truncations(buf, n);
	is_int(bad, -1, "every truncation needs more bytes, the whole parses");

	/* Corrupted lengths: the handshake, the extensions block, SNI and ALPN vectors. */
	sni_at = (size_t)((uint8_t *)memmem(buf, n, "bigquery.googleapis.com", 23) - buf);
	alpn_at = (size_t)((uint8_t *)memmem(buf, n, "\x02h2\x08", 4) - buf);
	is_int(corrupted(buf, n, 6, 3, -1), -1, "handshake length - 1: data after it");
	is_int(corrupted(buf, n, 6, 3, +1), -2, "handshake length + 1: waits for a record");
	is_int(corrupted(buf, n, 6, 3, +20000), -1, "handshake length over the limit");
	is_int(corrupted(buf, n, 3, 2, 16385 - (int)(n - 5)), -1, "record over 2^14 bytes");
	is_int(corrupted(buf, n, 43, 1, 33), -1, "session id of 33 bytes");
	is_int(corrupted(buf, n, sni_at - 2, 2, +1), -1, "SNI name length + 1");
	is_int(corrupted(buf, n, sni_at - 2, 2, -1), -1, "SNI name length - 1");
	is_int(corrupted(buf, n, sni_at - 5, 2, +1), -1, "SNI list length + 1");
	is_int(corrupted(buf, n, sni_at - 7, 2, -1), -1, "SNI extension length - 1");
	is_int(corrupted(buf, n, alpn_at - 2, 2, +1), -1, "ALPN list length + 1");
	is_int(corrupted(buf, n, alpn_at, 1, +1), -1, "ALPN name length + 1");
	is_int(corrupted(buf, n, alpn_at + 3, 1, -9), -1, "ALPN name length to 0 (wraps)");

	n = openssl_hello(buf, sizeof(buf), "BigQuery.GoogleAPIs.COM", "\x08http/1.1", 0, 0);
	is_int(parse(buf, n, &h), 1, "mixed-case SNI parses (%s)", why);
	is_str(h.sni, "bigquery.googleapis.com", "SNI lower-cased");
	is_int(h.n_alpn, 1, "one ALPN name");

	n = openssl_hello(buf, sizeof(buf), NULL, NULL, 0, 0);
	is_int(parse(buf, n, &h), 1, "hello without SNI or ALPN parses (%s)", why);
	ok(!h.has_sni && h.sni[0] == '\0' && h.n_alpn == 0, "no SNI, no ALPN");

	/* Records of 512 bytes (the smallest OpenSSL sends) around a 3000-byte extension. */
	n = openssl_hello(buf, sizeof(buf), "www.googleapis.com", alpn2, 512, 3000);
	ok(n > 3000 && ((size_t)buf[3] << 8 | buf[4]) == 512, "hello split into 512-byte records");
	is_int(parse(buf, n, &h), 1, "fragmented hello parses (%s)", why);
	is_str(h.sni, "www.googleapis.com", "SNI from a fragmented hello");
	is_int(h.n_alpn, 2, "ALPN from a fragmented hello");
	is_int(truncations(buf, n), -1, "fragmented: every truncation needs more bytes");

	/* Nearly as big as allowed (4 records), then over the limit. */
	n = openssl_hello(buf, sizeof(buf), "bigquery.googleapis.com", alpn2, 4096, 15500);
	ok(n > 15500 && n <= TLSHELLO_MAX_BYTES, "a %zu-byte hello in 4 KiB records", n);
	is_int(parse(buf, n, &h), 1, "large hello parses (%s)", why);
	is_str(h.sni, "bigquery.googleapis.com", "SNI from a large hello");
	is_int(truncations(buf, n), -1, "large: every truncation needs more bytes");
	n = openssl_hello(buf, sizeof(buf), "bigquery.googleapis.com", alpn2, 0, 17000);
	is_int(parse(buf, n, &h), -1, "a 17 KB hello is refused (%s)", why);
	is_int(parse(buf, 20, &h), -1, "... as soon as its length is known");

	/* Re-cut into 20-byte records (15-16 of them), then 10-byte records (too many). */
	n = openssl_hello(buf, sizeof(buf), "bigquery.googleapis.com", NULL, 0, 0);
	m = resplit(buf2, buf, n, (n - 5 + 15) / 16);
	is_int(parse(buf2, m, &h), 1, "hello in 16 records parses (%s)", why);
	is_int(truncations(buf2, m), -1, "16 records: every truncation needs more bytes");
	m = resplit(buf2, buf, n, (n - 5) / 17);
	is_int(parse(buf2, m, &h), -1, "hello in 17+ records refused (%s)", why);

	/* Whatever single byte is changed: no over-read, and an answer in range. */
	n = openssl_hello(buf, sizeof(buf), "bigquery.googleapis.com", alpn2, 0, 0);
	{
		static const uint8_t flips[] = { 0x01, 0x80, 0xff, 0x10 };
		int bad_answers = 0, r;
		size_t i, j;

		for (i = 0; i < n; i++) {
			for (j = 0; j < sizeof(flips); j++) {
				memcpy(buf2, buf, n);
				buf2[i] ^= flips[j];
				r = parse(buf2, n, &h);
				if (r < -2 || r > 1 || (r == 1 && h.has_sni && !strchr(h.sni, '.')))
					bad_answers++;
			}
		}
		is_int(bad_answers, 0, "%zu single-byte corruptions: answers in range", n * 4);
	}
}

static void built_hellos(void)
{
	uint8_t hello[2048], ext[1024], list[1024], two[4096];
	struct tlshello h;
	char host[300];
	size_t n, l;
	int i;

	n = build(hello, NULL, -1);
	is_int(parse(hello, n, &h), 1, "hello without an extensions block (%s)", why);
	hello[n] = 21, hello[n + 1] = 3, hello[n + 2] = 3;
	is_int(parse(hello, n + 3, &h), 1, "bytes after the hello's record are ignored");
	is_int(truncations(hello, n), -1, "minimal hello: truncations need more bytes");
	l = resplit(two, hello, n, 3);
	is_int(parse(two, l, &h), 1, "minimal hello in %zu 3-byte records (%s)",
	       (n - 5 + 2) / 3, why);
	is_int(truncations(two, l), -1, "3-byte records: truncations need more bytes");
	hello[3]++, hello[n] = 0;
	is_int(parse(hello, n + 1, &h), -1, "extra byte in the hello's record (%s)", why);

	is_int(parse_host("Storage.GoogleAPIs.com", 22, &h), 1, "built SNI parses");
	is_str(h.sni, "storage.googleapis.com", "built SNI lower-cased");
	is_int(parse_host("a\0b.com", 7, &h), -1, "NUL in SNI refused");
	is_int(parse_host("a\nb.com", 7, &h), -1, "control character in SNI refused");
	is_int(parse_host("a b.com", 7, &h), -1, "space in SNI refused");
	is_int(parse_host("a_b.com", 7, &h), -1, "underscore in SNI refused");
	is_int(parse_host("example.com.", 12, &h), -1, "trailing dot refused");
	is_int(parse_host("a..com", 6, &h), -1, "empty label refused");
	is_int(parse_host("\xc3\xa9t\xc3\xa9.fr", 9, &h), -1, "UTF-8 SNI refused");
	is_int(parse_host("", 0, &h), -1, "empty SNI refused");
	memset(host, 'a', sizeof(host));
	host[63] = '.';
	is_int(parse_host(host, 127, &h), 1, "63-byte labels accepted");
	host[63] = 'a';
	is_int(parse_host(host, 127, &h), -1, "64-byte label refused");
	for (i = 63; i < 300; i += 64)
		host[i] = '.';
	is_int(parse_host(host, 253, &h), 1, "253-byte name accepted");
	is_int(parse_host(host, 254, &h), -1, "254-byte name refused");

	l = host_entry(list, "a.com", 5);
	l += host_entry(list + l, "b.com", 5);
	is_int(parse_sni_list(list, l, &h), -1, "two host_name entries refused (%s)", why);
	l = host_entry(list, "a.com", 5);
	list[0] = 2;
	is_int(parse_sni_list(list, l, &h), -1, "unknown name type refused (%s)", why);
	is_int(parse_sni_list(list, 0, &h), -1, "empty server name list refused (%s)", why);

	l = host_entry(list, "a.com", 5);
	n = sni_ext(ext, list, l);
	memcpy(ext + n, ext, n);
	n = build(hello, ext, (long)(2 * n));
	is_int(parse(hello, n, &h), -1, "two server_name extensions refused (%s)", why);

	/* ALPN: 10 names, one too long to keep, one not printable. */
	l = 0;
	for (i = 0; i < 10; i++) {
		list[l++] = 2, list[l++] = 'p', list[l++] = (uint8_t)('0' + i);
		if (i == 1) {
			list[l++] = 40;
			memset(list + l, 'x', 40);
			l += 40;
			list[l++] = 2, list[l++] = 'a', list[l++] = 0x01;
		}
	}
	ext[0] = 0, ext[1] = 16, ext[2] = (uint8_t)((l + 2) >> 8), ext[3] = (uint8_t)(l + 2);
	ext[4] = (uint8_t)(l >> 8), ext[5] = (uint8_t)l;
	memcpy(ext + 6, list, l);
	n = build(hello, ext, (long)(6 + l));
	is_int(parse(hello, n, &h), 1, "12 ALPN names parse (%s)", why);
	is_int(h.n_alpn, TLSHELLO_MAX_ALPN, "the first %d usable ones are kept", TLSHELLO_MAX_ALPN);
	ok(!strcmp(h.alpn[1], "p1") && !strcmp(h.alpn[2], "p2") && !strcmp(h.alpn[7], "p7"),
	   "too long and unprintable names skipped");
	memcpy(two, ext, 6 + l);
	memcpy(two + 6 + l, ext, 6 + l);
	n = build(hello, two, (long)(12 + 2 * l));
	is_int(parse(hello, n, &h), -1, "two ALPN extensions refused (%s)", why);

	n = build(hello, NULL, -1);
	hello[5] = 2;
	is_int(parse(hello, n, &h), -1, "a ServerHello is refused (%s)", why);
}

static void not_tls(void)
{
	static const struct {
		const char *what, *bytes;
		size_t len;
		int want;
	} cases[] = {
		{ "GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 0 },
		{ "CONNECT", "CONNECT bigquery.googleapis.com:443 HTTP/1.1\r\n", 46, 0 },
		{ "SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", 21, 0 },
		{ "SSLv2 hello", "\x80\x2e\x01\x00\x02\x00\x15", 7, 0 },
		{ "handshake with version 2.0", "\x16\x02\x00\x00\x10", 5, 0 },
		{ "handshake with version 3.9", "\x16\x03\x09\x00\x10", 5, 0 },
		{ "nothing yet", "", 0, -2 },
		{ "one handshake byte", "\x16", 1, -2 },
		{ "record header prefix", "\x16\x03\x01\x02", 4, -2 },
		{ "alert record", "\x15\x03\x03\x00\x02\x02\x28", 7, -1 },
		{ "change_cipher_spec first", "\x14\x03\x03\x00\x01\x01", 6, -1 },
		{ "empty handshake record", "\x16\x03\x01\x00\x00", 5, -1 },
		{ "zeros", "\0\0\0\0\0\0\0\0", 8, 0 },
	};
	struct tlshello h;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(parse(cases[i].bytes, cases[i].len, &h), cases[i].want, "%s (%s)",
		       cases[i].what, why);
	parse("GET ", 4, &h);
	is_int(h.is_tls, 0, "is_tls 0 for HTTP");
	parse("\x16\x03", 2, &h);
	is_int(h.is_tls, 1, "is_tls 1 for a TLS prefix");
}

int main(void)
{
	char out[256];

	for (size_t i = 0; i < sizeof(pad_data); i++)
		pad_data[i] = (unsigned char)i;
	real_hellos();
	built_hellos();
	not_tls();
	is_int(tlshello_hostname("Www.Example.COM", 15, out, sizeof(out)), 0, "hostname ok");
	is_str(out, "www.example.com", "hostname lower-cased");
	is_int(tlshello_hostname("x.com", 5, out, 5), -1, "hostname does not fit in out");
	return tap_done();
}
