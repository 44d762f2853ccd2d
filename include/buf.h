/* buf.h - a growable byte buffer: the connections' queues (conn.h) and the TLS layer's
 * ciphertext queues (tls.c). p[0..len) holds the bytes, in a buffer of <cap>; <off> is
 * how far a reader has got (a send in flight, ciphertext OpenSSL has taken). */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>

struct buf {
	char *p;
	size_t len, off, cap;
};

/* Append p[0..n) to <b>, growing it up to <limit> bytes in all. Returns 0 or -1. */
int buf_append(struct buf *b, const void *p, size_t n, size_t limit);
/* Make room for <n> more bytes at the end of <b> (doubling, from 4 KiB). Returns 0 or -1. */
int buf_reserve(struct buf *b, size_t n);
/* Drop the first <n> bytes, keeping what follows. */
void buf_consume(struct buf *b, size_t n);
/* Free the bytes; <b> is empty and usable again. */
void buf_free(struct buf *b);

#endif
