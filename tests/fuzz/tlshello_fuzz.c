/* tlshello_fuzz.c - libFuzzer driver for the ClientHello peek (tlshello_parse).
 *
 * Input: byte 0 says where the bytes are cut; the rest is what an agent sends first, copied
 * to a buffer of its exact size so that AddressSanitizer catches any read past it.
 *
 * Besides memory errors it checks what the routing decision relies on: a complete parse
 * gives a host name of letters, digits, '-' and '.', in lower case, and at most
 * TLSHELLO_MAX_ALPN printable ALPN names; and the answer does not depend on how the bytes
 * arrived. A prefix of the input is answered "need more" (-2) or the same as the whole; it
 * is never refused (-1) or taken for something else (0) when the whole is a ClientHello,
 * and never parsed into a different SNI.
 *
 *   make fuzz (FUZZ_SECONDS=N), or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *     tests/fuzz/tlshello_fuzz.c userspace/tlshello.c -o build/tlshello_fuzz
 *   build/tlshello_fuzz -max_total_time=60 tests/fuzz/corpus/tlshello */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlshello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void hello_checks(const struct tlshello *h)
{
	size_t i, n = strnlen(h->sni, sizeof(h->sni));
	int a;

	if (n == sizeof(h->sni) || (h->has_sni && !n) || (!h->has_sni && n) || n > 253)
		abort();
	for (i = 0; i < n; i++) {
		char c = h->sni[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			abort();
	}
	if (h->n_alpn < 0 || h->n_alpn > TLSHELLO_MAX_ALPN)
		abort();
	for (a = 0; a < h->n_alpn; a++) {
		n = strnlen(h->alpn[a], sizeof(h->alpn[a]));
		if (!n || n == sizeof(h->alpn[a]))
			abort();
		for (i = 0; i < n; i++)
			if (h->alpn[a][i] < 0x21 || h->alpn[a][i] > 0x7e)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlshello whole, part;
	const char *why = NULL;
	uint8_t *buf;
	size_t len, cut;
	int r, rp;

	if (size < 1)
		return 0;
	len = size - 1;
	buf = malloc(len ? len : 1);
	memcpy(buf, data + 1, len);
	r = tlshello_parse(buf, len, &whole, &why);
	if (!why || r < -2 || r > 1 || (r == 1 && !whole.is_tls))
		abort();
	if (r == 1)
		hello_checks(&whole);
	cut = len ? ((size_t)data[0] * 131) % (len + 1) : 0;
	rp = tlshello_parse(buf, cut, &part, NULL);
	if (rp == 1) {
		hello_checks(&part);
		if (r != 1 || strcmp(part.sni, whole.sni) || part.n_alpn != whole.n_alpn)
			abort(); /* complete on a prefix: the whole is the same ClientHello */
	} else if (rp != -2 && rp != r) {
		abort(); /* a prefix judged otherwise than the whole */
	}
	free(buf);
	return 0;
}
