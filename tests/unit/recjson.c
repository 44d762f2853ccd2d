/* Description: recjson writes the bytes jansson's json_dumps writes for records (compact,
 * sorted keys, ASCII only), on fixed and generated values, and fails where jansson fails. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "recjson.h"
#include "tap.h"

#define FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY)

static uint64_t seed = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (unsigned)(seed % n);
}

/* Append the UTF-8 of <cp> to <s>. */
static size_t put_utf8(char *s, unsigned cp)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		s[0] = (char)(0xc0 | cp >> 6);
		s[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		s[0] = (char)(0xe0 | cp >> 12);
		s[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	s[0] = (char)(0xf0 | cp >> 18);
	s[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	s[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	s[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Random valid UTF-8 text, heavy on what needs escaping. */
static size_t rnd_text(char *s, size_t max)
{
	size_t n = 0, want = rnd((unsigned)max / 4);
	unsigned cp;

	while (n < want) {
		switch (rnd(8)) {
		case 0:
			cp = rnd(0x20); /* controls, NUL included */
			break;
		case 1:
			cp = "\"\\/\x7f"[rnd(4)];
			break;
		case 2:
			cp = 0x80 + rnd(0x780);
			break;
		case 3:
			do
				cp = 0x800 + rnd(0xf800);
			while (cp >= 0xd800 && cp <= 0xdfff);
			break;
		case 4:
			cp = 0x10000 + rnd(0x100000);
			break;
		default:
			cp = 0x20 + rnd(0x5f);
		}
		n += put_utf8(s + n, cp);
	}
	return n;
}

static json_t *rnd_value(int depth)
{
	char s[1024];
	size_t n;
	json_t *v;
	int i, k;

	switch (depth > 4 ? 2 + rnd(5) : rnd(7)) {
	case 0:
		v = json_object();
		k = (int)rnd(24); /* past the insertion-sort size too */
		for (i = 0; i < k; i++) {
			n = rnd(2) ? rnd_text(s, 40) : (size_t)rnd(12);
			if (n < 12) /* "", "a", "aa"...: keys that are prefixes of others */
				memset(s, 'a', n);
			json_object_setn_new_nocheck(v, s, n, rnd_value(depth + 1));
		}
		return v;
	case 1:
		v = json_array();
		k = (int)rnd(6);
		for (i = 0; i < k; i++)
			json_array_append_new(v, rnd_value(depth + 1));
		return v;
	case 2:
	case 3:
		n = rnd_text(s, sizeof(s));
		return json_stringn(s, n);
	case 4:
		return json_integer(rnd(4) == 0 ? (json_int_t)rnd(1000) - 500 :
				    (json_int_t)(seed >> rnd(64)) * (rnd(2) ? 1 : -1));
	case 5:
		return rnd(2) ? json_true() : json_false();
	default:
		return rnd(2) ? json_null() : json_real((double)rnd(100000) / 7.0);
	}
}

/* recjson and jansson agree on <v> (jansson's NULL: recjson fails too). */
static int same(const json_t *v)
{
	struct recjson_buf b = { 0 };
	char *want = json_dumps(v, FLAGS);
	int e = recjson_dump(&b, v), ok;

	if (!want)
		ok = e != 0;
	else
		ok = !e && b.len == strlen(want) && !memcmp(b.p, want, b.len);
	if (!ok)
		printf("# jansson: %s\n# recjson: %.*s (%d)\n", want ? want : "(fails)",
		       (int)b.len, b.p ? b.p : "", e);
	free(want);
	recjson_free(&b);
	return ok;
}

int main(void)
{
	static const char *const fixed[] = {
		"{}", "[]", "{\"b\":1,\"a\":[true,false,null],\"ab\":\"x\",\"\":{}}",
		"{\"s\":\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"}",
		"{\"c\":\"\\u0000\\u0001\\u001f\\u007f\"}",
		"{\"u\":\"\\u00e9\\u20ac\\ud83d\\ude00\\uffff\\u0800\\u0080\"}",
		"{\"big\":9223372036854775807,\"small\":-9223372036854775808,\"z\":0,\"m\":-1}",
		"{\"data\":{\"bytes\":3,\"text\":\"a\\\"b\"},\"prev\":\"00\",\"seq\":1}",
		"{\"r\":1.5,\"e\":1e300,\"n\":-0.0}",
	};
	struct recjson_buf b = { 0 };
	json_t *v, *deep, *inner;
	size_t i;
	int agree = 1;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		v = json_loads(fixed[i], JSON_ALLOW_NUL, NULL);
		ok(v && same(v), "fixed value %zu: %s", i, fixed[i]);
		json_decref(v);
	}
	for (i = 0; i < 20000 && agree; i++) {
		v = rnd_value(0);
		agree = same(v);
		json_decref(v);
	}
	ok(agree, "20000 generated values: the same bytes as jansson (stopped at %zu)", i);

	/* long strings are escaped in rounds of input: a code point or an escape on either side
	 * of a round's end, and strings of controls only (the most output per byte) */
	{
		static const char *const ends[] = { "\xf0\x9f\x98\x80", "\xe2\x82\xac", "\xc3\xa9",
						    "\"", "\x01" };
		char t[3000];
		size_t len, at, j;

		agree = 1;
		for (j = 0; j < 5 && agree; j++)
			for (at = 500; at < 530 && agree; at++) {
				memset(t, 'x', sizeof(t));
				len = strlen(ends[j]);
				memcpy(t + at, ends[j], len);
				memcpy(t + at + 1024, ends[j], len);
				v = json_pack("{s:s%}", "k", t, (size_t)2000);
				agree = same(v);
				json_decref(v);
			}
		memset(t, 1, sizeof(t));
		v = json_pack("{s:s%}", "k", t, sizeof(t));
		agree = agree && same(v);
		json_decref(v);
		ok(agree, "long strings: the same bytes as jansson across rounds");
	}

	/* invalid UTF-8 (jansson never makes such a string, but it would fail to dump it) */
	v = json_pack("{s:o}", "k", json_stringn_nocheck("a\xc0\x80", 3));
	ok(same(v), "overlong UTF-8: both fail");
	json_decref(v);
	v = json_pack("{s:o}", "k", json_stringn_nocheck("\xed\xa0\x80", 3));
	ok(same(v), "a surrogate in UTF-8: both fail");
	json_decref(v);
	v = json_pack("{s:o}", "k", json_stringn_nocheck("\xe2\x82", 2));
	ok(same(v), "UTF-8 cut short: both fail");
	json_decref(v);
	is_int(recjson_string(&b, "\xff", 1), -EINVAL, "recjson_string refuses invalid UTF-8");
	recjson_free(&b);

	/* the UTF-8 check accepts what jansson's json_stringn accepts, NUL aside */
	for (i = 0; i < 200000 && agree; i++) {
		static const unsigned char pick[] = { 0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2,
			0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f };
		char t[24];
		size_t n = rnd(sizeof(t)), j;
		json_t *js;

		for (j = 0; j < n; j++)
			t[j] = (char)(rnd(3) ? 0x20 + rnd(0x5f) : pick[rnd(sizeof(pick))]);
		js = json_stringn(t, n);
		agree = recjson_utf8_ok(t, n) == (js && !memchr(t, 0, n));
		if (!agree)
			printf("# disagree on %zu bytes starting %02x\n", n, n ? (unsigned char)t[0] : 0);
		json_decref(js);
	}
	ok(agree, "recjson_utf8_ok agrees with jansson on 200000 generated byte strings");

	/* nesting: what jansson parses fits; a cycle is refused, not a crash */
	deep = inner = json_array();
	for (i = 0; i < 2040; i++) {
		v = json_array();
		json_array_append_new(inner, v);
		inner = v;
	}
	ok(same(deep), "2040 levels deep: the same bytes");
	json_array_append(inner, deep); /* a cycle */
	is_int(recjson_dump(&b, deep), -EINVAL, "a cycle is refused");
	json_array_clear(inner);
	json_decref(deep);
	recjson_free(&b);

	recjson_int(&b, LLONG_MIN);
	recjson_raw(&b, " ", 1);
	recjson_int(&b, 0);
	ok(b.len == 22 && !memcmp(b.p, "-9223372036854775808 0", 22), "integers at the edges");
	recjson_free(&b);
	return tap_failed ? 1 : 0;
}
