/* Description: the session-recording store: naming, writing with durable callbacks, every
 * kind of tampering detected and named by the verifier, torn-tail recovery, records a
 * segment lost given back by the durability log, no space, fsync failure, queue bound. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "reckey.h"
#include "record.h"
#include "recwal.h"
#include "recverify.h"
#include "tap.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* temporary paths are short */

/* fsync interposed: fails with EIO while fail_fsync is set (the store must stop). */
static volatile int fail_fsync, fail_fsync_only; /* the latter: fsync(), not fdatasync() */

int fsync(int fd)
{
	if (fail_fsync || fail_fsync_only) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

/* write interposed: while space_left >= 0, that many bytes fit on the "disk", then ENOSPC
 * (a full disk; the durability log is rewritten in place with pwritev, so it never runs
 * out of room, as on a real disk). */
static volatile long space_left = -1;

ssize_t write(int fd, const void *p, size_t n)
{
	long left = space_left;
	ssize_t k;

	if (left >= 0 && n > (size_t)left) {
		if (!left) {
			errno = ENOSPC;
			return -1;
		}
		n = (size_t)left;
	}
	k = syscall(SYS_write, fd, p, n);
	if (k > 0 && left >= 0)
		space_left = left - k;
	return k;
}

int syncfs(int fd) /* the durability log's catch-up */
{
	if (fail_fsync) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_syncfs, fd);
}

int fdatasync(int fd) /* the durability log's sync */
{
	if (fail_fsync) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static char tmp[] = "/tmp/sluice-record-test-XXXXXX";
static char store[512], pub[512];

/* Completion bookkeeping. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int n_done, n_ok, last_status;
static volatile int block_writer;

static void done(void *arg, int status)
{
	pthread_mutex_lock(&mu);
	n_done++;
	if (!status)
		n_ok++;
	last_status = status;
	pthread_cond_broadcast(&cv);
	while (block_writer && arg)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void wait_done(int n)
{
	pthread_mutex_lock(&mu);
	while (n_done < n)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void reset_counts(void)
{
	pthread_mutex_lock(&mu);
	n_done = n_ok = 0;
	last_status = 1;
	pthread_mutex_unlock(&mu);
}

static const char *docker = "/system.slice/docker-"
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
static const char *pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
			 "12345678_1234_1234_1234_123456789abc.slice";
static char s_docker[REC_STREAM_MAX], s_pod[REC_STREAM_MAX];

static struct rec *open_store(const char *dir, size_t seg, int every, char *err)
{
	struct rec_opts o = { .dir = dir, .segment_bytes = seg, .checkpoint_every = every };

	return rec_open(&o, err, 512);
}

static int submit_n(struct rec *r, const char *path, uint64_t id, int from, int n)
{
	int i, e = 0;

	for (i = from; i < from + n && !e; i++)
		e = rec_submit(r, path, id, i % 3 ? "request" : "decision",
			       json_pack("{s:i, s:s, s:s}", "n", i, "sql", "SELECT 1 FROM t",
					 "decision", i % 6 ? "allow" : "deny"),
			       done, NULL);
	return e;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Lines of a file, for tampering. */
struct lines {
	char *v[4096];
	int n;
};

static void lines_read(const char *path, struct lines *l)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	l->n = 0;
	while (f && getline(&line, &cap, f) > 0 && l->n < 4096)
		l->v[l->n++] = strdup(line);
	free(line);
	if (f)
		fclose(f);
}

static void lines_write(const char *path, struct lines *l)
{
	FILE *f = fopen(path, "w");
	int i;

	for (i = 0; i < l->n; i++) {
		fputs(l->v[i], f);
		free(l->v[i]);
	}
	fclose(f);
}

/* Re-serialize record <o> (prev set to <prev>) as a line with its hash; <hash> gets it. */
static char *make_line(json_t *o, const char *prev, char hash[65])
{
	unsigned char h[32];
	char *body, *line;
	size_t n;

	json_object_del(o, "hash");
	json_object_set_new(o, "prev", json_string(prev));
	body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	n = strlen(body);
	SHA256((unsigned char *)body, n, h);
	rec_hex(h, 32, hash);
	line = malloc(n + 80);
	snprintf(line, n + 80, "%.*s,\"hash\":\"%s\"}\n", (int)n - 1, body, hash);
	free(body);
	return line;
}

/* Path of segment <n> in the stream copy <dir>. */
static const char *seg(const char *dir, int n)
{
	static char p[700];

	snprintf(p, sizeof(p), "%s/%06d.jsonl", dir, n);
	return p;
}

/* Recompute prev/hash of every record from line <from> of segment <first> on, through
 * segment <nseg> of stream copy <dir> (a forger's rewrite). */
static void rechain(const char *dir, int nseg, int first, int from)
{
	struct lines l;
	char prev[65] = "", hash[65];
	int i, sgm;

	for (sgm = 1; sgm <= nseg; sgm++) {
		lines_read(seg(dir, sgm), &l);
		for (i = 0; i < l.n; i++) {
			json_t *o = json_loads(l.v[i], 0, NULL);

			if (sgm > first || (sgm == first && i >= from)) {
				free(l.v[i]);
				l.v[i] = make_line(o, prev, hash);
			} else {
				snprintf(hash, sizeof(hash), "%s",
					 json_string_value(json_object_get(o, "hash")));
			}
			memcpy(prev, hash, sizeof(prev));
			json_decref(o);
		}
		lines_write(seg(dir, sgm), &l);
	}
}

/* Copy the stream <s> to a fresh directory; returns the copy's path. */
static const char *copy_stream(const char *s)
{
	static char dst[600];
	static int k;

	snprintf(dst, sizeof(dst), "%s/t%d/%s", tmp, ++k, s);
	sh("mkdir -p %s/t%d && cp -a %s/%s %s/t%d/", tmp, k, store, s, tmp, k);
	return dst;
}

/* Verify <path> and expect the first problem to be <kind> (NULL: intact) at <line> (0:
 * any) of a file whose name ends with <file> (NULL: any). */
static void expect(const char *what, const char *path, const char *kind, const char *file,
		   int line)
{
	json_t *rep, *p;
	int e = rec_verify_path(path, pub, &rep);
	const char *k, *f;

	p = json_object_get(rep, "first_problem");
	k = json_string_value(json_object_get(p, "kind"));
	f = json_string_value(json_object_get(p, "file"));
	if (!kind) {
		ok(e == 0, "%s: intact (%d%s%s)", what, e, k ? ": " : "",
		   k ? json_string_value(json_object_get(p, "detail")) : "");
	} else {
		ok(e == -EBADMSG && k && !strcmp(k, kind) &&
			   (!file || (f && strlen(f) >= strlen(file) &&
				      !strcmp(f + strlen(f) - strlen(file), file))) &&
			   (!line || json_integer_value(json_object_get(p, "line")) == line),
		   "%s: detected as %s (got %d: %s %s:%lld: %s)", what, kind, e, k, f,
		   (long long)json_integer_value(json_object_get(p, "line")),
		   json_string_value(json_object_get(p, "detail")));
	}
	json_decref(rep);
}

/* Does the store <dir> verify against its own record.pub? */
static int store_intact(const char *dir)
{
	char path[700];
	json_t *rep;
	int e;

	snprintf(path, sizeof(path), "%s/record.pub", dir);
	e = rec_verify_path(dir, path, &rep);
	json_decref(rep);
	return e == 0;
}

static int count_lines(const char *dir)
{
	char cmd[700];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "cat %s/*.jsonl | wc -l", dir);
	f = popen(cmd, "r");
	if (f && fscanf(f, "%d", &n) != 1)
		n = -1;
	if (f)
		pclose(f);
	return n;
}

static void test_names(void)
{
	char out[REC_STREAM_MAX];

	is_str(rec_stream_name(docker, 42, out, sizeof(out)),
	       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef--42",
	       "docker scope: the container id");
	is_str(rec_stream_name("/kubepods/burstable/pod12345678-1234-1234-1234-123456789abc/"
			       "cri-containerd-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			       ".scope", 7, out, sizeof(out)),
	       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa--7",
	       "containerd inside a pod: the container id wins");
	is_str(rec_stream_name(pod, 9, out, sizeof(out)),
	       "pod-12345678-1234-1234-1234-123456789abc--9", "pod uid with underscores");
	is_str(rec_stream_name("/machine.slice/crio-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.scope",
			       1, out, sizeof(out)),
	       "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb--1", "crio");
	is_str(rec_stream_name("/agents.slice/a b/../x", 5, out, sizeof(out)),
	       "agents.slice_a_b_.._x--5", "other paths sanitised");
	is_str(rec_stream_name("/", 1, out, sizeof(out)), "root--1", "root cgroup");
	ok(rec_stream_name("/.hidden", 1, out, sizeof(out)) && out[0] == '_', "no leading dot");
}

/* Write two streams through the API; every callback says durable; the store verifies. */
static void test_write(void)
{
	char err[512];
	struct rec *r = open_store(store, 4096, 7, err);
	int i;

	ok(r != NULL, "store opens, key created (%s)", r ? "" : err);
	if (!r)
		exit(1);
	ok(access(pub, R_OK) == 0, "public key beside the store");
	{
		struct stat st;

		snprintf(err, sizeof(err), "%s/record.key", store);
		ok(!stat(err, &st) && (st.st_mode & 0777) == 0600, "private key is 0600");
	}
	reset_counts();
	is_int(submit_n(r, docker, 111, 0, 60), 0, "60 records queued for a docker container");
	is_int(submit_n(r, pod, 222, 0, 30), 0, "30 records queued for a pod");
	wait_done(90);
	is_int(n_ok, 90, "every callback reported durable");
	is_int(rec_submit(r, docker, 111, "checkpoint", NULL, done, NULL), -EINVAL,
	       "callers cannot forge checkpoints");
	is_int(rec_submit(r, docker, 111, "Bad Type", json_object(), done, NULL), -EINVAL,
	       "type is [a-z_]");
	{
		json_t *big = json_object();
		char *s = malloc(REC_MAX_LINE + 10);

		memset(s, 'x', REC_MAX_LINE + 9);
		s[REC_MAX_LINE + 9] = '\0';
		json_object_set_new(big, "x", json_string(s));
		free(s);
		reset_counts();
		is_int(rec_submit(r, docker, 111, "request", big, done, NULL), 0, "queued");
		wait_done(1);
		is_int(last_status, -EMSGSIZE, "a record over 1 MiB fails with -EMSGSIZE");
	}
	{
		json_t *f = json_object();
		char body[3000];

		memset(body, 'b', sizeof(body));
		rec_put_body(f, "body", body, sizeof(body), 100);
		ok(json_is_true(json_object_get(json_object_get(f, "body"), "truncated")) &&
			   strlen(json_string_value(json_object_get(json_object_get(f, "body"),
								    "text"))) == 100,
		   "rec_put_body cuts the body and keeps its hash");
		rec_put_body(f, "bin", "\xff\x00\x01", 3, 100);
		ok(json_is_string(json_object_get(json_object_get(f, "bin"), "base64")),
		   "binary bodies go as base64");
		rec_put_body(f, "del", "a\x7f" "b", 3, 100); /* DEL is written raw, as JSON allows */
		ok(json_is_string(json_object_get(json_object_get(f, "del"), "text")),
		   "a body with a DEL byte goes as text (and the store below still verifies)");
		reset_counts();
		rec_submit(r, docker, 111, "response", f, done, NULL);
		wait_done(1);
		is_int(last_status, 0, "body record durable");
	}
	rec_close(r);
	rec_stream_name(docker, 111, s_docker, sizeof(s_docker));
	rec_stream_name(pod, 222, s_pod, sizeof(s_pod));
	snprintf(err, sizeof(err), "%s/%s/000003.jsonl", store, s_docker);
	ok(access(err, F_OK) == 0, "the docker stream rotated into several segments");
	expect("the store", store, NULL, NULL, 0);
	snprintf(err, sizeof(err), "%s/%s", store, s_docker);
	i = count_lines(err);
	r = open_store(store, 4096, 7, err);
	rec_close(r);
	snprintf(err, sizeof(err), "%s/%s", store, s_docker);
	is_int(count_lines(err), i, "a clean reopen adds nothing (no recovery record)");
}

/* Index of the first line of <l> of <type>, from <from>. */
static int find_type(struct lines *l, const char *type, int from)
{
	char want[64];
	int i;

	snprintf(want, sizeof(want), "\"type\":\"%s\"", type);
	for (i = from; i < l->n; i++)
		if (strstr(l->v[i], want))
			return i;
	return -1;
}

static void test_tamper(void)
{
	struct lines l, m;
	const char *d;
	char *p, last[700];
	int i, k = -1, nseg;

	/* the last segment of the docker stream */
	for (nseg = 1; access(seg(copy_stream(s_docker), nseg + 1), F_OK) == 0; nseg++)
		;
	d = copy_stream(s_docker);
	expect("an untouched copy", d, NULL, NULL, 0);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	p = strstr(l.v[2], "SELECT 1");
	p[7] = '2';
	lines_write(seg(d, 1), &l);
	expect("a field modified", d, "modified", "000001.jsonl", 3);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	free(l.v[3]);
	memmove(&l.v[3], &l.v[4], (size_t)(l.n - 4) * sizeof(char *));
	l.n--;
	lines_write(seg(d, 1), &l);
	expect("a line deleted", d, "deleted", "000001.jsonl", 4);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	p = l.v[2];
	l.v[2] = l.v[3];
	l.v[3] = p;
	lines_write(seg(d, 1), &l);
	expect("two lines swapped", d, "reordered", "000001.jsonl", 3);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	{
		json_t *o = json_loads(l.v[2], 0, NULL);
		char hash[65];

		json_object_set_new(json_object_get(o, "data"), "sql", json_string("SELECT 0"));
		p = make_line(o, json_string_value(json_object_get(o, "prev")), hash);
		json_decref(o);
		memmove(&l.v[3], &l.v[2], (size_t)(l.n - 2) * sizeof(char *));
		l.v[2] = p;
		l.n++;
	}
	lines_write(seg(d, 1), &l);
	expect("a forged line inserted (with a valid hash and prev)", d, "inserted",
	       "000001.jsonl", 3);

	d = copy_stream(s_docker);
	snprintf(last, sizeof(last), "%s", seg(d, nseg));
	sh("truncate -s -40 %s", last);
	expect("the last segment cut mid-line", d, "truncated", NULL, 0);

	/* cut after the last checkpoint but one: in the last segment holding two, or at the
	 * end of the segment before (and the segments after it removed) */
	d = copy_stream(s_docker);
	for (i = nseg; i >= 1; i--) {
		lines_read(seg(d, i), &l);
		k = find_type(&l, "checkpoint", 0);
		if (i < nseg || (k >= 0 && k + 1 < l.n && find_type(&l, "checkpoint", k + 1) > k))
			break;
		for (k = 0; k < l.n; k++)
			free(l.v[k]);
		sh("rm %s", seg(d, i));
	}
	if (i == nseg) {
		for (i = k + 1; i < l.n; i++)
			free(l.v[i]);
		l.n = k + 1;
	}
	lines_write(seg(d, i), &l);
	expect("the last segment cut at a checkpoint boundary", d, "truncated", NULL, 0);

	d = copy_stream(s_docker);
	sh("rm %s", seg(d, nseg));
	expect("the whole last segment removed", d, "truncated", NULL, 0);

	d = copy_stream(s_docker);
	sh("rm %s", seg(d, 2));
	expect("a middle segment removed", d, "deleted", "000003.jsonl", 1);

	d = copy_stream(s_docker);
	snprintf(last, sizeof(last), "%s/%s/000001.jsonl", store, s_pod);
	lines_read(last, &m);
	lines_read(seg(d, 1), &l);
	free(l.v[4]);
	l.v[4] = m.v[4]; /* same seq, from the pod's stream */
	m.v[4] = strdup("");
	lines_write(seg(d, 1), &l);
	for (i = 0; i < m.n; i++)
		free(m.v[i]);
	expect("a line copied from another container", d, "moved", "000001.jsonl", 5);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	k = find_type(&l, "checkpoint", 0);
	p = strstr(l.v[k], "\"sig\":\"") + 10;
	*p = *p == 'A' ? 'B' : 'A';
	lines_write(seg(d, 1), &l);
	rechain(d, nseg, 1, k);
	expect("a signature byte flipped, chain recomputed", d, "bad_signature", "000001.jsonl",
	       k + 1);

	d = copy_stream(s_docker);
	lines_read(seg(d, 1), &l);
	p = strstr(l.v[1], "SELECT 1");
	p[7] = '3';
	lines_write(seg(d, 1), &l);
	rechain(d, nseg, 1, 1);
	expect("a field modified and the chain recomputed", d, "bad_signature", "000001.jsonl",
	       0);
}

/* A torn write at the end is cut at reopen and a recovery record says so. */
static void test_recovery(void)
{
	char path[700], err[512];
	struct lines l;
	struct rec *r;
	int n, k;

	snprintf(path, sizeof(path), "%s/%s", store, s_pod);
	n = count_lines(path);
	for (k = 1; ; k++)
		if (access(seg(path, k + 1), F_OK))
			break;
	snprintf(path, sizeof(path), "%s", seg(path, k));
	lines_read(path, &l);
	n = l.n;
	for (k = 0; k < l.n; k++)
		free(l.v[k]);
	sh("printf '{\"data\":{\"n\":1' >> %s", path);
	r = open_store(store, 4096, 7, err);
	ok(r != NULL, "reopens after a torn write (%s)", r ? "" : err);
	rec_close(r);
	lines_read(path, &l);
	is_int(l.n, n, "the torn bytes were cut, whole records kept");
	for (k = 0; k < l.n; k++)
		free(l.v[k]);
	snprintf(path, sizeof(path), "%s/%s", store, s_pod);
	for (k = 1; ; k++)
		if (access(seg(path, k + 1), F_OK))
			break;
	lines_read(seg(path, k), &l); /* the recovery record may open a new segment */
	k = find_type(&l, "recovery", 0);
	ok(k >= 0 && strstr(l.v[k], "\"cut_bytes\":14,"), "a recovery record names the 14 bytes cut");
	ok(k >= 0 && k + 1 < l.n && strstr(l.v[k + 1], "\"reason\":\"recovery\""),
	   "then a checkpoint");
	for (k = 0; k < l.n; k++)
		free(l.v[k]);
	expect("the store after recovery", store, NULL, NULL, 0);
}

/* No space: the record fails with the error, nothing before it is damaged, and the store
 * goes on once there is room (space_left plays the full disk). */
static void test_no_space(void)
{
	char dir[600], err[512];
	struct rec *r;
	int i, failed = 0;

	snprintf(dir, sizeof(dir), "%s/nospace", tmp);
	r = open_store(dir, 1 << 20, 1000, err);
	ok(r != NULL, "store for the no-space test");
	space_left = 3000;
	reset_counts();
	for (i = 0; i < 40; i++) {
		submit_n(r, docker, 5, i, 1);
		wait_done(i + 1);
		if (last_status == -ENOSPC)
			failed++;
	}
	ok(n_ok > 5 && failed > 0 && n_ok + failed == 40,
	   "records fail with -ENOSPC once the disk is full (%d ok, %d failed)", n_ok, failed);
	space_left = -1;
	reset_counts();
	submit_n(r, docker, 5, 100, 3);
	wait_done(3);
	is_int(n_ok, 3, "with room again, records are written");
	rec_close(r);
	ok(store_intact(dir), "nothing written before was damaged");
}

/* A batch written with one write() that runs out of room: the segment is cut back, the
 * chain put back, every record of the batch fails, and later records chain on cleanly. */
static void test_no_space_batch(void)
{
	char dir[600], err[512], path[700], name[REC_STREAM_MAX];
	struct stat st;
	struct rec *r;
	off_t before;
	int failed;

	snprintf(dir, sizeof(dir), "%s/nospace-batch", tmp);
	r = open_store(dir, 1 << 20, 1000, err);
	ok(r != NULL, "store for the batched no-space test");
	rec_stream_name(docker, 6, name, sizeof(name));
	reset_counts();
	block_writer = 1;
	rec_submit(r, docker, 6, "request", NULL, done, (void *)1);
	wait_done(1); /* the writer waits in that callback: what follows is one batch */
	snprintf(path, sizeof(path), "%s/%s/000001.jsonl", dir, name);
	stat(path, &st);
	before = st.st_size;
	space_left = 1000; /* room for a few of the 40 */
	submit_n(r, docker, 6, 0, 40);
	pthread_mutex_lock(&mu);
	block_writer = 0;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	wait_done(41);
	failed = 41 - n_ok;
	is_int(last_status, -ENOSPC, "the batch fails with -ENOSPC");
	ok(n_ok == 1 && failed == 40, "... all of it: %d ok, %d failed", n_ok, failed);
	stat(path, &st);
	ok(st.st_size == before, "the segment was cut back to its last record");
	space_left = -1;
	reset_counts();
	submit_n(r, docker, 6, 100, 3);
	wait_done(3);
	is_int(n_ok, 3, "with room again, records are written");
	rec_close(r);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	is_int(count_lines(path), 1 + 3 + 1, "the segment holds the 4 records and the shutdown "
	       "checkpoint, nothing of the failed batch");
	ok(store_intact(dir), "the chain verifies");
}

/* A failed fsync stops the store: the record and every later submit fail with -EIO. */
static void test_fsync_failure(void)
{
	char dir[600], err[512];
	struct rec *r;

	snprintf(dir, sizeof(dir), "%s/fsyncfail", tmp);
	r = open_store(dir, 1 << 20, 1000, err);
	reset_counts();
	submit_n(r, docker, 5, 0, 2);
	wait_done(2);
	is_int(n_ok, 2, "durable before the failure");
	fail_fsync = 1;
	reset_counts();
	submit_n(r, docker, 5, 2, 1);
	wait_done(1);
	is_int(last_status, -EIO, "the record whose fsync failed gets -EIO");
	is_int(rec_submit(r, docker, 5, "request", NULL, done, NULL), -EIO,
	       "later submits fail at once with -EIO");
	is_int(rec_failed(r), -EIO, "rec_failed says so");
	rec_close(r);
	fail_fsync = 0;
}

/* The queue is bounded: with the writer stuck in a callback, submits beyond max_queue fail
 * with -EAGAIN instead of blocking or growing. */
static void test_queue_bound(void)
{
	struct rec_opts o = { .max_queue = 2 };
	char dir[600], err[512];
	struct rec *r;
	int e;

	snprintf(dir, sizeof(dir), "%s/queue", tmp);
	o.dir = dir;
	r = rec_open(&o, err, sizeof(err));
	reset_counts();
	block_writer = 1;
	rec_submit(r, docker, 5, "request", NULL, done, (void *)1);
	wait_done(1); /* the writer now waits in that callback */
	rec_submit(r, docker, 5, "request", NULL, done, NULL);
	rec_submit(r, docker, 5, "request", NULL, done, NULL);
	e = rec_submit(r, docker, 5, "request", NULL, done, NULL);
	is_int(e, -EAGAIN, "a full queue refuses with -EAGAIN");
	pthread_mutex_lock(&mu);
	block_writer = 0;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	wait_done(3);
	is_int(n_ok, 3, "queued records still complete");
	rec_close(r);
}

/* A group-commit window: records share an fsync and are durable within the window. */
static void test_sync_window(void)
{
	struct rec_opts o = { .sync_ms = 20 };
	char dir[600], err[512];
	struct timespec a, b;
	struct rec *r;

	snprintf(dir, sizeof(dir), "%s/window", tmp);
	o.dir = dir;
	r = rec_open(&o, err, sizeof(err));
	reset_counts();
	clock_gettime(CLOCK_MONOTONIC, &a);
	submit_n(r, docker, 5, 0, 50);
	wait_done(50);
	clock_gettime(CLOCK_MONOTONIC, &b);
	is_int(n_ok, 50, "sync_ms 20: every record durable");
	ok((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 1000,
	   "within the window (plus fsync time)");
	rec_close(r);
}

/* A store that stopped without closing (the child exits at once) and then lost the end of
 * its segment, as a power cut loses what was only in the page cache: the durability log
 * gives every acknowledged record back, byte for byte, after <wal_bytes>-sized log laps.
 * <torn> bytes of the first lost line stay, as a torn write. */
static void crash_and_replay(const char *name, size_t wal_bytes, int n, int lost, int torn)
{
	struct rec_opts o = { .wal_bytes = wal_bytes, .checkpoint_every = 100000,
			      .syncer_ms = -1 }; /* what is lost is still in the log */
	char dir[600], err[512], path[700], sname[REC_STREAM_MAX], *before = NULL, *after = NULL;
	struct lines l;
	size_t blen = 0, alen = 0, cut = 0;
	struct rec *r;
	pid_t pid;
	int st, i, k;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	o.dir = dir;
	pid = fork();
	if (!pid) {
		r = rec_open(&o, err, sizeof(err));
		if (!r)
			_exit(2);
		reset_counts();
		for (i = 0; i < n; i += 10) { /* batches of 10: each fits the log */
			submit_n(r, docker, 9, i, 10);
			wait_done(i + 10);
		}
		_exit(n_ok == n ? 0 : 3); /* no rec_close: a crash */
	}
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %d records acknowledged, then a crash",
	   name, n);
	rec_stream_name(docker, 9, sname, sizeof(sname));
	snprintf(path, sizeof(path), "%s/%s/000001.jsonl", dir, sname);
	lines_read(path, &l);
	for (i = 0; i < l.n; i++) {
		if (i < l.n - lost)
			cut += strlen(l.v[i]);
		free(l.v[i]);
	}
	f = fopen(path, "r");
	if (f) {
		before = malloc(1 << 22);
		blen = fread(before, 1, 1 << 22, f);
		fclose(f);
	}
	if (wal_bytes) {
		struct stat ws;

		snprintf(err, sizeof(err), "%s/wal", dir);
		ok(!stat(err, &ws) && (size_t)ws.st_size == wal_bytes && blen > 3 * wal_bytes,
		   "%s: the log is %zu bytes and took %zu bytes of records: it went round laps",
		   name, wal_bytes, blen);
	}
	if (truncate(path, (off_t)(cut + (size_t)torn)))
		ok(0, "truncate");
	r = rec_open(&o, err, sizeof(err));
	ok(r != NULL, "%s: reopens after losing the last %d lines (%s)", name, lost,
	   r ? "" : err);
	rec_close(r);
	f = fopen(path, "r");
	if (f) {
		after = malloc(1 << 22);
		alen = fread(after, 1, 1 << 22, f);
		fclose(f);
	}
	ok(before && after && alen > blen && !memcmp(before, after, blen),
	   "%s: the lost lines are back, byte for byte", name);
	lines_read(path, &l);
	k = find_type(&l, "recovery", 0);
	snprintf(err, sizeof(err), "\"last_good_seq\":%d,\"replayed\":%d,", n - lost, lost);
	snprintf(path, sizeof(path), "\"cut_bytes\":%d,", torn);
	ok(k == n && strstr(l.v[k], err) && strstr(l.v[k], path),
	   "%s: a recovery record says so (%s)", name,
	   k >= 0 ? l.v[k] : "none");
	for (i = 0; i < l.n; i++)
		free(l.v[i]);
	free(before);
	free(after);
	ok(store_intact(dir), "%s: the stream verifies", name);
}

/* The syncer fsyncs the segments written and moves the log's tail past them: soon after
 * records come in, the log holds nothing a recovery would need; with fsync failing, the
 * store stops. Another process cannot open the store meanwhile. */
static void test_syncer(void)
{
	struct rec_opts o = { .syncer_ms = 20, .checkpoint_every = 10 };
	char dir[600], err[512], path[700], *lines;
	struct recwal *w;
	struct rec *r;
	size_t n = 1;
	int i;

	snprintf(dir, sizeof(dir), "%s/syncer", tmp);
	o.dir = dir;
	r = rec_open(&o, err, sizeof(err));
	reset_counts();
	submit_n(r, docker, 5, 0, 30);
	wait_done(30);
	snprintf(path, sizeof(path), "%s/wal", dir);
	for (i = 0; i < 500 && n; i++) { /* up to 10 s on a loaded machine */
		usleep(20 * 1000);
		w = recwal_inspect(path, err, sizeof(err));
		n = 1;
		if (w && !recwal_read(w, &lines, &n))
			free(lines);
		recwal_close(w);
	}
	is_int((int)n, 0, "the syncer synced the segment and moved the log's tail past it");
	{
		char name[REC_STREAM_MAX];

		rec_stream_name(docker, 5, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s/head.json", dir, name);
		ok(!access(path, F_OK), "head.json is written while the store runs, not only at "
		   "its close");
	}
	if (!fork()) { /* a second writer of the same store, in another process */
		struct rec *r2 = rec_open(&o, err, sizeof(err));

		_exit(!r2 && strstr(err, "another sluiced is recording into this directory") ? 0 :
									       1);
	}
	wait(&i);
	ok(WIFEXITED(i) && WEXITSTATUS(i) == 0, "a second process cannot open the same store");
	fail_fsync_only = 1; /* the log's fdatasync works, the syncer's segment fsync fails */
	reset_counts();
	for (i = 0; i < 500 && !rec_failed(r); i++) {
		submit_n(r, docker, 5, 30 + i, 1);
		wait_done(i + 1);
		usleep(20 * 1000);
	}
	is_int(rec_failed(r), -EIO, "a failed segment fsync in the syncer stops the store");
	fail_fsync_only = 0;
	rec_close(r);
}

static void test_wal_replay(void)
{
	crash_and_replay("replay", 0, 20, 5, 15);
	crash_and_replay("replay-laps", RECWAL_MIN_BYTES, 1500, 3, 0);
}

/* A crash between the key and its public half (or while the key was written) never leaves
 * a store that refuses to open: a key file appears whole or not at all, and a missing .pub
 * is written again from the key. */
static void test_key_crash(void)
{
	char dir[600], key[700], pubp[700], err[512], id1[17], id2[17];
	struct evp_pkey_st *k;
	struct rec *r;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/keycrash", tmp);
	r = open_store(dir, 0, 4, err);
	ok(r != NULL, "a new store opens (%s)", r ? "" : err);
	rec_close(r);
	snprintf(key, sizeof(key), "%s/record.key", dir);
	snprintf(pubp, sizeof(pubp), "%s/record.pub", dir);
	k = rec_load_pubkey(pubp, err, sizeof(err));
	ok(k && !rec_key_id(k, id1), "its public key loads");
	EVP_PKEY_free(k);
	ok(sh("ls %s | grep -q '\\.tmp\\.'", dir) != 0, "no temporary key file is left");
	ok(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600, "the key is 0600, whole");
	unlink(pubp);
	r = open_store(dir, 0, 4, err);
	ok(r != NULL, "without its .pub (a crash between the two), the store still opens (%s)",
	   r ? "" : err);
	rec_close(r);
	k = rec_load_pubkey(pubp, err, sizeof(err));
	ok(k && !rec_key_id(k, id2) && !strcmp(id1, id2),
	   "... and the .pub is written again, the same key (%s)", k ? id2 : err);
	EVP_PKEY_free(k);
	is_int(rec_key_init(key, NULL, err, sizeof(err)), -EEXIST,
	       "a key is never overwritten");
}

int main(void)
{
	if (!mkdtemp(tmp))
		return 1;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(pub, sizeof(pub), "%s/record.pub", store);
	test_names();
	test_write();
	test_tamper();
	test_recovery();
	test_no_space();
	test_no_space_batch();
	test_fsync_failure();
	test_queue_bound();
	test_sync_window();
	test_syncer();
	test_wal_replay();
	test_key_crash();
	if (!tap_failed)
		sh("rm -rf %s", tmp);
	else
		printf("# kept %s\n", tmp);
	return tap_done();
}
