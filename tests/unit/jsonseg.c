/* Description: the response segmenter: a BigQuery response fed in pieces of every size comes
 * out as the same bytes, cut into glue, top-level values and array elements with their keys
 * and never inside a string; parts past the bound, documents that are not objects, broken
 * structure, cut-short input and "rows" that are not objects are errors. */
#include "jsonseg.h"
#include "tap.h"

#define DOC "{\"kind\": \"bigquery#tableDataList\", \"totalRows\": \"3\", \"schema\": " \
	"{\"fields\": [{\"name\": \"a\"}]},\n \"rows\": [{\"f\": [{\"v\": \"x,]}\\\"\"}]}, " \
	"{\"f\": [{\"v\": null}]} ,{\"f\":[]}], \"pageToken\": \"t{[\", \"n\": -1.5e3, " \
	"\"ok\": true, \"jobs\": [[1, 2], \"s\", 3]}"

/* Rows longer than the segmenter's 64-byte blocks, with escapes, backslash runs and brackets
 * in strings on both sides of block edges. */
#define ROW "{\"f\": [{\"v\": \"a \\\"quoted\\\" ]} value with a backslash run \\\\\\\\\"}, " \
	"{\"v\": [{\"v\": \"[[{{\"}, {\"v\": \"x\\\\\"}]}, {\"v\": null}, " \
	"{\"v\": \"0123456789012345678901234567890123456789012345678901234567890123\\\"\"}]}"
#define LONGDOC "{\"kind\": \"bigquery#tableDataList\", \"rows\": [" ROW ", " ROW ",\n " ROW \
	"], \"pageToken\": \"\\\\}\"}"

struct seen {
	char text[4096], kinds[64], keys[512];
	size_t len;
	int n, rc;
};

/* Feed <doc> <step> bytes at a time (consuming parts as they come, as the proxy does). */
static void feed(const char *doc, size_t step, size_t limit, const char *strict, struct seen *out)
{
	struct jsonseg s;
	struct jsonseg_part p;
	char buf[4096];
	size_t have = 0, given = 0, total = strlen(doc);
	const char *why = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	jsonseg_init(&s, limit, strict);
	for (;;) {
		size_t add = total - given < step ? total - given : step;

		memcpy(buf + have, doc + given, add);
		have += add;
		given += add;
		while ((rc = jsonseg_next(&s, buf, have, given == total, &p, &why)) == 1) {
			memcpy(out->text + out->len, buf + p.off, p.len);
			out->len += p.len;
			if (out->n < (int)sizeof(out->kinds) - 1)
				out->kinds[out->n++] = "GVE"[p.kind];
			if (p.kind != JSONSEG_GLUE)
				strcat(strcat(out->keys, p.key), "|");
			memmove(buf, buf + p.off + p.len, have - p.off - p.len);
			have -= p.off + p.len;
			jsonseg_consumed(&s, p.off + p.len);
		}
		out->rc = rc;
		if (rc < 0 || given == total)
			break;
	}
	if (rc == 0 && !jsonseg_done(&s))
		out->rc = -3;
}

int main(void)
{
	struct seen a, b;
	size_t step;
	int same = 1, parts_ok = 1;

	feed(DOC, 1 << 20, 1 << 20, NULL, &a);
	is_int(a.rc, 0, "a whole document scans to its end");
	ok(a.len == strlen(DOC) && !memcmp(a.text, DOC, a.len), "the parts are the document");
	is_str(a.keys, "schema|rows|rows|rows|jobs|", "values and elements carry their key");
	ok(strchr(a.kinds, 'V') && strchr(a.kinds, 'E'), "kinds: %s", a.kinds);
	for (step = 1; step < 64; step++) {
		feed(DOC, step, 1 << 20, NULL, &b);
		if (!(b.rc == 0 && b.len == a.len && !memcmp(a.text, b.text, a.len) &&
		      !strcmp(a.keys, b.keys)) && same) {
			printf("# step %zu: rc %d len %zu keys %s\n", step, b.rc, b.len, b.keys);
			same = 0;
		}
	}
	ok(same, "fed 1 to 63 bytes at a time: the same parts and bytes");
	/* glue is never cut inside a string: every part alone has balanced quotes */
	{
		struct jsonseg s;
		struct jsonseg_part p;
		const char *why;
		size_t i, n = strlen(DOC);
		int rc;

		for (step = 1; step < 40 && parts_ok; step++) {
			jsonseg_init(&s, 1 << 20, NULL);
			for (i = step; i <= n + step - 1 && parts_ok; i += step) {
				size_t have = i < n ? i : n;

				while ((rc = jsonseg_next(&s, DOC, have, have == n, &p, &why)) == 1) {
					size_t k, q = 0;

					for (k = p.off; k < p.off + p.len; k++)
						if (DOC[k] == '\\')
							k++;
						else if (DOC[k] == '"')
							q++;
					parts_ok &= !(q & 1);
				}
				parts_ok &= rc == 0;
			}
		}
	}
	ok(parts_ok, "every part holds whole strings");

	feed(LONGDOC, 1 << 20, 1 << 20, "rows", &a);
	is_int(a.rc, 0, "long rows: scanned to the end");
	ok(a.len == strlen(LONGDOC) && !memcmp(a.text, LONGDOC, a.len),
	   "long rows: the parts are the document");
	is_str(a.keys, "rows|rows|rows|", "long rows: three rows, whatever is in their strings");
	for (same = 1, step = 1; step < 300 && same; step++) {
		feed(LONGDOC, step, 1 << 20, "rows", &b);
		if (!(b.rc == 0 && b.len == a.len && !memcmp(a.text, b.text, a.len) &&
		      !strcmp(a.keys, b.keys))) {
			printf("# step %zu: rc %d len %zu keys %s\n", step, b.rc, b.len, b.keys);
			same = 0;
		}
	}
	ok(same, "long rows fed 1 to 299 bytes at a time: the same parts");
	feed(LONGDOC, 100, strlen(ROW) - 1, "rows", &b);
	is_int(b.rc, -1, "long rows: one byte over the bound is refused");
	feed(LONGDOC, 100, strlen(ROW), "rows", &b);
	is_int(b.rc, 0, "long rows: a row the size of the bound is not");

	feed("[1, 2]", 3, 1024, NULL, &b);
	is_int(b.rc, -1, "not an object: refused");
	feed("{\"rows\": [{\"f\": [{\"v\": \"0123456789012345678901234567890123456789\"}]}]}", 5, 32,
	     NULL, &b);
	is_int(b.rc, -1, "a row larger than the bound: refused");
	feed("{\"token\": \"0123456789012345678901234567890123456789\"}", 4, 16, NULL, &b);
	is_int(b.rc, -1, "a string larger than the bound: refused");
	feed("{\"rows\": [{\"f\": []}", 4, 1024, NULL, &b);
	is_int(b.rc, -1, "cut short: refused");
	feed("{\"a\" 1}", 2, 1024, NULL, &b);
	is_int(b.rc, -1, "a missing colon: refused");
	feed("{\"a\": 1}{", 2, 1024, NULL, &b);
	is_int(b.rc, -1, "bytes after the document: refused");
	feed("{\"rows\": [\"x\"]}", 2, 1024, "rows", &b);
	is_int(b.rc, -1, "strict rows: a string row is refused");
	feed("{\"rows\": {\"f\": []}}", 2, 1024, "rows", &b);
	is_int(b.rc, -1, "strict rows: an object instead of an array is refused");
	feed("{\"rows\": null, \"other\": [\"x\"]}", 2, 1024, "rows", &b);
	is_int(b.rc, 0, "strict rows: null rows, and other members as they are");
	{
		char deep[2100];
		int i;

		strcpy(deep, "{\"a\": ");
		for (i = 0; i < 600; i++)
			strcat(deep, "[");
		feed(deep, 64, 1 << 20, NULL, &b);
		is_int(b.rc, -1, "nesting deeper than the bound: refused");
	}
	return tap_done();
}
