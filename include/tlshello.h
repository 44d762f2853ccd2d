/* tlshello.h - peek at a TLS ClientHello: the SNI and ALPN a client asks for, read from the
 * first bytes it sends and without consuming them, so that sluiced can decide whether to
 * terminate TLS or splice the connection unchanged.
 *
 * A pure parser (libc only): every length is checked against the bytes that enclose it, at
 * every level, and nothing is read past <len>. A ClientHello may span several TLS records;
 * it is reassembled into a bounded buffer on the stack. */
#ifndef SLUICE_TLSHELLO_H
#define SLUICE_TLSHELLO_H

#include <stddef.h>
#include <stdint.h>

#define TLSHELLO_MAX_ALPN 8        /* ALPN names kept; later ones are checked, not kept */
#define TLSHELLO_MAX_MSG 16384     /* ClientHello handshake message, 4-byte header included */
#define TLSHELLO_MAX_RECORDS 16    /* TLS records one ClientHello may span */
/* Peek at most this many bytes: with this much input the answer is never -2. */
#define TLSHELLO_MAX_BYTES (TLSHELLO_MAX_MSG + 5 * TLSHELLO_MAX_RECORDS)

struct tlshello {
	char sni[256];          /* host_name, lower-cased, LDH and dots only; "" without SNI */
	int has_sni;
	int n_alpn;             /* names kept in alpn[], in the client's order */
	char alpn[TLSHELLO_MAX_ALPN][32]; /* printable names of at most 31 bytes; others skipped */
	uint16_t legacy_version; /* ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3) */
	int is_tls;             /* the bytes start like TLS (set also for -1 and -2) */
};

/* Parse the ClientHello at the start of <buf>. Returns 1 when a complete ClientHello was
 * parsed into <out> (bytes after its last record are ignored), -2 when more bytes are
 * needed, 0 when the bytes are not TLS at all (e.g. "GET ", "CONNECT ", SSH, an SSLv2
 * hello), -1 when it is TLS but malformed or over a limit. <why> (may be NULL) gets a
 * static reason for every return. <out> is zeroed first and complete only on 1. */
int tlshello_parse(const uint8_t *buf, size_t len, struct tlshello *out, const char **why);

/* Check a host name as SNI carries it: 1-253 bytes of letters, digits, '-' and '.', labels
 * of 1-63 bytes, no trailing dot. Writes it lower-cased and NUL-terminated to <out>
 * (<outlen> > len). Returns 0, or -1 when it is not such a name. */
int tlshello_hostname(const void *name, size_t len, char *out, size_t outlen);

#endif
