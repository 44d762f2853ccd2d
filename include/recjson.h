/* recjson.h - the canonical JSON text of session records: byte for byte what jansson's
 * json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) writes (the form the
 * verifier checks, with jansson), without its callback per piece of output and its
 * character-by-character string walk. Used for every record line sluiced writes. */
#ifndef SLUICE_RECJSON_H
#define SLUICE_RECJSON_H

#include <jansson.h>
#include <stddef.h>

/* A growing output buffer; zero-initialise it, recjson_free it. */
struct recjson_buf {
	char *p;
	size_t len, cap;
};

/* Append the canonical text of <v> (any JSON value) to <b>. Fails, like jansson, on a string
 * that is not valid UTF-8 and on nesting deeper than 2048 (a cycle). Returns 0, -ENOMEM or
 * -EINVAL; on failure <b> holds a partial value. */
int recjson_dump(struct recjson_buf *b, const json_t *v);

/* Append <s>[0..<n>) as a canonical JSON string (quoted and escaped). Returns 0, -ENOMEM or
 * -EINVAL (not valid UTF-8). */
int recjson_string(struct recjson_buf *b, const char *s, size_t n);

/* Is s[0..n) UTF-8 that jansson accepts in a string (no overlong forms, surrogates or code
 * points above U+10FFFF) and free of NUL bytes? */
int recjson_utf8_ok(const char *s, size_t n);

/* Append <n> bytes as they are. Returns 0 or -ENOMEM. */
int recjson_raw(struct recjson_buf *b, const char *s, size_t n);

/* Append a decimal integer. Returns 0 or -ENOMEM. */
int recjson_int(struct recjson_buf *b, long long v);

/* Make room for <n> more bytes. Returns 0 or -ENOMEM. */
int recjson_reserve(struct recjson_buf *b, size_t n);

void recjson_free(struct recjson_buf *b);

#endif
