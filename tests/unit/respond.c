/* Description: the outcome a response record shows (job id, total rows, bytes processed) is
 * read off the start of a body and off its last top-level members, wherever the rows put
 * them, without reading past either end of the text. */
#include "respond.h"
#include "tap.h"

/* respond_outcome over a body held whole, from a guarded copy */
static void whole(const char *body, struct respond_outcome *o)
{
	const char *g = tap_guarded(body, strlen(body));

	respond_outcome(g, strlen(body), g, strlen(body), o);
}

int main(void)
{
	struct respond_outcome o;
	char *big, *p;
	size_t i, n = 200000;

	whole("{\"kind\":\"bigquery#getQueryResultsResponse\",\"jobReference\":{\"projectId\":"
	      "\"p\",\"jobId\":\"job_1\",\"location\":\"US\"},\"totalRows\":\"3\",\"rows\":[{\"f\":"
	      "[{\"v\":\"1\"}]}],\"totalBytesProcessed\":\"1024\",\"jobComplete\":true,"
	      "\"cacheHit\":false}", &o);
	is_str(o.job_id, "job_1", "job id from jobReference");
	is_str(o.rows, "3", "total rows before the rows");
	is_str(o.bytes_processed, "1024", "bytes processed after the rows");

	/* a page whose rows run past 64 KiB, with totalRows after them */
	big = malloc(n + 256);
	p = big + sprintf(big, "{\"jobReference\":{\"jobId\":\"j2\"},\"rows\":[");
	for (i = 0; (size_t)(p - big) < n; i++)
		p += sprintf(p, "%s{\"f\":[{\"v\":\"totalRows\"}]}", i ? "," : "");
	sprintf(p, "] ,\n \"totalRows\" : \"%zu\", \"totalBytesProcessed\":7,\"x\":null }\n", i);
	whole(big, &o);
	is_str(o.job_id, "j2", "job id of a large page");
	ok(atoi(o.rows) == (int)i, "total rows after 64 KiB of rows (%s)", o.rows);
	is_str(o.bytes_processed, "7", "a number value");

	/* streamed: the first bytes and the last ones apart */
	respond_outcome(big, 65536, p - 10, strlen(p) + 10, &o);
	ok(atoi(o.rows) == (int)i, "streamed: total rows from the tail");

	/* a nested object or array at the end stops the backward read */
	whole("{\"rows\":[],\"totalRows\":\"5\",\"statistics\":{\"totalBytesProcessed\":\"9\"}}", &o);
	is_str(o.rows, "", "a member before a nested value is not reached from the end");
	is_str(o.bytes_processed, "", "nor a key inside it");
	whole("{\"statistics\":{\"totalBytesProcessed\":\"9\"},\"jobReference\":{\"jobId\":\"j\"}}",
	      &o);
	is_str(o.bytes_processed, "9", "a nested key in the first bytes (jobs.get)");

	/* strings with escaped quotes, and keys that only look alike */
	whole("{\"rows\":[],\"a\":\"x\\\\\",\"totalRows\":\"4\",\"b\":\"\\\"totalRows\\\":1\"}", &o);
	is_str(o.rows, "4", "escaped quotes and backslashes read backwards");
	whole("{\"rows\":[],\"xtotalRows\":\"4\"}", &o);
	is_str(o.rows, "", "only the exact key");
	whole("{\"rows\":[{\"f\":[{\"v\":\"a\"}]}],\"totalRows\":\"4\"}", &o);
	is_str(o.rows, "4", "the rows are not searched for the key");

	/* nothing to find, broken text, empty input */
	whole("{}", &o);
	ok(!*o.job_id && !*o.rows && !*o.bytes_processed, "an empty object");
	whole("\"totalRows\":\"1\"}", &o);
	is_str(o.rows, "1", "text cut at the start: the key is still found ahead");
	whole("x\",\"totalRows\":\"1\"}", &o);
	is_str(o.rows, "1", "... and a stray quote before it");
	whole("", &o);
	ok(!*o.rows, "empty text");
	memset(big, 'a', n);
	big[n] = '"';
	big[n + 1] = '}';
	big[n + 2] = '\0';
	whole(big, &o);
	ok(!*o.rows, "a string longer than the tail that is read");
	free(big);
	return tap_done();
}
