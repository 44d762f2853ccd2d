/* record.c - the session-recording store (jansson, OpenSSL, one writer thread).
 *
 * On-disk format (version 1)
 * --------------------------
 * <dir>/record.key, record.pub    Ed25519 signing key (0600) and its public key (0644)
 * <dir>/<stream>/                  one directory per stream; <stream> = "<name>--<cgroup id>"
 *                                  (rec_stream_name: container id, pod-<uid> or the path)
 * <dir>/<stream>/000001.jsonl ...  segments, rotated by size and age, 0600
 * <dir>/<stream>/head.json         a copy of the stream's latest durable checkpoint line
 * <dir>/wal                        the durability log (recwal.h), locked while open
 *
 * Each record is one line: BODY with ',"hash":"<64 hex>"}' put in place of BODY's final '}',
 * then '\n'. BODY is the record without "hash", serialized as jansson's json_dumps with
 * JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII writes it (so it is pure ASCII, and
 * "hash" is always the last member; recjson.c writes those bytes, the verifier checks them
 * with jansson). Its members, in this (sorted) order:
 *   "data"    the payload object ({} when none)
 *   "prev"    the "hash" of the previous record of the stream (64 zeros for seq 1)
 *   "seq"     1, 2, 3... per stream, continuing across segments
 *   "stream"  the stream id: a line moved to another stream does not verify there
 *   "time"    UTC, "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (when the record was submitted)
 *   "type"    conn_open, conn_close, request, decision, approval, upstream, response, ...,
 *             checkpoint, recovery
 * and hash = lowercase hex SHA-256(BODY). As "prev" is inside BODY, each hash commits to the
 * whole stream before it (a hash chain). Checkpoints and records cannot be confused: a BODY
 * starts with '{', a checkpoint message with "sluice-checkpoint-v1".
 *
 * A checkpoint is a record of type "checkpoint" whose data is {"key": key id (first 16 hex
 * of SHA-256 of the raw 32-byte public key), "reason": count|time|rotation|shutdown|recovery,
 * "sig": base64 Ed25519 signature, "signed_hash": hash of record seq-1 (= its "prev"),
 * "signed_seq": seq-1}; the signature is over the bytes
 *   "sluice-checkpoint-v1\n<stream>\n<signed_seq>\n<signed_hash>\n<time>"  (no final \n)
 * with <time> the checkpoint's own "time". Checkpoints are written every checkpoint_every
 * records, when an unsigned record is checkpoint_secs old, as the last record of a segment
 * before rotation, at recovery and at shutdown ("shutdown": a clean close).
 *
 * head.json is rewritten (tmp + fsync + rename + fsync dir) once a checkpoint is durable,
 * at most once a second per stream (and at shutdown), after the records that sync covered
 * were completed. The verifier reads it first: a stream that ends before its head was
 * truncated.
 *
 * Writer: records are queued (bounded) and written by one thread in queue order; each
 * record's callback runs after the sync that covers it. sync_ms = 0: the writer syncs as
 * soon as it has written what is queued (group commit without waiting); sync_ms = N: the
 * first record written after a sync waits at most N ms (plus the write and sync time)
 * for others to share its sync. A batch is made durable by writing its lines once more to
 * the durability log <dir>/wal (recwal.c: rewritten in place, so one fdatasync without a
 * journal commit covers every stream). The log's syncer thread makes the segments durable
 * (sync_dirty: an fsync of each segment written) 40 ms after they are written and moves the
 * log's tail past them; a segment is also fsynced when it is rotated, and everything at
 * shutdown. A failed sync stops the store for good (-EIO).
 * A failed write is cut back (ftruncate) to the last record boundary; no space (ENOSPC,
 * EDQUOT, EFBIG) fails only that record, anything else stops the store.
 *
 * Recovery at open: in each stream the last segment is scanned; everything after the last
 * complete, well-formed line whose hash is right is cut (a torn write); then the lines the
 * durability log holds for the stream that continue its chain are appended (records the
 * segment lost with the page cache, e.g. at a power cut). When bytes were cut, lines were
 * replayed or the last record is not a "shutdown" checkpoint, a "recovery" record
 * {"cut_bytes", "cut_sha256", "segment", "last_good_seq", "replayed", "clean_shutdown"} and
 * a checkpoint follow ("last_good_seq" is the last record the segment still held). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "log.h"
#include "reckey.h"
#include "recwal.h"
#include "record.h"
#include "recjson.h"

/* Paths are <dir> (checked at open to leave room) + a stream id (< REC_STREAM_MAX) + a short
 * file name: they fit in PATH_MAX, which gcc cannot see through the buffers. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define HASH_SUFFIX_LEN 75 /* ,"hash":"<64 hex>"} */
#define FLUSH_BYTES (256 * 1024) /* a stream's pending lines are written at this size */
#define BUCKETS 256
#define IDLE_CLOSE_SECS 300
#define HEAD_SECS 1.0
#define SYNCER_MS 40 /* the durability log's syncer period (recwal.c says why so short) */

struct rec_item {
	struct rec_item *next;
	char stream[REC_STREAM_MAX]; /* "" when the writer resolves it from cgid */
	uint64_t cgid;
	char type[32];
	char time[40];
	char *data;                  /* the payload's canonical JSON text, made by rec_submit */
	size_t data_len;
	rec_done_fn done;
	void *arg;
	struct rec_stream *s;        /* once written: where, */
	uint64_t seq;                /* ... as which record */
};

struct rec_stream {
	struct rec_stream *next;     /* in its bucket */
	char name[REC_STREAM_MAX];
	uint64_t cgid;
	int fd;                      /* current segment, -1 when closed */
	unsigned seg;                /* current segment number, 0 before the first */
	off_t size;                  /* bytes of whole records in it */
	time_t seg_started;
	uint64_t seq;                /* last seq written */
	unsigned char last[32];      /* its hash */
	uint64_t unsigned_n;         /* records since the last checkpoint */
	time_t first_unsigned;
	time_t last_used;
	int dirty;                   /* written since the segment's last fsync */
	int clean;                   /* the last record is a shutdown checkpoint */
	char *head;                  /* checkpoint line to put in head.json after the fsync */
	uint64_t head_seq;           /* ... its seq */
	int head_durable;            /* ... is covered by a sync */
	unsigned marked_seg;         /* the segment last put in the syncer's set, */
	uint64_t marked_gen;         /* ... in this generation of it */
	double head_at;              /* when head.json was last written (monotonic s) */
	char *recovery;              /* recovery record's data not written yet (no space at open) */
	size_t recovery_len;
	/* Lines appended to the chain (size, seq and last count them) but not yet written to
	 * the segment: a batch goes out with one write (stream_flush), which on failure puts
	 * the chain back where the segment ends. */
	struct recjson_buf wb;
	off_t wb_size;               /* the segment's size, seq and last hash before them */
	uint64_t wb_seq;
	unsigned char wb_last[32];
};

struct rec {
	char dir[PATH_MAX];
	char key_path[PATH_MAX];
	size_t segment_bytes, max_queue;
	int segment_secs, sync_ms, checkpoint_every, checkpoint_secs;
	EVP_PKEY *key;
	char key_id[17];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rec_item *qh, **qt;   /* under mu */
	size_t qlen;
	int stop, failed;
	struct rec_stream *buckets[BUCKETS]; /* writer only, from here on */
	struct rec_item *pend, **pend_t;     /* written, waiting for the fsync */
	struct timespec unsynced_since;
	int unsynced;
	struct recjson_buf line;             /* the line being built (writer only) */
	struct recwal *wal;                  /* NULL while recovering: segments are fsynced */
	int wal_off;                         /* the log could not stage a batch: fsync instead */
	struct wal_line *replay;             /* the log's lines at open, for recovery */
	size_t replay_n;
	/* Segments written since the syncer last synced them: the writer adds, the syncer
	 * takes the set (a new generation) and fsyncs each by path. */
	pthread_mutex_t dirty_mu;
	struct dirty_seg *dirty_v;
	size_t dirty_n, dirty_cap;
	uint64_t dirty_gen;
};

struct dirty_seg {
	struct rec_stream *s;        /* streams live until the store is freed */
	unsigned seg;
};

/* A record line found in the durability log at open. */
struct wal_line {
	const char *p;               /* the line, '\n' included */
	size_t len;
	char stream[REC_STREAM_MAX];
	uint64_t seq;
	unsigned char hash[32], prev[32];
};

static struct rec *default_store;

/* --- format helpers ------------------------------------------------------------------- */

void rec_hex(const unsigned char *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Parse 64 lowercase hex digits into 32 bytes. Returns 0 or -1. */
static int unhex32(const char *s, unsigned char out[32])
{
	int i, hi, lo;

	if (!s || strlen(s) != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
		lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
		if (hi < 0 || hi > 15 || lo < 0 || lo > 15 || !strchr("0123456789abcdef", s[2 * i]) ||
		    !strchr("0123456789abcdef", s[2 * i + 1]))
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" for now into <out> (40 bytes). The part up to the second is
 * formatted once a second per thread: every record takes the time. */
static void now_str(char *out)
{
	static __thread time_t sec = -1;
	static __thread char head[32];
	static __thread size_t head_len;
	struct timespec ts;
	struct tm tm;
	long us;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != sec) {
		gmtime_r(&ts.tv_sec, &tm);
		head_len = (size_t)snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d",
					    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
					    tm.tm_min, tm.tm_sec);
		sec = ts.tv_sec;
	}
	memcpy(out, head, head_len);
	out += head_len;
	*out++ = '.';
	for (i = 5, us = ts.tv_nsec / 1000; i >= 0; i--, us /= 10)
		out[i] = (char)('0' + us % 10);
	out[6] = 'Z';
	out[7] = '\0';
}

/* SHA-256 with the digest fetched once: SHA256() looks the algorithm up in the provider
 * store on every call (OpenSSL 3), which costs as much as hashing a small record. */
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void rec_sha256(const void *p, size_t n, unsigned char out[32])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sha256_fetch);
	if (!sha256_md || !EVP_Digest(p, n, out, NULL, sha256_md, NULL))
		SHA256(p, n, out);
}

int rec_time_parse(const char *s, double *t)
{
	struct tm tm = { 0 };
	const char *p;
	double frac = 0;
	char *end;
	int oh, om, sign;

	if (!s || !*s)
		return -EINVAL;
	if (!strchr(s, 'T') && !strchr(s, 't')) {
		*t = strtod(s, &end);
		return *end ? -EINVAL : 0;
	}
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		frac = strtod(p, &end);
		p = end;
	}
	*t = (double)timegm(&tm) + frac;
	if (*p == 'Z' || *p == 'z')
		return p[1] ? -EINVAL : 0;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 &&
	    strlen(p) == 6) {
		sign = *p == '+' ? 1 : -1;
		*t -= sign * (oh * 3600 + om * 60);
		return 0;
	}
	return -EINVAL;
}

int rec_checkpoint_msg(char *out, size_t outlen, const char *stream, uint64_t seq,
		       const char *hash_hex, const char *time)
{
	int n = snprintf(out, outlen, REC_CHECKPOINT_TAG "\n%s\n%llu\n%s\n%s", stream,
			 (unsigned long long)seq, hash_hex, time);

	return n >= (int)outlen ? (int)outlen - 1 : n;
}

enum rec_line_fault rec_line_check(char *line, size_t len, json_t **rec, unsigned char hash[32],
				   char *why, size_t whylen)
{
	static const char pre[] = ",\"hash\":\"";
	unsigned char want[32];
	char saved[HASH_SUFFIX_LEN + 1], hex[65], *canon;
	size_t blen, i;
	json_error_t je;
	json_t *o;
	int same;

	if (rec)
		*rec = NULL;
	if (len < HASH_SUFFIX_LEN + 2 || line[0] != '{' ||
	    memcmp(line + len - HASH_SUFFIX_LEN, pre, sizeof(pre) - 1) ||
	    memcmp(line + len - 2, "\"}", 2)) {
		err_set(why, whylen, "not a record line (no final \"hash\" member)");
		return REC_LINE_MALFORMED;
	}
	memcpy(hex, line + len - 66, 64);
	hex[64] = '\0';
	if (unhex32(hex, want)) {
		err_set(why, whylen, "\"hash\" is not 64 lowercase hex digits");
		return REC_LINE_MALFORMED;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7f) {
			err_set(why, whylen, "byte 0x%02x at column %zu: a control byte or not ASCII",
				(unsigned char)line[i], i + 1);
			return REC_LINE_MALFORMED;
		}
	/* BODY = the line with the suffix replaced by '}' */
	blen = len - HASH_SUFFIX_LEN + 1;
	memcpy(saved, line + blen - 1, HASH_SUFFIX_LEN);
	line[blen - 1] = '}';
	o = json_loadb(line, blen, JSON_REJECT_DUPLICATES, &je);
	canon = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
	same = canon && strlen(canon) == blen && !memcmp(canon, line, blen);
	if (same)
		rec_sha256(line, blen, hash);
	memcpy(line + blen - 1, saved, HASH_SUFFIX_LEN);
	free(canon);
	if (!o) {
		err_set(why, whylen, "not JSON: %s at column %d", je.text, je.column);
		return REC_LINE_MALFORMED;
	}
	if (!json_is_object(o) || json_object_get(o, "hash") ||
	    !json_is_object(json_object_get(o, "data")) ||
	    !json_is_string(json_object_get(o, "prev")) ||
	    !json_is_integer(json_object_get(o, "seq")) ||
	    !json_is_string(json_object_get(o, "stream")) ||
	    !json_is_string(json_object_get(o, "time")) ||
	    !json_is_string(json_object_get(o, "type")) || json_object_size(o) != 6) {
		json_decref(o);
		err_set(why, whylen, "not a record: needs exactly data, prev, seq, stream, time, "
				     "type and hash");
		return REC_LINE_MALFORMED;
	}
	if (!same) {
		json_decref(o);
		err_set(why, whylen, "not in canonical form (edited by hand?)");
		return REC_LINE_NOT_CANONICAL;
	}
	if (memcmp(hash, want, 32)) {
		json_decref(o);
		err_set(why, whylen, "its hash does not match its content (the record was edited)");
		return REC_LINE_HASH;
	}
	if (rec)
		*rec = o;
	else
		json_decref(o);
	return REC_LINE_OK;
}

/* The canonical text of payload <fields> (an object; NULL is {}) into <out>. Returns 0 or
 * -ENOMEM (also for what jansson could not serialize either: it was never valid). */
static int data_text(const json_t *fields, struct recjson_buf *out)
{
	if (!fields)
		return recjson_raw(out, "{}", 2);
	return recjson_dump(out, fields) ? -ENOMEM : 0;
}

/* Serialize a record of <s> with seq s->seq + 1, prev s->last and payload <data> (<dlen>
 * bytes of canonical JSON text: an object) into <out>, emptied first: the line with its
 * '\n', and its hash. The members are written in sorted order (data, prev, seq, stream,
 * time, type), as json_dumps(JSON_SORT_KEYS) puts them. Returns 0, -ENOMEM or -EMSGSIZE. */
static int build_line(const struct rec_stream *s, const char *type, const char *time,
		      const char *data, size_t dlen, struct recjson_buf *out,
		      unsigned char hash[32])
{
	char hex[65];
	size_t blen;
	int e;

	out->len = 0;
	rec_hex(s->last, 32, hex);
	e = recjson_reserve(out, dlen + 256 + REC_STREAM_MAX + HASH_SUFFIX_LEN);
	if (!e)
		e = recjson_raw(out, "{\"data\":", 8);
	if (!e)
		e = recjson_raw(out, data, dlen);
	if (!e)
		e = recjson_raw(out, ",\"prev\":\"", 9);
	if (!e)
		e = recjson_raw(out, hex, 64);
	if (!e)
		e = recjson_raw(out, "\",\"seq\":", 8);
	if (!e)
		e = recjson_int(out, (long long)(s->seq + 1));
	if (!e)
		e = recjson_raw(out, ",\"stream\":", 10);
	if (!e)
		e = recjson_string(out, s->name, strlen(s->name));
	if (!e)
		e = recjson_raw(out, ",\"time\":", 8);
	if (!e)
		e = recjson_string(out, time, strlen(time));
	if (!e)
		e = recjson_raw(out, ",\"type\":", 8);
	if (!e)
		e = recjson_string(out, type, strlen(type));
	if (!e)
		e = recjson_raw(out, "}", 1);
	if (e)
		return -ENOMEM;
	blen = out->len;
	if (blen + HASH_SUFFIX_LEN > REC_MAX_LINE)
		return -EMSGSIZE;
	rec_sha256(out->p, blen, hash);
	rec_hex(hash, 32, hex);
	out->len = blen - 1; /* the final '}' makes way for the hash member */
	if (recjson_raw(out, ",\"hash\":\"", 9) || recjson_raw(out, hex, 64) ||
	    recjson_raw(out, "\"}\n", 3))
		return -ENOMEM;
	return 0;
}

/* --- naming --------------------------------------------------------------------------- */

static int all_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* A container id in the path component <c> (<n> bytes) into <id> (65 bytes)? */
static int component_container(const char *c, size_t n, char *id)
{
	static const char *const pre[] = { "docker-", "cri-containerd-", "crio-", "libpod-",
					   "containerd-", "" };
	size_t i, p;

	if (n > 6 && !memcmp(c + n - 6, ".scope", 6))
		n -= 6;
	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		p = strlen(pre[i]);
		if (n == p + 64 && !memcmp(c, pre[i], p) && all_hex(c + p, 64)) {
			memcpy(id, c + p, 64);
			id[64] = '\0';
			return 1;
		}
	}
	return 0;
}

/* A Kubernetes pod uid ("pod" + 36 chars, '-' or '_' separated) in <c> into <uid>. */
static int component_pod(const char *c, size_t n, char *uid)
{
	const char *p;
	size_t i;

	for (p = c; (p = memmem(p, n - (size_t)(p - c), "pod", 3)); p++) {
		if ((size_t)(p - c) + 3 + 36 > n)
			return 0;
		for (i = 0; i < 36; i++) {
			char ch = p[3 + i];

			if (i == 8 || i == 13 || i == 18 || i == 23) {
				if (ch != '-' && ch != '_')
					break;
				uid[i] = '-';
			} else if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) {
				uid[i] = ch;
			} else {
				break;
			}
		}
		if (i == 36) {
			uid[36] = '\0';
			return 1;
		}
	}
	return 0;
}

const char *rec_stream_name(const char *cgroup_path, uint64_t cgroup_id, char *out,
			    size_t outlen)
{
	char id[65] = "", pod[37] = "", name[104];
	const char *p = cgroup_path ? cgroup_path : "", *e;
	size_t n, i, len;

	while (*p) {
		while (*p == '/')
			p++;
		e = strchr(p, '/');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n) {
			component_container(p, n, id);
			component_pod(p, n, pod);
		}
		p += n;
	}
	if (id[0]) {
		snprintf(name, sizeof(name), "%s", id);
	} else if (pod[0]) {
		snprintf(name, sizeof(name), "pod-%s", pod);
	} else {
		p = cgroup_path ? cgroup_path : "";
		while (*p == '/')
			p++;
		len = strlen(p);
		while (len && p[len - 1] == '/')
			len--;
		if (len > 100) {
			p += len - 100;
			len = 100;
		}
		for (i = 0; i < len; i++) {
			char c = p[i];

			name[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					  (c >= '0' && c <= '9') || c == '-' || c == '_' ||
					  (c == '.' && i > 0) ? c : '_';
		}
		name[i] = '\0';
		if (!i)
			snprintf(name, sizeof(name), "root");
	}
	snprintf(out, outlen, "%s--%llu", name, (unsigned long long)cgroup_id);
	return out;
}

int rec_cgroup_path(uint64_t cgroup_id, char *out, size_t outlen)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	char link[64], target[PATH_MAX], root[PATH_MAX] = "", dev[256], type[64];
	int mfd, fd, e = 0;
	ssize_t n;
	FILE *m = fopen("/proc/mounts", "re");

	/* the cgroup2 mount moves between hosts (/sys/fs/cgroup, .../unified): look it up */
	while (m && fscanf(m, "%255s %4095s %63s %*[^\n]", dev, target, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(root, sizeof(root), "%s", target);
			break;
		}
	if (m)
		fclose(m);
	if (!root[0])
		return -ENOENT;

	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = 0xfe; /* FILEID_KERNFS */
	memcpy(h.fh.f_handle, &cgroup_id, sizeof(cgroup_id));
	mfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return -errno;
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		e = -errno;
	close(mfd);
	if (e)
		return e;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		e = -errno;
	close(fd);
	if (e)
		return e;
	target[n] = '\0';
	if (strncmp(target, root, strlen(root)))
		return -ENOENT;
	snprintf(out, outlen, "%s", target[strlen(root)] ? target + strlen(root) : "/");
	return 0;
}

int rec_put_body(json_t *fields, const char *key, const void *body, size_t len, size_t max)
{
	unsigned char h[32];

	rec_sha256(body, len, h);
	return rec_put_body_digest(fields, key, body, len, len, h, max);
}

int rec_put_body_digest(json_t *fields, const char *key, const void *head, size_t head_len,
			uint64_t total, const unsigned char sha256[32], size_t max)
{
	const unsigned char *body = head;
	char hex[65];
	size_t n = head_len < max ? head_len : max, i;
	json_t *o;

	rec_hex(sha256, 32, hex);
	/* a cut inside a UTF-8 sequence is not valid UTF-8: back off up to 3 bytes */
	for (i = 0; n < head_len && n > 0 && i < 3 && (body[n] & 0xc0) == 0x80; i++)
		n--;
	o = json_pack("{s:I, s:s, s:b}", "bytes", (json_int_t)total, "sha256", hex, "truncated",
		      n < total);
	if (!o)
		return -ENOMEM;
	if (recjson_utf8_ok(head, n)) /* checked as jansson would: no second check */
		json_object_set_new(o, "text", json_stringn_nocheck(head, n));
	else {
		size_t b64len = 4 * ((n + 2) / 3) + 1;
		unsigned char *b = malloc(b64len);

		if (!b) {
			json_decref(o);
			return -ENOMEM;
		}
		EVP_EncodeBlock(b, body, (int)n);
		json_object_set_new(o, "base64", json_string((char *)b));
		free(b);
	}
	return json_object_set_new(fields, key, o) ? -ENOMEM : 0;
}

/* --- streams (writer thread) ------------------------------------------------------------ */

static unsigned bucket_of(const char *name)
{
	unsigned h = 2166136261u;

	while (*name)
		h = (h ^ (unsigned char)*name++) * 16777619u;
	return h % BUCKETS;
}

static struct rec_stream *stream_find(struct rec *r, const char *name)
{
	struct rec_stream *s;

	for (s = r->buckets[bucket_of(name)]; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

int rec_stream_cgid(const char *name, uint64_t *cgid)
{
	const char *d = NULL, *p;
	char *end;

	for (p = name; (p = strstr(p, "--")); p++)
		d = p;
	if (!d || d == name || !d[2] || d[2] < '0' || d[2] > '9')
		return -1;
	errno = 0;
	*cgid = strtoull(d + 2, &end, 10);
	return *end || errno ? -1 : 0;
}

static struct rec_stream *stream_add(struct rec *r, const char *name)
{
	struct rec_stream *s = calloc(1, sizeof(*s));
	unsigned b = bucket_of(name);

	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	rec_stream_cgid(name, &s->cgid);
	s->fd = -1;
	s->next = r->buckets[b];
	r->buckets[b] = s;
	return s;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		e = -errno;
	close(fd);
	return e;
}

static void store_fail(struct rec *r, int e, const char *what)
{
	pthread_mutex_lock(&r->mu);
	if (!r->failed) {
		r->failed = -EIO;
		log_err("record", "%s: %s; the recording store stopped: every record now fails "
				  "(fix the disk, then restart sluiced)", what, strerror(-e));
	}
	pthread_mutex_unlock(&r->mu);
}

/* Make sure <s> has its current segment open, creating segment 1 (and the stream
 * directory) for a new stream. Returns 0 or -errno. */
static int stream_open_fd(struct rec *r, struct rec_stream *s)
{
	char path[PATH_MAX], sdir[PATH_MAX];
	int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
	struct stat st;

	if (s->fd >= 0)
		return 0;
	snprintf(sdir, sizeof(sdir), "%s/%s", r->dir, s->name);
	if (!s->seg) {
		if (mkdir(sdir, 0700) && errno != EEXIST)
			return -errno;
		fsync_path(r->dir);
		s->seg = 1;
		flags |= O_CREAT;
		s->size = 0;
		s->seg_started = time(NULL);
	}
	snprintf(path, sizeof(path), "%s/%06u.jsonl", sdir, s->seg);
	s->fd = open(path, flags, 0600);
	if (s->fd < 0)
		return -errno;
	if (fstat(s->fd, &st) == 0 && st.st_size != s->size - (off_t)s->wb.len &&
	    ftruncate(s->fd, s->size - (off_t)s->wb.len)) {
		close(s->fd);
		s->fd = -1;
		return -EIO;
	}
	if (flags & O_CREAT)
		fsync_path(sdir);
	return 0;
}

/* Put <s>'s current segment in the syncer's set (before the log entry that covers what was
 * just written to it). Returns 0 or -ENOMEM. */
static int mark_dirty(struct rec *r, struct rec_stream *s)
{
	struct dirty_seg *v;
	int e = 0;

	pthread_mutex_lock(&r->dirty_mu);
	if (s->marked_gen != r->dirty_gen || s->marked_seg != s->seg || !r->dirty_n) {
		if (r->dirty_n == r->dirty_cap) {
			r->dirty_cap = r->dirty_cap ? 2 * r->dirty_cap : 16;
			v = realloc(r->dirty_v, r->dirty_cap * sizeof(*v));
			if (!v)
				e = -ENOMEM;
			else
				r->dirty_v = v;
		}
		if (!e) {
			r->dirty_v[r->dirty_n++] = (struct dirty_seg){ s, s->seg };
			s->marked_gen = r->dirty_gen;
			s->marked_seg = s->seg;
		}
	}
	pthread_mutex_unlock(&r->dirty_mu);
	return e;
}

/* The durability log's sync function (syncer thread, or the writer catching up): fsync,
 * by path, every segment written since the last time. Returns 0 or -errno. */
static int sync_dirty(void *arg)
{
	struct rec *r = arg;
	struct dirty_seg *v;
	char path[PATH_MAX];
	size_t n, i;
	int fd, e = 0;

	pthread_mutex_lock(&r->dirty_mu);
	v = r->dirty_v;
	n = r->dirty_n;
	r->dirty_v = NULL;
	r->dirty_n = r->dirty_cap = 0;
	r->dirty_gen++;
	pthread_mutex_unlock(&r->dirty_mu);
	for (i = 0; i < n && !e; i++) {
		snprintf(path, sizeof(path), "%s/%s/%06u.jsonl", r->dir, v[i].s->name, v[i].seg);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd))
			e = -errno;
		if (fd >= 0)
			close(fd);
		if (e)
			log_err("record", "cannot sync %s: %s", path, strerror(-e));
	}
	free(v);
	return e;
}

static int no_space(int e)
{
	return e == -ENOSPC || e == -EDQUOT || e == -EFBIG;
}

/* Write <s>'s pending lines to its segment. On failure the segment is cut back to where it
 * ended, the chain (size, seq, last hash) is put back there, and the records written since
 * (items waiting for the fsync, a checkpoint waiting for head.json) fail with the error: no
 * space as it is, anything else as -EIO, having stopped the store. Returns 0 or -errno. */
static int stream_flush(struct rec *r, struct rec_stream *s)
{
	struct rec_item *it, **pp;
	size_t off = 0, len = s->wb.len;
	ssize_t n;
	int e;

	while (off < len) {
		n = write(s->fd, s->wb.p + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		e = n < 0 ? -errno : -ENOSPC;
		s->wb.len = 0;
		s->size = s->wb_size;
		s->seq = s->wb_seq;
		memcpy(s->last, s->wb_last, 32);
		if (s->head && s->head_seq > s->seq) { /* that checkpoint is not in the segment */
			free(s->head);
			s->head = NULL;
		}
		if (off && ftruncate(s->fd, s->size)) {
			store_fail(r, -errno, "cannot cut back a partial record");
			e = -EIO;
		} else if (!no_space(e)) {
			store_fail(r, e, "cannot write a record");
			e = -EIO;
		}
		for (pp = &r->pend; (it = *pp);) {
			if (it->s == s && it->seq > s->seq) {
				*pp = it->next;
				if (it->done)
					it->done(it->arg, e);
				free(it);
			} else {
				pp = &it->next;
			}
		}
		r->pend_t = pp;
		return e;
	}
	if (r->wal && !r->wal_off && (mark_dirty(r, s) || recwal_add(r->wal, s->wb.p, len)))
		r->wal_off = 1; /* no memory to stage it: this batch fsyncs its segments */
	s->wb.len = 0;
	return 0;
}

/* Append <line> (<len> bytes, hash <hash>) to <s>'s chain, its bytes to the pending lines
 * that stream_flush writes (at FLUSH_BYTES, and before any fsync). Returns 0 or -errno (as
 * stream_flush, or failing to open the segment: no space as it is, else -EIO). */
static int stream_write(struct rec *r, struct rec_stream *s, const char *line, size_t len,
			const unsigned char hash[32])
{
	int e;

	if ((e = stream_open_fd(r, s))) {
		if (!no_space(e))
			store_fail(r, e, "cannot open a recording segment");
		return no_space(e) ? e : -EIO;
	}
	if (!s->wb.len) {
		s->wb_size = s->size;
		s->wb_seq = s->seq;
		memcpy(s->wb_last, s->last, 32);
	}
	if (recjson_raw(&s->wb, line, len))
		return -ENOMEM;
	s->size += (off_t)len;
	s->seq++;
	memcpy(s->last, hash, 32);
	s->dirty = 1;
	s->last_used = time(NULL);
	if (!r->unsynced) {
		r->unsynced = 1;
		clock_gettime(CLOCK_MONOTONIC, &r->unsynced_since);
	}
	return s->wb.len >= FLUSH_BYTES ? stream_flush(r, s) : 0;
}

/* Append a signed checkpoint for <s> (nothing for an empty stream). Returns 0 or -errno. */
static int stream_checkpoint(struct rec *r, struct rec_stream *s, const char *reason)
{
	char t[40], hex[65], msg[512], b64[96], *head;
	struct recjson_buf d = { 0 };
	unsigned char hash[32];
	json_t *data;
	int e;

	if (!s->seq)
		return 0;
	now_str(t);
	rec_hex(s->last, 32, hex);
	rec_checkpoint_msg(msg, sizeof(msg), s->name, s->seq, hex, t);
	if (rec_sign_b64(r->key, msg, strlen(msg), b64))
		return -EIO;
	data = json_pack("{s:s, s:s, s:s, s:s, s:I}", "key", r->key_id, "reason", reason, "sig",
			 b64, "signed_hash", hex, "signed_seq", (json_int_t)s->seq);
	e = data ? data_text(data, &d) : -ENOMEM;
	json_decref(data);
	if (!e)
		e = build_line(s, "checkpoint", t, d.p, d.len, &r->line, hash);
	recjson_free(&d);
	if (e)
		return e;
	head = malloc(r->line.len); /* the line, its '\n' made a NUL */
	if (!head)
		return -ENOMEM;
	memcpy(head, r->line.p, r->line.len - 1);
	head[r->line.len - 1] = '\0';
	e = stream_write(r, s, r->line.p, r->line.len, hash);
	if (e) {
		free(head);
		return e;
	}
	s->unsigned_n = 0;
	s->clean = !strcmp(reason, "shutdown");
	free(s->head);
	s->head = head;
	s->head_seq = s->seq;
	s->head_durable = 0;
	return 0;
}

/* Write head.json for <s> from its pending checkpoint line (after the sync covering it);
 * <sync>: durably now, else the durability log's syncer makes it durable within a second
 * (ext4 writes a file renamed over another before the rename commits; after a crash the
 * recovery checkpoint rewrites it durably anyway). */
static void stream_write_head(struct rec *r, struct rec_stream *s, int sync)
{
	char tmp[PATH_MAX], path[PATH_MAX], sdir[PATH_MAX];
	size_t len = strlen(s->head);
	int fd, e = 0;

	snprintf(sdir, sizeof(sdir), "%s/%s", r->dir, s->name);
	snprintf(tmp, sizeof(tmp), "%s/head.json.tmp", sdir);
	snprintf(path, sizeof(path), "%s/head.json", sdir);
	s->head[len] = '\n';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, s->head, len + 1) != (ssize_t)(len + 1) || (sync && fsync(fd)))
		e = -errno;
	s->head[len] = '\0';
	if (fd >= 0)
		close(fd);
	if (!e && rename(tmp, path))
		e = -errno;
	if (!e && sync)
		e = fsync_path(sdir);
	if (e) {
		unlink(tmp);
		if (!no_space(e))
			log_warn("record", "cannot update %s: %s", path, strerror(-e));
		return; /* kept: tried again after the next fsync */
	}
	free(s->head);
	s->head = NULL;
}

/* Close <s>'s segment and start the next one, after a "rotation" checkpoint. */
static int stream_rotate(struct rec *r, struct rec_stream *s)
{
	char path[PATH_MAX];
	int e, fd;

	if (s->unsigned_n && (e = stream_checkpoint(r, s, "rotation")))
		return e;
	if (s->fd >= 0) {
		if ((e = stream_flush(r, s)))
			return e;
		/* durable before the next one starts: recovery cuts a torn tail only in a
		 * stream's last segment (the syncer has synced most of it already) */
		if (fsync(s->fd)) {
			store_fail(r, -errno, "fsync of a recording segment failed");
			return -EIO;
		}
		close(s->fd);
		s->fd = -1;
		s->dirty = 0;
	}
	snprintf(path, sizeof(path), "%s/%s/%06u.jsonl", r->dir, s->name, s->seg + 1);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = -errno;
		if (!no_space(e))
			store_fail(r, e, "cannot create a recording segment");
		return no_space(e) ? e : -EIO;
	}
	s->fd = fd;
	s->seg++;
	s->size = 0;
	s->seg_started = time(NULL);
	snprintf(path, sizeof(path), "%s/%s", r->dir, s->name);
	fsync_path(path);
	return 0;
}

/* Append a record to <s>, rotating first when due, then a checkpoint when due. */
static int stream_append(struct rec *r, struct rec_stream *s, const char *type,
			 const char *time_s, const char *data, size_t dlen, uint64_t *seq)
{
	unsigned char hash[32];
	char t[40];
	int e;

	if (s->recovery && data != s->recovery) {
		/* the recovery record that did not fit at open goes first (and out at once: it is
		 * kept until it is in the segment) */
		now_str(t);
		if ((e = stream_append(r, s, "recovery", t, s->recovery, s->recovery_len, NULL)) ||
		    (e = stream_flush(r, s)))
			return e;
		free(s->recovery);
		s->recovery = NULL;
		stream_checkpoint(r, s, "recovery");
	}
	e = build_line(s, type, time_s, data, dlen, &r->line, hash);
	if (e)
		return e;
	if (s->seg && s->size > 0 &&
	    ((size_t)s->size + r->line.len > r->segment_bytes ||
	     time(NULL) - s->seg_started >= r->segment_secs)) {
		if ((e = stream_rotate(r, s)))
			return e;
		if ((e = build_line(s, type, time_s, data, dlen, &r->line, hash)))
			return e;
	}
	e = stream_write(r, s, r->line.p, r->line.len, hash);
	if (e)
		return e;
	if (seq)
		*seq = s->seq;
	s->clean = 0;
	if (!s->unsigned_n++)
		s->first_unsigned = time(NULL);
	if (r->checkpoint_every && s->unsigned_n >= (uint64_t)r->checkpoint_every)
		stream_checkpoint(r, s, "count");
	return 0;
}

/* Make everything written durable: the durability log's catch-up (sync_dirty), or while
 * recovering (no log yet) an fsync of every segment written since its last fsync.
 * Returns 0 or -EIO (the store failed). */
static int sync_all(struct rec *r)
{
	struct rec_stream *s;
	int b, e = 0;

	if (r->wal && (e = recwal_catch_up(r->wal))) {
		store_fail(r, e, "sync of the recordings failed");
		return -EIO;
	}
	for (b = 0; b < BUCKETS; b++)
		for (s = r->buckets[b]; s; s = s->next) {
			if (!r->wal && s->dirty && s->fd >= 0 && fsync(s->fd)) {
				store_fail(r, -errno, "fsync of a recording segment failed");
				e = -EIO;
			}
			s->dirty = 0;
		}
	return e;
}

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write the head.json of streams whose latest checkpoint is durable: at most once per
 * HEAD_SECS per stream unless <force>d (then durably at once: shutdown, recovery). A durable
 * head.json costs two fsyncs with journal commits (file and directory), which at a
 * checkpoint every 1000 records stalled the writer several times a second; so between those
 * it is renamed into place unsynced and the durability log's syncer makes it durable. The
 * checkpoints themselves are in the segment at once; head.json is the verifier's hint of
 * where the stream ends. Returns 1 while a head waits. */
static int write_heads(struct rec *r, int force)
{
	struct rec_stream *s;
	double now = mono_now();
	int b, waiting = 0;

	for (b = 0; b < BUCKETS; b++)
		for (s = r->buckets[b]; s; s = s->next) {
			if (!s->head || !s->head_durable)
				continue;
			if (force || now - s->head_at >= HEAD_SECS) {
				stream_write_head(r, s, force || !r->wal);
				s->head_at = now;
			}
			waiting |= s->head != NULL;
		}
	return waiting;
}

/* Write every stream's pending lines and make them durable (through the durability log, or
 * by fsyncing the segments), complete the pending records, then update heads that are due
 * (all of them when <force>d). Returns 1 while a head waits. */
static int commit(struct rec *r, int force)
{
	struct rec_stream *s;
	struct rec_item *it, *next;
	int b, e, status = 0;

	for (b = 0; b < BUCKETS; b++)
		for (s = r->buckets[b]; s; s = s->next)
			if (s->wb.len)
				stream_flush(r, s); /* a failure completes what it concerns */
	e = -EMSGSIZE;
	if (r->wal && !r->wal_off)
		e = recwal_sync(r->wal);
	else if (r->wal)
		recwal_drop(r->wal);
	r->wal_off = 0;
	if (e == -EMSGSIZE)
		e = sync_all(r);
	else if (e)
		store_fail(r, e, "sync of the recordings failed");
	if (e)
		status = -EIO;
	pthread_mutex_lock(&r->mu);
	if (r->failed)
		status = r->failed;
	pthread_mutex_unlock(&r->mu);
	if (!status)
		for (b = 0; b < BUCKETS; b++)
			for (s = r->buckets[b]; s; s = s->next)
				if (s->head)
					s->head_durable = 1;
	for (it = r->pend; it; it = next) {
		next = it->next;
		if (it->done)
			it->done(it->arg, status);
		free(it);
	}
	r->pend = NULL;
	r->pend_t = &r->pend;
	r->unsynced = 0;
	return !status && write_heads(r, force);
}

/* The stream an item goes to, found or created. Returns NULL with *e set. */
static struct rec_stream *item_stream(struct rec *r, struct rec_item *it, int *e)
{
	struct rec_stream *s = NULL, *t;
	char path[PATH_MAX];
	int b;

	if (!it->stream[0]) {
		for (b = 0; b < BUCKETS && !s; b++)
			for (t = r->buckets[b]; t; t = t->next)
				if (t->cgid == it->cgid && (!s || t->last_used > s->last_used))
					s = t;
		if (s)
			return s;
		if (rec_cgroup_path(it->cgid, path, sizeof(path)))
			snprintf(path, sizeof(path), "cgroup");
		rec_stream_name(path, it->cgid, it->stream, sizeof(it->stream));
	}
	s = stream_find(r, it->stream);
	if (!s && !(s = stream_add(r, it->stream)))
		*e = -ENOMEM;
	return s;
}

/* Write one queued item; completed at once on failure, else queued for the fsync. */
static void writer_item(struct rec *r, struct rec_item *it)
{
	struct rec_stream *s = NULL;
	int e = 0;

	pthread_mutex_lock(&r->mu);
	e = r->failed;
	pthread_mutex_unlock(&r->mu);
	if (!e && (s = item_stream(r, it, &e)))
		e = stream_append(r, s, it->type, it->time, it->data, it->data_len, &it->seq);
	free(it->data);
	it->data = NULL;
	if (e) {
		if (it->done)
			it->done(it->arg, e);
		free(it);
		return;
	}
	it->s = s;
	it->next = NULL;
	*r->pend_t = it;
	r->pend_t = &it->next;
}

/* Heads that are due, time-based checkpoints and idle segment closing. Returns seconds to
 * the next due head or checkpoint (capped at 60). */
static double writer_timers(struct rec *r)
{
	struct rec_stream *s;
	time_t now = time(NULL);
	double next = write_heads(r, 0) ? HEAD_SECS : 60;
	int b;

	for (b = 0; b < BUCKETS; b++)
		for (s = r->buckets[b]; s; s = s->next) {
			if (s->unsigned_n && r->checkpoint_secs) {
				if (now - s->first_unsigned >= r->checkpoint_secs)
					stream_checkpoint(r, s, "time");
				else if (s->first_unsigned + r->checkpoint_secs - now < next)
					next = (double)(s->first_unsigned + r->checkpoint_secs -
							now);
			}
			if (s->fd >= 0 && !s->wb.len && now - s->last_used > IDLE_CLOSE_SECS) {
				if (!r->wal && s->dirty && fsync(s->fd)) {
					store_fail(r, -errno, "fsync of a recording segment failed");
					continue;
				}
				s->dirty = 0;
				close(s->fd);
				s->fd = -1;
			}
		}
	return next;
}

static void *writer_main(void *arg)
{
	struct rec *r = arg;
	struct rec_item *batch, *it, *next;
	struct rec_stream *s;
	struct timespec dl;
	double wait, since, timer_at = mono_now();
	int stopping, b;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (!r->qh && !r->stop) {
			since = r->unsynced ? mono_now() - ((double)r->unsynced_since.tv_sec +
							    r->unsynced_since.tv_nsec / 1e9) : 0;
			if (r->unsynced && since * 1000 >= r->sync_ms)
				break;
			wait = timer_at - mono_now();
			if (r->unsynced && r->sync_ms / 1000.0 - since < wait)
				wait = r->sync_ms / 1000.0 - since;
			if (wait <= 0)
				break;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += (time_t)wait;
			dl.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
			if (dl.tv_nsec >= 1000000000) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&r->cv, &r->mu, &dl);
		}
		batch = r->qh;
		r->qh = NULL;
		r->qt = &r->qh;
		r->qlen = 0;
		stopping = r->stop;
		pthread_mutex_unlock(&r->mu);
		for (it = batch; it; it = next) {
			next = it->next;
			writer_item(r, it);
		}
		if (batch && mono_now() + r->checkpoint_secs < timer_at)
			timer_at = mono_now() + r->checkpoint_secs;
		if (mono_now() >= timer_at)
			timer_at = mono_now() + writer_timers(r);
		since = r->unsynced ? mono_now() - ((double)r->unsynced_since.tv_sec +
						    r->unsynced_since.tv_nsec / 1e9) : 0;
		if (r->unsynced && (stopping || since * 1000 >= r->sync_ms) && commit(r, 0) &&
		    timer_at > mono_now() + HEAD_SECS)
			timer_at = mono_now() + HEAD_SECS; /* for the head that waits */
		if (stopping)
			break;
	}
	/* drained: sign off every stream that is not closed cleanly yet */
	if (!rec_failed(r))
		for (b = 0; b < BUCKETS; b++)
			for (s = r->buckets[b]; s; s = s->next)
				if (s->seq && !s->clean && !s->recovery)
					stream_checkpoint(r, s, "shutdown");
	commit(r, 1);
	sync_all(r); /* a clean stop leaves nothing for the log to replay */
	return NULL;
}

/* --- recovery ------------------------------------------------------------------------- */

static int seg_filter(const struct dirent *d)
{
	const char *n = d->d_name;
	int i;

	for (i = 0; i < 6; i++)
		if (n[i] < '0' || n[i] > '9')
			return 0;
	return !strcmp(n + 6, ".jsonl");
}

/* Read a whole file into a malloc'd buffer. Returns 0 or -errno. */
static int read_all(const char *path, char **buf, size_t *len)
{
	struct stat st;
	size_t off = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;

	*buf = NULL;
	if (fd < 0 || fstat(fd, &st)) {
		e = -errno;
		if (fd >= 0)
			close(fd);
		return e;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, *buf + off, (size_t)st.st_size - off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	*len = off;
	return 0;
}

/* What a scan of one segment found. */
struct seg_scan {
	size_t good_end;       /* end of the last good line */
	int found;             /* a good line was found */
	uint64_t seq;          /* ... its seq, hash, whether a shutdown checkpoint */
	unsigned char hash[32];
	int clean;
	double first_time;     /* time of the first good line, 0 when none */
};

/* Scan <buf>: find the last complete line that is a valid record of <stream>. */
static void scan_segment(char *buf, size_t len, const char *stream, struct seg_scan *sc)
{
	size_t off = 0, end;
	unsigned char h[32];
	json_t *o;
	char *nl;

	memset(sc, 0, sizeof(*sc));
	while (off < len) {
		nl = memchr(buf + off, '\n', len - off);
		if (!nl)
			break;
		end = (size_t)(nl - buf);
		if (rec_line_check(buf + off, end - off, &o, h, NULL, 0) == REC_LINE_OK) {
			if (!strcmp(json_string_value(json_object_get(o, "stream")), stream)) {
				const char *type = json_string_value(json_object_get(o, "type"));
				json_t *d = json_object_get(o, "data");

				sc->good_end = end + 1;
				sc->found = 1;
				sc->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
				memcpy(sc->hash, h, 32);
				sc->clean = !strcmp(type, "checkpoint") &&
					    json_is_string(json_object_get(d, "reason")) &&
					    !strcmp(json_string_value(json_object_get(d, "reason")),
						    "shutdown");
				if (!sc->first_time)
					rec_time_parse(json_string_value(json_object_get(o, "time")),
						       &sc->first_time);
			}
			json_decref(o);
		}
		off = end + 1;
	}
}

/* Index the record lines of the durability log (<buf> stays theirs until recovery ends).
 * A line that does not check is skipped: the log's entries are crc-checked, so that is
 * damage, and the chain check at replay refuses anything after a gap anyway. */
static int wal_index(struct rec *r, char *buf, size_t len)
{
	size_t off = 0, end, cap = 0;
	struct wal_line *l, *v;
	unsigned char h[32];
	const char *st, *prev;
	json_t *o;
	char *nl;

	while (off < len && (nl = memchr(buf + off, '\n', len - off))) {
		end = (size_t)(nl - buf);
		if (rec_line_check(buf + off, end - off, &o, h, NULL, 0) == REC_LINE_OK && o) {
			st = json_string_value(json_object_get(o, "stream"));
			prev = json_string_value(json_object_get(o, "prev"));
			if (r->replay_n == cap) {
				cap = cap ? 2 * cap : 256;
				if (!(v = realloc(r->replay, cap * sizeof(*v)))) {
					json_decref(o);
					return -ENOMEM;
				}
				r->replay = v;
			}
			l = &r->replay[r->replay_n];
			l->p = buf + off;
			l->len = end + 1 - off;
			l->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
			memcpy(l->hash, h, 32);
			if (st && strlen(st) < sizeof(l->stream) && prev && !unhex32(prev, l->prev)) {
				snprintf(l->stream, sizeof(l->stream), "%s", st);
				r->replay_n++;
			}
		} else {
			log_warn("record", "the durability log holds a line that is not a valid record "
				 "(%zu bytes at offset %zu of what it holds); skipped: if a stream "
				 "needed it, its recovery record says what was replayed, and "
				 "'sluicectl verify' names what is missing", end - off, off);
		}
		json_decref(o);
		off = end + 1;
	}
	return 0;
}

/* Append to <s> the lines the durability log holds that continue its chain. Returns 0 or
 * -errno; <n> counts the lines appended. */
static int wal_replay(struct rec *r, struct rec_stream *s, uint64_t *n)
{
	struct wal_line *l;
	size_t i;
	int e;

	for (i = 0; i < r->replay_n; i++) {
		l = &r->replay[i];
		if (strcmp(l->stream, s->name) || l->seq <= s->seq)
			continue;
		if (l->seq != s->seq + 1 || memcmp(l->prev, s->last, 32)) {
			log_warn("record", "%s: the durability log's record seq %llu does not continue "
				 "seq %llu; nothing more replayed ('sluicectl verify' names what is "
				 "missing)", s->name,
				 (unsigned long long)l->seq, (unsigned long long)s->seq);
			break;
		}
		if ((e = stream_write(r, s, l->p, l->len, l->hash)))
			return e;
		(*n)++;
	}
	return 0;
}

/* Recover the stream in directory <name>: find its chain state, cut a torn tail of its last
 * segment, append what the durability log holds beyond it, and log a recovery record plus
 * a checkpoint when the last run did not end cleanly. Returns 0 or -errno with <err>. */
static int stream_recover(struct rec *r, const char *name, char *err, size_t errlen)
{
	char sdir[PATH_MAX], path[PATH_MAX], hex[65], t[40], *buf = NULL;
	struct dirent **segs = NULL;
	struct rec_stream *s;
	struct seg_scan sc = { 0 };
	size_t len = 0, cut = 0;
	unsigned char ch[32] = { 0 };
	struct recjson_buf d = { 0 };
	uint64_t replayed = 0, good_seq;
	int n, i, e = 0, fd;
	json_t *data;

	s = stream_add(r, name);
	if (!s)
		return -ENOMEM;
	snprintf(sdir, sizeof(sdir), "%s/%s", r->dir, name);
	n = scandir(sdir, &segs, seg_filter, alphasort);
	if (n < 0) {
		e = -errno;
		err_set(err, errlen, "cannot list %s: %s", sdir, strerror(errno));
		return e;
	}
	for (i = n - 1; i >= 0 && !e; i--) {
		snprintf(path, sizeof(path), "%s/%s", sdir, segs[i]->d_name);
		if ((e = read_all(path, &buf, &len))) {
			err_set(err, errlen, "cannot read %s: %s", path, strerror(-e));
			break;
		}
		scan_segment(buf, len, name, &sc);
		if (i == n - 1) {
			s->seg = (unsigned)strtoul(segs[i]->d_name, NULL, 10);
			s->size = (off_t)sc.good_end;
			s->seg_started = sc.first_time ? (time_t)sc.first_time : time(NULL);
			cut = len - sc.good_end;
			if (cut) {
				rec_sha256(buf + sc.good_end, cut, ch);
				fd = open(path, O_WRONLY | O_CLOEXEC);
				if (fd < 0 || ftruncate(fd, (off_t)sc.good_end) || fsync(fd)) {
					e = -errno;
					err_set(err, errlen, "cannot cut the torn tail of %s: %s",
						path, strerror(errno));
				}
				if (fd >= 0)
					close(fd);
				log_warn("record", "%s: cut %zu bytes of a torn record after seq %llu",
					 path, cut, (unsigned long long)sc.seq);
			}
		}
		free(buf);
		buf = NULL;
		if (sc.found) {
			s->seq = sc.seq;
			memcpy(s->last, sc.hash, 32);
			s->clean = sc.clean && !cut;
			break;
		}
	}
	for (i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
	good_seq = s->seq;
	if (!e && n && (e = wal_replay(r, s, &replayed)))
		err_set(err, errlen, "cannot append the durability log's records to %s: %s", sdir,
			strerror(-e));
	if (replayed) {
		log_warn("record", "%s: %llu records after seq %llu restored from the durability "
			 "log", sdir, (unsigned long long)replayed, (unsigned long long)good_seq);
		s->clean = 0;
	}
	if (e || !n || (s->clean && !cut) || (!s->seq && !cut))
		return e;
	now_str(t);
	rec_hex(ch, 32, hex);
	snprintf(path, sizeof(path), "%06u.jsonl", s->seg);
	data = json_pack("{s:I, s:s, s:s, s:I, s:I, s:b}", "cut_bytes", (json_int_t)cut,
			 "cut_sha256", cut ? hex : "", "segment", path, "last_good_seq",
			 (json_int_t)good_seq, "replayed", (json_int_t)replayed, "clean_shutdown", 0);
	e = data ? data_text(data, &d) : -ENOMEM;
	json_decref(data);
	s->recovery = d.p; /* the store's own from here */
	s->recovery_len = d.len;
	if (!e && !(e = stream_append(r, s, "recovery", t, s->recovery, s->recovery_len, NULL)))
		e = stream_flush(r, s);
	if (!e || no_space(e)) {
		if (e) {
			/* the disk is full: it is written before the stream's next record */
			log_warn("record", "%s: no space for the recovery record yet", sdir);
			e = 0;
		} else {
			free(s->recovery);
			s->recovery = NULL;
			e = stream_checkpoint(r, s, "recovery");
			if (no_space(e))
				e = 0;
		}
	}
	if (!e)
		commit(r, 1);
	if (!e)
		e = rec_failed(r);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (e)
		err_set(err, errlen, "cannot write the recovery record of %s: %s", sdir,
			strerror(-e));
	return e;
}

/* --- open, submit, close -------------------------------------------------------------- */

static void free_streams(struct rec *r)
{
	struct rec_stream *s, *n;
	int b;

	for (b = 0; b < BUCKETS; b++)
		for (s = r->buckets[b]; s; s = n) {
			n = s->next;
			if (s->fd >= 0)
				close(s->fd);
			free(s->head);
			free(s->recovery);
			recjson_free(&s->wb);
			free(s);
		}
}

struct rec *rec_open(const struct rec_opts *o, char *err, size_t errlen)
{
	struct rec *r = calloc(1, sizeof(*r));
	struct recwal *wal = NULL;
	struct dirent *d;
	struct stat st;
	uint64_t cgid;
	DIR *dir = NULL;
	char path[PATH_MAX], *wal_lines = NULL;
	size_t wal_len = 0;
	int e;

	if (!r) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	if (!o || !o->dir || !*o->dir || strlen(o->dir) + REC_STREAM_MAX + 32 >= PATH_MAX) {
		err_set(err, errlen, "record: no (or too long a) store directory");
		free(r);
		return NULL;
	}
	snprintf(r->dir, sizeof(r->dir), "%s", o->dir);
	if (o->key_path)
		snprintf(r->key_path, sizeof(r->key_path), "%s", o->key_path);
	else
		snprintf(r->key_path, sizeof(r->key_path), "%s/record.key", o->dir);
	r->segment_bytes = o->segment_bytes ? o->segment_bytes : REC_DEFAULT_SEGMENT_BYTES;
	r->segment_secs = o->segment_secs > 0 ? o->segment_secs : REC_DEFAULT_SEGMENT_SECS;
	r->sync_ms = o->sync_ms > 0 ? o->sync_ms : 0;
	r->checkpoint_every = o->checkpoint_every > 0 ? o->checkpoint_every :
			      REC_DEFAULT_CHECKPOINT_EVERY;
	r->checkpoint_secs = o->checkpoint_secs > 0 ? o->checkpoint_secs :
			     REC_DEFAULT_CHECKPOINT_SECS;
	r->max_queue = o->max_queue ? o->max_queue : REC_DEFAULT_MAX_QUEUE;
	r->qt = &r->qh;
	r->pend_t = &r->pend;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->dirty_mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (mkdir(r->dir, 0700) && errno != EEXIST) {
		err_set(err, errlen, "cannot create the recording directory %s: %s", r->dir,
			strerror(errno));
		goto fail;
	}
	if (stat(r->key_path, &st) && errno == ENOENT &&
	    rec_key_init(r->key_path, NULL, err, errlen))
		goto fail;
	if (!(r->key = rec_load_private(r->key_path, err, errlen)) || rec_key_id(r->key, r->key_id) ||
	    rec_pub_repair(r->key_path, r->key, err, errlen))
		goto fail;
	snprintf(path, sizeof(path), "%s/wal", r->dir);
	if (!(wal = recwal_open(path, o->wal_bytes ? o->wal_bytes : RECWAL_DEFAULT_BYTES, err,
				errlen)))
		goto fail;
	if ((e = recwal_read(wal, &wal_lines, &wal_len)) ||
	    (e = wal_index(r, wal_lines, wal_len))) {
		err_set(err, errlen, "cannot read the durability log %s: %s", path, strerror(-e));
		goto fail;
	}
	dir = opendir(r->dir);
	if (!dir) {
		err_set(err, errlen, "cannot open %s: %s", r->dir, strerror(errno));
		goto fail;
	}
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.' || rec_stream_cgid(d->d_name, &cgid))
			continue;
		snprintf(path, sizeof(path), "%s/%s", r->dir, d->d_name);
		if (stat(path, &st) || !S_ISDIR(st.st_mode))
			continue;
		if (stream_recover(r, d->d_name, err, errlen))
			goto fail;
	}
	closedir(dir);
	dir = NULL;
	/* recovered streams are fsynced: the log starts a new lap */
	if ((e = recwal_reset(wal))) {
		err_set(err, errlen, "cannot reset the durability log %s: %s", path, strerror(-e));
		goto fail;
	}
	recwal_set_sync(wal, sync_dirty, r);
	if (o->syncer_ms >= 0 && (e = recwal_start(wal, o->syncer_ms ? o->syncer_ms : SYNCER_MS))) {
		err_set(err, errlen, "cannot start the recordings' syncer: %s", strerror(-e));
		goto fail;
	}
	r->wal = wal;
	free(r->replay);
	r->replay = NULL;
	r->replay_n = 0;
	free(wal_lines);
	wal_lines = NULL;
	if ((errno = pthread_create(&r->thread, NULL, writer_main, r))) {
		err_set(err, errlen, "cannot start the recording writer: %s", strerror(errno));
		goto fail;
	}
	thread_name(r->thread, "sluiced-rec");
	return r;
fail:
	if (dir)
		closedir(dir);
	recwal_close(wal);
	free(r->replay);
	free(wal_lines);
	free_streams(r);
	free(r->dirty_v);
	recjson_free(&r->line);
	EVP_PKEY_free(r->key);
	pthread_mutex_destroy(&r->dirty_mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
	return NULL;
}

int rec_failed(struct rec *r)
{
	int e;

	pthread_mutex_lock(&r->mu);
	e = r->failed;
	pthread_mutex_unlock(&r->mu);
	return e;
}

static __thread int defer_wake;        /* rec_defer() was called on this thread */
static __thread struct rec *wake_due;  /* ... and this store's writer waits for rec_flush() */

void rec_defer(void)
{
	defer_wake = 1;
}

void rec_flush(void)
{
	struct rec *r = wake_due;

	if (r) {
		wake_due = NULL;
		pthread_cond_signal(&r->cv);
	}
}

int rec_submit(struct rec *r, const char *cgroup_path, uint64_t cgroup_id, const char *type,
	       json_t *fields, rec_done_fn done, void *arg)
{
	char stream[REC_STREAM_MAX] = "";

	if (cgroup_path)
		rec_stream_name(cgroup_path, cgroup_id, stream, sizeof(stream));
	return rec_submit_stream(r, stream, cgroup_id, type, fields, done, arg);
}

int rec_submit_stream(struct rec *r, const char *stream, uint64_t cgroup_id, const char *type,
		      json_t *fields, rec_done_fn done, void *arg)
{
	struct rec_item *it;
	size_t i, n = type ? strlen(type) : 0;
	int e = 0;

	for (i = 0; i < n; i++)
		if (!((type[i] >= 'a' && type[i] <= 'z') || type[i] == '_'))
			break;
	if (!r || !n || n > 31 || i < n || !strcmp(type, "checkpoint") ||
	    !strcmp(type, "recovery") || (fields && !json_is_object(fields))) {
		json_decref(fields);
		return -EINVAL;
	}
	it = calloc(1, sizeof(*it));
	if (it) { /* serialized here, on the caller's thread: the writer only hashes and writes */
		struct recjson_buf d = { 0 };

		e = data_text(fields, &d);
		it->data = d.p;
		it->data_len = d.len;
	}
	json_decref(fields);
	if (!it || e) {
		if (it)
			free(it->data);
		free(it);
		return -ENOMEM;
	}
	snprintf(it->stream, sizeof(it->stream), "%s", stream ? stream : "");
	it->cgid = cgroup_id;
	memcpy(it->type, type, n + 1);
	now_str(it->time);
	it->done = done;
	it->arg = arg;
	pthread_mutex_lock(&r->mu);
	if (r->failed)
		e = r->failed;
	else if (r->stop)
		e = -ESHUTDOWN;
	else if (r->qlen >= r->max_queue)
		e = -EAGAIN;
	if (!e) {
		*r->qt = it;
		r->qt = &it->next;
		if (!r->qlen++) { /* the writer may be asleep: wake it now, or at rec_flush() */
			if (!defer_wake)
				pthread_cond_signal(&r->cv);
			else if (wake_due != r) {
				rec_flush();
				wake_due = r;
			}
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (e) {
		free(it->data);
		free(it);
	}
	return e;
}

void rec_close(struct rec *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	if (default_store == r)
		default_store = NULL;
	recwal_close(r->wal); /* stops its syncer, which reads the streams */
	free_streams(r);
	free(r->dirty_v);
	recjson_free(&r->line);
	EVP_PKEY_free(r->key);
	pthread_mutex_destroy(&r->dirty_mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

/* --- the connection log ----------------------------------------------------------------- */

void rec_set_default(struct rec *r)
{
	default_store = r;
}

static void put_addr(json_t *o, const struct sluice_origin *org)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (org->family == AF_INET)
		inet_ntop(AF_INET, &org->addr[12], ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, org->addr, ip, sizeof(ip));
	json_object_set_new(o, "dst_addr", json_string(ip));
	json_object_set_new(o, "dst_port", json_integer(org->port));
}

/* The fields of a connection record (no time or event: the caller adds what it needs). */
static json_t *conn_fields(const struct record_conn *rc)
{
	json_t *o = json_object();

	if (rc->origin) {
		json_object_set_new(o, "cgroup_id", json_integer((json_int_t)rc->origin->cgroup_id));
		json_object_set_new(o, "pid", json_integer(rc->origin->pid));
		json_object_set_new(o, "tgid", json_integer(rc->origin->tgid));
		json_object_set_new(o, "uid", json_integer(rc->origin->uid));
		json_object_set_new(o, "comm", json_stringn(rc->origin->comm,
			strnlen(rc->origin->comm, sizeof(rc->origin->comm))));
		json_object_set_new(o, "netns_cookie",
				    json_integer((json_int_t)rc->origin->netns_cookie));
		put_addr(o, rc->origin);
	}
	json_object_set_new(o, "sni", json_string(rc->sni ? rc->sni : ""));
	json_object_set_new(o, "route", json_string(rc->route ? rc->route : ""));
	json_object_set_new(o, "reason", json_string(rc->reason ? rc->reason : ""));
	if (rc->splice)
		json_object_set_new(o, "splice", json_string(rc->splice));
	json_object_set_new(o, "requests", json_integer((json_int_t)rc->requests));
	json_object_set_new(o, "bytes_from_agent", json_integer((json_int_t)rc->bytes_in));
	json_object_set_new(o, "bytes_to_agent", json_integer((json_int_t)rc->bytes_out));
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)rc->duration_ms));
	return o;
}

int record_conn(const char *dir, const struct record_conn *rc)
{
	json_t *o = conn_fields(rc);
	struct timespec ts;
	char path[512], *line;
	size_t len;
	int fd, e = 0;

	if (default_store)
		return rec_submit(default_store, rc->cgroup && *rc->cgroup ? rc->cgroup : NULL,
				  rc->origin ? rc->origin->cgroup_id : 0, "conn_close", o, NULL, NULL);
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_set_new(o, "time", json_real((double)ts.tv_sec + ts.tv_nsec / 1e9));
	json_object_set_new(o, "event", json_string("connection"));
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!line)
		return -ENOMEM;
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%llu.conn.jsonl", dir,
		 rc->origin ? (unsigned long long)rc->origin->cgroup_id : 0ULL);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	len = strlen(line);
	line[len++] = '\n'; /* json_dumps leaves room: it was NUL-terminated */
	if (fd < 0 || write(fd, line, len) != (ssize_t)len)
		e = -errno;
	if (fd >= 0)
		close(fd);
	free(line);
	return e;
}
