/* tlshello.c - parse a TLS ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2) from peeked bytes
 * for its SNI (RFC 6066 3) and ALPN (RFC 7301) extensions.
 *
 * Two stages: the record layer reassembles the handshake message from up to
 * TLSHELLO_MAX_RECORDS handshake records into a stack buffer, then the message is read with
 * a cursor whose every length prefix must fit inside the vector that encloses it. */
#include <string.h>

#include "tlshello.h"

#define REC_HANDSHAKE 22
#define REC_MAX_PLAIN 16384 /* 2^14: largest plaintext record */
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define EXT_ALPN 16

/* A read position in a byte vector: <n> bytes remain at <p>. */
struct cur {
	const uint8_t *p;
	size_t n;
};

static int get_uint(struct cur *c, int bytes, size_t *v)
{
	int i;

	if (c->n < (size_t)bytes)
		return -1;
	for (*v = 0, i = 0; i < bytes; i++)
		*v = *v << 8 | c->p[i];
	c->p += bytes;
	c->n -= (size_t)bytes;
	return 0;
}

/* Split off a vector with a big-endian length prefix of <bytes> bytes into <sub>. */
static int get_vec(struct cur *c, int bytes, struct cur *sub)
{
	size_t len;

	if (get_uint(c, bytes, &len) || len > c->n)
		return -1;
	sub->p = c->p;
	sub->n = len;
	c->p += len;
	c->n -= len;
	return 0;
}

int tlshello_hostname(const void *name, size_t len, char *out, size_t outlen)
{
	const uint8_t *p = name;
	size_t i, label = 0;

	if (len == 0 || len > 253 || len >= outlen)
		return -1;
	for (i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (uint8_t)(c - 'A' + 'a');
			label++;
		} else {
			return -1;
		}
		if (label > 63)
			return -1;
		out[i] = (char)c;
	}
	out[len] = '\0';
	return label == 0 ? -1 : 0;
}

/* server_name: a list of (type, name); only one host_name (type 0) is accepted, as OpenSSL
 * does, so that sluice and the TLS stack can never pick different names. */
static int parse_sni(struct cur ext, struct tlshello *out, const char **why)
{
	struct cur list, name;
	size_t type;

	if (get_vec(&ext, 2, &list) || ext.n || !list.n) {
		*why = "server_name: bad list length";
		return -1;
	}
	while (list.n) {
		if (get_uint(&list, 1, &type) || get_vec(&list, 2, &name)) {
			*why = "server_name: bad entry length";
			return -1;
		}
		if (type != 0) {
			*why = "server_name: name type other than host_name";
			return -1;
		}
		if (out->has_sni) {
			*why = "server_name: more than one host_name";
			return -1;
		}
		if (tlshello_hostname(name.p, name.n, out->sni, sizeof(out->sni))) {
			*why = "server_name: not a DNS host name (letters, digits, '-', '.')";
			return -1;
		}
		out->has_sni = 1;
	}
	return 0;
}

static int parse_alpn(struct cur ext, struct tlshello *out, const char **why)
{
	struct cur list, name;
	size_t i;

	if (get_vec(&ext, 2, &list) || ext.n || !list.n) {
		*why = "ALPN: bad list length";
		return -1;
	}
	while (list.n) {
		if (get_vec(&list, 1, &name) || !name.n) {
			*why = "ALPN: bad protocol name length";
			return -1;
		}
		if (out->n_alpn >= TLSHELLO_MAX_ALPN || name.n >= sizeof(out->alpn[0]))
			continue;
		for (i = 0; i < name.n && name.p[i] > 0x20 && name.p[i] < 0x7f; i++)
			;
		if (i < name.n)
			continue;
		memcpy(out->alpn[out->n_alpn], name.p, name.n);
		out->alpn[out->n_alpn++][name.n] = '\0';
	}
	return 0;
}

/* The reassembled handshake message <m> (<n> bytes, header included). */
static int parse_hello(const uint8_t *m, size_t n, struct tlshello *out, const char **why)
{
	struct cur c = { m + 4, n - 4 }, v, exts, ext;
	size_t x, type;
	int seen_sni = 0, seen_alpn = 0;

	*why = "ClientHello: truncated fixed fields";
	if (get_uint(&c, 2, &x))
		return -1;
	out->legacy_version = (uint16_t)x;
	if (c.n < 32)
		return -1;
	c.p += 32; /* random */
	c.n -= 32;
	if (get_vec(&c, 1, &v) || v.n > 32) {
		*why = "ClientHello: bad session id length";
		return -1;
	}
	if (get_vec(&c, 2, &v) || !v.n || v.n % 2) {
		*why = "ClientHello: bad cipher suites length";
		return -1;
	}
	if (get_vec(&c, 1, &v) || !v.n) {
		*why = "ClientHello: bad compression methods length";
		return -1;
	}
	if (!c.n) { /* no extensions at all (TLS 1.2 allows it) */
		*why = "complete ClientHello";
		return 1;
	}
	if (get_vec(&c, 2, &exts) || c.n) {
		*why = "ClientHello: extensions length does not match the message";
		return -1;
	}
	while (exts.n) {
		if (get_uint(&exts, 2, &type) || get_vec(&exts, 2, &ext)) {
			*why = "ClientHello: bad extension length";
			return -1;
		}
		if (type == EXT_SERVER_NAME) {
			if (seen_sni++) {
				*why = "ClientHello: server_name extension twice";
				return -1;
			}
			if (parse_sni(ext, out, why))
				return -1;
		} else if (type == EXT_ALPN) {
			if (seen_alpn++) {
				*why = "ClientHello: ALPN extension twice";
				return -1;
			}
			if (parse_alpn(ext, out, why))
				return -1;
		}
	}
	*why = "complete ClientHello";
	return 1;
}

/* Is the record header prefix at <p> (<n> < 5 bytes, maybe 0) possibly TLS? */
static int tls_prefix(const uint8_t *p, size_t n)
{
	return (n < 1 || (p[0] >= 20 && p[0] <= 23)) && (n < 2 || p[1] == 3) &&
	       (n < 3 || p[2] <= 4);
}

int tlshello_parse(const uint8_t *buf, size_t len, struct tlshello *out, const char **why)
{
	uint8_t msg[TLSHELLO_MAX_MSG];
	size_t off = 0, have = 0, need = 0, rlen, avail, copy;
	const char *dummy;
	int records = 0;

	if (!why)
		why = &dummy;
	memset(out, 0, sizeof(*out));
	if (!tls_prefix(buf, len < 5 ? len : 5)) {
		*why = "not TLS";
		return 0;
	}
	out->is_tls = 1;
	for (;;) {
		if (len - off < 5) {
			if (!tls_prefix(buf + off, len - off)) {
				*why = "non-TLS bytes inside the ClientHello";
				return -1;
			}
			*why = "need more bytes";
			return -2;
		}
		if (buf[off] != REC_HANDSHAKE || !tls_prefix(buf + off, 5)) {
			*why = records ? "other record inside the ClientHello" :
					 "TLS record that is not a handshake";
			return -1;
		}
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		if (rlen == 0 || rlen > REC_MAX_PLAIN) {
			*why = "bad handshake record length";
			return -1;
		}
		if (++records > TLSHELLO_MAX_RECORDS) {
			*why = "ClientHello spans too many records";
			return -1;
		}
		avail = len - off - 5 < rlen ? len - off - 5 : rlen;
		copy = avail < sizeof(msg) - have ? avail : sizeof(msg) - have;
		memcpy(msg + have, buf + off + 5, copy);
		if (!need && have + copy >= 4) {
			if (msg[0] != HS_CLIENT_HELLO) {
				*why = "first handshake message is not a ClientHello";
				return -1;
			}
			need = 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
			if (need > sizeof(msg)) {
				*why = "ClientHello larger than TLSHELLO_MAX_MSG";
				return -1;
			}
		}
		if (need && have + rlen > need) {
			*why = "data after the ClientHello in its record";
			return -1;
		}
		have += copy;
		if (avail < rlen) {
			*why = "need more bytes";
			return -2;
		}
		off += 5 + rlen;
		if (need && have == need)
			return parse_hello(msg, have, out, why);
	}
}
