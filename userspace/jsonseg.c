/* jsonseg.c - cut a JSON object arriving in pieces into bounded parts (see jsonseg.h).
 *
 * Outside parts a small state machine follows the top-level object's grammar (keys, colons,
 * commas, scalars); inside a part only strings and bracket depth matter, which is all it
 * takes to find where the part ends. What a part holds is checked by whoever handles it.
 *
 * Inside a part, 64 bytes at a time (the way simdjson finds strings): bit masks of the quotes,
 * backslashes and brackets; the escaped bytes from the backslash runs; the bytes inside
 * strings as the prefix XOR of the unescaped quotes; then only the brackets outside strings
 * are visited. The byte-at-a-time loop takes the last bytes of the input, and any block with
 * a backslash outside a string (not JSON, where the two readings could differ). Both keep the
 * same state (in_str, esc, depth), so a document may arrive in pieces of any size. */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "jsonbits.h"
#include "jsonseg.h"

enum state {
	S_BEGIN,     /* before the document's '{' */
	S_KEY,       /* a key or '}' */
	S_COLON,
	S_VALUE,     /* a member's value */
	S_AFTER,     /* ',' or '}' after a member */
	S_ELEM,      /* an element of a top-level array, or ']' */
	S_ELEM_AFTER,/* ',' or ']' after an element */
	S_SCALAR,    /* inside a number or literal, in a member */
	S_ESCALAR,   /* ... in an array */
	S_END,       /* after the document's '}' */
};

/* Byte classes of the glue scan: one table lookup per byte. */
#define C_WS 1      /* JSON whitespace */
#define C_SCALAR 2  /* may be part of a number or literal */
#define C_STR 4     /* stops a run of string bytes: '"' '\\' */

static const unsigned char cls[256] = {
	[' '] = C_WS, ['\n'] = C_WS, ['\r'] = C_WS, ['\t'] = C_WS,
	['0' ... '9'] = C_SCALAR, ['a' ... 'z'] = C_SCALAR, ['-'] = C_SCALAR, ['+'] = C_SCALAR,
	['.'] = C_SCALAR, ['E'] = C_SCALAR, ['"'] = C_STR, ['\\'] = C_STR,
};

#define ONES 0x0101010101010101ull

/* The zero bytes of <v> flagged by their top bit; exact up to the first zero byte. */
static inline uint64_t zero_bytes(uint64_t v)
{
	return (v - ONES) & ~v & (ONES * 0x80);
}

/* The first '"' or '\\' in buf[pos, len), or len; eight bytes at a time (as in mask.c). */
static inline size_t str_stop(const char *buf, size_t pos, size_t len)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; len - pos >= 8; pos += 8) {
		uint64_t v, m;

		memcpy(&v, buf + pos, 8);
		m = zero_bytes(v ^ (ONES * '"')) | zero_bytes(v ^ (ONES * '\\'));
		if (m)
			return pos + ((unsigned)__builtin_ctzll(m) >> 3);
	}
#endif
	while (pos < len && !(cls[(unsigned char)buf[pos]] & C_STR))
		pos++;
	return pos;
}

void jsonseg_init(struct jsonseg *s, size_t limit, const char *strict_key)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
	s->strict_key = strict_key;
	s->state = S_BEGIN;
}

int jsonseg_done(const struct jsonseg *s)
{
	return s->state == S_END && !s->in_part;
}

void jsonseg_consumed(struct jsonseg *s, size_t n)
{
	s->pos -= n;
	s->start -= n;
	if (s->in_str && !s->in_part)
		s->str_start -= n;
}

static int strict(const struct jsonseg *s)
{
	return s->strict_key && !strcmp(s->key, s->strict_key);
}

static int fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -1;
}

/* One block of 64 bytes as bit masks (bit i: byte i). */
struct block {
	uint64_t quote, bslash, bracket; /* '"', '\\', and '{' '[' '}' ']' */
};

/* Classify the 64 bytes at <p> (all readable). The brackets are one mask: byte & 2 tells an
 * opening one from a closing one. Moving masks out of vectors is what limits this loop, so
 * backslashes, rare, are looked for in all 64 bytes at once first. */
static inline void classify(const char *p, struct block *b)
{
#if defined(__SSE2__) && !defined(JSONSEG_PORTABLE)
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
	const __m128i lc = _mm_set1_epi8(0x20), op = _mm_set1_epi8('{'), cl = _mm_set1_epi8('}');
	__m128i e[4], any = _mm_setzero_si128();
	int i;

	b->quote = b->bslash = b->bracket = 0;
#pragma GCC unroll 4
	for (i = 0; i < 4; i++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
		__m128i f = _mm_or_si128(v, lc); /* '[' ']' fold onto '{' '}', nothing else does */

		b->quote |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) << 16 * i;
		b->bracket |= (uint64_t)(unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmpeq_epi8(f, op), _mm_cmpeq_epi8(f, cl))) << 16 * i;
		any = _mm_or_si128(any, e[i] = _mm_cmpeq_epi8(v, bs));
	}
	if (_mm_movemask_epi8(any))
		for (i = 0; i < 4; i++)
			b->bslash |= (uint64_t)(unsigned)_mm_movemask_epi8(e[i]) << 16 * i;
#else
	int i;

	b->quote = b->bslash = b->bracket = 0;
	for (i = 0; i < 64; i++) {
		unsigned char c = (unsigned char)p[i] | 0x20;

		b->quote |= (uint64_t)(p[i] == '"') << i;
		b->bslash |= (uint64_t)(p[i] == '\\') << i;
		b->bracket |= (uint64_t)(c == '{' || c == '}') << i;
	}
#endif
}

/* Scan the 64 bytes at buf[s->pos] inside a part. Returns 1 when the part ended in them
 * (s->pos just past it), 0 when they are scanned (s->pos 64 further), -1 on an error, and 2
 * when a backslash stands outside a string: the caller scans these bytes one at a time. */
static int scan_block(struct jsonseg *s, const char *buf, const char **why)
{
	struct block b;
	uint64_t esc, instr, br;
	int carry = s->esc, depth = s->depth;

	classify(buf + s->pos, &b);
	esc = escaped_bytes(b.bslash, &carry);
	/* a string's opening quote and bytes, up to and not including its closing quote */
	instr = prefix_xor(b.quote & ~esc) ^ (s->in_str ? ~0ull : 0);
	if (b.bslash & ~instr)
		return 2;
	br = b.bracket & ~instr;
	while (br) {
		unsigned k = (unsigned)__builtin_ctzll(br);

		br &= br - 1;
		if (buf[s->pos + k] & 2) { /* '{' 0x7b and '[' 0x5b; '}' 0x7d and ']' 0x5d */
			if (++depth > JSONSEG_MAX_DEPTH)
				return fail(why, "JSON nested too deeply");
		} else if (--depth == s->part_depth) {
			s->depth = depth;
			s->pos += k + 1;
			s->in_str = 0;
			s->esc = 0;
			s->in_part = 0;
			return 1;
		}
	}
	s->depth = depth;
	s->pos += 64;
	s->in_str = (int)(instr >> 63);
	s->esc = carry;
	return 0;
}

/* Scan a part from s->pos; 1 when it ended (s->pos just past it), 0 at the end of input. */
static int scan_part(struct jsonseg *s, const char *buf, size_t len, const char **why)
{
	size_t slow = 0; /* one byte at a time up to here */

	while (s->pos < len) {
		char c;

		if (s->pos >= slow && len - s->pos >= 64) {
			int rc = scan_block(s, buf, why);

			if (rc == 2)
				slow = s->pos + 64;
			else if (rc)
				return rc;
			continue;
		}
		c = buf[s->pos++];
		if (s->in_str) {
			if (s->esc)
				s->esc = 0;
			else if (c == '\\')
				s->esc = 1;
			else if (c == '"')
				s->in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			s->in_str = 1;
			break;
		case '{': case '[':
			if (++s->depth > JSONSEG_MAX_DEPTH)
				return fail(why, "JSON nested too deeply");
			break;
		case '}': case ']':
			if (--s->depth == s->part_depth) {
				s->in_part = 0;
				return 1;
			}
			break;
		}
	}
	if (s->pos - s->start > s->limit)
		return fail(why, "a JSON value larger than the streaming bound");
	return 0;
}

/* Emit glue [start, end) as *part. */
static int glue(struct jsonseg *s, size_t end, struct jsonseg_part *part)
{
	part->kind = JSONSEG_GLUE;
	part->off = s->start;
	part->len = end - s->start;
	part->key = "";
	s->start = end;
	return 1;
}

int jsonseg_next(struct jsonseg *s, const char *buf, size_t len, int eof,
		 struct jsonseg_part *part, const char **why)
{
	int rc;

	if (s->in_part)
		goto in_part;
	while (s->pos < len) {
		char c = buf[s->pos];

		if (s->in_str) { /* a glue string: a key, a member's value or an element */
			if (!s->esc && s->state != S_COLON) { /* not a key: skip to '"' or '\\' */
				s->pos = str_stop(buf, s->pos, len);
				if (s->pos == len)
					break;
				c = buf[s->pos];
			}
			s->pos++;
			if (s->esc) {
				s->esc = 0;
			} else if (c == '\\') {
				s->esc = 1;
			} else if (c == '"') {
				s->in_str = 0;
				continue;
			}
			if (s->state == S_COLON && s->key_len + 1 < JSONSEG_KEY_MAX) {
				s->key[s->key_len++] = c;
				s->key[s->key_len] = '\0';
			}
			continue;
		}
		if (s->state == S_SCALAR || s->state == S_ESCALAR) {
			if (cls[(unsigned char)c] & C_SCALAR) {
				while (++s->pos < len && cls[(unsigned char)buf[s->pos]] & C_SCALAR)
					;
				continue;
			}
			s->state = s->state == S_SCALAR ? S_AFTER : S_ELEM_AFTER;
		}
		if (cls[(unsigned char)c] & C_WS) {
			s->pos++;
			continue;
		}
		switch (s->state) {
		case S_BEGIN:
			if (c != '{')
				return fail(why, "the response is not a JSON object");
			s->state = S_KEY;
			s->depth = 1;
			break;
		case S_KEY:
			if (c == '}') {
				s->state = S_END;
				s->depth = 0;
				break;
			}
			if (c != '"')
				return fail(why, "a JSON object key was expected");
			s->in_str = 1;
			s->str_start = s->pos;
			s->key_len = 0;
			s->key[0] = '\0';
			s->state = S_COLON;
			break;
		case S_COLON:
			if (c != ':')
				return fail(why, "':' was expected after a JSON key");
			s->state = S_VALUE;
			s->strict = strict(s); /* once per member, not per element */
			break;
		case S_VALUE:
		case S_ELEM:
			if (c == ']' && s->state == S_ELEM) {
				s->state = S_AFTER;
				s->depth = 1;
				break;
			}
			if (c == '[' && s->state == S_VALUE) {
				s->state = S_ELEM;
				s->depth = 2;
				break;
			}
			if (c == '{' || c == '[') {
				if (s->strict && (s->state == S_VALUE || c != '{'))
					return fail(why, "table rows were not an array of objects");
				if (s->pos > s->start)
					return glue(s, s->pos, part);
				s->kind = s->state == S_VALUE ? JSONSEG_VALUE : JSONSEG_ELEMENT;
				s->state = s->state == S_VALUE ? S_AFTER : S_ELEM_AFTER;
				s->in_part = 1;
				s->part_depth = s->depth++;
				s->pos++;
				goto in_part;
			}
			if (s->strict && !(s->state == S_VALUE && c == 'n'))
				return fail(why, "table rows were not an array of objects");
			if (c == '"') {
				s->in_str = 1;
				s->str_start = s->pos;
				s->state = s->state == S_VALUE ? S_AFTER : S_ELEM_AFTER;
			} else if (cls[(unsigned char)c] & C_SCALAR) {
				s->state = s->state == S_VALUE ? S_SCALAR : S_ESCALAR;
			} else {
				return fail(why, "a JSON value was expected");
			}
			break;
		case S_AFTER:
			if (c == ',')
				s->state = S_KEY;
			else if (c == '}')
				s->state = S_END, s->depth = 0;
			else
				return fail(why, "',' or '}' was expected in a JSON object");
			break;
		case S_ELEM_AFTER:
			if (c == ',')
				s->state = S_ELEM;
			else if (c == ']')
				s->state = S_AFTER, s->depth = 1;
			else
				return fail(why, "',' or ']' was expected in a JSON array");
			break;
		default: /* S_END */
			return fail(why, "bytes after the end of the JSON response");
		}
		s->pos++;
	}
	/* the input so far is scanned: pass on the glue up to the last whole string */
	if (s->in_str && s->pos - s->str_start > s->limit)
		return fail(why, "a JSON string larger than the streaming bound");
	if ((s->in_str ? s->str_start : s->pos) > s->start)
		return glue(s, s->in_str ? s->str_start : s->pos, part);
	if (eof && s->state != S_END)
		return fail(why, "the JSON response was cut short");
	return 0;
in_part:
	rc = scan_part(s, buf, len, why);
	if (rc < 0)
		return rc;
	if (s->pos - s->start > s->limit)
		return fail(why, "a JSON value larger than the streaming bound");
	if (rc == 0) {
		if (eof)
			return fail(why, "the JSON response was cut short");
		return 0;
	}
	part->kind = s->kind;
	part->off = s->start;
	part->len = s->pos - s->start;
	part->key = s->key;
	s->start = s->pos;
	return 1;
}
