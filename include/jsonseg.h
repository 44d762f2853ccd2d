/* jsonseg.h - cut a JSON object that arrives in pieces into parts a response filter can take
 * one at a time, so that a large BigQuery response never has to be held whole.
 *
 * A BigQuery response is one object whose bulk is the elements of a top-level array
 * ("rows", "jobs", "tables"...). The parts are:
 *   ELEMENT  one element (object or array) of the array that is a top-level member's value,
 *            e.g. one row {"f":[...]} of "rows";
 *   VALUE    the object that is a top-level member's value, e.g. "schema";
 *   GLUE     everything between them: braces, keys, commas, scalars and top-level strings,
 *            cut only outside strings, so every part holds whole strings.
 * The parts, in order, are the document byte for byte. Each part is bounded by <limit>; a
 * bigger one, a document that is not an object, or broken structure is an error: the caller
 * fails closed. The scanner keeps no copy of the input; it reads the caller's buffer, which
 * may be consumed and moved between calls (jsonseg_consumed). */
#ifndef SLUICE_JSONSEG_H
#define SLUICE_JSONSEG_H

#include <stddef.h>

#define JSONSEG_KEY_MAX 64
#define JSONSEG_MAX_DEPTH 512

enum jsonseg_kind { JSONSEG_GLUE, JSONSEG_VALUE, JSONSEG_ELEMENT };

struct jsonseg_part {
	enum jsonseg_kind kind;
	size_t off, len;              /* in the caller's buffer */
	const char *key;              /* the top-level member it belongs to ("" in glue) */
};

struct jsonseg {
	size_t limit;                 /* largest part accepted */
	size_t pos;                   /* bytes of the buffer scanned */
	size_t start;                 /* where the current part began */
	size_t str_start;             /* where the glue string being scanned began */
	int state, depth, part_depth, in_str, esc, in_part;
	int strict;                   /* the current member is strict_key's */
	enum jsonseg_kind kind;
	char key[JSONSEG_KEY_MAX];    /* the current top-level key, cut to fit */
	size_t key_len;
	const char *strict_key;       /* elements of this member must be objects (e.g. "rows") */
};

/* Start scanning a document; parts bigger than <limit> bytes are refused. <strict_key>
 * (may be NULL) names a member whose value must be an array of objects or null. */
void jsonseg_init(struct jsonseg *s, size_t limit, const char *strict_key);

/* The next part of buf[0..len), the bytes of the document received so far (<eof>: all of
 * it). Returns 1 with *part, 0 when more input is needed, -1 on an error (*why says what). */
int jsonseg_next(struct jsonseg *s, const char *buf, size_t len, int eof,
		 struct jsonseg_part *part, const char **why);

/* The caller dropped the first <n> bytes of its buffer (at most up to the end of the last
 * part returned): offsets move down by <n>. */
void jsonseg_consumed(struct jsonseg *s, size_t n);

/* Has the whole document (the closing brace) been scanned? */
int jsonseg_done(const struct jsonseg *s);

#endif
