/* Description: masking: rules (tests/data/mask/rules.json) and their errors, every case of
 * tests/data/mask/rewrite.cases (the bypass shapes: aliases, expressions, TO_JSON_STRING,
 * CTEs, joins, CTAS, views, wildcards, time travel, TABLESAMPLE, refusals), each routine per
 * type in SQL and in C (short strings, invalid emails, UTF-8), row masking with nested and
 * repeated RECORDs and the shapes it refuses (escaped keys, odd column shapes, mismatched
 * brackets, bad escapes), mask_row (one row, as mask_rows masks it, or nothing), and notes
 * on the rewrite time and the row-masking rate. */
#include <time.h>

#include "mask.h"
#include "tap.h"

#define KEY "0123456789abcdef0123456789abcdef"

static struct mask_rules *rules;
static const char *const groups[] = { "agents" };

/* The lookup a caller gives mask_rewrite: the rules for the test subject. */
static int lookup(void *ctx, const char *name, int wildcard, struct mask_set *out)
{
	(void)ctx;
	return mask_rules_for(rules, "/agents.slice/a", groups, 1, name, wildcard, out);
}

static struct sql_stmt stmts[256];
static struct sql_table tables[512];
static struct sql_token toks[8192];
static char names[65536];
static char out[1 << 16];

/* Analyze and rewrite <sql>; returns mask_rewrite's result. */
static int rewrite(const char *sql, struct mask_report *rep)
{
	struct sql_result r;

	sql_result_init(&r, stmts, 256, tables, 512, toks, 8192, names, sizeof(names));
	sql_analyze(sql, strlen(sql), "demo-project", "crm", &r);
	return mask_rewrite(sql, strlen(sql), &r, 0, lookup, NULL, out, sizeof(out), rep);
}

/* Replace each {C} {K1} {K2} of src into dst. */
static void expand(const char *src, char *dst, size_t cap, const char *c, const char *k1,
		   const char *k2)
{
	size_t o = 0;

	while (*src && o + 1 < cap) {
		const char *rep = NULL;
		size_t skip = 0;

		if (!strncmp(src, "{C}", 3))
			rep = c, skip = 3;
		else if (!strncmp(src, "{K1}", 4))
			rep = k1, skip = 4;
		else if (!strncmp(src, "{K2}", 4))
			rep = k2, skip = 4;
		if (rep) {
			size_t n = strlen(rep);

			if (o + n >= cap)
				break;
			memcpy(dst + o, rep, n);
			o += n;
			src += skip;
		} else {
			dst[o++] = *src++;
		}
	}
	dst[o] = '\0';
}

static const char *const CUSTOMERS_C =
	"TO_HEX(SHA256(ssn)) AS ssn, "
	"IF(REGEXP_CONTAINS(email, r'^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'), CONCAT('XXXXX', "
	"SUBSTR(email, STRPOS(email, '@'))), TO_HEX(SHA256(email))) AS email, "
	"IF(CHAR_LENGTH(card_number) > 4, CONCAT('XXXXX', SUBSTR(card_number, -4)), "
	"TO_HEX(SHA256(card_number))) AS card_number, "
	"IF(phone IS NULL, NULL, '') AS phone, "
	"DATE_TRUNC(birth_date, YEAR) AS birth_date, "
	"IF(name IS NULL, NULL, '[redacted]') AS name, "
	"TO_HEX(SHA256(CONCAT('{K2}', TO_HEX(SHA256(CONCAT('{K1}', CAST(customer_id AS "
	"STRING))))))) AS customer_id, "
	"IF(address IS NULL, NULL, (SELECT AS STRUCT address.* REPLACE (IF(address.street IS "
	"NULL, NULL, '[redacted]') AS street))) AS address";

/* Every case of rewrite.cases. */
static void cases(const char *k1, const char *k2)
{
	FILE *f = fopen("tests/data/mask/rewrite.cases", "r");
	char line[8192], sql[8192] = "", c[4096], want[16384];
	int n = 0, have = 0;

	if (!ok(f != NULL, "rewrite.cases opens"))
		return;
	expand(CUSTOMERS_C, c, sizeof(c), "{C}", k1, k2);
	while (fgets(line, sizeof(line), f)) {
		struct mask_report rep;
		int rc;

		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "> ", 2)) {
			snprintf(sql, sizeof(sql), "%s", line + 2);
			have = 1;
			continue;
		}
		if (!have || (strncmp(line, "< ", 2) && strncmp(line, "! ", 2)))
			continue;
		have = 0;
		n++;
		rc = rewrite(sql, &rep);
		if (line[0] == '!') {
			if (!ok(rc == 1 && strstr(rep.reason, line + 2), "refused: %s", sql))
				printf("#   rc %d reason: %s\n#   out: %s\n", rc, rep.reason,
				       rc == 0 ? out : "");
			continue;
		}
		if (!strcmp(line + 2, "="))
			snprintf(want, sizeof(want), "%s", sql);
		else
			expand(line + 2, want, sizeof(want), c, k1, k2);
		if (rc != 0) {
			ok(0, "rewritten: %s", sql);
			printf("#   refused: %s\n", rep.reason);
			continue;
		}
		is_str(out, want, "rewritten: %s", sql);
		is_int(rep.out_len, strlen(out), "report length: %s", sql);
	}
	fclose(f);
	printf("# %d rewrite cases\n", n);
}

/* Rule errors name the key path. */
static void rule_errors(void)
{
	static const struct {
		const char *json, *err;
	} bad[] = {
		{ "{}", "masks: must be an array" },
		{ "[1]", "masks[0]: must be an object" },
		{ "[{\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"}}]", "masks[0].name" },
		{ "[{\"name\":\"a\",\"columns\":{\"x\":\"sha256\"}}]", "masks[0].tables: is required" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b\"],\"columns\":{\"x\":\"sha256\"}}]",
		  "masks[0].tables[0]: must be \"project.dataset.table\"" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"md5\"}}]",
		  "masks[0].columns.x: unknown routine" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x y\":\"sha256\"}}]",
		  "masks[0].columns.x y: not a column" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"},"
		  "\"types\":{\"x\":\"WHAT\"}}]", "masks[0].types.x: unknown type" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"},"
		  "\"types\":{\"y\":\"STRING\"}}]", "masks[0].types.y: not a masked column" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"},"
		  "\"bogus\":1}]", "masks[0].bogus: unknown key" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"}},"
		  "{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"}}]",
		  "masks[1].name: 'a' is already used" },
		{ "[{\"name\":\"a\",\"tables\":[\"a.b.c\"],\"columns\":{\"x\":\"sha256\"},"
		  "\"redact_text\":\"a\\nb\"}]", "masks[0].redact_text: control characters" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
		struct mask_rules *r = NULL;
		char err[256] = "";
		int rc = mask_rules_load(j, &r, err, sizeof(err));

		if (!ok(rc == -1 && !r && strstr(err, bad[i].err), "rule error: %s", bad[i].err))
			printf("#   got: %s\n", err);
		json_decref(j);
	}
}

/* Subjects, globs and wildcard references. */
static void rule_matching(void)
{
	struct mask_set s;
	const char *other[] = { "analysts" };

	is_int(mask_rules_for(rules, "/x", groups, 1, "demo-project.crm.customers", 0, &s), 8,
	       "agents: customers has 8 masked columns");
	is_int(mask_rules_for(rules, "/x", other, 1, "demo-project.crm.customers", 0, &s), 0,
	       "another group: nothing masked");
	is_int(mask_rules_for(rules, "/x", other, 1, "demo-project.logs.events_20240101", 0, &s),
	       1, "a rule without groups applies to everyone");
	is_int(mask_rules_for(rules, "/x", groups, 1, "DEMO-PROJECT.CRM.CUSTOMERS", 0, &s), 8,
	       "table names match in any case (over-masking is safe)");
	is_int(mask_rules_for(rules, "/x", groups, 1, "demo-project.logs.events_*", 1, &s), 1,
	       "wildcard events_* covers events_2024*");
	is_int(mask_rules_for(rules, "/x", groups, 1, "demo-project.logs.events_2023*", 1, &s),
	       0, "wildcard events_2023* does not");
	is_int(mask_rules_for(rules, "/x", groups, 1, "demo-project.*", 1, &s), 9,
	       "wildcard over the whole project covers both");
	ok(mask_rules_any(rules, "/x", other, 1), "some rule applies to everyone");
}

/* SQL forms per routine and type. */
static void exprs(const struct mask_opts *o)
{
	static const struct {
		enum mask_routine r;
		enum mask_type t;
		const char *want;
	} e[] = {
		{ MASK_NULLIFY, MASK_T_INT64, "IF(FALSE, x, NULL)" },
		{ MASK_DEFAULT, MASK_T_STRING, "IF(x IS NULL, NULL, '')" },
		{ MASK_DEFAULT, MASK_T_INT64, "IF(x IS NULL, NULL, 0)" },
		{ MASK_DEFAULT, MASK_T_FLOAT64, "IF(x IS NULL, NULL, CAST(0 AS FLOAT64))" },
		{ MASK_DEFAULT, MASK_T_NUMERIC, "IF(x IS NULL, NULL, NUMERIC '0')" },
		{ MASK_DEFAULT, MASK_T_BOOL, "IF(x IS NULL, NULL, FALSE)" },
		{ MASK_DEFAULT, MASK_T_DATE, "IF(x IS NULL, NULL, DATE '1970-01-01')" },
		{ MASK_DEFAULT, MASK_T_TIMESTAMP,
		  "IF(x IS NULL, NULL, TIMESTAMP '1970-01-01 00:00:00+00')" },
		{ MASK_DEFAULT, MASK_T_BYTES, "IF(x IS NULL, NULL, b'')" },
		{ MASK_DEFAULT, MASK_T_JSON, "IF(FALSE, x, NULL)" },
		{ MASK_DEFAULT, MASK_T_UNKNOWN, "IF(FALSE, x, NULL)" },
		{ MASK_SHA256, MASK_T_STRING, "TO_HEX(SHA256(x))" },
		{ MASK_SHA256, MASK_T_BYTES, "SHA256(x)" },
		{ MASK_SHA256, MASK_T_INT64, "TO_HEX(SHA256(CAST(x AS STRING)))" },
		{ MASK_FIRST_FOUR, MASK_T_STRING,
		  "IF(CHAR_LENGTH(x) > 4, CONCAT(SUBSTR(x, 1, 4), 'XXXXX'), TO_HEX(SHA256(x)))" },
		{ MASK_DATE_YEAR, MASK_T_TIMESTAMP, "TIMESTAMP_TRUNC(x, YEAR, 'UTC')" },
		{ MASK_DATE_YEAR, MASK_T_DATETIME, "DATETIME_TRUNC(x, YEAR)" },
		{ MASK_DATE_YEAR, MASK_T_STRING, "IF(FALSE, x, NULL)" },
		{ MASK_REDACT, MASK_T_STRING, "IF(x IS NULL, NULL, '[redacted]')" },
	};
	char buf[MASK_EXPR_MAX];
	struct mask_opts nokey = { "it's", "", "" };
	size_t i;

	for (i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
		mask_expr(e[i].r, "x", e[i].t, o, buf, sizeof(buf));
		is_str(buf, e[i].want, "%s on type %d", mask_routine_name(e[i].r), e[i].t);
	}
	is_int(mask_expr(MASK_TOKENIZE, "x", MASK_T_STRING, &nokey, buf, sizeof(buf)), -1,
	       "tokenize without a key is refused");
	mask_expr(MASK_REDACT, "x", MASK_T_STRING, &nokey, buf, sizeof(buf));
	is_str(buf, "IF(x IS NULL, NULL, 'it\\'s')", "redact text is quoted");
	is_int(mask_expr(MASK_SHA256, "x", MASK_T_STRING, o, buf, 10), -1, "too small: -1");
}

/* mask_value on one input, as a string ("NULL" for NULL). */
static const char *val(enum mask_routine r, enum mask_type t, const struct mask_opts *o,
		       const char *v)
{
	static char res[512];
	int null = v == NULL;
	int n = mask_value(r, t, o, v ? v : "", v ? strlen(v) : 0, &null, res, sizeof(res));

	if (n < 0)
		return "ERROR";
	return null ? "NULL" : res;
}

/* C forms per routine and type. */
static void values(const struct mask_opts *o)
{
	is_str(val(MASK_NULLIFY, MASK_T_STRING, o, "x"), "NULL", "nullify");
	is_str(val(MASK_SHA256, MASK_T_STRING, o, NULL), "NULL", "NULL stays NULL");
	is_str(val(MASK_SHA256, MASK_T_STRING, o, "abc"),
	       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 STRING");
	is_str(val(MASK_SHA256, MASK_T_BYTES, o, "YWJj"),
	       "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "sha256 BYTES (base64 in rows)");
	is_str(val(MASK_EMAIL, MASK_T_STRING, o, "alice.smith@example.com"), "XXXXX@example.com",
	       "email");
	is_str(val(MASK_EMAIL, MASK_T_STRING, o, "abc"),
	       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "invalid email -> sha256");
	is_str(val(MASK_EMAIL, MASK_T_STRING, o, "a@b@c.d"), val(MASK_SHA256, MASK_T_STRING, o,
	       "a@b@c.d"), "two @ -> sha256");
	is_str(val(MASK_EMAIL, MASK_T_STRING, o, "a b@c.d"), val(MASK_SHA256, MASK_T_STRING, o,
	       "a b@c.d"), "space -> sha256");
	is_str(val(MASK_EMAIL, MASK_T_STRING, o, "a@localhost"),
	       val(MASK_SHA256, MASK_T_STRING, o, "a@localhost"), "no dot in domain -> sha256");
	is_str(val(MASK_FIRST_FOUR, MASK_T_STRING, o, "abcdefg"), "abcdXXXXX", "first_four");
	is_str(val(MASK_LAST_FOUR, MASK_T_STRING, o, "1234567890"), "XXXXX7890", "last_four");
	is_str(val(MASK_LAST_FOUR, MASK_T_STRING, o, "1234"), val(MASK_SHA256, MASK_T_STRING, o,
	       "1234"), "last_four of 4 characters -> sha256");
	is_str(val(MASK_FIRST_FOUR, MASK_T_STRING, o, "\xc3\xa9t\xc3\xa9s!"),
	       "\xc3\xa9t\xc3\xa9sXXXXX", "first_four counts UTF-8 characters");
	is_str(val(MASK_LAST_FOUR, MASK_T_STRING, o, "x\xc3\xa9t\xc3\xa9s"),
	       "XXXXX\xc3\xa9t\xc3\xa9s", "last_four counts UTF-8 characters");
	is_str(val(MASK_DEFAULT, MASK_T_INT64, o, "42"), "0", "default INT64");
	is_str(val(MASK_DEFAULT, MASK_T_DATE, o, "2020-05-06"), "1970-01-01", "default DATE");
	is_str(val(MASK_DEFAULT, MASK_T_BOOL, o, "true"), "false", "default BOOL");
	is_str(val(MASK_DEFAULT, MASK_T_TIMESTAMP, o, "1.7E9"), "0.0", "default TIMESTAMP");
	is_str(val(MASK_DATE_YEAR, MASK_T_DATE, o, "2030-07-17"), "2030-01-01", "date_year DATE");
	is_str(val(MASK_DATE_YEAR, MASK_T_DATETIME, o, "2030-07-17T01:45:06"),
	       "2030-01-01T00:00:00", "date_year DATETIME");
	is_str(val(MASK_DATE_YEAR, MASK_T_TIMESTAMP, o, "1.9111983060E9"), "1.893456E9",
	       "date_year TIMESTAMP (float seconds)");
	is_str(val(MASK_DATE_YEAR, MASK_T_TIMESTAMP, o, "1911198306000000"), "1893456000000000",
	       "date_year TIMESTAMP (int64 micros)");
	is_str(val(MASK_REDACT, MASK_T_INT64, o, "5"), "[redacted]", "redact");
	is_int(strlen(val(MASK_TOKENIZE, MASK_T_INT64, o, "17")), 64, "tokenize: 64 hex");
	is_str(val(MASK_TOKENIZE, MASK_T_INT64, o, "17"), val(MASK_TOKENIZE, MASK_T_INT64, o, "17"),
	       "tokenize is deterministic");
	{
		char a[128];

		snprintf(a, sizeof(a), "%s", val(MASK_TOKENIZE, MASK_T_INT64, o, "17"));
		ok(strcmp(a, val(MASK_TOKENIZE, MASK_T_INT64, o, "18")), "tokenize separates values");
	}
	ok(!strstr(val(MASK_TOKENIZE, MASK_T_INT64, o, "17"), o->k1), "token is not the key");
}

static const char *SCHEMA =
	"{\"fields\": [{\"name\": \"customer_id\", \"type\": \"INTEGER\"},"
	"{\"name\": \"ssn\", \"type\": \"STRING\"},"
	"{\"name\": \"address\", \"type\": \"RECORD\", \"fields\": ["
	"  {\"name\": \"street\", \"type\": \"STRING\"}, {\"name\": \"city\", \"type\": \"STRING\"}]},"
	"{\"name\": \"tags\", \"type\": \"STRING\", \"mode\": \"REPEATED\"},"
	"{\"name\": \"phones\", \"type\": \"RECORD\", \"mode\": \"REPEATED\", \"fields\": ["
	"  {\"name\": \"kind\", \"type\": \"STRING\"}, {\"name\": \"number\", \"type\": \"STRING\"}]},"
	"{\"name\": \"birth_date\", \"type\": \"DATE\"}]}";

/* Two rows over SCHEMA and the same rows masked by the set in rows(). */
#define ROW1 \
	"{\"f\": [{\"v\": \"1\"}, {\"v\": \"123-45-6789\"}, {\"v\": {\"f\": [{\"v\": \"1 " \
	"Main St\"}, {\"v\": \"Salem\"}]}}, {\"v\": [{\"v\": \"abc\"}]}, {\"v\": [{\"v\": " \
	"{\"f\": [{\"v\": \"home\"}, {\"v\": \"555\"}]}}]}, {\"v\": \"1999-04-05\"}]}"
#define ROW2 "{\"f\":[{\"v\":\"2\"},{\"v\":null},{\"v\":null},{\"v\":[]},{\"v\":[]},{\"v\":null}]}"
#define MASKED1 \
	"{\"f\": [{\"v\": \"1\"}, {\"v\": \"XXXXX6789\"}, {\"v\": {\"f\": [{\"v\": " \
	"\"[redacted]\"}, {\"v\": \"Salem\"}]}}, {\"v\": [{\"v\": " \
	"\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}]}, {\"v\": " \
	"[{\"v\": {\"f\": [{\"v\": \"home\"}, {\"v\": null}]}}]}, {\"v\": \"1999-01-01\"}]}"
#define MASKED2 ROW2 /* its values are NULL */

/* mask_row over a guarded copy of <row>, appended after "[" in the output; the output,
 * NUL-terminated, into <got>. */
static long row_masked(const struct mask_plan *p, const char *row, size_t max, char *got,
		       size_t cap)
{
	struct mask_buf b = { malloc(1), 1, 1, max };
	long n;

	b.p[0] = '[';
	n = mask_row(p, tap_guarded(row, strlen(row)), strlen(row), &b);
	snprintf(got, cap, "%.*s", (int)b.len, b.p);
	free(b.p);
	return n;
}

/* mask_row: one row at a time, as mask_rows masks it inside a body, or nothing of it. */
static void one_row(const struct mask_plan *p)
{
	static const struct { const char *row, *what; } bad[] = {
		{ "", "empty" },
		{ "  \n ", "whitespace only" },
		{ "{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"}]", "cut short" },
		{ "{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"", "cut inside the cells" },
		{ ROW2 ",", "a comma after the row" },
		{ ROW2 ROW2, "two rows" },
		{ "[" ROW2 "]", "a rows array, not a row" },
		{ "{\"f\":[{\"v\":\"1\"},{\"v\":\"2\"},{\"v\":null},{\"v\":[]},{\"v\":[]},"
		  "{\"v\":null},{\"v\":\"extra\"}]}", "more cells than schema fields" },
		{ "{\"\\u0066\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"}]}", "an escaped \"f\"" },
		{ "{\"f\":[{\"v\":\"1\"},{\"v\":[\"123-45-6789\"]}]}", "a masked value in an array" },
	};
	char got[1024], deep[4096];
	size_t i;

	is_int(row_masked(p, ROW1, 1 << 20, got, sizeof(got)), 5, "mask_row: values of row 1");
	is_str(got, "[" MASKED1, "mask_row: row 1 appended as mask_rows masks it");
	is_int(row_masked(p, " \r\n\t" ROW2 "\n ", 1 << 20, got, sizeof(got)), 2,
	       "mask_row: row 2 with whitespace around it (NULL leaves count)");
	is_str(got, "[ \r\n\t" MASKED2 "\n ", "mask_row: whitespace kept");
	is_int(row_masked(p, ROW1, sizeof(MASKED1) - 1, got, sizeof(got)), -1,
	       "mask_row: output bound one byte short: -1");
	is_str(got, "[", "mask_row: nothing of a refused row is appended");
	is_int(row_masked(p, ROW1, sizeof(MASKED1), got, sizeof(got)), 5,
	       "mask_row: output bound just enough");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long n = row_masked(p, bad[i].row, 1 << 20, got, sizeof(got));

		ok(n == -1 && !strcmp(got, "["), "mask_row refuses %s, appending nothing", bad[i].what);
	}

	/* an unmasked value nested at the bound of skipped values, and one deeper */
	for (i = 512; i <= 513; i++) {
		size_t k, o = (size_t)snprintf(deep, sizeof(deep), "{\"f\":[{\"v\":");

		for (k = 0; k < i; k++)
			deep[o++] = '[';
		for (k = 0; k < i; k++)
			deep[o++] = ']';
		snprintf(deep + o, sizeof(deep) - o, "}]}");
		is_int(row_masked(p, deep, 1 << 20, got, sizeof(got)), i == 512 ? 0 : -1,
		       "mask_row: an unmasked value nested %zu deep is %s", i,
		       i == 512 ? "skipped" : "refused");
	}
}

/* mask_rows over a guarded copy of <body> (an over-read crashes); the output, NUL-terminated,
 * into <got> ("" when refused). */
static long masked(const struct mask_plan *p, const char *body, char *got, size_t cap)
{
	struct mask_buf b = { NULL, 0, 0, 1 << 20 };
	long n = mask_rows(p, tap_guarded(body, strlen(body)), strlen(body), &b);

	snprintf(got, cap, "%.*s", n < 0 ? 0 : (int)b.len, b.p ? b.p : "");
	free(b.p);
	return n;
}

/* Shapes a client's parser could read differently from the walker, so that a value would
 * go out unmasked: each is refused. Over SCHEMA (ssn last_four, address.street redact, tags
 * sha256, phones.number nullify, birth_date date_year). */
static void row_refusals(const struct mask_plan *p)
{
	static const struct { const char *body, *what; } bad[] = {
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"\\u0076\":\"123-45-6789\"}]}]}",
		  "a cell key with an escape (\"\\u0076\" is \"v\")" },
		{ "{\"rows\":[{\"\\u0066\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"}]}]}",
		  "a row key with an escape" },
		{ "{\"r\\u006fws\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"}]}]}",
		  "a body key with an escape" },
		{ "{\"rows\":{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"}]}}",
		  "rows not an array" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":null},{\"v\":\"1 Main St\"}]}]}",
		  "a masked RECORD that is a string" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":null},{\"v\":null},{\"v\":\"a\"}]}]}",
		  "a masked REPEATED column that is a string" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":null},{\"v\":null},{\"v\":{}}]}]}",
		  "a masked REPEATED column that is an object" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":123456789}]}]}",
		  "a masked value that is a number" },
		{ "{\"rows\":[{\"f\":[{\"v\":[1}}]}]}",
		  "an unmasked value with mismatched brackets" },
		{ "{\"kind\":{\"a\":[1}],\"rows\":[]}", "a body value with mismatched brackets" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"12345\\u00zz\"}]}]}",
		  "a masked value with a bad \\u escape" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"12345\\u12\"}]}]}",
		  "a masked value with a short \\u escape" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\\\"}]}]}",
		  "a masked value without its closing quote" },
		{ "{\"rows\":[{\"f\":[{\"v\":\"1\"}]}] ,", "a trailing comma after the body" },
	};
	char got[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(masked(p, bad[i].body, got, sizeof(got)), -1, "refused: %s", bad[i].what);

	is_int(masked(p, "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"ab\\ud83d\\ude00\\u00e9xyz\"}]}]}",
		      got, sizeof(got)), 1, "escaped value masked");
	is_str(got, "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":\"XXXXX\xc3\xa9xyz\"}]}]}",
	       "a surrogate pair is one character (last_four)");
	is_int(masked(p, "{\"rows\":[{\"f\":[{\"v\":\"1\"},{\"v\":null},{\"v\":null},"
		      "{\"v\":null},{\"v\":null}]}]}", got, sizeof(got)), 1,
	       "null masked REPEATED and RECORD values pass");
}

/* Row masking with a hand-made set over SCHEMA. */
static void rows(const struct mask_opts *o)
{
	json_t *schema = json_loads(SCHEMA, 0, NULL);
	struct mask_set set = { 5, {
		{ "ssn", MASK_LAST_FOUR, MASK_T_UNKNOWN, o, "t" },
		{ "address.street", MASK_REDACT, MASK_T_UNKNOWN, o, "t" },
		{ "tags", MASK_SHA256, MASK_T_UNKNOWN, o, "t" },
		{ "phones.number", MASK_NULLIFY, MASK_T_UNKNOWN, o, "t" },
		{ "birth_date", MASK_DATE_YEAR, MASK_T_UNKNOWN, o, "t" },
	} };
	char err[256];
	struct mask_plan *p = mask_plan_new(schema, &set, err, sizeof(err));
	const char *in =
		"{\"kind\": \"bigquery#tableDataList\", \"totalRows\": \"2\", \"rows\": ["
		ROW1 "," ROW2 "], \"pageToken\": \"x\\\"}\"}";
	const char *want =
		"{\"kind\": \"bigquery#tableDataList\", \"totalRows\": \"2\", \"rows\": ["
		MASKED1 "," MASKED2 "], \"pageToken\": \"x\\\"}\"}";
	struct mask_buf b = { NULL, 0, 0, 1 << 20 };
	long n;

	if (!ok(p != NULL, "plan from schema")) {
		printf("#   %s\n", err);
		return;
	}
	n = mask_rows(p, in, strlen(in), &b);
	is_int(n, 7, "values masked (NULL leaves included)");
	if (b.p) {
		b.p[b.len < b.cap ? b.len : b.cap - 1] = '\0';
		if (b.len < b.cap)
			is_str(b.p, want, "nested, repeated and repeated RECORD values masked");
	}
	b.len = 0;
	is_int(mask_rows(p, "{\"rows\": [{\"f\": [{\"v\": \"1\"}]}", 30, &b), -1,
	       "truncated body: -1");
	b.len = 0;
	is_int(mask_rows(p, "{\"rows\": [{\"f\": [{\"v\":\"1\"},{\"v\":\"2\"},{\"v\":null},"
			 "{\"v\":[]},{\"v\":[]},{\"v\":null},{\"v\":\"extra\"}]}]}", 92, &b), -1,
	       "more cells than schema fields: -1");
	b.len = 0;
	b.max = 16;
	is_int(mask_rows(p, in, strlen(in), &b), -1, "output bound: -1");
	is_int(b.len, 0, "nothing of a refused body stays in the output");
	free(b.p);
	row_refusals(p);
	one_row(p);

	/* throughput: 1 masked column of 6, ~64 MB of rows */
	{
		size_t cap = 64u << 20, at = 0;
		char *big = malloc(cap + 64);
		struct timespec t0, t1;
		double s;
		struct mask_buf ob = { NULL, 0, 0, cap * 2 };
		struct mask_set one = { 1, { { "birth_date", MASK_DATE_YEAR, MASK_T_UNKNOWN, o,
						"t" } } };
		struct mask_plan *p1 = mask_plan_new(schema, &one, err, sizeof(err));
		const char *row = "{\"f\":[{\"v\":\"1\"},{\"v\":\"123-45-6789\"},{\"v\":{\"f\":[{"
				  "\"v\":\"1 Main Street, Springfield, somewhere long\"},{\"v\":"
				  "\"Salem\"}]}},{\"v\":[{\"v\":\"newsletter\"},{\"v\":\"vip\"}]},"
				  "{\"v\":[]},{\"v\":\"1999-04-05\"}]}";
		size_t rl = strlen(row);

		at += (size_t)sprintf(big, "{\"rows\":[");
		while (at + rl + 4 < cap) {
			memcpy(big + at, row, rl);
			at += rl;
			big[at++] = ',';
		}
		big[at - 1] = ']';
		big[at++] = '}';
		clock_gettime(CLOCK_MONOTONIC, &t0);
		n = mask_rows(p1, big, at, &ob);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		ok(n > 0 && ob.len == at, "big body masked (%ld values)", n);
		printf("# note: row masking %.2f GB/s (1 of 6 columns masked, %zu MB)\n",
		       (double)at / s / 1e9, at >> 20);
		free(ob.p);
		free(big);
		mask_plan_free(p1);
	}
	mask_plan_free(p);
	json_decref(schema);
}

/* Rewrite time of a typical query. */
static void timing(void)
{
	const char *q = "SELECT c.name, c.email, SUM(o.amount) AS total FROM crm.customers c "
			"JOIN sales.orders o ON o.customer_id = c.customer_id WHERE c.ssn LIKE '1%' "
			"GROUP BY 1, 2 ORDER BY total DESC LIMIT 10";
	struct timespec t0, t1;
	struct mask_report rep;
	int i, n = 20000, bad = 0;
	double us;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		bad += rewrite(q, &rep) != 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
	is_int(bad, 0, "typical query rewritten every time");
	printf("# note: analyze + rewrite of a typical query: %.1f us\n", us);
}

int main(void)
{
	FILE *f = fopen("tests/data/mask/rules.json", "r");
	json_t *j = f ? json_loadf(f, 0, NULL) : NULL;
	char err[256] = "";
	const struct mask_opts *o;
	struct mask_set s;

	if (f)
		fclose(f);
	ok(j && !mask_rules_load(json_object_get(j, "masks"), &rules, err, sizeof(err)),
	   "rules.json loads %s", err);
	json_decref(j);
	if (!rules)
		return 1;
	ok(!mask_rules_set_key(rules, (const unsigned char *)KEY, strlen(KEY)), "key set");
	ok(mask_rules_set_key(rules, (const unsigned char *)"short", 5), "short key refused");
	mask_rules_for(rules, "/x", groups, 1, "demo-project.crm.customers", 0, &s);
	o = s.c[0].opts;
	rule_errors();
	rule_matching();
	exprs(o);
	values(o);
	cases(o->k1, o->k2);
	rows(o);
	timing();
	mask_rules_free(rules);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
