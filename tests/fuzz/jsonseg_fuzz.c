/* jsonseg_fuzz.c - libFuzzer driver of the response segmenter: any bytes, fed in pieces whose
 * size comes from the first byte, either fail or come out as parts that are, in order, the
 * input byte for byte, each within the bound; a document reported whole is all of the input
 * (trailing whitespace aside). The same pieces also go through the byte-at-a-time segmenter
 * it replaced (ref/jsonseg_ref.c): every answer, part, key and error must be the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonseg.h"
#include "ref/jsonseg_ref.c"

#define LIMIT 256

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
/* The bytes of the buffer past those passed: reading them is a bug (the block scan reads
 * 64 bytes at a time). */
#define GUARD(b, have) ASAN_POISON_MEMORY_REGION((b) + (have), sizeof(b) - (have))
#define UNGUARD(b) ASAN_UNPOISON_MEMORY_REGION((b), sizeof(b))
#else
#define GUARD(b, have) ((void)0)
#define UNGUARD(b) ((void)0)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Piece sizes: small ones cross every boundary, big ones reach the 64-byte block scan. */
static const size_t steps[16] = { 1, 2, 3, 4, 5, 7, 11, 16, 17, 31, 63, 64, 65, 100, 257,
				  1 << 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[1 << 16], out[1 << 16];
	struct jsonseg s, r;
	struct jsonseg_part p, rp;
	const char *why = NULL, *rwhy = NULL, *in;
	size_t step, have = 0, given = 0, outlen = 0, n, used;
	int rc = 0, rrc, per_round;

	if (size < 1 || size > sizeof(buf))
		return 0;
	step = steps[data[0] & 15];
	per_round = data[0] & 0x40; /* drop what was used once per round, as respond.c does */
	in = (const char *)data + 1;
	n = size - 1;
	jsonseg_init(&s, LIMIT, data[0] & 0x80 ? "rows" : NULL);
	ref_jsonseg_init(&r, LIMIT, data[0] & 0x80 ? "rows" : NULL);
	while (rc >= 0) {
		size_t add = n - given < step ? n - given : step;

		memcpy(buf + have, in + given, add);
		have += add;
		given += add;
		used = 0;
		for (;;) {
			GUARD(buf, have);
			rc = jsonseg_next(&s, buf, have, given == n, &p, &why);
			UNGUARD(buf);
			rrc = ref_jsonseg_next(&r, buf, have, given == n, &rp, &rwhy);
			if (rc != rrc || (rc < 0 && strcmp(why, rwhy)))
				abort(); /* the same answer as the byte-at-a-time segmenter */
			if (rc != 1)
				break;
			if (p.kind != rp.kind || p.off != rp.off || p.len != rp.len ||
			    strcmp(p.key, rp.key))
				abort();
			if (p.off + p.len > have || (p.kind != JSONSEG_GLUE && p.len > LIMIT))
				abort();
			memcpy(out + outlen, buf + p.off, p.len);
			outlen += p.len;
			if (memcmp(out, in, outlen))
				abort(); /* the parts are the input, in order */
			used = p.off + p.len;
			if (!per_round) {
				memmove(buf, buf + used, have - used);
				have -= used;
				jsonseg_consumed(&s, used);
				ref_jsonseg_consumed(&r, used);
				used = 0;
			}
		}
		if (used) {
			memmove(buf, buf + used, have - used);
			have -= used;
			jsonseg_consumed(&s, used);
			ref_jsonseg_consumed(&r, used);
		}
		if (rc < 0 && !why)
			abort(); /* an error always says what */
		if (given == n)
			break;
	}
	if (rc == 0 && jsonseg_done(&s) != ref_jsonseg_done(&r))
		abort();
	if (rc == 0 && jsonseg_done(&s) && outlen != n)
		abort();
	return 0;
}
