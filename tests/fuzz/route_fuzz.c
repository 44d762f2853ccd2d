/* route_fuzz.c - libFuzzer driver for route_classify.
 *
 * Input: byte 0 picks the method (and an X-HTTP-Method-Override), byte 1 the host, the
 * Content-Type and the Content-Encoding; then the request target up to the first '\n'; the
 * rest is the body. Target and body are copied to buffers of their exact size so that
 * AddressSanitizer catches any read past either. Checks the result's invariants.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *     tests/fuzz/route_fuzz.c userspace/route.c -ljansson -lz -o build/route_fuzz
 *   build/route_fuzz -max_total_time=60 tests/fuzz/corpus/route */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" };
	static const char *const overrides[] = { NULL, "GET", "DELETE", "PATCH" };
	static const char *const hosts[] = { "bigquery.googleapis.com", "www.googleapis.com",
					     "bigquery.us-east1.rep.googleapis.com", "evil.example" };
	static const char *const ctypes[] = { "application/json",
					      "multipart/related; boundary=b", NULL,
					      "multipart/related; boundary=\"=b=\"" };
	static const char *const encs[] = { NULL, "gzip" };
	struct route_result r;
	const uint8_t *nl;
	char *target, *body;
	size_t tlen, blen;
	int rc, i;

	if (size < 2)
		return 0;
	nl = memchr(data + 2, '\n', size - 2);
	tlen = nl ? (size_t)(nl - data - 2) : size - 2;
	blen = nl ? size - 2 - tlen - 1 : 0;
	target = malloc(tlen ? tlen : 1);
	body = malloc(blen ? blen : 1);
	memcpy(target, data + 2, tlen);
	if (blen)
		memcpy(body, nl + 1, blen);
	rc = route_classify(hosts[data[1] & 3], methods[(data[0] & 7) % 6], target, tlen,
			    overrides[(data[0] >> 3) & 3], ctypes[(data[1] >> 2) & 3],
			    encs[(data[1] >> 4) & 1], blen ? body : NULL, blen, &r);
	if (rc == 0) {
		if (r.refusal) {
			if (r.method_id || r.json || r.n_sql || !r.refusal[0])
				abort();
		} else {
			if (!r.method_id || !r.method || (unsigned)r.access > ROUTE_JOB_CONTROL ||
			    r.n_sql < 0 || r.n_sql > ROUTE_MAX_SQL || r.n_sources > ROUTE_MAX_SOURCES)
				abort();
			for (i = 0; i < r.n_sql; i++)
				if (!r.sql[i].text || !r.sql[i].field ||
				    strlen(r.sql[i].text) != r.sql[i].len)
					abort();
			if (strchr(r.project, '/') || strchr(r.dataset, '/') || strchr(r.table, '/') ||
			    strstr(r.dataset, "..") || strstr(r.table, ".."))
				abort();
		}
	}
	route_result_free(&r);
	free(target);
	free(body);
	return 0;
}
