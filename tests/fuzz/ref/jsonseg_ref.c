/* jsonseg_ref.c - the segmenter as it was before the block scan (byte at a time), kept as
 * the reference jsonseg_fuzz.c compares it with: the parts, their keys and the errors must
 * not change. Included by the driver; names prefixed ref_. */
#include <string.h>

#include "jsonseg.h"

enum ref_state {
	RS_BEGIN,     /* before the document's '{' */
	RS_KEY,       /* a key or '}' */
	RS_COLON,
	RS_VALUE,     /* a member's value */
	RS_AFTER,     /* ',' or '}' after a member */
	RS_ELEM,      /* an element of a top-level array, or ']' */
	RS_ELEM_AFTER,/* ',' or ']' after an element */
	RS_SCALAR,    /* inside a number or literal, in a member */
	RS_ESCALAR,   /* ... in an array */
	RS_END,       /* after the document's '}' */
};

static int ref_is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int ref_is_scalar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
	       c == '.' || c == 'E';
}

static void ref_jsonseg_init(struct jsonseg *s, size_t limit, const char *strict_key)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
	s->strict_key = strict_key;
	s->state = RS_BEGIN;
}

static int ref_jsonseg_done(const struct jsonseg *s)
{
	return s->state == RS_END && !s->in_part;
}

static void ref_jsonseg_consumed(struct jsonseg *s, size_t n)
{
	s->pos -= n;
	s->start -= n;
	if (s->in_str && !s->in_part)
		s->str_start -= n;
}

static int ref_strict(const struct jsonseg *s)
{
	return s->strict_key && !strcmp(s->key, s->strict_key);
}

static int ref_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -1;
}

/* Scan a part from s->pos; 1 when it ended (s->pos just past it), 0 at the end of input. */
static int ref_scan_part(struct jsonseg *s, const char *buf, size_t len, const char **why)
{
	while (s->pos < len) {
		char c = buf[s->pos++];

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
				return ref_fail(why, "JSON nested too deeply");
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
		return ref_fail(why, "a JSON value larger than the streaming bound");
	return 0;
}

/* Emit glue [start, end) as *part. */
static int ref_glue(struct jsonseg *s, size_t end, struct jsonseg_part *part)
{
	part->kind = JSONSEG_GLUE;
	part->off = s->start;
	part->len = end - s->start;
	part->key = "";
	s->start = end;
	return 1;
}

static int ref_jsonseg_next(struct jsonseg *s, const char *buf, size_t len, int eof,
		 struct jsonseg_part *part, const char **why)
{
	int rc;

	if (s->in_part)
		goto in_part;
	while (s->pos < len) {
		char c = buf[s->pos];

		if (s->in_str) { /* a glue string: a key, a member's value or an element */
			s->pos++;
			if (s->esc) {
				s->esc = 0;
			} else if (c == '\\') {
				s->esc = 1;
			} else if (c == '"') {
				s->in_str = 0;
				continue;
			}
			if (s->state == RS_COLON && s->key_len + 1 < JSONSEG_KEY_MAX) {
				s->key[s->key_len++] = c;
				s->key[s->key_len] = '\0';
			}
			continue;
		}
		if (s->state == RS_SCALAR || s->state == RS_ESCALAR) {
			if (ref_is_scalar(c)) {
				s->pos++;
				continue;
			}
			s->state = s->state == RS_SCALAR ? RS_AFTER : RS_ELEM_AFTER;
		}
		if (ref_is_ws(c)) {
			s->pos++;
			continue;
		}
		switch (s->state) {
		case RS_BEGIN:
			if (c != '{')
				return ref_fail(why, "the response is not a JSON object");
			s->state = RS_KEY;
			s->depth = 1;
			break;
		case RS_KEY:
			if (c == '}') {
				s->state = RS_END;
				s->depth = 0;
				break;
			}
			if (c != '"')
				return ref_fail(why, "a JSON object key was expected");
			s->in_str = 1;
			s->str_start = s->pos;
			s->key_len = 0;
			s->key[0] = '\0';
			s->state = RS_COLON;
			break;
		case RS_COLON:
			if (c != ':')
				return ref_fail(why, "':' was expected after a JSON key");
			s->state = RS_VALUE;
			break;
		case RS_VALUE:
		case RS_ELEM:
			if (c == ']' && s->state == RS_ELEM) {
				s->state = RS_AFTER;
				s->depth = 1;
				break;
			}
			if (c == '[' && s->state == RS_VALUE) {
				s->state = RS_ELEM;
				s->depth = 2;
				break;
			}
			if (c == '{' || c == '[') {
				if (ref_strict(s) && (s->state == RS_VALUE || c != '{'))
					return ref_fail(why, "table rows were not an array of objects");
				if (s->pos > s->start)
					return ref_glue(s, s->pos, part);
				s->kind = s->state == RS_VALUE ? JSONSEG_VALUE : JSONSEG_ELEMENT;
				s->state = s->state == RS_VALUE ? RS_AFTER : RS_ELEM_AFTER;
				s->in_part = 1;
				s->part_depth = s->depth++;
				s->pos++;
				goto in_part;
			}
			if (ref_strict(s) && !(s->state == RS_VALUE && c == 'n'))
				return ref_fail(why, "table rows were not an array of objects");
			if (c == '"') {
				s->in_str = 1;
				s->str_start = s->pos;
				s->state = s->state == RS_VALUE ? RS_AFTER : RS_ELEM_AFTER;
			} else if (ref_is_scalar(c)) {
				s->state = s->state == RS_VALUE ? RS_SCALAR : RS_ESCALAR;
			} else {
				return ref_fail(why, "a JSON value was expected");
			}
			break;
		case RS_AFTER:
			if (c == ',')
				s->state = RS_KEY;
			else if (c == '}')
				s->state = RS_END, s->depth = 0;
			else
				return ref_fail(why, "',' or '}' was expected in a JSON object");
			break;
		case RS_ELEM_AFTER:
			if (c == ',')
				s->state = RS_ELEM;
			else if (c == ']')
				s->state = RS_AFTER, s->depth = 1;
			else
				return ref_fail(why, "',' or ']' was expected in a JSON array");
			break;
		default: /* RS_END */
			return ref_fail(why, "bytes after the end of the JSON response");
		}
		s->pos++;
	}
	/* the input so far is scanned: pass on the glue up to the last whole string */
	if (s->in_str && s->pos - s->str_start > s->limit)
		return ref_fail(why, "a JSON string larger than the streaming bound");
	if ((s->in_str ? s->str_start : s->pos) > s->start)
		return ref_glue(s, s->in_str ? s->str_start : s->pos, part);
	if (eof && s->state != RS_END)
		return ref_fail(why, "the JSON response was cut short");
	return 0;
in_part:
	rc = ref_scan_part(s, buf, len, why);
	if (rc < 0)
		return rc;
	if (s->pos - s->start > s->limit)
		return ref_fail(why, "a JSON value larger than the streaming bound");
	if (rc == 0) {
		if (eof)
			return ref_fail(why, "the JSON response was cut short");
		return 0;
	}
	part->kind = s->kind;
	part->off = s->start;
	part->len = s->pos - s->start;
	part->key = s->key;
	s->start = s->pos;
	return 1;
}
