/* jsonpos.c - find the line of a value in JSON text that is already known to be valid.
 *
 * A skipping scanner, not a parser: strings are skipped honouring escapes, containers by
 * recursion bounded to JSONPOS_MAX_DEPTH. Work is linear in the text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpos.h"

#define JSONPOS_MAX_DEPTH 64

struct scan {
	const char *p, *end;
	int line;
	int best; /* line of the deepest path prefix found so far */
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
		if (*s->p == '\n')
			s->line++;
		s->p++;
	}
}

/* Skip a string starting at '"'; sets <key>/<klen> to its raw contents. */
static int skip_string(struct scan *s, const char **key, size_t *klen)
{
	const char *start = ++s->p;

	while (s->p < s->end && *s->p != '"') {
		if (*s->p == '\\')
			s->p++;
		s->p++;
	}
	if (s->p >= s->end)
		return -1;
	*key = start;
	*klen = (size_t)(s->p - start);
	s->p++;
	return 0;
}

static int skip_value(struct scan *s, int depth);

static int skip_container(struct scan *s, int depth, char close)
{
	const char *k;
	size_t kl;

	if (depth > JSONPOS_MAX_DEPTH)
		return -1;
	s->p++;
	for (;;) {
		skip_ws(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == close) {
			s->p++;
			return 0;
		}
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (close == '}') {
			if (*s->p != '"' || skip_string(s, &k, &kl))
				return -1;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return -1;
			s->p++;
			skip_ws(s);
		}
		if (skip_value(s, depth + 1))
			return -1;
	}
}

static int skip_value(struct scan *s, int depth)
{
	const char *k;
	size_t kl;

	skip_ws(s);
	if (s->p >= s->end)
		return -1;
	if (*s->p == '{')
		return skip_container(s, depth, '}');
	if (*s->p == '[')
		return skip_container(s, depth, ']');
	if (*s->p == '"')
		return skip_string(s, &k, &kl);
	while (s->p < s->end && !strchr(",]} \t\r\n", *s->p))
		s->p++;
	return 0;
}

/* Descend along <path> from the value at s->p. Returns the line of the target, or 0. */
static int find(struct scan *s, const char *path, int depth)
{
	const char *seg, *k;
	size_t seglen, kl;
	long idx;

	skip_ws(s);
	if (s->p >= s->end || depth > JSONPOS_MAX_DEPTH)
		return 0;
	s->best = s->line;
	if (*path == '.')
		path++;
	if (!*path)
		return s->line;
	if (*path == '[') {
		idx = strtol(path + 1, (char **)&seg, 10);
		if (*s->p != '[' || *seg != ']' || idx < 0)
			return 0;
		path = seg + 1;
		s->p++;
		for (;;) {
			skip_ws(s);
			if (s->p >= s->end || *s->p == ']')
				return 0;
			if (*s->p == ',') {
				s->p++;
				continue;
			}
			if (idx-- == 0)
				return find(s, path, depth + 1);
			if (skip_value(s, depth + 1))
				return 0;
		}
	}
	seg = path;
	seglen = strcspn(path, ".[");
	path += seglen;
	if (*s->p != '{')
		return 0;
	s->p++;
	for (;;) {
		skip_ws(s);
		if (s->p >= s->end || *s->p == '}')
			return 0;
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p != '"' || skip_string(s, &k, &kl))
			return 0;
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return 0;
		s->p++;
		if (kl == seglen && memcmp(k, seg, kl) == 0)
			return find(s, path, depth + 1);
		if (skip_value(s, depth + 1))
			return 0;
	}
}

int jsonpos_line(const char *text, size_t len, const char *path)
{
	struct scan s = { .p = text, .end = text + len, .line = 1, .best = 0 };
	int line = find(&s, path, 0);

	return line ? line : s.best;
}

void jsonpos_fail(struct jsonpos_ctx *c, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->failed++)
		return;
	n = snprintf(c->err, c->errlen, "%s:%d: %s: ", c->file,
		     c->text ? jsonpos_line(c->text, c->len, key) : 0, *key ? key : "(top level)");
	if (n < 0 || (size_t)n >= c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

void jsonpos_known_keys(struct jsonpos_ctx *c, json_t *obj, const char *path,
			const char *const *known)
{
	char kp[256], list[512];
	const char *key;
	size_t n = 0;
	json_t *v;
	int i;

	json_object_foreach(obj, key, v) {
		for (i = 0; known[i] && strcmp(known[i], key); i++)
			;
		if (known[i])
			continue;
		for (i = 0, n = 0; known[i] && n < sizeof(list); i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
					      known[i]);
		if (n >= sizeof(list)) /* the list was cut: say so rather than mislead */
			memcpy(list + sizeof(list) - 4, "...", 4);
		snprintf(kp, sizeof(kp), "%s%s%s", path, *path ? "." : "", key);
		jsonpos_fail(c, kp, "unknown key; the keys here are: %s", list);
	}
}
