/* recjson.c - canonical JSON text of session records (see recjson.h).
 *
 * Matches jansson 2.14's dump.c with JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII:
 * object keys in memcmp order (a shorter key first when one is a prefix of the other), no
 * whitespace, strings with \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00XX and every
 * code point above 0x7F as \uXXXX (a UTF-16 surrogate pair above U+FFFF), hex in upper case;
 * '/' and 0x7F as they are. Reals, which records do not use, go through jansson itself.
 * tests/unit/recjson.c compares the two on generated values. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recjson.h"

#define MAX_DEPTH 2100 /* parsed JSON is at most 2048 deep (jansson), records add a few */
#define SMALL_OBJECT 16

int recjson_reserve(struct recjson_buf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->cap - b->len >= n)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = cap;
	return 0;
}

int recjson_raw(struct recjson_buf *b, const char *s, size_t n)
{
	if (recjson_reserve(b, n))
		return -ENOMEM;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

int recjson_int(struct recjson_buf *b, long long v)
{
	char tmp[24], *e = tmp + sizeof(tmp), *p = e;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return recjson_raw(b, p, (size_t)(e - p));
}

void recjson_free(struct recjson_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Bytes that end a run copied as is: '"', '\\', controls, and UTF-8 (non-ASCII). */
static const unsigned char special[256] = {
	[0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};

/* One code point of UTF-8 at <p> (before <e>), as jansson's utf8_iterate accepts it: no
 * overlong forms, no surrogates, nothing above U+10FFFF. Returns its length, 0 if invalid. */
static size_t utf8_next(const unsigned char *p, const unsigned char *e, unsigned *cp)
{
	unsigned c = p[0], v;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2, v = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, v = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, v = c & 0x07;
	else
		return 0;
	if ((size_t)(e - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000))
		return 0;
	*cp = v;
	return n;
}

int recjson_utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	unsigned cp;
	size_t k;
	uint64_t w;

	while (p < e) {
		if (e - p >= 8) { /* ASCII without NUL, eight bytes at a time */
			memcpy(&w, p, 8);
			if (!(w & 0x8080808080808080ULL) &&
			    !((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL)) {
				p += 8;
				continue;
			}
		}
		if (*p && *p < 0x80) {
			p++;
			continue;
		}
		if (!*p || !(k = utf8_next(p, e, &cp)))
			return 0;
		p += k;
	}
	return 1;
}

/* "\uXXXX" for <u> (< 0x10000) at <o>. */
static void put_u(char *o, unsigned u)
{
	static const char hex[] = "0123456789ABCDEF";

	o[0] = '\\';
	o[1] = 'u';
	o[2] = hex[u >> 12 & 15];
	o[3] = hex[u >> 8 & 15];
	o[4] = hex[u >> 4 & 15];
	o[5] = hex[u & 15];
}

/* Does the word <w> hold a byte that ends a plain run (see special[])? */
static int word_special(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');

	return !!((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & high);
}

/* Short escapes by byte; 0 for the bytes written as \u00XX. */
static const char short_esc[0x60] = {
	['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
	['\t'] = 't',
};

/* Input bytes escaped per round of recjson_string: its output (at most 6 bytes per input
 * byte, "\\u00XX") is reserved once per round, not checked per byte. */
#define STRING_ROUND 512

int recjson_string(struct recjson_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n, *re;
	unsigned cp;
	uint64_t w;
	size_t k;
	char *o;

	if (recjson_reserve(b, 2 + (n < STRING_ROUND ? n : STRING_ROUND) * 6 + 8))
		return -ENOMEM;
	o = b->p + b->len; /* kept in a local: stores through <o> could alias b->len */
	*o++ = '"';
	while (p < e) {
		/* a round: up to STRING_ROUND bytes of input (a code point may end past it) */
		re = e - p > STRING_ROUND ? p + STRING_ROUND : e;
		while (p < re) {
			/* eight plain bytes at a time, written before they are looked at (the
			 * reserve leaves room) */
			while (re - p >= 8) {
				memcpy(&w, p, 8);
				memcpy(o, &w, 8);
				if (word_special(w))
					break;
				p += 8;
				o += 8;
			}
			while (p < re && !special[*p])
				*o++ = (char)*p++;
			if (p == re)
				break;
			if (*p < 0x80) {
				if (short_esc[*p]) {
					o[0] = '\\';
					o[1] = short_esc[*p];
					o += 2;
				} else {
					put_u(o, *p);
					o += 6;
				}
				p++;
			} else {
				k = utf8_next(p, e, &cp);
				if (!k) {
					b->len = (size_t)(o - b->p);
					return -EINVAL;
				}
				if (cp < 0x10000) {
					put_u(o, cp);
					o += 6;
				} else {
					cp -= 0x10000;
					put_u(o, 0xd800 | (cp >> 10));
					put_u(o + 6, 0xdc00 | (cp & 0x3ff));
					o += 12;
				}
				p += k;
			}
		}
		b->len = (size_t)(o - b->p);
		if (p < e) {
			if (recjson_reserve(b, (size_t)((e - p) < STRING_ROUND ? (e - p) : STRING_ROUND) *
					    6 + 8 + 1))
				return -ENOMEM;
			o = b->p + b->len;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	return 0;
}

struct member {
	const char *key;
	size_t len;
	json_t *value;
};

static int member_cmp(const void *x, const void *y)
{
	const struct member *a = x, *b = y;
	int r = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);

	return r ? r : (a->len > b->len) - (a->len < b->len);
}

static int dump(struct recjson_buf *b, const json_t *v, int depth);

static int dump_object(struct recjson_buf *b, const json_t *v, int depth)
{
	struct member small[SMALL_OBJECT], *m = small, t;
	size_t n = json_object_size(v), i, j;
	void *it;
	int e = 0;

	if (!n)
		return recjson_raw(b, "{}", 2);
	if (n > SMALL_OBJECT && !(m = malloc(n * sizeof(*m))))
		return -ENOMEM;
	for (i = 0, it = json_object_iter((json_t *)v); it && i < n;
	     i++, it = json_object_iter_next((json_t *)v, it)) {
		m[i].key = json_object_iter_key(it);
		m[i].len = json_object_iter_key_len(it);
		m[i].value = json_object_iter_value(it);
	}
	n = i;
	if (n > SMALL_OBJECT) {
		qsort(m, n, sizeof(*m), member_cmp);
	} else {
		for (i = 1; i < n; i++) /* insertion sort: records' objects are small */
			for (j = i; j > 0 && member_cmp(&m[j - 1], &m[j]) > 0; j--) {
				t = m[j];
				m[j] = m[j - 1];
				m[j - 1] = t;
			}
	}
	for (i = 0; i < n && !e; i++) {
		e = recjson_raw(b, i ? ",": "{", 1);
		if (!e)
			e = recjson_string(b, m[i].key, m[i].len);
		if (!e)
			e = recjson_raw(b, ":", 1);
		if (!e)
			e = dump(b, m[i].value, depth + 1);
	}
	if (!e)
		e = recjson_raw(b, "}", 1);
	if (m != small)
		free(m);
	return e;
}

static int dump(struct recjson_buf *b, const json_t *v, int depth)
{
	size_t i, n;
	char *s;
	int e = 0;

	if (!v || depth > MAX_DEPTH)
		return -EINVAL;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return dump_object(b, v, depth);
	case JSON_ARRAY:
		n = json_array_size(v);
		e = recjson_raw(b, "[", 1);
		for (i = 0; i < n && !e; i++) {
			if (i)
				e = recjson_raw(b, ",", 1);
			if (!e)
				e = dump(b, json_array_get(v, i), depth + 1);
		}
		return e ? e : recjson_raw(b, "]", 1);
	case JSON_STRING:
		return recjson_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return recjson_int(b, (long long)json_integer_value(v));
	case JSON_REAL:
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s)
			return -ENOMEM;
		e = recjson_raw(b, s, strlen(s));
		free(s);
		return e;
	case JSON_TRUE:
		return recjson_raw(b, "true", 4);
	case JSON_FALSE:
		return recjson_raw(b, "false", 5);
	case JSON_NULL:
		return recjson_raw(b, "null", 4);
	}
	return -EINVAL;
}

int recjson_dump(struct recjson_buf *b, const json_t *v)
{
	return dump(b, v, 0);
}
