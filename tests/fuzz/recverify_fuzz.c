/* recverify_fuzz.c - libFuzzer driver for the recording verifier (rec_verify_path), the
 * auditor's check of a recording that may have been tampered with.
 *
 * Once, a real store is made (record.c: ten records, a signed checkpoint every four). Each
 * input is then a list of edits applied to a copy of its segment, four bytes each: replace a
 * byte, insert a byte, swap two lines, or copy a line after another. Edits never shorten the
 * file (cutting a stream back at a checkpoint is the documented limit of a lone stream), so
 * the property is exact: the verifier passes the segment if and only if it is byte for byte
 * the one the store wrote. It must also never crash, whatever the edits did to the JSON.
 *
 *   make fuzz (FUZZ_SECONDS=N); make check replays tests/fuzz/corpus/recverify */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "recverify.h"

#define MAX_SEG 16384   /* the store's segment is about 4 KB */
#define MAX_EDITS 16
#define MAX_LINES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp[64], stream_dir[512], seg_path[600], pub_path[600];
static char orig[MAX_SEG];
static size_t orig_len;

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (tmp[0] && system(cmd))
		fprintf(stderr, "recverify_fuzz: could not remove %s\n", tmp);
}

/* The store, written once: ten records of one container. */
static void make_store(void)
{
	static const char *cg = "/system.slice/docker-"
				"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
				".scope";
	char store[128], err[512], name[REC_STREAM_MAX];
	struct rec_opts o = { 0 };
	struct rec *r;
	FILE *f;
	int i;

	snprintf(tmp, sizeof(tmp), "/tmp/sluice-recverify-fuzz.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
	atexit(cleanup);
	snprintf(store, sizeof(store), "%s/store", tmp);
	o.dir = store;
	o.checkpoint_every = 4;
	o.wal_bytes = 1 << 16;
	o.syncer_ms = -1;
	if (!(r = rec_open(&o, err, sizeof(err)))) {
		fprintf(stderr, "recverify_fuzz: %s\n", err);
		abort();
	}
	for (i = 0; i < 10; i++)
		if (rec_submit(r, cg, 7, i % 2 ? "response" : "request",
			       json_pack("{s:i, s:s, s:s}", "n", i, "sql",
					 "SELECT name, \"quoted\" FROM crm.customers -- \u00e9",
					 "body", "{\"rows\":[{\"f\":[{\"v\":\"a\\\\b\"}]}]}"),
			       NULL, NULL))
			abort();
	rec_close(r);
	rec_stream_name(cg, 7, name, sizeof(name));
	snprintf(stream_dir, sizeof(stream_dir), "%s/%s", store, name);
	snprintf(seg_path, sizeof(seg_path), "%s/000001.jsonl", stream_dir);
	snprintf(pub_path, sizeof(pub_path), "%s/record.pub", store);
	if (!(f = fopen(seg_path, "rb")))
		abort();
	orig_len = fread(orig, 1, sizeof(orig), f);
	fclose(f);
	if (!orig_len || orig_len == sizeof(orig))
		abort();
}

/* Start offsets of the lines of buf[0..len), and the end as the last entry. */
static int line_starts(const char *buf, size_t len, size_t *at)
{
	size_t i;
	int n = 0;

	at[n++] = 0;
	for (i = 0; i < len && n < MAX_LINES; i++)
		if (buf[i] == '\n' && i + 1 < len)
			at[n++] = i + 1;
	at[n] = len;
	return n;
}

/* Apply one edit {op, a, b, c} to buf[0..*len) (room: cap). */
static void edit(char *buf, size_t *len, size_t cap, const uint8_t *e)
{
	size_t at[MAX_LINES + 1], pos = ((size_t)e[1] << 8 | e[2]) % (*len + 1);
	static char tmpb[MAX_SEG * 4];
	int n = line_starts(buf, *len, at), i = e[1] % n, j = e[2] % n;
	size_t li, lj;

	switch (e[0] & 3) {
	case 0: /* replace a byte */
		if (pos < *len)
			buf[pos] = (char)e[3];
		break;
	case 1: /* insert a byte */
		if (*len + 1 <= cap) {
			memmove(buf + pos + 1, buf + pos, *len - pos);
			buf[pos] = (char)e[3];
			(*len)++;
		}
		break;
	case 2: /* swap lines i < j */
		if (i == j)
			break;
		if (i > j) {
			int t = i;
			i = j;
			j = t;
		}
		li = at[i + 1] - at[i];
		lj = at[j + 1] - at[j];
		memcpy(tmpb, buf + at[j], lj);
		memcpy(tmpb + lj, buf + at[i + 1], at[j] - at[i + 1]);
		memcpy(tmpb + lj + at[j] - at[i + 1], buf + at[i], li);
		memcpy(buf + at[i], tmpb, lj + at[j] - at[i + 1] + li);
		break;
	default: /* copy line i after line j */
		li = at[i + 1] - at[i];
		if (*len + li > cap)
			break;
		memcpy(tmpb, buf + at[i], li);
		memmove(buf + at[j + 1] + li, buf + at[j + 1], *len - at[j + 1]);
		memcpy(buf + at[j + 1], tmpb, li);
		*len += li;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[MAX_SEG * 4];
	size_t len, k;
	json_t *rep = NULL;
	FILE *f;
	int e;

	if (!orig_len)
		make_store();
	memcpy(buf, orig, orig_len);
	len = orig_len;
	for (k = 0; k + 4 <= size && k / 4 < MAX_EDITS; k += 4)
		edit(buf, &len, sizeof(buf), data + k);
	if (!(f = fopen(seg_path, "wb")) || fwrite(buf, 1, len, f) != len || fclose(f))
		abort();
	e = rec_verify_path(stream_dir, pub_path, &rep);
	if (!rep || !json_is_boolean(json_object_get(rep, "ok")) ||
	    json_is_true(json_object_get(rep, "ok")) != (e == 0))
		abort();
	if (len == orig_len && !memcmp(buf, orig, len)) {
		if (e != 0)
			abort(); /* the store's own segment refused */
	} else if (e == 0) {
		abort(); /* an edited segment passed */
	} else if (e != -EBADMSG || !json_object_get(rep, "first_problem")) {
		abort(); /* not intact, but not said so */
	}
	json_decref(rep);
	return 0;
}
