/* jsonseg_fuzz.c - libFuzzer driver of the response segmenter: any bytes, fed in pieces whose
 * size comes from the first byte, either fail or come out as parts that are, in order, the
 * input byte for byte, each within the bound; a document reported whole is all of the input
 * (trailing whitespace aside). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonseg.h"

#define LIMIT 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[1 << 16], out[1 << 16];
	struct jsonseg s;
	struct jsonseg_part p;
	const char *why = NULL, *in;
	size_t step, have = 0, given = 0, outlen = 0, n;
	int rc = 0;

	if (size < 1 || size > sizeof(buf))
		return 0;
	step = (size_t)data[0] % 17 + 1;
	in = (const char *)data + 1;
	n = size - 1;
	jsonseg_init(&s, LIMIT, data[0] & 0x80 ? "rows" : NULL);
	while (rc >= 0) {
		size_t add = n - given < step ? n - given : step;

		memcpy(buf + have, in + given, add);
		have += add;
		given += add;
		while ((rc = jsonseg_next(&s, buf, have, given == n, &p, &why)) == 1) {
			if (p.off + p.len > have || (p.kind != JSONSEG_GLUE && p.len > LIMIT))
				abort();
			memcpy(out + outlen, buf + p.off, p.len);
			outlen += p.len;
			if (memcmp(out, in, outlen))
				abort(); /* the parts are the input, in order */
			memmove(buf, buf + p.off + p.len, have - p.off - p.len);
			have -= p.off + p.len;
			jsonseg_consumed(&s, p.off + p.len);
		}
		if (rc < 0 && !why)
			abort(); /* an error always says what */
		if (given == n)
			break;
	}
	if (rc == 0 && jsonseg_done(&s) && outlen != n)
		abort();
	return 0;
}
