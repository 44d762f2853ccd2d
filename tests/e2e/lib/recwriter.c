/* recwriter.c - drives the recording store for tests/e2e/record-*.sh.
 *   recwriter DIR write START   submit records {"n": START, START+1...} to three streams
 *                               as fast as the store takes them; print each n once its
 *                               callback says durable (one write(2) per line); runs until
 *                               killed
 *   recwriter DIR fill START    the same, one record at a time, until a record fails:
 *                               print "FAILED <errno>" and close the store cleanly
 *   recwriter DIR demo 0        one short agent session (every record type) per stream,
 *                               then a clean close
 *   recwriter DIR check ACKS    open (recovery) and close the store, verify it, and check
 *                               that every n listed in ACKS is recorded; exit 0 or 1 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"
#include "recverify.h"

static const char *paths[] = {
	"/system.slice/docker-1111111111111111111111111111111111111111111111111111111111111111.scope",
	"/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555",
	"/agents.slice/agent-3",
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int last_status = 1, inflight;

/* Durable: print n (arg) on stdout in one write. */
static void done(void *arg, int status)
{
	char line[32];
	int n;

	if (!status) {
		n = snprintf(line, sizeof(line), "%ld\n", (long)(intptr_t)arg);
		if (write(1, line, (size_t)n) != n)
			exit(3);
	}
	pthread_mutex_lock(&mu);
	last_status = status;
	inflight--;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static struct rec *open_store(const char *dir)
{
	struct rec_opts o = { .dir = dir, .segment_bytes = 64 * 1024, .checkpoint_every = 50,
			      .checkpoint_secs = 1, .max_queue = 4096, .wal_bytes = 64 * 1024 };
	char err[512];
	struct rec *r = rec_open(&o, err, sizeof(err));

	if (!r) {
		fprintf(stderr, "recwriter: %s\n", err);
		exit(2);
	}
	return r;
}

static int submit(struct rec *r, long n, size_t pad)
{
	json_t *f = json_pack("{s:I, s:s}", "n", (json_int_t)n, "sql",
			      "SELECT name, total FROM shop.orders WHERE id = 42");
	char *p;
	int e;

	if (pad) {
		p = malloc(pad + 1);
		memset(p, 'p', pad);
		p[pad] = '\0';
		json_object_set_new(f, "pad", json_string(p));
		free(p);
	}
	pthread_mutex_lock(&mu);
	inflight++;
	pthread_mutex_unlock(&mu);
	e = rec_submit(r, paths[n % 3], 1000 + (uint64_t)(n % 3), "request", f, done,
		       (void *)(intptr_t)n);
	if (e) {
		pthread_mutex_lock(&mu);
		inflight--;
		pthread_mutex_unlock(&mu);
	}
	return e;
}

/* Every "n" recorded under <dir>, as a sorted array. */
static long *recorded(const char *dir, size_t *count)
{
	char cmd[1024];
	long *v = NULL, x;
	size_t cap = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "cat %s/*--*/0*.jsonl | grep -o '\"n\":[0-9]*' | cut -d: -f2 "
		 "| sort -n", dir);
	f = popen(cmd, "r");
	*count = 0;
	while (f && fscanf(f, "%ld", &x) == 1) {
		if (*count == cap)
			v = realloc(v, (cap = cap * 2 + 1024) * sizeof(*v));
		v[(*count)++] = x;
	}
	if (f)
		pclose(f);
	return v;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct rec *r;
	long n;

	if (argc != 4) {
		fprintf(stderr, "usage: recwriter DIR write|fill START | DIR check ACKFILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[2], "write")) {
		r = open_store(argv[1]);
		for (n = atol(argv[3]);; n++) {
			while (submit(r, n, 0) == -EAGAIN)
				usleep(1000);
			if (n % 8 == 0)
				usleep(1000); /* ~8k records/s: many rounds, each check short */
		}
	}
	if (!strcmp(argv[2], "fill")) {
		r = open_store(argv[1]);
		for (n = atol(argv[3]);; n++) {
			int e = submit(r, n, 2000);

			pthread_mutex_lock(&mu);
			while (inflight)
				pthread_cond_wait(&cv, &mu);
			if (!e)
				e = last_status;
			pthread_mutex_unlock(&mu);
			if (e) {
				printf("FAILED %d %s\n", -e, strerror(-e));
				break;
			}
		}
		rec_close(r);
		return 0;
	}
	if (!strcmp(argv[2], "demo")) {
		int i;

		r = open_store(argv[1]);
		for (i = 0; i < 3; i++) {
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "conn_open", json_pack(
				"{s:i, s:s, s:s}", "pid", 4242 + i, "comm", "node", "sni",
				"bigquery.googleapis.com"), NULL, NULL);
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "request", json_pack(
				"{s:s, s:s, s:s}", "method", "POST", "path",
				"/bigquery/v2/projects/p/queries", "sql", "DROP TABLE shop.orders"),
				NULL, NULL);
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "decision", json_pack(
				"{s:s, s:s, s:s}", "decision", "deny", "rule", "no-ddl", "reason",
				"DROP is refused"), NULL, NULL);
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "request", json_pack(
				"{s:s, s:s, s:s}", "method", "POST", "path",
				"/bigquery/v2/projects/p/queries", "sql", "SELECT id FROM shop.orders"),
				NULL, NULL);
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "decision", json_pack(
				"{s:s, s:s}", "decision", "allow", "rule", "read-only"), NULL, NULL);
			rec_submit(r, paths[i], 1000 + (uint64_t)i, "response", json_pack(
				"{s:i, s:i}", "status", 200, "rows", 3), NULL, NULL);
		}
		rec_close(r);
		return 0;
	}
	if (!strcmp(argv[2], "check")) {
		json_t *rep;
		size_t count, i;
		long *v, a;
		FILE *f;
		int e, bad = 0;

		rec_close(open_store(argv[1]));
		e = rec_verify_path(argv[1], NULL, &rep);
		f = fopen(argv[3], "r");
		if (e == -ENOENT && f && fscanf(f, "%ld", &a) != 1) {
			/* killed before its first record (a slow start on a loaded machine): an
			 * empty store is right when nothing was acknowledged */
			fclose(f);
			json_decref(rep);
			return 0;
		}
		if (f)
			fclose(f);
		if (e) {
			json_dumpf(rep, stdout, JSON_INDENT(2));
			printf("\nrecwriter: verify failed: %d\n", e);
			return 1;
		}
		json_decref(rep);
		v = recorded(argv[1], &count);
		f = fopen(argv[3], "r");
		while (f && fscanf(f, "%ld", &a) == 1)
			if (!bsearch(&a, v, count, sizeof(*v), cmp_long)) {
				printf("recwriter: acknowledged record n=%ld is missing\n", a);
				bad = 1;
			}
		if (f)
			fclose(f);
		free(v);
		return bad;
	}
	return 2;
}
