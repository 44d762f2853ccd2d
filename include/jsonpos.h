/* jsonpos.h - where a value sits in JSON text, so that configuration and policy errors can
 * name the line. jansson reports positions of syntax errors only; this finds the line of any
 * value of a document that jansson has already accepted. */
#ifndef SLUICE_JSONPOS_H
#define SLUICE_JSONPOS_H

#include <jansson.h>
#include <stddef.h>

/* Line (1-based) at which the value at <path> starts in the JSON document <text>/<len>, or
 * the line of the nearest enclosing value that exists; 0 when even the root is missing.
 * <path> is dotted keys with [N] for array elements, e.g. "upstream.overrides[1].host"; ""
 * is the root. Keys containing '.' or '[' cannot be named. Nesting is bounded (64). */
int jsonpos_line(const char *text, size_t len, const char *path);

/* Validation of one JSON document: the first error is kept, as "FILE:LINE: KEY: message"
 * (KEY "" is "(top level)"; without <text> the line is 0). Shared by every loader of
 * configuration and policy files, so their errors read alike. */
struct jsonpos_ctx {
	const char *file;
	const char *text;
	size_t len;
	char *err;
	size_t errlen;
	int failed;      /* errors seen; only the first is written to <err> */
};

/* Record an error about the value at <key> (a jsonpos_line path). */
void jsonpos_fail(struct jsonpos_ctx *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Refuse every key of object <obj> (at <path>; "" for the root) that is not in the
 * NULL-terminated <known>; the error lists the keys that are allowed there. */
void jsonpos_known_keys(struct jsonpos_ctx *c, json_t *obj, const char *path,
			const char *const *known);

#endif
