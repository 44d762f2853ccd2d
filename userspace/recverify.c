/* recverify.c - verification of recordings and the auditors' commands (sessions, replay,
 * export, verify). Streams are read line by line (getline); the verifier keeps a few dozen
 * bytes per record, never the records. See record.c for the format. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "reckey.h"
#include "record.h"
#include "recverify.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* paths: see record.c */

/* One record line as the verifier saw it. */
struct vline {
	int file;                  /* index in vstream.files */
	size_t lineno;             /* 1-based, in that file */
	int bad;                   /* malformed, edited, torn or moved: not in the chain */
	uint64_t seq;
	unsigned char hash[32], prev[32];
	int checkpoint;            /* a checkpoint whose signature verified */
};

/* A problem, ordered by where it is. */
struct vproblem {
	size_t order;              /* index of the line in the stream */
	int stream;                /* index in the report's streams */
	const char *kind;
	char file[PATH_MAX];
	size_t line;
	uint64_t seq;
	char detail[512];
};

struct verify {
	EVP_PKEY *key;
	char key_id[17];
	struct vproblem *pb;
	size_t npb, cap;
	json_t *streams;
	int nstream;
};

/* One stream being verified. */
struct vstream {
	char name[REC_STREAM_MAX];  /* expected stream id ("" : take the first line's) */
	char **files;
	int nfiles;
	struct vline *v;
	size_t n, cap;
	int partial;                /* may start after seq 1 (an export or a lone segment) */
	char head[PATH_MAX];        /* head.json path, "" when none is expected */
};

static void add_problem(struct verify *vr, size_t order, const char *kind, const char *file,
			size_t line, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static void add_problem(struct verify *vr, size_t order, const char *kind, const char *file,
			size_t line, uint64_t seq, const char *fmt, ...)
{
	struct vproblem *p;
	va_list ap;

	if (vr->npb == vr->cap) {
		size_t cap = vr->cap ? vr->cap * 2 : 16;
		struct vproblem *n = realloc(vr->pb, cap * sizeof(*n));

		if (!n)
			return;
		vr->pb = n;
		vr->cap = cap;
	}
	p = &vr->pb[vr->npb++];
	p->order = order;
	p->stream = vr->nstream;
	p->kind = kind;
	snprintf(p->file, sizeof(p->file), "%s", file ? file : "");
	p->line = line;
	p->seq = seq;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
	va_end(ap);
}

static int cmp_problem(const void *a, const void *b)
{
	const struct vproblem *x = a, *y = b;

	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Check a checkpoint record <o> (seq <seq>, prev <prev>) against the key. Returns NULL
 * when it verifies, else why. */
static const char *check_checkpoint(struct verify *vr, json_t *o, uint64_t seq, const char *prev,
				    char *why, size_t whylen)
{
	json_t *d = json_object_get(o, "data");
	const char *sig = json_string_value(json_object_get(d, "sig"));
	const char *sh = json_string_value(json_object_get(d, "signed_hash"));
	const char *kid = json_string_value(json_object_get(d, "key"));
	json_t *ss = json_object_get(d, "signed_seq");
	char msg[512];
	int n;

	if (!sig || !sh || !kid || !json_is_integer(ss)) {
		snprintf(why, whylen, "checkpoint without key, sig, signed_hash or signed_seq");
		return why;
	}
	if ((uint64_t)json_integer_value(ss) != seq - 1 || strcmp(sh, prev)) {
		snprintf(why, whylen, "checkpoint signs seq %lld/%.16s..., not the record before it "
				      "(seq %llu/%.16s...)", (long long)json_integer_value(ss), sh,
			 (unsigned long long)(seq - 1), prev);
		return why;
	}
	if (!vr->key) {
		snprintf(why, whylen, "no public key to check the signature with (--pubkey)");
		return why;
	}
	if (strcmp(kid, vr->key_id)) {
		snprintf(why, whylen, "signed by key %s, not by the given key %s", kid, vr->key_id);
		return why;
	}
	n = rec_checkpoint_msg(msg, sizeof(msg), json_string_value(json_object_get(o, "stream")),
			       seq - 1, sh, json_string_value(json_object_get(o, "time")));
	if (!rec_sig_verify(vr->key, msg, (size_t)n, sig)) {
		snprintf(why, whylen, "the signature does not verify: the records it covers (up to "
				      "seq %llu) or the checkpoint were altered after signing",
			 (unsigned long long)(seq - 1));
		return why;
	}
	return NULL;
}

/* Read every line of <vs>'s files into vs->v, checking each on its own. */
static int read_lines(struct verify *vr, struct vstream *vs)
{
	char *line = NULL, why[256], prevhex[65];
	size_t cap = 0, lineno;
	ssize_t len;
	json_t *o;
	int f;

	for (f = 0; f < vs->nfiles; f++) {
		FILE *fp = fopen(vs->files[f], "re");

		if (!fp)
			return -errno;
		for (lineno = 1; (len = getline(&line, &cap, fp)) >= 0; lineno++) {
			struct vline *l;
			size_t order = vs->n;
			enum rec_line_fault fault;

			if (vs->n == vs->cap) {
				size_t nc = vs->cap ? vs->cap * 2 : 1024;
				struct vline *nv = realloc(vs->v, nc * sizeof(*nv));

				if (!nv) {
					fclose(fp);
					free(line);
					return -ENOMEM;
				}
				vs->v = nv;
				vs->cap = nc;
			}
			l = &vs->v[vs->n++];
			memset(l, 0, sizeof(*l));
			l->file = f;
			l->lineno = lineno;
			if (!len || line[len - 1] != '\n') {
				l->bad = 1;
				add_problem(vr, order, "truncated", vs->files[f], lineno, 0,
					    "torn last line: %zd bytes without a newline (the file "
					    "was cut here)", len);
				continue;
			}
			line[--len] = '\0';
			fault = rec_line_check(line, (size_t)len, &o, l->hash, why, sizeof(why));
			if (fault != REC_LINE_OK) {
				/* the seq it claims, when it still parses, helps the reader */
				json_t *any = json_loadb(line, (size_t)len, 0, NULL);

				l->bad = 1;
				add_problem(vr, order, fault == REC_LINE_MALFORMED ? "malformed" :
					    "modified", vs->files[f], lineno,
					    (uint64_t)json_integer_value(json_object_get(any, "seq")),
					    "%s", why);
				json_decref(any);
				continue;
			}
			l->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
			snprintf(prevhex, sizeof(prevhex), "%s",
				 json_string_value(json_object_get(o, "prev")));
			if (!vs->name[0])
				snprintf(vs->name, sizeof(vs->name), "%s",
					 json_string_value(json_object_get(o, "stream")));
			if (strcmp(json_string_value(json_object_get(o, "stream")), vs->name)) {
				l->bad = 1;
				add_problem(vr, order, "moved", vs->files[f], lineno, l->seq,
					    "record of stream %s, found in stream %s (moved from "
					    "another container)",
					    json_string_value(json_object_get(o, "stream")), vs->name);
			} else if (strlen(prevhex) != 64 || strspn(prevhex, "0123456789abcdef") != 64) {
				l->bad = 1;
				add_problem(vr, order, "malformed", vs->files[f], lineno, l->seq,
					    "\"prev\" is not 64 hex digits");
			} else {
				int i;

				for (i = 0; i < 32; i++) {
					unsigned v;

					sscanf(prevhex + 2 * i, "%2x", &v);
					l->prev[i] = (unsigned char)v;
				}
				if (!strcmp(json_string_value(json_object_get(o, "type")),
					    "checkpoint")) {
					if (check_checkpoint(vr, o, l->seq, prevhex, why, sizeof(why)))
						add_problem(vr, order, "bad_signature", vs->files[f],
							    lineno, l->seq, "%s", why);
					else
						l->checkpoint = 1;
				}
			}
			json_decref(o);
		}
		fclose(fp);
	}
	free(line);
	return 0;
}

/* The chain: seq + 1 and prev = hash of the record before, over the lines that are fine on
 * their own. Names deletions, reorderings and insertions. */
static void check_chain(struct verify *vr, struct vstream *vs)
{
	static const unsigned char zero[32];
	uint64_t exp = 0;
	unsigned char last[32];
	size_t i, j, k, lasti = 0;
	int have = 0, first = 1;

	for (i = 0; i < vs->n; i++) {
		struct vline *l = &vs->v[i];
		const char *f = vs->files[l->file];

		if (l->bad) {
			have = 0; /* already named; pick the chain up again after it */
			continue;
		}
		if (!have) {
			if (first && !vs->partial && l->seq != 1)
				add_problem(vr, i, "deleted", f, l->lineno, l->seq,
					    "the stream starts at seq %llu: records 1..%llu are missing",
					    (unsigned long long)l->seq,
					    (unsigned long long)(l->seq - 1));
			else if (first && l->seq == 1 && memcmp(l->prev, zero, 32))
				add_problem(vr, i, "modified", f, l->lineno, 1,
					    "the first record's prev is not zero");
			first = 0;
			have = 1;
			exp = l->seq + 1;
			memcpy(last, l->hash, 32);
			lasti = i;
			continue;
		}
		if (l->seq == exp && !memcmp(l->prev, last, 32)) {
			exp++;
			memcpy(last, l->hash, 32);
			lasti = i;
			continue;
		}
		if (l->seq == exp) {
			add_problem(vr, i, "modified", f, l->lineno, l->seq,
				    "chain broken: its prev is not the hash of record seq %llu (%s:%zu): "
				    "one of the two was rewritten", (unsigned long long)(exp - 1),
				    vs->files[vs->v[lasti].file], vs->v[lasti].lineno);
		} else if (l->seq < exp) {
			for (j = 0; j < i; j++)
				if (!vs->v[j].bad && vs->v[j].seq == l->seq)
					break;
			if (j < i && !memcmp(vs->v[j].hash, l->hash, 32)) {
				add_problem(vr, i, "inserted", f, l->lineno, l->seq,
					    "a copy of record seq %llu (%s:%zu)",
					    (unsigned long long)l->seq, vs->files[vs->v[j].file],
					    vs->v[j].lineno);
				continue;
			}
			if (j < i) {
				/* two records claim this seq: the genuine one is what the next
				 * record links to */
				for (k = i + 1; k < vs->n && vs->v[k].bad; k++)
					;
				if (k < vs->n && !memcmp(vs->v[k].prev, l->hash, 32)) {
					add_problem(vr, j, "inserted", vs->files[vs->v[j].file],
						    vs->v[j].lineno, l->seq,
						    "not part of the chain: record seq %llu at %s:%zu "
						    "is the one the stream continues from",
						    (unsigned long long)l->seq, f, l->lineno);
					exp = l->seq + 1;
					memcpy(last, l->hash, 32);
					lasti = i;
				} else {
					add_problem(vr, i, "inserted", f, l->lineno, l->seq,
						    "a second record claims seq %llu (first at %s:%zu)",
						    (unsigned long long)l->seq,
						    vs->files[vs->v[j].file], vs->v[j].lineno);
				}
				continue;
			}
			add_problem(vr, i, "reordered", f, l->lineno, l->seq,
				    "seq %llu comes after seq %llu", (unsigned long long)l->seq,
				    (unsigned long long)(exp - 1));
			continue;
		} else {
			for (j = i + 1; j < vs->n; j++)
				if (!vs->v[j].bad && vs->v[j].seq == exp)
					break;
			if (j < vs->n)
				add_problem(vr, i, "reordered", f, l->lineno, l->seq,
					    "seq %llu where seq %llu belongs (that one is at %s:%zu)",
					    (unsigned long long)l->seq, (unsigned long long)exp,
					    vs->files[vs->v[j].file], vs->v[j].lineno);
			else
				add_problem(vr, i, "deleted", f, l->lineno, l->seq,
					    "records %llu..%llu are missing before it",
					    (unsigned long long)exp, (unsigned long long)(l->seq - 1));
		}
		exp = l->seq + 1;
		memcpy(last, l->hash, 32);
		lasti = i;
	}
}

/* head.json: the latest checkpoint the writer made durable; the stream must reach it. */
static void check_head(struct verify *vr, struct vstream *vs, char *head, size_t hlen,
		       uint64_t last_seq)
{
	unsigned char h[32];
	char why[256];
	json_t *o;
	size_t i;
	uint64_t seq;

	while (hlen && head[hlen - 1] == '\n')
		hlen--;
	if (rec_line_check(head, hlen, &o, h, why, sizeof(why)) != REC_LINE_OK ||
	    strcmp(json_string_value(json_object_get(o, "type")), "checkpoint") ||
	    strcmp(json_string_value(json_object_get(o, "stream")), vs->name)) {
		add_problem(vr, vs->n, "modified", vs->head, 1, 0, "not a checkpoint of %s (%s)",
			    vs->name, o ? "another stream or type" : why);
		json_decref(o);
		return;
	}
	seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
	if (check_checkpoint(vr, o, seq, json_string_value(json_object_get(o, "prev")), why,
			     sizeof(why)))
		add_problem(vr, vs->n, "bad_signature", vs->head, 1, seq, "%s", why);
	json_decref(o);
	for (i = 0; i < vs->n; i++)
		if (!vs->v[i].bad && vs->v[i].seq == seq)
			break;
	if (i < vs->n && memcmp(vs->v[i].hash, h, 32))
		add_problem(vr, i, "modified", vs->files[vs->v[i].file], vs->v[i].lineno, seq,
			    "differs from the signed checkpoint seq %llu in %s",
			    (unsigned long long)seq, vs->head);
	else if (i == vs->n && seq > last_seq)
		add_problem(vr, vs->n, "truncated", vs->n ? vs->files[vs->v[vs->n - 1].file] : "",
			    vs->n ? vs->v[vs->n - 1].lineno : 0, last_seq,
			    "the stream ends at seq %llu but its signed head (%s) is checkpoint "
			    "seq %llu: records were removed from the end",
			    (unsigned long long)last_seq, vs->head, (unsigned long long)seq);
}

/* Read a small file whole. Returns a malloc'd NUL-terminated buffer or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *b = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	*len = 0;
	for (;;) {
		if (*len + 4096 + 1 > cap) {
			char *n = realloc(b, cap = cap * 2 + 8192);

			if (!n)
				break;
			b = n;
		}
		size_t r = fread(b + *len, 1, 4096, f);

		if (!r)
			break;
		*len += r;
	}
	fclose(f);
	if (b)
		b[*len] = '\0';
	return b;
}

/* Verify one stream; add its summary to vr->streams. */
static int verify_stream(struct verify *vr, struct vstream *vs)
{
	char *head = NULL;
	size_t hlen = 0, i, npb0 = vr->npb, unsigned_tail = 0;
	uint64_t last_seq = 0, first_seq = 0, signed_through = 0, ncp = 0, records = 0;
	int e;

	if (vs->head[0])
		head = slurp(vs->head, &hlen); /* first: the writer may move it on meanwhile */
	if ((e = read_lines(vr, vs))) {
		free(head);
		return e;
	}
	check_chain(vr, vs);
	for (i = 0; i < vs->n; i++) {
		if (vs->v[i].bad)
			continue;
		records++;
		if (!first_seq)
			first_seq = vs->v[i].seq;
		last_seq = vs->v[i].seq > last_seq ? vs->v[i].seq : last_seq;
		if (vs->v[i].checkpoint) {
			ncp++;
			signed_through = vs->v[i].seq;
			unsigned_tail = 0;
		} else {
			unsigned_tail++;
		}
	}
	if (head)
		check_head(vr, vs, head, hlen, last_seq);
	else if (vs->head[0] && ncp)
		add_problem(vr, vs->n, "truncated", vs->head, 0, last_seq,
			    "head.json is missing although the stream has checkpoints: removal of "
			    "records from the end cannot be ruled out");
	free(head);
	json_array_append_new(vr->streams, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
		"stream", vs->name, "records", (json_int_t)records, "first_seq",
		(json_int_t)first_seq, "last_seq", (json_int_t)last_seq, "checkpoints",
		(json_int_t)ncp, "signed_through", (json_int_t)signed_through, "unsigned_tail",
		(json_int_t)unsigned_tail, "partial", vs->partial, "ok", vr->npb == npb0));
	vr->nstream++;
	return 0;
}

static void vstream_free(struct vstream *vs)
{
	int i;

	for (i = 0; i < vs->nfiles; i++)
		free(vs->files[i]);
	free(vs->files);
	free(vs->v);
	memset(vs, 0, sizeof(*vs));
}

static int add_file(struct vstream *vs, const char *path)
{
	char **n = realloc(vs->files, (size_t)(vs->nfiles + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	vs->files = n;
	if (!(n[vs->nfiles] = strdup(path)))
		return -ENOMEM;
	vs->nfiles++;
	return 0;
}

static int seg_name(const struct dirent *d)
{
	return strlen(d->d_name) == 12 && strspn(d->d_name, "0123456789") == 6 &&
	       !strcmp(d->d_name + 6, ".jsonl");
}

static int jsonl_name(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 6 && !strcmp(d->d_name + n - 6, ".jsonl") && d->d_name[0] != '.';
}

static int subdir_stream(const struct dirent *d)
{
	uint64_t id;

	return d->d_name[0] != '.' && !rec_stream_cgid(d->d_name, &id);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* Verify stream directory <dir> (segments + head.json). */
static int verify_stream_dir(struct verify *vr, const char *dir)
{
	struct vstream vs = { 0 };
	struct dirent **ents;
	char path[PATH_MAX];
	int n, i, e = 0;

	n = scandir(dir, &ents, seg_name, alphasort);
	if (n < 0)
		return -errno;
	snprintf(vs.name, sizeof(vs.name), "%s", base_name(dir));
	snprintf(vs.head, sizeof(vs.head), "%s/head.json", dir);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (!e)
			e = add_file(&vs, path);
		free(ents[i]);
	}
	free(ents);
	if (!e && n && strcmp(base_name(vs.files[0]), "000001.jsonl"))
		add_problem(vr, 0, "deleted", vs.files[0], 0, 0,
			    "the first segment is %s: earlier segments are missing",
			    base_name(vs.files[0]));
	if (!e)
		e = verify_stream(vr, &vs);
	vstream_free(&vs);
	return e;
}

/* Verify an export's MANIFEST.sha256 (and its signature when present). */
static int verify_manifest(struct verify *vr, const char *dir)
{
	char path[PATH_MAX], file[PATH_MAX], hex[65], got[65], *m, *line, *save = NULL;
	unsigned char h[32], sig[64];
	size_t mlen, flen, slen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	snprintf(path, sizeof(path), "%s/MANIFEST.sha256", dir);
	m = slurp(path, &mlen);
	if (!m)
		return -errno;
	vr->nstream = 1 << 20; /* its problems sort after those of the records */
	snprintf(file, sizeof(file), "%s/MANIFEST.sha256.sig", dir);
	{
		char *s = slurp(file, &slen);

		if (s && slen == 64 && vr->key) {
			memcpy(sig, s, 64);
			ctx = EVP_MD_CTX_new();
			ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, vr->key) == 1 &&
			     EVP_DigestVerify(ctx, sig, 64, (unsigned char *)m, mlen) == 1;
			EVP_MD_CTX_free(ctx);
			ERR_clear_error();
			if (!ok)
				add_problem(vr, 0, "bad_signature", file, 0, 0,
					    "the manifest's signature does not verify");
		} else if (s) {
			add_problem(vr, 0, "bad_signature", file, 0, 0,
				    "the manifest's signature cannot be checked (%s)",
				    vr->key ? "not 64 bytes" : "no public key");
		}
		free(s);
	}
	for (line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f;

		if (strlen(line) < 67 || line[64] != ' ' || line[65] != ' ') {
			add_problem(vr, 0, "malformed", path, 0, 0, "bad manifest line: %.80s", line);
			continue;
		}
		memcpy(hex, line, 64);
		hex[64] = '\0';
		snprintf(file, sizeof(file), "%s/%s", dir, line + 66);
		f = slurp(file, &flen);
		if (!f) {
			add_problem(vr, 0, "deleted", file, 0, 0, "listed in the manifest but missing");
			continue;
		}
		SHA256((unsigned char *)f, flen, h);
		free(f);
		rec_hex(h, 32, got);
		if (strcmp(got, hex))
			add_problem(vr, 0, "modified", file, 0, 0,
				    "its SHA-256 is not the one in the manifest");
	}
	free(m);
	return 0;
}

/* Verify an export bundle: manifest, then every streams/<stream>.jsonl. */
static int verify_export(struct verify *vr, const char *dir)
{
	struct dirent **ents;
	char sdir[PATH_MAX], path[PATH_MAX];
	int n, i, e;

	if ((e = verify_manifest(vr, dir)))
		return e;
	vr->nstream = 0;
	snprintf(sdir, sizeof(sdir), "%s/streams", dir);
	n = scandir(sdir, &ents, jsonl_name, alphasort);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		struct vstream vs = { 0 };

		snprintf(path, sizeof(path), "%s/%s", sdir, ents[i]->d_name);
		snprintf(vs.name, sizeof(vs.name), "%.*s", (int)strlen(ents[i]->d_name) - 6,
			 ents[i]->d_name);
		snprintf(vs.head, sizeof(vs.head), "%s/%s.head.json", sdir, vs.name);
		vs.partial = 1;
		if (access(vs.head, F_OK))
			vs.head[0] = '\0';
		e = add_file(&vs, path);
		if (!e)
			e = verify_stream(vr, &vs);
		vstream_free(&vs);
		free(ents[i]);
		if (e) {
			while (++i < n)
				free(ents[i]);
			break;
		}
	}
	free(ents);
	return e;
}

/* Verify one .jsonl file: a segment of a stream directory or an exported stream. */
static int verify_file(struct verify *vr, const char *file)
{
	struct vstream vs = { 0 };
	char parent[PATH_MAX];
	const char *b = base_name(file);
	uint64_t id;
	int e;

	snprintf(parent, sizeof(parent), "%.*s", (int)(b - file), file);
	if (b > file)
		parent[b - file - 1] = '\0';
	vs.partial = 1;
	if (strlen(b) == 12 && strspn(b, "0123456789") == 6 && !rec_stream_cgid(base_name(parent), &id))
		snprintf(vs.name, sizeof(vs.name), "%s", base_name(parent));
	else if (!rec_stream_cgid(b, &id) && strlen(b) > 6) {
		snprintf(vs.name, sizeof(vs.name), "%.*s", (int)strlen(b) - 6, b);
		snprintf(vs.head, sizeof(vs.head), "%.*s.head.json", (int)strlen(file) - 6, file);
		if (access(vs.head, F_OK))
			vs.head[0] = '\0';
	}
	e = add_file(&vs, file);
	if (!e)
		e = verify_stream(vr, &vs);
	vstream_free(&vs);
	return e;
}

/* The default public key for <path>: record.pub in it (a directory), beside it, or up to
 * two levels above. */
static void default_pubkey(const char *path, char *out, size_t outlen)
{
	char p[PATH_MAX], *s;
	struct stat st;
	int up;

	snprintf(p, sizeof(p), "%s", path);
	if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
		s = strrchr(p, '/');
		if (s)
			*s = '\0';
		else
			snprintf(p, sizeof(p), ".");
	}
	for (up = 0; up < 3; up++) {
		snprintf(out, outlen, "%s/record.pub", p);
		if (!access(out, R_OK))
			return;
		if ((s = strrchr(p, '/')) && s != p)
			*s = '\0';
		else if (!strcmp(p, "."))
			snprintf(p, sizeof(p), "..");
		else
			break;
	}
	out[0] = '\0';
}

int rec_verify_path(const char *path, const char *pubkey_path, json_t **report)
{
	struct verify vr = { 0 };
	char pub[PATH_MAX], err[512] = "", mpath[PATH_MAX];
	struct stat st;
	json_t *rep, *pbs;
	size_t i;
	int e = 0;

	*report = rep = json_object();
	vr.streams = json_array();
	if (pubkey_path)
		snprintf(pub, sizeof(pub), "%s", pubkey_path);
	else
		default_pubkey(path, pub, sizeof(pub));
	if (pub[0] && !(vr.key = rec_load_pubkey(pub, err, sizeof(err))))
		e = -ENOKEY;
	if (vr.key)
		rec_key_id(vr.key, vr.key_id);
	json_object_set_new(rep, "path", json_string(path));
	json_object_set_new(rep, "pubkey", pub[0] ? json_string(pub) : json_null());
	json_object_set_new(rep, "key_id", vr.key ? json_string(vr.key_id) : json_null());
	if (!e && stat(path, &st))
		e = -errno;
	snprintf(mpath, sizeof(mpath), "%s/MANIFEST.sha256", path);
	if (e) {
		/* nothing to verify */
	} else if (!S_ISDIR(st.st_mode)) {
		e = verify_file(&vr, path);
	} else if (!access(mpath, F_OK)) {
		e = verify_export(&vr, path);
	} else {
		struct dirent **ents;
		int n = scandir(path, &ents, seg_name, alphasort), k;

		if (n > 0) {
			for (k = 0; k < n; k++)
				free(ents[k]);
			free(ents);
			e = verify_stream_dir(&vr, path);
		} else if (n == 0) {
			free(ents);
			n = scandir(path, &ents, subdir_stream, alphasort);
			for (k = 0; k < n; k++) {
				snprintf(mpath, sizeof(mpath), "%s/%s", path, ents[k]->d_name);
				if (!e && !stat(mpath, &st) && S_ISDIR(st.st_mode))
					e = verify_stream_dir(&vr, mpath);
				free(ents[k]);
			}
			if (n > 0)
				free(ents);
			if (n < 0)
				e = -errno;
			else if (n == 0 && !e)
				snprintf(err, sizeof(err), "no recordings found in %s", path);
		} else {
			e = -errno;
		}
	}
	if (e && !err[0])
		snprintf(err, sizeof(err), "%s: %s", path, strerror(-e));
	if (!e && err[0])
		e = -ENOENT;
	if (vr.npb)
		qsort(vr.pb, vr.npb, sizeof(*vr.pb), cmp_problem);
	pbs = json_array();
	for (i = 0; i < vr.npb && i < RECV_MAX_PROBLEMS; i++) {
		struct vproblem *p = &vr.pb[i];

		json_array_append_new(pbs, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "kind",
			p->kind, "stream", json_string_value(json_object_get(json_array_get(
			vr.streams, (size_t)p->stream), "stream")) ?: "", "file", p->file, "line",
			(json_int_t)p->line, "seq", (json_int_t)p->seq, "detail", p->detail));
	}
	json_object_set_new(rep, "ok", json_boolean(!e && !vr.npb));
	json_object_set_new(rep, "streams", vr.streams);
	json_object_set(rep, "first_problem", json_array_size(pbs) ? json_array_get(pbs, 0) :
			json_null());
	json_object_set_new(rep, "problems", pbs);
	json_object_set_new(rep, "problem_count", json_integer((json_int_t)vr.npb));
	if (e)
		json_object_set_new(rep, "error", json_string(err));
	free(vr.pb);
	EVP_PKEY_free(vr.key);
	return e ? e : vr.npb ? -EBADMSG : 0;
}

/* --- reading streams for the commands --------------------------------------------------- */

/* Called per record line (parsed leniently: NULL when it is not JSON). Return non-zero to
 * stop. */
typedef int (*rec_line_fn)(void *arg, const char *line, size_t len, json_t *o);

/* Every line of stream directory <sdir>, segments in order. Returns 0 or -errno. */
static int each_line(const char *sdir, rec_line_fn fn, void *arg)
{
	struct dirent **ents;
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int n, i, stop = 0;

	n = scandir(sdir, &ents, seg_name, alphasort);
	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", sdir, ents[i]->d_name);
		f = stop ? NULL : fopen(path, "re");
		while (f && !stop && (len = getline(&line, &cap, f)) > 0) {
			json_t *o = json_loadb(line, (size_t)len, 0, NULL);

			stop = fn(arg, line, (size_t)len, o);
			json_decref(o);
		}
		if (f)
			fclose(f);
		free(ents[i]);
	}
	free(ents);
	free(line);
	return 0;
}

static double rec_time(json_t *o)
{
	double t = 0;

	rec_time_parse(json_string_value(json_object_get(o, "time")), &t);
	return t;
}

/* Does stream id <id> match a --container/replay argument <c>: the id itself, or a
 * prefix of its name? */
static int stream_matches(const char *id, const char *c)
{
	return !c || !strcmp(id, c) || (strlen(c) >= 3 && !strncmp(id, c, strlen(c)));
}

/* Stream directories in <dir> matching <c>, sorted; returns the count or -errno. */
static int list_streams(const char *dir, const char *c, char ***out)
{
	struct dirent **ents;
	char **v = NULL;
	int n, i, k = 0;

	n = scandir(dir, &ents, subdir_stream, alphasort);
	if (n < 0)
		return -errno;
	v = calloc((size_t)n + 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		if (v && stream_matches(ents[i]->d_name, c))
			v[k++] = strdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	*out = v;
	return v ? k : -ENOMEM;
}

static void free_list(char **v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Is data of a decision record a denial? */
static int is_denial(json_t *o)
{
	json_t *d = json_object_get(o, "data");
	const char *v = json_string_value(json_object_get(d, "decision"));

	if (!v)
		v = json_string_value(json_object_get(d, "verdict"));
	return v && (!strcmp(v, "deny") || !strcmp(v, "denied") || !strcmp(v, "refuse") ||
		     !strcmp(v, "block"));
}

/* Option parsing shared by the commands: "--name V" or "--name=V". */
static int opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return **val ? 1 : -1;
	}
	if (argv[*i][n])
		return 0;
	if (*i + 1 >= argc || !*argv[*i + 1])
		return -1;
	*val = argv[++*i];
	return 1;
}

/* --- sessions --------------------------------------------------------------------------- */

struct sess {
	double since, until, first, last;
	json_int_t records, requests, denials;
	char first_s[40], last_s[40];
};

static int sess_line(void *arg, const char *line, size_t len, json_t *o)
{
	struct sess *s = arg;
	const char *type = json_string_value(json_object_get(o, "type"));
	double t = rec_time(o);

	if (!o || t < s->since || t > s->until)
		return 0;
	if (!s->records++ || t < s->first) {
		s->first = t;
		snprintf(s->first_s, sizeof(s->first_s), "%s",
			 json_string_value(json_object_get(o, "time")));
	}
	if (t >= s->last) {
		s->last = t;
		snprintf(s->last_s, sizeof(s->last_s), "%s",
			 json_string_value(json_object_get(o, "time")));
	}
	if (type && !strcmp(type, "request"))
		s->requests++;
	/* sluiced records a refusal in the request record itself (decision "deny") */
	if (type && (!strcmp(type, "decision") || !strcmp(type, "request")) && is_denial(o))
		s->denials++;
	return 0;
}

static const char sessions_usage[] =
	"usage: sluicectl sessions [--dir D] [--container C] [--since T] [--until T] [--json]\n"
	"  One line per recorded stream (container): first and last time, records, requests\n"
	"  and denials. T: RFC 3339 (2024-05-01T12:00:00Z) or unix seconds.\n";

int rec_cmd_sessions(int argc, char **argv)
{
	const char *dir = RECV_DEFAULT_DIR, *c = NULL, *since = NULL, *until = NULL;
	double s0 = -1e18, s1 = 1e18;
	char **v, sdir[PATH_MAX];
	int i, r, n, as_json = 0;
	json_t *out = json_array();

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = 1;
		else if ((r = opt(argc, argv, &i, "--dir", &dir)) == 0 &&
			 (r = opt(argc, argv, &i, "--container", &c)) == 0 &&
			 (r = opt(argc, argv, &i, "--since", &since)) == 0 &&
			 (r = opt(argc, argv, &i, "--until", &until)) == 0)
			r = -1;
		if (r < 0 && strcmp(argv[i], "--json")) {
			fprintf(stderr, "sluicectl: sessions: bad argument '%s'\n%s", argv[i],
				sessions_usage);
			json_decref(out);
			return !strcmp(argv[i], "--help") ? 0 : 2;
		}
		r = 0;
	}
	if ((since && rec_time_parse(since, &s0)) || (until && rec_time_parse(until, &s1))) {
		fprintf(stderr, "sluicectl: sessions: bad time (RFC 3339 or unix seconds)\n");
		json_decref(out);
		return 2;
	}
	n = list_streams(dir, c, &v);
	if (n < 0) {
		fprintf(stderr, "sluicectl: sessions: %s: %s\n", dir, strerror(-n));
		json_decref(out);
		return 2;
	}
	if (!as_json)
		printf("%-40s %-27s %-27s %8s %8s %7s\n", "STREAM", "FIRST", "LAST", "RECORDS",
		       "REQUESTS", "DENIALS");
	for (i = 0; i < n; i++) {
		struct sess s = { .since = s0, .until = s1 };
		uint64_t id = 0;

		snprintf(sdir, sizeof(sdir), "%s/%s", dir, v[i]);
		each_line(sdir, sess_line, &s);
		if (!s.records)
			continue;
		rec_stream_cgid(v[i], &id);
		if (as_json)
			json_array_append_new(out, json_pack("{s:s, s:s#, s:I, s:s, s:s, s:I, s:I, s:I}",
				"stream", v[i], "name", v[i], (int)(strrchr(v[i], '-') - v[i] - 1),
				"cgroup_id", (json_int_t)id, "first", s.first_s, "last", s.last_s,
				"records", s.records, "requests", s.requests, "denials", s.denials));
		else
			printf("%-40s %-27s %-27s %8lld %8lld %7lld\n", v[i], s.first_s, s.last_s,
			       (long long)s.records, (long long)s.requests, (long long)s.denials);
	}
	free_list(v, n);
	if (as_json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		printf("\n");
	}
	json_decref(out);
	return 0;
}

/* --- replay ----------------------------------------------------------------------------- */

struct replay {
	double speed, prev_t;
	int step, as_json, n;
};

/* Print <v> for a timeline: strings plain (cut at <max>), others compact JSON. */
static void put_value(json_t *v, size_t max)
{
	char *s;

	if (json_is_string(v)) {
		const char *t = json_string_value(v);

		printf("%.*s%s", (int)(strlen(t) > max ? max : strlen(t)), t,
		       strlen(t) > max ? "..." : "");
		return;
	}
	s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s)
		printf("%.*s%s", (int)(strlen(s) > max ? max : strlen(s)), s,
		       strlen(s) > max ? "..." : "");
	free(s);
}

static int replay_line(void *arg, const char *line, size_t len, json_t *o)
{
	static const char *const long_keys[] = { "sql", "query", "body", "response", "text",
						 "rows", NULL };
	struct replay *rp = arg;
	json_t *d = json_object_get(o, "data"), *v;
	const char *k, *time_s = json_string_value(json_object_get(o, "time"));
	double t = rec_time(o);
	int i, is_long;

	if (rp->n++ && rp->speed > 0 && t > rp->prev_t) {
		double w = (t - rp->prev_t) / rp->speed;
		struct timespec ts = { (time_t)(w > 10 ? 10 : w), 0 };

		ts.tv_nsec = w > 10 ? 0 : (long)((w - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
	rp->prev_t = t;
	if (rp->as_json || !o) {
		printf("%.*s", (int)len, line);
	} else {
		printf("%s  #%-6lld %-11s", time_s ? time_s : "?",
		       (long long)json_integer_value(json_object_get(o, "seq")),
		       json_string_value(json_object_get(o, "type")));
		json_object_foreach(d, k, v) {
			for (i = 0, is_long = 0; long_keys[i]; i++)
				is_long |= !strcmp(k, long_keys[i]);
			if (is_long || json_is_object(v) || json_is_array(v))
				continue;
			if (!strcmp(json_string_value(json_object_get(o, "type")), "checkpoint") &&
			    strcmp(k, "signed_seq") && strcmp(k, "reason"))
				continue;
			printf(" %s=", k);
			put_value(v, 120);
		}
		printf("\n");
		json_object_foreach(d, k, v) {
			for (i = 0, is_long = 0; long_keys[i]; i++)
				is_long |= !strcmp(k, long_keys[i]);
			if (!is_long && !json_is_object(v) && !json_is_array(v))
				continue;
			printf("%38s%s: ", "", k);
			if (json_is_object(v) && json_is_string(json_object_get(v, "text")))
				put_value(json_object_get(v, "text"), 4000);
			else
				put_value(v, is_long ? 4000 : 300);
			printf("\n");
		}
	}
	fflush(stdout);
	if (rp->step) {
		char buf[64];

		if (!fgets(buf, sizeof(buf), stdin))
			rp->step = 0;
	}
	return 0;
}

static const char replay_usage[] =
	"usage: sluicectl replay ID [--dir D] [--speed N | --step] [--json]\n"
	"  A recorded stream as a timeline: ID is a stream (sluicectl sessions) or a unique\n"
	"  prefix of its container id. --speed N plays it N times as fast as it happened\n"
	"  (waits capped at 10 s), --step waits for Enter after each record, default: at once.\n";

int rec_cmd_replay(int argc, char **argv)
{
	const char *dir = RECV_DEFAULT_DIR, *id = NULL, *speed = NULL;
	struct replay rp = { 0 };
	char **v, sdir[PATH_MAX];
	int i, r, n, e;

	for (i = 1; i < argc; i++) {
		r = 0;
		if (!strcmp(argv[i], "--json"))
			rp.as_json = 1;
		else if (!strcmp(argv[i], "--step"))
			rp.step = 1;
		else if ((r = opt(argc, argv, &i, "--dir", &dir)) == 0 &&
			 (r = opt(argc, argv, &i, "--speed", &speed)) == 0) {
			if (argv[i][0] == '-' || id)
				r = -1;
			else
				id = argv[i];
		}
		if (r < 0) {
			fprintf(stderr, "sluicectl: replay: bad argument '%s'\n%s", argv[i],
				replay_usage);
			return 2;
		}
	}
	if (!id || (speed && (rp.speed = atof(speed)) < 0)) {
		fputs(replay_usage, stderr);
		return 2;
	}
	n = list_streams(dir, id, &v);
	if (n < 0) {
		fprintf(stderr, "sluicectl: replay: %s: %s\n", dir, strerror(-n));
		return 2;
	}
	for (i = 0; i < n && n > 1; i++)
		if (!strcmp(v[i], id))
			break;
	if (n == 0 || (n > 1 && i == n)) {
		fprintf(stderr, "sluicectl: replay: %s '%s' in %s%s\n", n ? "several streams match" :
			"no stream matches", id, dir, n ? ":" : "");
		for (i = 0; i < n; i++)
			fprintf(stderr, "  %s\n", v[i]);
		free_list(v, n);
		return n ? 2 : 1;
	}
	snprintf(sdir, sizeof(sdir), "%s/%s", dir, n > 1 ? v[i] : v[0]);
	if (!rp.as_json)
		printf("stream %s\n", base_name(sdir));
	e = each_line(sdir, replay_line, &rp);
	free_list(v, n);
	if (e) {
		fprintf(stderr, "sluicectl: replay: %s: %s\n", sdir, strerror(-e));
		return 2;
	}
	return 0;
}

/* --- export ----------------------------------------------------------------------------- */

struct exp_scan {
	double since, until;
	long n;                  /* lines seen */
	long start, end;         /* range of lines to copy, -1 when none yet */
	int closed;              /* end reached a checkpoint after <until> */
	FILE *out;               /* second pass: write here */
	char *head;              /* second pass: last checkpoint line copied */
};

static int exp_scan_line(void *arg, const char *line, size_t len, json_t *o)
{
	struct exp_scan *x = arg;
	const char *type = json_string_value(json_object_get(o, "type"));
	double t = rec_time(o);
	long i = x->n++;

	if (x->closed)
		return 1;
	if (x->start < 0 && t >= x->since && t <= x->until)
		x->start = i;
	if (x->start >= 0 && t <= x->until)
		x->end = i;
	else if (x->start >= 0) {
		/* past <until>: go on to the next checkpoint, so everything is signed */
		x->end = i;
		if (type && !strcmp(type, "checkpoint"))
			x->closed = 1;
	}
	if (x->start >= 0 && x->end == i && type && !strcmp(type, "checkpoint") && t > x->until)
		x->closed = 1;
	return 0;
}

static int exp_copy_line(void *arg, const char *line, size_t len, json_t *o)
{
	struct exp_scan *x = arg;
	long i = x->n++;
	const char *type = json_string_value(json_object_get(o, "type"));

	if (i < x->start)
		return 0;
	if (i > x->end)
		return 1;
	fwrite(line, 1, len, x->out);
	if (type && !strcmp(type, "checkpoint")) {
		free(x->head);
		x->head = strndup(line, len);
	}
	return 0;
}

/* SHA-256 of file <path> as hex into <hex>. Returns 0 or -errno. */
static int file_sha256(const char *path, char *hex)
{
	unsigned char h[32], buf[65536];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	FILE *f = fopen(path, "re");
	size_t n;
	int e = 0;

	if (!f || !ctx) {
		e = f ? -ENOMEM : -errno;
		goto out;
	}
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(ctx, buf, n);
	if (ferror(f))
		e = -EIO;
	EVP_DigestFinal_ex(ctx, h, NULL);
	rec_hex(h, 32, hex);
out:
	if (f)
		fclose(f);
	EVP_MD_CTX_free(ctx);
	return e;
}

/* Copy file <from> to <to> (created 0644). Returns 0 or -errno. */
static int copy_file(const char *from, const char *to)
{
	size_t len;
	char *b = slurp(from, &len);
	FILE *f;
	int e = 0;

	if (!b)
		return -errno;
	f = fopen(to, "wxe");
	if (!f || fwrite(b, 1, len, f) != len)
		e = -errno;
	if (f && fclose(f) && !e)
		e = -errno;
	free(b);
	return e;
}

static const char export_usage[] =
	"usage: sluicectl export --container C -o DIR [--dir D] [--since T] [--until T] "
	"[--key F]\n"
	"  Write the recordings of container C (a stream or a prefix of its container id) to a\n"
	"  new directory DIR: streams/<stream>.jsonl (+ .head.json), record.pub and\n"
	"  MANIFEST.sha256 (signed as MANIFEST.sha256.sig when the key is readable). The range\n"
	"  extends to the next checkpoint so that it is signed. Check it with sluicectl verify\n"
	"  DIR, or sha256sum and openssl alone (see the README).\n";

int rec_cmd_export(int argc, char **argv)
{
	const char *dir = RECV_DEFAULT_DIR, *c = NULL, *since = NULL, *until = NULL;
	const char *out = NULL, *key = NULL;
	char **v = NULL, sdir[PATH_MAX], path[PATH_MAX], kp[PATH_MAX], hex[65], err[512];
	double s0 = -1e18, s1 = 1e18;
	int i, r, n = 0, e = 0, written = 0;
	FILE *man = NULL;
	EVP_PKEY *pk;

	for (i = 1; i < argc; i++) {
		if ((r = opt(argc, argv, &i, "--dir", &dir)) == 0 &&
		    (r = opt(argc, argv, &i, "--container", &c)) == 0 &&
		    (r = opt(argc, argv, &i, "--since", &since)) == 0 &&
		    (r = opt(argc, argv, &i, "--until", &until)) == 0 &&
		    (r = opt(argc, argv, &i, "--key", &key)) == 0 &&
		    (r = opt(argc, argv, &i, "-o", &out)) == 0)
			r = -1;
		if (r < 0) {
			fprintf(stderr, "sluicectl: export: bad argument '%s'\n%s", argv[i],
				export_usage);
			return 2;
		}
	}
	if (!c || !out) {
		fputs(export_usage, stderr);
		return 2;
	}
	if ((since && rec_time_parse(since, &s0)) || (until && rec_time_parse(until, &s1))) {
		fprintf(stderr, "sluicectl: export: bad time (RFC 3339 or unix seconds)\n");
		return 2;
	}
	n = list_streams(dir, c, &v);
	if (n <= 0) {
		fprintf(stderr, "sluicectl: export: %s\n", n ? strerror(-n) : "no stream matches");
		return n ? 2 : 1;
	}
	snprintf(path, sizeof(path), "%s/streams", out);
	if (mkdir(out, 0700) || mkdir(path, 0700)) {
		fprintf(stderr, "sluicectl: export: cannot create %s: %s\n", out, strerror(errno));
		free_list(v, n);
		return 2;
	}
	if (key)
		snprintf(kp, sizeof(kp), "%s", key);
	else
		snprintf(kp, sizeof(kp), "%s/record.key", dir);
	rec_pub_path(kp, sdir, sizeof(sdir));
	snprintf(path, sizeof(path), "%s/record.pub", out);
	if ((e = copy_file(sdir, path))) {
		fprintf(stderr, "sluicectl: export: cannot copy the public key %s: %s\n", sdir,
			strerror(-e));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/MANIFEST.sha256", out);
	man = fopen(path, "wxe");
	if (!man || (e = file_sha256(sdir, hex))) {
		e = e ? e : -errno;
		goto out;
	}
	fprintf(man, "%s  record.pub\n", hex);
	for (i = 0; i < n && !e; i++) {
		struct exp_scan x = { .since = s0, .until = s1, .start = -1, .end = -1 };

		snprintf(sdir, sizeof(sdir), "%s/%s", dir, v[i]);
		if ((e = each_line(sdir, exp_scan_line, &x)) || x.start < 0)
			continue;
		snprintf(path, sizeof(path), "%s/streams/%s.jsonl", out, v[i]);
		x.out = fopen(path, "wxe");
		x.n = 0;
		if (!x.out) {
			e = -errno;
			break;
		}
		each_line(sdir, exp_copy_line, &x);
		if (fclose(x.out) || (e = file_sha256(path, hex))) {
			e = e ? e : -errno;
			free(x.head);
			break;
		}
		fprintf(man, "%s  streams/%s.jsonl\n", hex, v[i]);
		written++;
		if (x.head) {
			FILE *h;

			snprintf(path, sizeof(path), "%s/streams/%s.head.json", out, v[i]);
			h = fopen(path, "wxe");
			if (!h || fputs(x.head, h) < 0 || fclose(h) || (e = file_sha256(path, hex)))
				e = e ? e : -errno;
			else
				fprintf(man, "%s  streams/%s.head.json\n", hex, v[i]);
			free(x.head);
		}
	}
	if (fclose(man) && !e)
		e = -errno;
	man = NULL;
	if (e)
		goto out;
	pk = access(kp, R_OK) ? NULL : rec_load_private(kp, err, sizeof(err));
	if (pk) {
		unsigned char sig[64];
		size_t siglen = 64, mlen;
		char *m;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		FILE *f;

		snprintf(path, sizeof(path), "%s/MANIFEST.sha256", out);
		m = slurp(path, &mlen);
		if (m && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)m, mlen) == 1) {
			snprintf(path, sizeof(path), "%s/MANIFEST.sha256.sig", out);
			f = fopen(path, "wxe");
			if (!f || fwrite(sig, 1, 64, f) != 64 || fclose(f))
				e = -errno;
		}
		ERR_clear_error();
		free(m);
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(pk);
	}
out:
	if (man)
		fclose(man);
	free_list(v, n);
	if (e) {
		fprintf(stderr, "sluicectl: export: %s: %s\n", out, strerror(-e));
		return 2;
	}
	if (!written) {
		fprintf(stderr, "sluicectl: export: no record of %s in that time range\n", c);
		return 1;
	}
	printf("exported %d stream%s to %s%s\n", written, written == 1 ? "" : "s", out,
	       access(kp, R_OK) ? " (manifest not signed: the private key is not readable)" : "");
	return 0;
}

/* --- verify ----------------------------------------------------------------------------- */

static const char verify_usage[] =
	"usage: sluicectl verify FILE|DIR [--pubkey F] [--json]\n"
	"  Check recordings offline: a store directory, one stream directory, an export or one\n"
	"  .jsonl file. Exit 0 intact, 1 not (the first bad record is named), 2 I/O error.\n";

int rec_cmd_verify(int argc, char **argv)
{
	const char *path = NULL, *pub = NULL;
	json_t *rep, *s, *p;
	int i, r, as_json = 0, e;
	size_t k;

	for (i = 1; i < argc; i++) {
		r = 0;
		if (!strcmp(argv[i], "--json"))
			as_json = 1;
		else if ((r = opt(argc, argv, &i, "--pubkey", &pub)) == 0) {
			if (argv[i][0] == '-' || path)
				r = -1;
			else
				path = argv[i];
		}
		if (r < 0) {
			fprintf(stderr, "sluicectl: verify: bad argument '%s'\n%s", argv[i],
				verify_usage);
			return 2;
		}
	}
	if (!path) {
		fputs(verify_usage, stderr);
		return 2;
	}
	e = rec_verify_path(path, pub, &rep);
	if (as_json) {
		json_dumpf(rep, stdout, JSON_INDENT(2));
		printf("\n");
	} else if (e && e != -EBADMSG) {
		fprintf(stderr, "sluicectl: verify: %s\n",
			json_string_value(json_object_get(rep, "error")));
	} else {
		json_array_foreach(json_object_get(rep, "streams"), k, s)
			printf("%s %s: %lld records (seq %lld..%lld), %lld checkpoints, signed "
			       "through seq %lld%s%s\n",
			       json_is_true(json_object_get(s, "ok")) ? "ok      " : "NOT OK  ",
			       json_string_value(json_object_get(s, "stream")),
			       (long long)json_integer_value(json_object_get(s, "records")),
			       (long long)json_integer_value(json_object_get(s, "first_seq")),
			       (long long)json_integer_value(json_object_get(s, "last_seq")),
			       (long long)json_integer_value(json_object_get(s, "checkpoints")),
			       (long long)json_integer_value(json_object_get(s, "signed_through")),
			       json_integer_value(json_object_get(s, "unsigned_tail")) ?
			       "; unsigned tail: records after the last checkpoint are not signed yet" :
			       "", json_is_true(json_object_get(s, "partial")) ?
			       "; partial (an export or one segment)" : "");
		p = json_object_get(rep, "first_problem");
		if (!e)
			printf("intact (key %s)\n", json_string_value(json_object_get(rep, "key_id")));
		else
			printf("NOT INTACT: first bad record: %s:%lld (seq %lld): %s: %s\n"
			       "%lld problem(s) in all; --json lists them\n",
			       json_string_value(json_object_get(p, "file")),
			       (long long)json_integer_value(json_object_get(p, "line")),
			       (long long)json_integer_value(json_object_get(p, "seq")),
			       json_string_value(json_object_get(p, "kind")),
			       json_string_value(json_object_get(p, "detail")),
			       (long long)json_integer_value(json_object_get(rep, "problem_count")));
	}
	json_decref(rep);
	return !e ? 0 : e == -EBADMSG ? 1 : 2;
}
