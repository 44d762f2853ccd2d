/* detect_fuzz.c - libFuzzer driver of the content detectors: any bytes, as JSON and as plain
 * text, through detect_json and detect_text and through the byte-at-a-time detectors they
 * replaced (ref/detect_ref.c), under rules taken from the first byte: the return values,
 * the reports and the masked bytes must be the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "ref/detect_ref.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct detect_rules dr;
	struct detect_report a, b;
	char *x, *y;
	size_t n;
	int k;

	if (size < 1)
		return 0;
	dr.enabled = data[0] & 31 ? data[0] & 31 : DETECT_ALL;
	for (k = 0; k < 5; k++) /* masking most of the time: it changes what later scans see */
		dr.action[k] = (enum detect_action)((data[0] >> 5) + k < 6 ? DETECT_MASK :
						    ((data[0] >> 5) + k) % 3);
	n = size - 1;
	x = malloc(n + 1);
	y = malloc(n + 1);
	if (!x || !y)
		abort();
	memcpy(x, data + 1, n);
	memcpy(y, data + 1, n);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (detect_json(x, n, &dr, &a) != ref_detect_json(y, n, &dr, &b) ||
	    memcmp(&a, &b, sizeof(a)) || memcmp(x, y, n))
		abort();
	memcpy(x, data + 1, n);
	memcpy(y, data + 1, n);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (detect_text(x, n, &dr, &a) != ref_detect_text(y, n, &dr, &b) ||
	    memcmp(&a, &b, sizeof(a)) || memcmp(x, y, n))
		abort();
	if (detect_luhn(x, n) != ref_detect_luhn(x, n) ||
	    detect_iban_ok(x, n) != ref_detect_iban_ok(x, n))
		abort();
	free(x);
	free(y);
	return 0;
}
