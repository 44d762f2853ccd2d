/* jsonseg.c - cut a JSON object arriving in pieces into bounded parts (see jsonseg.h).
 *
 * Outside parts a small state machine follows the top-level object's grammar (keys, colons,
 * commas, scalars); inside a part only strings and bracket depth matter, which is all it
 * takes to find where the part ends. What a part holds is checked by whoever handles it. */
#include <string.h>

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

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int is_scalar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
	       c == '.' || c == 'E';
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

/* Scan a part from s->pos; 1 when it ended (s->pos just past it), 0 at the end of input. */
static int scan_part(struct jsonseg *s, const char *buf, size_t len, const char **why)
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
			if (is_scalar(c)) {
				s->pos++;
				continue;
			}
			s->state = s->state == S_SCALAR ? S_AFTER : S_ELEM_AFTER;
		}
		if (is_ws(c)) {
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
				if (strict(s) && (s->state == S_VALUE || c != '{'))
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
			if (strict(s) && !(s->state == S_VALUE && c == 'n'))
				return fail(why, "table rows were not an array of objects");
			if (c == '"') {
				s->in_str = 1;
				s->str_start = s->pos;
				s->state = s->state == S_VALUE ? S_AFTER : S_ELEM_AFTER;
			} else if (is_scalar(c)) {
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
