/* buf.c - the growable byte buffer of buf.h. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
	if (b->len + n > limit || buf_reserve(b, n))
		return -1;
	if (n) /* p may be NULL with nothing to copy (a request without a body) */
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Drop the first <n> bytes (a finished request) keeping what follows (pipelined ones). */
void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->off = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *np;

	if (b->len + n <= b->cap)
		return 0;
	while (cap < b->len + n)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np)
		return -1;
	b->p = np;
	b->cap = cap;
	return 0;
}
