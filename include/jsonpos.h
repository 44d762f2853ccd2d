/* jsonpos.h - where a value sits in JSON text, so that configuration and policy errors can
 * name the line. jansson reports positions of syntax errors only; this finds the line of any
 * value of a document that jansson has already accepted. */
#ifndef SLUICE_JSONPOS_H
#define SLUICE_JSONPOS_H

#include <stddef.h>

/* Line (1-based) at which the value at <path> starts in the JSON document <text>/<len>, or
 * the line of the nearest enclosing value that exists; 0 when even the root is missing.
 * <path> is dotted keys with [N] for array elements, e.g. "upstream.overrides[1].host"; ""
 * is the root. Keys containing '.' or '[' cannot be named. Nesting is bounded (64). */
int jsonpos_line(const char *text, size_t len, const char *path);

#endif
