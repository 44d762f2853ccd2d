/* mask.c - mask rules, masking routines (GoogleSQL and C), the source rewrite and row masking.
 *
 * Routines follow BigQuery's data-masking rules; each has one GoogleSQL form and one C form
 * over the row JSON encoding that yields the same value (tests/unit/mask.c and
 * tests/standin/masking.test.mjs check both). NULL stays NULL for every routine.
 *
 * tokenize: TO_HEX(SHA256(CONCAT(k2, TO_HEX(SHA256(CONCAT(k1, x)))))) with k1, k2 the hex
 * HMAC-SHA256 of fixed labels under the policy's secret: equal values give equal tokens
 * (joins work), the secret is never in the SQL, and k1/k2 cannot be recovered from tokens
 * (SHA-256 preimage). k1/k2 are in the rewritten SQL text, which BigQuery keeps in job
 * metadata: the caller shows agents the original SQL (jobs.get/list), strips query plans,
 * and this module refuses INFORMATION_SCHEMA.JOBS* and any view/routine body that would store
 * them. Query parameters would be no better (also kept in job metadata, and views cannot
 * hold them). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "mask.h"

static const char *const routine_names[MASK_ROUTINE_COUNT] = {
	"nullify", "default", "sha256", "email", "first_four", "last_four", "date_year",
	"redact", "tokenize",
};

struct rule_col {
	char *name;
	enum mask_routine routine;
	enum mask_type type;
};

struct list {
	char **v;
	int n;
};

struct rule {
	char *name;
	struct list groups, cgroups, tables;
	struct rule_col *cols;
	int n_cols;
	struct mask_opts opts;
	char redact[MASK_TEXT_MAX + 1];
};

struct mask_rules {
	int n;
	struct rule r[MASK_MAX_RULES];
};

/* --- small helpers ------------------------------------------------------------------------ */

/* ASCII lower case. */
static int lc(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive glob match of <s> against <p> ('*' any run without '.', '?' one byte). With <prefix>,
 * <s> is only the start of a name: true when some name starting with <s> matches. */
static int glob_match(const char *p, const char *s, int prefix)
{
	const char *star = NULL, *ss = NULL;

	for (;;) {
		if (!*s) {
			if (prefix)
				return 1;
			while (*p == '*')
				p++;
			return !*p;
		}
		if (*p == '*') {
			star = ++p;
			ss = s;
			continue;
		}
		if (*p && (*p == '?' || lc((unsigned char)*p) == lc((unsigned char)*s))) {
			p++;
			s++;
			continue;
		}
		if (star && *ss != '.') { /* '*' never crosses a '.' of the name */
			p = star;
			s = ++ss;
			continue;
		}
		return 0;
	}
}

/* A bounded string builder; err is set once anything did not fit. */
struct sb {
	char *p;
	size_t n, cap;
	int err;
};

/* Append s[0..n). */
static void sb_putn(struct sb *b, const char *s, size_t n)
{
	if (b->err || n >= b->cap - b->n) {
		b->err = 1;
		return;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* Append a C string. */
static void sb_put(struct sb *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

/* Is s[0..n) a plain GoogleSQL identifier that needs no backticks? */
static int plain_ident(const char *s, size_t n)
{
	size_t i;

	if (!n || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return !sql_kw_reserved(sql_kw_lookup(s, n));
}

/* Append identifier s[0..n), backticked (with escapes) when needed. */
static void sb_ident(struct sb *b, const char *s, size_t n)
{
	size_t i;

	if (plain_ident(s, n)) {
		sb_putn(b, s, n);
		return;
	}
	sb_putn(b, "`", 1);
	for (i = 0; i < n; i++) {
		if (s[i] == '`' || s[i] == '\\')
			sb_putn(b, "\\", 1);
		sb_putn(b, s + i, 1);
	}
	sb_putn(b, "`", 1);
}

/* Append a GoogleSQL string literal holding s (validated text: no control characters). */
static void sb_str(struct sb *b, const char *s)
{
	sb_putn(b, "'", 1);
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			sb_putn(b, "\\", 1);
		sb_putn(b, s, 1);
	}
	sb_putn(b, "'", 1);
}

/* Lower-case hex of in[0..n) into out (2n+1 bytes). */
static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* --- rules -------------------------------------------------------------------------------- */

int mask_routine_parse(const char *s)
{
	int i;

	for (i = 0; s && i < MASK_ROUTINE_COUNT; i++)
		if (!strcmp(s, routine_names[i]))
			return i;
	return -1;
}

const char *mask_routine_name(enum mask_routine r)
{
	return (unsigned)r < MASK_ROUTINE_COUNT ? routine_names[r] : "?";
}

enum mask_type mask_type_parse(const char *s)
{
	static const struct {
		const char *n;
		enum mask_type t;
	} m[] = {
		{ "STRING", MASK_T_STRING }, { "BYTES", MASK_T_BYTES }, { "INT64", MASK_T_INT64 },
		{ "INTEGER", MASK_T_INT64 }, { "FLOAT64", MASK_T_FLOAT64 },
		{ "FLOAT", MASK_T_FLOAT64 }, { "NUMERIC", MASK_T_NUMERIC },
		{ "BIGNUMERIC", MASK_T_BIGNUMERIC }, { "BOOL", MASK_T_BOOL },
		{ "BOOLEAN", MASK_T_BOOL }, { "DATE", MASK_T_DATE }, { "DATETIME", MASK_T_DATETIME },
		{ "TIME", MASK_T_TIME }, { "TIMESTAMP", MASK_T_TIMESTAMP },
		{ "GEOGRAPHY", MASK_T_GEOGRAPHY }, { "JSON", MASK_T_JSON },
		{ "INTERVAL", MASK_T_INTERVAL }, { "RECORD", MASK_T_STRUCT },
		{ "STRUCT", MASK_T_STRUCT }, { "ARRAY", MASK_T_ARRAY },
	};
	size_t i, n;

	if (!s)
		return MASK_T_UNKNOWN;
	for (n = 0; isalnum((unsigned char)s[n]); n++)
		;
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strlen(m[i].n) == n && !strncasecmp(s, m[i].n, n))
			return m[i].t;
	return MASK_T_UNKNOWN;
}

/* Free the strings of list <l>. */
static void list_free(struct list *l)
{
	int i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void mask_rules_free(struct mask_rules *r)
{
	int i, j;

	if (!r)
		return;
	for (i = 0; i < r->n; i++) {
		struct rule *u = &r->r[i];

		free(u->name);
		list_free(&u->groups);
		list_free(&u->cgroups);
		list_free(&u->tables);
		for (j = 0; j < u->n_cols; j++)
			free(u->cols[j].name);
		free(u->cols);
	}
	free(r);
}

/* Load an optional array of strings at <o>.<key> into <l>. Returns 0 or -1 with err. */
static int load_list(json_t *o, const char *key, const char *at, struct list *l, int required,
		     char *err, size_t errlen)
{
	json_t *a = json_object_get(o, key), *v;
	size_t i;

	if (!a) {
		if (required)
			snprintf(err, errlen, "%s.%s: is required", at, key);
		return required ? -1 : 0;
	}
	if (!json_is_array(a) || json_array_size(a) > MASK_MAX_LIST ||
	    (required && !json_array_size(a))) {
		snprintf(err, errlen, "%s.%s: must be an array of 1 to %d strings", at, key,
			 MASK_MAX_LIST);
		return -1;
	}
	l->v = calloc(json_array_size(a) + 1, sizeof(char *));
	if (!l->v) {
		snprintf(err, errlen, "%s.%s: out of memory", at, key);
		return -1;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || !json_string_length(v) ||
		    json_string_length(v) >= MASK_NAME_MAX) {
			snprintf(err, errlen, "%s.%s[%zu]: must be a non-empty string", at, key, i);
			return -1;
		}
		if (!(l->v[l->n++] = strdup(json_string_value(v)))) {
			snprintf(err, errlen, "%s.%s: out of memory", at, key);
			return -1;
		}
	}
	return 0;
}

/* Is <s> a column path: identifiers joined by dots? */
static int column_path(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *b = p;

		if (!(isalpha((unsigned char)*p) || *p == '_'))
			return 0;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p - b > 128)
			return 0;
		if (!*p)
			return 1;
		if (*p++ != '.')
			return 0;
	}
}

/* Load masks[i] = <o> into <u>. */
static int load_rule(json_t *o, int i, struct rule *u, char *err, size_t errlen)
{
	char at[32];
	json_t *name, *cols, *types, *rt, *v;
	const char *key;
	size_t k;

	snprintf(at, sizeof(at), "masks[%d]", i);
	if (!json_is_object(o)) {
		snprintf(err, errlen, "%s: must be an object", at);
		return -1;
	}
	json_object_foreach(o, key, v) {
		if (strcmp(key, "name") && strcmp(key, "groups") && strcmp(key, "cgroups") &&
		    strcmp(key, "tables") && strcmp(key, "columns") && strcmp(key, "types") &&
		    strcmp(key, "redact_text")) {
			snprintf(err, errlen, "%s.%s: unknown key", at, key);
			return -1;
		}
	}
	name = json_object_get(o, "name");
	if (!json_is_string(name) || !json_string_length(name) ||
	    json_string_length(name) >= MASK_NAME_MAX) {
		snprintf(err, errlen, "%s.name: must be a non-empty string", at);
		return -1;
	}
	if (!(u->name = strdup(json_string_value(name)))) {
		snprintf(err, errlen, "%s.name: out of memory", at);
		return -1;
	}
	if (load_list(o, "groups", at, &u->groups, 0, err, errlen) ||
	    load_list(o, "cgroups", at, &u->cgroups, 0, err, errlen) ||
	    load_list(o, "tables", at, &u->tables, 1, err, errlen))
		return -1;
	for (k = 0; k < (size_t)u->tables.n; k++) {
		const char *t = u->tables.v[k];
		int dots = 0;

		for (; *t; t++)
			dots += *t == '.';
		if (dots != 2) {
			snprintf(err, errlen, "%s.tables[%zu]: must be \"project.dataset.table\" "
				 "(globs allowed)", at, k);
			return -1;
		}
	}
	rt = json_object_get(o, "redact_text");
	snprintf(u->redact, sizeof(u->redact), "[redacted]");
	if (rt) {
		const unsigned char *s;

		if (!json_is_string(rt) || json_string_length(rt) > MASK_TEXT_MAX) {
			snprintf(err, errlen, "%s.redact_text: must be a string of at most %d bytes",
				 at, MASK_TEXT_MAX);
			return -1;
		}
		for (s = (const unsigned char *)json_string_value(rt); *s; s++)
			if (*s < 0x20 || *s == 0x7f) {
				snprintf(err, errlen, "%s.redact_text: control characters are not "
					 "allowed", at);
				return -1;
			}
		snprintf(u->redact, sizeof(u->redact), "%s", json_string_value(rt));
	}
	u->opts.redact_text = u->redact;
	cols = json_object_get(o, "columns");
	if (!json_is_object(cols) || !json_object_size(cols) ||
	    json_object_size(cols) > MASK_MAX_LIST) {
		snprintf(err, errlen, "%s.columns: must be an object of 1 to %d column: routine",
			 at, MASK_MAX_LIST);
		return -1;
	}
	types = json_object_get(o, "types");
	if (types && !json_is_object(types)) {
		snprintf(err, errlen, "%s.types: must be an object of column: type", at);
		return -1;
	}
	json_object_foreach(types, key, v) {
		if (!json_object_get(cols, key)) {
			snprintf(err, errlen, "%s.types.%s: not a masked column", at, key);
			return -1;
		}
		if (!json_is_string(v) || mask_type_parse(json_string_value(v)) == MASK_T_UNKNOWN) {
			snprintf(err, errlen, "%s.types.%s: unknown type", at, key);
			return -1;
		}
	}
	u->cols = calloc(json_object_size(cols), sizeof(*u->cols));
	if (!u->cols) {
		snprintf(err, errlen, "%s.columns: out of memory", at);
		return -1;
	}
	json_object_foreach(cols, key, v) {
		int r = json_is_string(v) ? mask_routine_parse(json_string_value(v)) : -1;
		struct rule_col *c = &u->cols[u->n_cols];

		if (!column_path(key) || strlen(key) >= MASK_NAME_MAX) {
			snprintf(err, errlen, "%s.columns.%s: not a column name or path", at, key);
			return -1;
		}
		if (r < 0) {
			snprintf(err, errlen, "%s.columns.%s: unknown routine (one of nullify, "
				 "default, sha256, email, first_four, last_four, date_year, redact, "
				 "tokenize)", at, key);
			return -1;
		}
		if (!(c->name = strdup(key))) {
			snprintf(err, errlen, "%s.columns: out of memory", at);
			return -1;
		}
		c->routine = (enum mask_routine)r;
		c->type = types ? mask_type_parse(json_string_value(json_object_get(types, key)))
				: MASK_T_UNKNOWN;
		u->n_cols++;
	}
	return 0;
}

int mask_rules_load(json_t *masks, struct mask_rules **out, char *err, size_t errlen)
{
	struct mask_rules *r;
	json_t *v;
	size_t i, j;

	*out = NULL;
	if (masks && !json_is_array(masks)) {
		snprintf(err, errlen, "masks: must be an array of mask rules");
		return -1;
	}
	if (json_array_size(masks) > MASK_MAX_RULES) {
		snprintf(err, errlen, "masks: at most %d rules", MASK_MAX_RULES);
		return -1;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "masks: out of memory");
		return -1;
	}
	json_array_foreach(masks, i, v) {
		if (load_rule(v, (int)i, &r->r[r->n++], err, errlen)) {
			mask_rules_free(r);
			return -1;
		}
		for (j = 0; j + 1 < (size_t)r->n; j++)
			if (!strcmp(r->r[j].name, r->r[r->n - 1].name)) {
				snprintf(err, errlen, "masks[%zu].name: '%s' is already used", i,
					 r->r[j].name);
				mask_rules_free(r);
				return -1;
			}
	}
	*out = r;
	return 0;
}

int mask_rules_set_key(struct mask_rules *r, const unsigned char *key, size_t len)
{
	unsigned char k1[32], k2[32];
	unsigned int n = 0;
	int i;

	if (!r || !key || len < 16)
		return -1;
	if (!HMAC(EVP_sha256(), key, (int)len, (const unsigned char *)"sluice tokenize k1", 18,
		  k1, &n) || n != 32)
		return -1;
	if (!HMAC(EVP_sha256(), key, (int)len, (const unsigned char *)"sluice tokenize k2", 18,
		  k2, &n) || n != 32)
		return -1;
	for (i = 0; i < r->n; i++) {
		hex(k1, 32, r->r[i].opts.k1);
		hex(k2, 32, r->r[i].opts.k2);
	}
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	return 0;
}

/* Does rule <u> apply to the subject? A rule naming neither groups nor cgroups applies to
 * everyone. */
static int rule_subject(const struct rule *u, const char *cgroup, const char *const *groups,
			int n_groups)
{
	int i, j;

	if (!u->groups.n && !u->cgroups.n)
		return 1;
	for (i = 0; i < u->cgroups.n; i++)
		if (glob_match(u->cgroups.v[i], cgroup ? cgroup : "", 0))
			return 1;
	for (i = 0; i < u->groups.n; i++)
		for (j = 0; j < n_groups; j++)
			if (groups[j] && glob_match(u->groups.v[i], groups[j], 0))
				return 1;
	return 0;
}

int mask_rules_any(const struct mask_rules *r, const char *cgroup, const char *const *groups,
		   int n_groups)
{
	int i;

	for (i = 0; r && i < r->n; i++)
		if (rule_subject(&r->r[i], cgroup, groups, n_groups))
			return 1;
	return 0;
}

int mask_rules_for(const struct mask_rules *r, const char *cgroup, const char *const *groups,
		   int n_groups, const char *name, int wildcard, struct mask_set *out)
{
	char pre[MASK_NAME_MAX * 4];
	int i, j, k, t;

	out->n = 0;
	if (wildcard) {
		size_t n = strlen(name);

		if (n && name[n - 1] == '*')
			n--;
		if (n >= sizeof(pre))
			return -1;
		memcpy(pre, name, n);
		pre[n] = '\0';
		name = pre;
	}
	for (i = 0; r && i < r->n; i++) {
		const struct rule *u = &r->r[i];
		int hit = 0;

		if (!rule_subject(u, cgroup, groups, n_groups))
			continue;
		for (t = 0; t < u->tables.n && !hit; t++)
			hit = glob_match(u->tables.v[t], name, wildcard);
		if (!hit)
			continue;
		for (j = 0; j < u->n_cols; j++) {
			for (k = 0; k < out->n; k++)
				if (!strcasecmp(out->c[k].name, u->cols[j].name))
					break;
			if (k < out->n)
				continue; /* an earlier rule decided it */
			if (out->n >= MASK_MAX_COLS)
				return -1;
			out->c[out->n++] = (struct mask_col){ u->cols[j].name, u->cols[j].routine,
							      u->cols[j].type, &u->opts, u->name };
		}
	}
	return out->n;
}

/* --- routines in GoogleSQL ------------------------------------------------------------------ */

/* The text form of x for hashing and string routines: x itself for STRING (and unknown),
 * TO_BASE64 for BYTES (as row JSON encodes it), CAST(x AS STRING) otherwise. */
static void sb_as_string(struct sb *b, const char *x, enum mask_type t)
{
	if (t == MASK_T_STRING || t == MASK_T_UNKNOWN) {
		sb_put(b, x);
	} else if (t == MASK_T_BYTES) {
		sb_put(b, "TO_BASE64(");
		sb_put(b, x);
		sb_put(b, ")");
	} else {
		sb_put(b, "CAST(");
		sb_put(b, x);
		sb_put(b, " AS STRING)");
	}
}

/* SHA-256 of x: BYTES stay BYTES, everything else is the lower-case hex STRING. */
static void sb_sha(struct sb *b, const char *x, enum mask_type t)
{
	if (t == MASK_T_BYTES) {
		sb_put(b, "SHA256(");
		sb_put(b, x);
		sb_put(b, ")");
		return;
	}
	sb_put(b, "TO_HEX(SHA256(");
	sb_as_string(b, x, t);
	sb_put(b, "))");
}

int mask_expr(enum mask_routine r, const char *x, enum mask_type t, const struct mask_opts *o,
	      char *out, size_t outlen)
{
	struct sb b = { out, 0, outlen, outlen == 0 };

	if (outlen)
		out[0] = '\0';
	switch (r) {
	case MASK_NULLIFY:
	nullify:
		sb_put(&b, "IF(FALSE, ");
		sb_put(&b, x);
		sb_put(&b, ", NULL)");
		break;
	case MASK_DEFAULT: {
		const char *lit;

		switch (t) {
		case MASK_T_STRING: lit = "''"; break;
		case MASK_T_BYTES: lit = "b''"; break;
		case MASK_T_INT64: lit = "0"; break;
		case MASK_T_FLOAT64: lit = "CAST(0 AS FLOAT64)"; break;
		case MASK_T_NUMERIC: lit = "NUMERIC '0'"; break;
		case MASK_T_BIGNUMERIC: lit = "BIGNUMERIC '0'"; break;
		case MASK_T_BOOL: lit = "FALSE"; break;
		case MASK_T_DATE: lit = "DATE '1970-01-01'"; break;
		case MASK_T_DATETIME: lit = "DATETIME '1970-01-01 00:00:00'"; break;
		case MASK_T_TIME: lit = "TIME '00:00:00'"; break;
		case MASK_T_TIMESTAMP: lit = "TIMESTAMP '1970-01-01 00:00:00+00'"; break;
		case MASK_T_GEOGRAPHY: lit = "ST_GEOGPOINT(0, 0)"; break;
		case MASK_T_ARRAY: lit = "[]"; break;
		default: goto nullify; /* JSON: NULL; unknown type: NULL of its type */
		}
		sb_put(&b, "IF(");
		sb_put(&b, x);
		sb_put(&b, " IS NULL, NULL, ");
		sb_put(&b, lit);
		sb_put(&b, ")");
		break;
	}
	case MASK_SHA256:
		sb_sha(&b, x, t);
		break;
	case MASK_EMAIL:
		sb_put(&b, "IF(REGEXP_CONTAINS(");
		sb_as_string(&b, x, t);
		sb_put(&b, ", r'^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'), CONCAT('XXXXX', SUBSTR(");
		sb_as_string(&b, x, t);
		sb_put(&b, ", STRPOS(");
		sb_as_string(&b, x, t);
		sb_put(&b, ", '@'))), ");
		sb_sha(&b, x, t == MASK_T_BYTES ? MASK_T_STRING : t);
		sb_put(&b, ")");
		break;
	case MASK_FIRST_FOUR:
	case MASK_LAST_FOUR:
		sb_put(&b, "IF(CHAR_LENGTH(");
		sb_as_string(&b, x, t);
		sb_put(&b, ") > 4, CONCAT(");
		if (r == MASK_LAST_FOUR)
			sb_put(&b, "'XXXXX', SUBSTR(");
		else
			sb_put(&b, "SUBSTR(");
		sb_as_string(&b, x, t);
		sb_put(&b, r == MASK_LAST_FOUR ? ", -4)), " : ", 1, 4), 'XXXXX'), ");
		sb_sha(&b, x, t == MASK_T_BYTES ? MASK_T_STRING : t);
		sb_put(&b, ")");
		break;
	case MASK_DATE_YEAR:
		if (t == MASK_T_DATETIME)
			sb_put(&b, "DATETIME_TRUNC(");
		else if (t == MASK_T_TIMESTAMP)
			sb_put(&b, "TIMESTAMP_TRUNC(");
		else if (t == MASK_T_DATE || t == MASK_T_UNKNOWN)
			sb_put(&b, "DATE_TRUNC(");
		else
			goto nullify;
		sb_put(&b, x);
		sb_put(&b, t == MASK_T_TIMESTAMP ? ", YEAR, 'UTC')" : ", YEAR)");
		break;
	case MASK_REDACT:
		sb_put(&b, "IF(");
		sb_put(&b, x);
		sb_put(&b, " IS NULL, NULL, ");
		sb_str(&b, o && o->redact_text ? o->redact_text : "[redacted]");
		sb_put(&b, ")");
		break;
	case MASK_TOKENIZE:
		if (!o || strlen(o->k1) != 64 || strlen(o->k2) != 64)
			return -1;
		sb_put(&b, "TO_HEX(SHA256(CONCAT('");
		sb_put(&b, o->k2);
		sb_put(&b, "', TO_HEX(SHA256(CONCAT('");
		sb_put(&b, o->k1);
		sb_put(&b, "', ");
		sb_as_string(&b, x, t);
		sb_put(&b, "))))))");
		break;
	default:
		return -1;
	}
	return b.err ? -1 : (int)b.n;
}

/* --- routines in C -------------------------------------------------------------------------- */

/* Decode base64 in[0..n) into out (cap bytes). Returns the length or -1. */
static long b64dec(const char *in, size_t n, unsigned char *out, size_t cap)
{
	int len;

	if (n % 4 || (n / 4) * 3 > cap)
		return -1;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	if (n && in[n - 1] == '=')
		len--;
	if (n > 1 && in[n - 2] == '=')
		len--;
	return len;
}

/* Hex SHA-256 of a[0..an) followed by c[0..cn) into out (65 bytes). */
static void sha_hex2(const char *a, size_t an, const char *c, size_t cn, char *out)
{
	static __thread EVP_MD_CTX *x; /* one per thread, kept: no allocation per value */
	unsigned char md[32];

	if (!an) {
		SHA256((const unsigned char *)c, cn, md);
	} else {
		if (!x && !(x = EVP_MD_CTX_new()))
			abort();
		if (!EVP_DigestInit_ex(x, EVP_sha256(), NULL) || !EVP_DigestUpdate(x, a, an) ||
		    !EVP_DigestUpdate(x, c, cn) || !EVP_DigestFinal_ex(x, md, NULL))
			abort();
	}
	hex(md, 32, out);
}

/* Number of UTF-8 characters in s[0..n). */
static size_t u8len(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* Byte offset of character <k> of s[0..n). */
static size_t u8off(const char *s, size_t n, size_t k)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && c++ == k)
			return i;
	return n;
}

/* RE2's \s: [\t\n\f\r ]. */
static int re2_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Does s[0..n) match ^[^@\s]+@[^@\s]+\.[^@\s]+$ ? Sets *at to the '@'. */
static int email_valid(const char *s, size_t n, size_t *at)
{
	size_t i, a = n, dot = 0;

	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] > '@')
			continue; /* most bytes: neither '@' nor space */
		if (re2_space((unsigned char)s[i]))
			return 0;
		if (s[i] == '@') {
			if (a != n)
				return 0;
			a = i;
		}
	}
	if (a == 0 || a == n)
		return 0;
	for (i = a + 2; i + 1 < n; i++)
		if (s[i] == '.')
			dot = 1;
	*at = a;
	return dot;
}

/* Format seconds <sec> as BigQuery's row JSON writes TIMESTAMP: "1.5778368E9". */
static int ts_float(long long sec, char *out, size_t outlen)
{
	char m[64];
	char *e, *z;
	int ex;

	if (!sec)
		return snprintf(out, outlen, "0.0");
	snprintf(m, sizeof(m), "%.15E", (double)sec);
	e = strchr(m, 'E');
	ex = atoi(e + 1);
	*e = '\0';
	for (z = e - 1; *z == '0'; z--)
		*z = '\0';
	if (*z == '.')
		z[1] = '0', z[2] = '\0';
	return snprintf(out, outlen, "%sE%d", m, ex);
}

/* First second of the UTC year holding <sec>. */
static long long year_start(long long sec)
{
	time_t t = (time_t)sec;
	struct tm tm;

	gmtime_r(&t, &tm);
	tm.tm_mon = 0, tm.tm_mday = 1, tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (long long)timegm(&tm);
}

int mask_value(enum mask_routine r, enum mask_type t, const struct mask_opts *o,
	       const char *v, size_t n, int *is_null, char *out, size_t outlen)
{
	char h[65];
	int w;

	if (!outlen)
		return -1;
	out[0] = '\0';
	if (*is_null)
		return 0;
	switch (r) {
	case MASK_NULLIFY:
	nullify:
		*is_null = 1;
		return 0;
	case MASK_DEFAULT: {
		const char *lit;

		switch (t) {
		case MASK_T_STRING: case MASK_T_BYTES: lit = ""; break;
		case MASK_T_INT64: case MASK_T_NUMERIC: case MASK_T_BIGNUMERIC: lit = "0"; break;
		case MASK_T_FLOAT64: lit = "0.0"; break;
		case MASK_T_BOOL: lit = "false"; break;
		case MASK_T_DATE: lit = "1970-01-01"; break;
		case MASK_T_DATETIME: lit = "1970-01-01T00:00:00"; break;
		case MASK_T_TIME: lit = "00:00:00"; break;
		case MASK_T_TIMESTAMP: lit = memchr(v, '.', n) || memchr(v, 'E', n) ? "0.0" : "0";
			break;
		case MASK_T_GEOGRAPHY: lit = "POINT(0 0)"; break;
		default: goto nullify;
		}
		w = snprintf(out, outlen, "%s", lit);
		break;
	}
	case MASK_SHA256:
	sha:
		if (t == MASK_T_BYTES && r == MASK_SHA256) {
			unsigned char small[4096], md[32], *raw = small;
			long m;

			if (n / 4 * 3 > sizeof(small) && !(raw = malloc(n / 4 * 3 + 3)))
				return -1;
			m = b64dec(v, n, raw, raw == small ? sizeof(small) : n / 4 * 3 + 3);
			if (m >= 0)
				SHA256(raw, (size_t)m, md);
			if (raw != small)
				free(raw);
			if (m < 0 || outlen < 45)
				return -1;
			w = EVP_EncodeBlock((unsigned char *)out, md, 32);
			break;
		}
		sha_hex2("", 0, v, n, h);
		w = snprintf(out, outlen, "%s", h);
		break;
	case MASK_EMAIL: {
		size_t at;

		if (!email_valid(v, n, &at))
			goto sha;
		if (5 + n - at >= outlen)
			return -1;
		memcpy(out, "XXXXX", 5);
		memcpy(out + 5, v + at, n - at);
		out[w = (int)(5 + n - at)] = '\0';
		break;
	}
	case MASK_FIRST_FOUR:
	case MASK_LAST_FOUR: {
		size_t c = u8len(v, n), k;

		if (c <= 4)
			goto sha;
		if (r == MASK_FIRST_FOUR) {
			k = u8off(v, n, 4);
			if (k + 6 > outlen)
				return -1;
			memcpy(out, v, k);
			memcpy(out + k, "XXXXX", 6);
			w = (int)k + 5;
		} else {
			k = u8off(v, n, c - 4);
			if (5 + n - k + 1 > outlen)
				return -1;
			memcpy(out, "XXXXX", 5);
			memcpy(out + 5, v + k, n - k);
			out[w = (int)(5 + n - k)] = '\0';
		}
		break;
	}
	case MASK_DATE_YEAR:
		if (t == MASK_T_DATE || t == MASK_T_DATETIME || t == MASK_T_UNKNOWN) {
			size_t y = 0;

			while (y < n && y < 5 && isdigit((unsigned char)v[y]))
				y++;
			if (y < 4 || y >= n || v[y] != '-')
				return -1;
			w = snprintf(out, outlen, "%.*s-01-01%s", (int)y, v,
				     t == MASK_T_DATETIME || memchr(v, 'T', n) ? "T00:00:00" : "");
		} else if (t == MASK_T_TIMESTAMP) {
			char num[64], *end;

			if (n >= sizeof(num))
				return -1;
			memcpy(num, v, n);
			num[n] = '\0';
			if (memchr(v, '.', n) || memchr(v, 'E', n) || memchr(v, 'e', n)) {
				double d = strtod(num, &end);
				long long s = (long long)d;

				if (*end)
					return -1;
				if ((double)s > d)
					s--;
				w = ts_float(year_start(s), out, outlen);
			} else {
				long long us = strtoll(num, &end, 10), s;

				if (*end)
					return -1;
				s = us / 1000000 - (us % 1000000 < 0);
				w = snprintf(out, outlen, "%lld", year_start(s) * 1000000);
			}
		} else {
			goto nullify;
		}
		break;
	case MASK_REDACT:
		w = snprintf(out, outlen, "%s", o && o->redact_text ? o->redact_text : "[redacted]");
		break;
	case MASK_TOKENIZE:
		if (!o || strlen(o->k1) != 64 || strlen(o->k2) != 64 || outlen < 65)
			return -1;
		sha_hex2(o->k1, 64, v, n, h);
		sha_hex2(o->k2, 64, h, 64, out);
		w = 64;
		break;
	default:
		return -1;
	}
	return w < 0 || (size_t)w >= outlen ? -1 : w;
}

/* --- the rewrite ---------------------------------------------------------------------------- */

/* A reference to replace: text [a, b) and its table. */
struct repl {
	const char *a, *b;
	const struct sql_table *t;
	int set; /* index into the sets */
};

struct rw {
	const char *sql;
	size_t len;
	struct sb out;
	struct repl *r;
	int n, idx;
	struct mask_set *sets; /* one per replacement: caller-sized scratch */
	int suffix, ptime, pdate;
	struct mask_report *rep;
};

/* Refuse: fill the report's reason. Returns 1. */
static int refuse(struct mask_report *rep, const char *fmt, const char *arg, int stmt)
{
	char what[200];

	snprintf(what, sizeof(what), fmt, arg);
	rep->refused = 1;
	if (stmt >= 0)
		snprintf(rep->reason, sizeof(rep->reason), "sluice: statement %d: %s", stmt + 1,
			 what);
	else
		snprintf(rep->reason, sizeof(rep->reason), "sluice: %s", what);
	return 1;
}

/* Does the word <w> appear in sql[0..len) as a whole word, in any case? */
static int has_word(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w), i;

	for (i = 0; i + wl <= n; i++) {
		if (lc((unsigned char)s[i]) != lc((unsigned char)w[0]) || strncasecmp(s + i, w, wl))
			continue;
		if (i && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_'))
			continue;
		if (i + wl < n && (isalnum((unsigned char)s[i + wl]) || s[i + wl] == '_'))
			continue;
		return 1;
	}
	return 0;
}

/* The last word before <p> in the text (after whitespace), as [*w, p'). */
static int word_before(const char *sql, const char *p, const char *w)
{
	const char *e = p, *b;
	size_t n = strlen(w);

	while (e > sql && isspace((unsigned char)e[-1]))
		e--;
	b = e;
	while (b > sql && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
		b--;
	return (size_t)(e - b) == n && !strncasecmp(b, w, n);
}

static void emit_range(struct rw *w, const char *a, const char *b);

/* Append the masked columns' REPLACE items of <set> under column path <prefix> (NULL: the
 * top level): "expr AS col, ..."; a path into a RECORD rebuilds it with SELECT AS STRUCT. */
static void emit_items(struct rw *w, const struct mask_set *set, const char *prefix)
{
	size_t pl = prefix ? strlen(prefix) + 1 : 0;
	int i, j, first = 1;

	for (i = 0; i < set->n; i++) {
		const char *nm = set->c[i].name, *rest, *dot;
		size_t cl;
		char expr[MASK_EXPR_MAX], path[MASK_NAME_MAX];
		int dup = 0;

		if (pl && (strncasecmp(nm, prefix, pl - 1) || nm[pl - 1] != '.'))
			continue;
		rest = nm + pl;
		dot = strchr(rest, '.');
		cl = dot ? (size_t)(dot - rest) : strlen(rest);
		/* once per component: the first column under it decides the shape */
		for (j = 0; j < i && !dup; j++) {
			const char *o = set->c[j].name;

			if (pl && (strncasecmp(o, prefix, pl - 1) || o[pl - 1] != '.'))
				continue;
			dup = !strncasecmp(o + pl, rest, cl) && (o[pl + cl] == '.' || !o[pl + cl]);
		}
		if (dup)
			continue;
		if (!first)
			sb_put(&w->out, ", ");
		first = 0;
		snprintf(path, sizeof(path), "%.*s", (int)(pl + cl), nm);
		/* a whole column (or RECORD) masked by this rule entry? */
		for (j = 0; j < set->n; j++)
			if (!strcasecmp(set->c[j].name, path))
				break;
		if (j < set->n) {
			char col[MASK_NAME_MAX + 8];
			struct sb cb = { col, 0, sizeof(col), 0 };
			const char *s = path, *d;

			for (;;) { /* each part as an identifier */
				d = strchr(s, '.');
				sb_ident(&cb, s, d ? (size_t)(d - s) : strlen(s));
				if (!d)
					break;
				sb_put(&cb, ".");
				s = d + 1;
			}
			if (cb.err || mask_expr(set->c[j].routine, col, set->c[j].type,
						set->c[j].opts, expr, sizeof(expr)) < 0) {
				w->out.err = 1;
				return;
			}
			sb_put(&w->out, expr);
		} else {
			sb_put(&w->out, "IF(");
			sb_put(&w->out, path);
			sb_put(&w->out, " IS NULL, NULL, (SELECT AS STRUCT ");
			sb_put(&w->out, path);
			sb_put(&w->out, ".* REPLACE (");
			emit_items(w, set, path);
			sb_put(&w->out, ")))");
		}
		sb_put(&w->out, " AS ");
		sb_ident(&w->out, rest, cl);
	}
}

/* Append the masked derived table for replacement <k>. */
static void emit_repl(struct rw *w, int k)
{
	const struct repl *r = &w->r[k];
	const struct sql_table *t = r->t;
	const struct mask_set *set = &w->sets[k];

	sb_put(&w->out, "(SELECT * REPLACE (");
	emit_items(w, set, NULL);
	sb_put(&w->out, ")");
	if ((t->flags & SQL_TF_WILDCARD) && w->suffix)
		sb_put(&w->out, ", _TABLE_SUFFIX");
	if (w->ptime)
		sb_put(&w->out, ", _PARTITIONTIME");
	if (w->pdate)
		sb_put(&w->out, ", _PARTITIONDATE");
	sb_put(&w->out, " FROM ");
	sb_putn(&w->out, t->p, t->len);
	if (t->time) {
		sb_put(&w->out, " ");
		emit_range(w, t->time, t->time + t->time_len);
	}
	if (t->sample) {
		sb_put(&w->out, " ");
		emit_range(w, t->sample, t->sample + t->sample_len);
	}
	sb_put(&w->out, ")");
	if (t->place != SQL_PLACE_FROM)
		return;
	sb_put(&w->out, " AS ");
	if (t->alias) {
		sb_putn(&w->out, t->alias, t->alias_len);
	} else {
		const char *dot = strrchr(t->name, '.');

		dot = dot ? dot + 1 : t->name;
		sb_ident(&w->out, dot, strlen(dot));
	}
}

/* Copy text [a, b) to the output, replacing the references that start inside it. */
static void emit_range(struct rw *w, const char *a, const char *b)
{
	while (w->idx < w->n && w->r[w->idx].a < b) {
		int k = w->idx++;

		if (w->r[k].a < a) {
			w->out.err = 2; /* overlapping spans: refuse rather than guess */
			return;
		}
		sb_putn(&w->out, a, (size_t)(w->r[k].a - a));
		emit_repl(w, k);
		a = w->r[k].b;
		if (w->idx < w->n && w->r[w->idx].a < a) {
			w->out.err = 2;
			return;
		}
	}
	if (a < b)
		sb_putn(&w->out, a, (size_t)(b - a));
}

/* Is the statement <k> (or one enclosing it) stored as SQL text: a view or routine body? */
static int stored_body(const struct sql_result *an, int k)
{
	for (; k >= 0 && k < an->n_stmts; k = an->stmts[k].parent) {
		enum sql_kind kind = an->stmts[k].kind;

		if (kind == SQL_CREATE_VIEW || kind == SQL_CREATE_MATERIALIZED_VIEW ||
		    kind == SQL_CREATE_FUNCTION || kind == SQL_CREATE_TABLE_FUNCTION ||
		    kind == SQL_CREATE_PROCEDURE || kind == SQL_ALTER_VIEW ||
		    kind == SQL_ALTER_MATERIALIZED_VIEW)
			return 1;
		if (an->stmts[k].parent == k)
			break;
	}
	return 0;
}

/* Add <set>'s columns to the report under <name>. */
static void report_table(struct mask_report *rep, const char *name, const struct mask_set *set)
{
	int i, j;
	size_t o = 0;

	for (i = 0; i < rep->n_tables; i++)
		if (!strcmp(rep->tables[i].name, name))
			return;
	if (rep->n_tables >= (int)(sizeof(rep->tables) / sizeof(rep->tables[0])))
		return;
	i = rep->n_tables++;
	snprintf(rep->tables[i].name, sizeof(rep->tables[i].name), "%s", name);
	rep->tables[i].columns[0] = '\0';
	for (j = 0; j < set->n; j++) {
		int m = snprintf(rep->tables[i].columns + o, sizeof(rep->tables[i].columns) - o,
				 "%s%s:%s", j ? "," : "", set->c[j].name,
				 mask_routine_name(set->c[j].routine));

		if (m < 0 || (size_t)m >= sizeof(rep->tables[i].columns) - o) {
			strcpy(rep->tables[i].columns + sizeof(rep->tables[i].columns) - 4, "...");
			break;
		}
		o += (size_t)m;
	}
}

#define MASK_MAX_REPL 256 /* masked references in one request */

int mask_rewrite(const char *sql, size_t len, const struct sql_result *an, int legacy_sql,
		 mask_lookup_fn lookup, void *ctx, char *out, size_t outlen,
		 struct mask_report *rep)
{
	static __thread struct repl repls[MASK_MAX_REPL];
	static __thread struct mask_set sets[MASK_MAX_REPL];
	struct mask_set cur;
	struct rw w;
	int i, n = 0;

	memset(rep, 0, offsetof(struct mask_report, tables));
	rep->n_tables = 0;
	if (legacy_sql)
		return refuse(rep, "legacy SQL cannot be masked; use standard SQL%s", "", -1);
	if (an->unknown)
		return refuse(rep, "columns are masked for this identity and the SQL is not "
			      "understood (%s)", an->error ? an->error : "unknown statement", -1);
	for (i = 0; i < an->n_stmts; i++) {
		enum sql_kind k = an->stmts[i].kind;

		if (k == SQL_EXECUTE_IMMEDIATE)
			return refuse(rep, "EXECUTE IMMEDIATE is refused while columns are masked%s",
				      "", i);
		if (k == SQL_CALL)
			return refuse(rep, "CALL is refused while columns are masked (a procedure "
				      "reads tables unmasked)%s", "", i);
		if (k == SQL_UNKNOWN)
			return refuse(rep, "statement not understood while columns are masked%s", "",
				      i);
	}
	for (i = 0; i < an->n_tables; i++) {
		const struct sql_table *t = &an->tables[i];
		enum sql_kind kind = an->stmts[t->stmt].kind;
		int m;

		if (t->flags & SQL_TF_INFO_SCHEMA) {
			const char *v = strrchr(t->name, '.');

			if (v && !strncasecmp(v + 1, "JOBS", 4))
				return refuse(rep, "%s is refused while columns are masked (job "
					      "history holds masking keys)", t->name, t->stmt);
			continue;
		}
		if (t->flags & (SQL_TF_ROUTINE | SQL_TF_MODEL | SQL_TF_SCHEMA))
			continue;
		m = lookup(ctx, t->name, !!(t->flags & SQL_TF_WILDCARD), &cur);
		if (m < 0)
			return refuse(rep, "masked columns of %s cannot be resolved", t->name, t->stmt);
		if (!m)
			continue;
		switch (t->role) {
		case SQL_ROLE_READ:
			if (t->place != SQL_PLACE_FROM && t->place != SQL_PLACE_TABLE_ARG)
				return refuse(rep, "%s has masked columns and is read where it cannot "
					      "be masked", t->name, t->stmt);
			break;
		case SQL_ROLE_WRITE:
			if (kind == SQL_INSERT || kind == SQL_LOAD_DATA)
				continue;
			return refuse(rep, "%s has masked columns: UPDATE, DELETE and MERGE on it "
				      "would compute on unmasked values", t->name, t->stmt);
		case SQL_ROLE_SOURCE:
			if (word_before(sql, t->p, "LIKE"))
				continue;
			return refuse(rep, "%s has masked columns: it cannot be cloned, copied or "
				      "snapshotted", t->name, t->stmt);
		case SQL_ROLE_DDL:
			switch (kind) {
			case SQL_DROP_TABLE: case SQL_DROP_VIEW: case SQL_DROP_MATERIALIZED_VIEW:
			case SQL_DROP_EXTERNAL_TABLE: case SQL_DROP_SNAPSHOT_TABLE:
			case SQL_TRUNCATE_TABLE: case SQL_CREATE_TABLE:
			case SQL_CREATE_TABLE_AS_SELECT: case SQL_CREATE_VIEW:
			case SQL_CREATE_MATERIALIZED_VIEW: case SQL_CREATE_EXTERNAL_TABLE:
				continue;
			default:
				return refuse(rep, "%s has masked columns: this DDL on it is refused "
					      "(it could rename or expose them)", t->name, t->stmt);
			}
		default:
			return refuse(rep, "%s has masked columns%s", t->name, t->stmt);
		}
		for (m = 0; m < cur.n; m++)
			if (cur.c[m].routine == MASK_TOKENIZE) {
				if (!cur.c[m].opts || strlen(cur.c[m].opts->k1) != 64)
					return refuse(rep, "column %s is tokenized but no tokenize key "
						      "is set", cur.c[m].name, t->stmt);
				if (stored_body(an, t->stmt))
					return refuse(rep, "%s has tokenized columns: a view or routine "
						      "body reading it would store the tokenize key",
						      t->name, t->stmt);
				rep->uses_key = 1;
			}
		if (n >= MASK_MAX_REPL)
			return refuse(rep, "too many masked table references (at most %s)", "256",
				      -1);
		repls[n] = (struct repl){ t->place == SQL_PLACE_TABLE_ARG ? t->kw : t->p, t->end,
					  t, n };
		sets[n] = cur;
		report_table(rep, t->name, &cur);
		n++;
	}
	/* text order (select lists are analyzed after their FROM clause) */
	for (i = 1; i < n; i++) {
		struct repl r = repls[i];
		struct mask_set s;
		int j = i - 1;

		if (repls[j].a <= r.a)
			continue;
		memcpy(&s, &sets[i], sizeof(s));
		while (j >= 0 && repls[j].a > r.a) {
			repls[j + 1] = repls[j];
			memcpy(&sets[j + 1], &sets[j], sizeof(s));
			j--;
		}
		repls[j + 1] = r;
		memcpy(&sets[j + 1], &s, sizeof(s));
	}
	memset(&w, 0, sizeof(w));
	w.sql = sql;
	w.len = len;
	w.out = (struct sb){ out, 0, outlen, outlen == 0 };
	if (outlen)
		out[0] = '\0';
	w.r = repls;
	w.n = n;
	w.sets = sets;
	w.rep = rep;
	if (n) {
		w.suffix = has_word(sql, len, "_TABLE_SUFFIX");
		w.ptime = has_word(sql, len, "_PARTITIONTIME");
		w.pdate = has_word(sql, len, "_PARTITIONDATE");
	}
	emit_range(&w, sql, sql + len);
	if (w.out.err == 2 || w.idx != n)
		return refuse(rep, "masked references overlap in a way that cannot be rewritten%s",
			      "", -1);
	if (w.out.err)
		return -1;
	rep->n_refs = n;
	rep->out_len = w.out.n;
	return 0;
}

/* --- row masking ---------------------------------------------------------------------------- */

struct pnode {
	char name[MASK_NAME_MAX];
	enum mask_type type;
	int repeated;
	int routine;     /* -1: not masked */
	int has_mask;    /* it or a field under it is masked */
	int first, n;    /* children: nodes[first..first+n) */
	const struct mask_opts *opts;
};

struct mask_plan {
	int n;
	int root_first, root_n;
	struct pnode nodes[];
};

/* Add the fields array <fields> as nodes; returns the index of the first or -1. */
static int plan_fields(struct mask_plan *p, int cap, json_t *fields, int depth, char *err,
		       size_t errlen)
{
	size_t i, n = json_array_size(fields);
	int first = p->n;
	json_t *f;

	if (depth > MASK_MAX_DEPTH || !json_is_array(fields)) {
		snprintf(err, errlen, "schema: fields must be an array nested at most %d deep",
			 MASK_MAX_DEPTH);
		return -1;
	}
	if (p->n + (int)n > cap) {
		snprintf(err, errlen, "schema: more than %d fields", MASK_MAX_FIELDS);
		return -1;
	}
	p->n += (int)n;
	json_array_foreach(fields, i, f) {
		struct pnode *d = &p->nodes[first + (int)i];
		const char *nm = json_string_value(json_object_get(f, "name"));
		const char *ty = json_string_value(json_object_get(f, "type"));
		const char *mode = json_string_value(json_object_get(f, "mode"));

		if (!nm || strlen(nm) >= MASK_NAME_MAX || !ty) {
			snprintf(err, errlen, "schema: field %zu has no name or type", i);
			return -1;
		}
		snprintf(d->name, sizeof(d->name), "%s", nm);
		d->type = mask_type_parse(ty);
		d->repeated = mode && !strcasecmp(mode, "REPEATED");
		d->routine = -1;
		d->n = 0;
		if (d->type == MASK_T_STRUCT) {
			json_t *sub = json_object_get(f, "fields");
			int k = plan_fields(p, cap, sub, depth + 1, err, errlen);

			if (k < 0)
				return -1;
			d = &p->nodes[first + (int)i];
			d->first = k;
			d->n = (int)json_array_size(sub);
		}
	}
	return first;
}

/* Mark node <k> and every leaf under it with routine <r>. */
static void plan_mark(struct mask_plan *p, int k, int r, const struct mask_opts *o)
{
	struct pnode *d = &p->nodes[k];
	int i;

	d->has_mask = 1;
	if (d->type != MASK_T_STRUCT) {
		d->routine = r;
		d->opts = o;
		return;
	}
	for (i = 0; i < d->n; i++)
		plan_mark(p, d->first + i, r, o);
}

struct mask_plan *mask_plan_new(json_t *schema, const struct mask_set *set, char *err,
				size_t errlen)
{
	json_t *fields = json_is_array(schema) ? schema : json_object_get(schema, "fields");
	struct mask_plan *p = calloc(1, sizeof(*p) + MASK_MAX_FIELDS * sizeof(struct pnode));
	int i;

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->root_first = plan_fields(p, MASK_MAX_FIELDS, fields, 0, err, errlen);
	if (p->root_first < 0) {
		free(p);
		return NULL;
	}
	p->root_n = (int)json_array_size(fields);
	for (i = 0; set && i < set->n; i++) {
		const char *s = set->c[i].name;
		int first = p->root_first, cnt = p->root_n, k = -1, path[MASK_MAX_DEPTH + 1], depth = 0;

		for (;;) {
			const char *d = strchr(s, '.');
			size_t l = d ? (size_t)(d - s) : strlen(s);
			int j;

			for (j = 0, k = -1; j < cnt; j++)
				if (strlen(p->nodes[first + j].name) == l &&
				    !strncasecmp(p->nodes[first + j].name, s, l)) {
					k = first + j;
					break;
				}
			if (k < 0 || depth > MASK_MAX_DEPTH)
				break;
			path[depth++] = k;
			if (!d)
				break;
			if (p->nodes[k].type != MASK_T_STRUCT) {
				k = -1;
				break;
			}
			first = p->nodes[k].first;
			cnt = p->nodes[k].n;
			s = d + 1;
		}
		if (k < 0)
			continue; /* not in this schema */
		plan_mark(p, k, set->c[i].routine, set->c[i].opts);
		while (depth--)
			p->nodes[path[depth]].has_mask = 1;
	}
	return p;
}

void mask_plan_free(struct mask_plan *p)
{
	free(p);
}

/* The row walker. Each step takes the cursor <p> and returns the cursor after what it read,
 * or NULL: malformed, a bound, or the output full (picohttpparser's convention, which keeps
 * the cursor in a register). The output is the input with masked values replaced: <copied>
 * marks how far the output has caught up, and only a masked value copies the stretch before
 * it, so unmasked cells are parsed but never copied one by one. */
struct jw {
	const char *e;          /* end of the input */
	const char *copied;     /* input before this is already in the output */
	struct mask_buf *out;
	const struct mask_plan *plan;
	long masked;
};

/* Byte classes: one table lookup per byte on the paths that loop over bytes. */
#define J_WS 1   /* JSON whitespace */
#define J_STR 2  /* stops a run of string bytes: '"' '\\' */
#define J_BARE 4 /* ends a bare scalar (number, true, null): brackets, '"', ',', whitespace */
#define J_NEST 8 /* stops a run inside a skipped container: brackets and '"' */

static const unsigned char jcls[256] = {
	[' '] = J_WS | J_BARE, ['\t'] = J_WS | J_BARE, ['\n'] = J_WS | J_BARE,
	['\r'] = J_WS | J_BARE, [','] = J_BARE, ['\\'] = J_STR, ['"'] = J_STR | J_BARE | J_NEST,
	['{'] = J_BARE | J_NEST, ['}'] = J_BARE | J_NEST, ['['] = J_BARE | J_NEST,
	[']'] = J_BARE | J_NEST,
};

/* Make room for <n> more bytes in <b>, doubling up to b->max. */
static int buf_room(struct mask_buf *b, size_t n)
{
	size_t cap;
	char *q;

	if (b->len + n > b->max)
		return -1;
	if (b->len + n <= b->cap)
		return 0;
	for (cap = b->cap ? b->cap : 65536; cap < b->len + n; cap *= 2)
		;
	if (cap > b->max)
		cap = b->max;
	if (!(q = realloc(b->p, cap)))
		return -1;
	b->p = q;
	b->cap = cap;
	return 0;
}

/* Skip whitespace. */
static inline const char *ws(const char *p, const char *e)
{
	while (p < e && (jcls[(unsigned char)*p] & J_WS))
		p++;
	return p;
}

/* Byte <c> at <p>, after whitespace: the cursor after it, or NULL. */
static inline const char *eat(const char *p, const char *e, char c)
{
	p = ws(p, e);
	return p < e && *p == c ? p + 1 : NULL;
}

/* After an element or member: 1 at ',' (more follow), 0 at <close>, -1 at anything else.
 * *pp moves past the ',' or <close>. */
static inline int sep(const char **pp, const char *e, char close)
{
	const char *p = ws(*pp, e);

	if (p < e && (*p == ',' || *p == close)) {
		*pp = p + 1;
		return *p == ',';
	}
	return -1;
}

#define ONES 0x0101010101010101ull

/* The zero bytes of <v> flagged by their top bit; exact up to the first zero byte. */
static inline uint64_t zero_bytes(uint64_t v)
{
	return (v - ONES) & ~v & (ONES * 0x80);
}

/* The first '"' or '\\' in [p, e), or e. Eight bytes at a time: most values are short, and
 * memchr's call and set-up cost more than they save on them. */
static inline const char *str_stop(const char *p, const char *e)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; e - p >= 8; p += 8) {
		uint64_t v, m;

		memcpy(&v, p, 8);
		/* the lowest flag of either mask is exact, so the lowest of both is too */
		m = zero_bytes(v ^ (ONES * '"')) | zero_bytes(v ^ (ONES * '\\'));
		if (m)
			return p + ((unsigned)__builtin_ctzll(m) >> 3);
	}
#endif
	while (p < e && !(jcls[(unsigned char)*p] & J_STR))
		p++;
	return p;
}

/* Skip the string at <p> (at its '"'); sets *esc when it has escapes. */
static inline const char *scan_str(const char *p, const char *e, int *esc)
{
	for (p++;;) {
		p = str_stop(p, e);
		if (p >= e)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (e - p < 2)
			return NULL;
		*esc = 1;
		p += 2; /* a backslash and the byte it escapes */
	}
}

/* Skip the string at <p> (at its '"'). */
static inline const char *skip_str(const char *p, const char *e)
{
	int esc;

	return scan_str(p, e, &esc);
}

/* Skip a value that is not a string: containers (512 deep at most, each closed by its own
 * bracket) and bare scalars, which run up to the next structural byte. */
static const char *skip_any(const char *p, const char *e)
{
	uint64_t obj[512 / 64] = { 0 }; /* bit d: the container at depth d is an object */
	int depth = 0;

	do {
		if (p >= e)
			return NULL;
		switch (*p) {
		case '"':
			if (!(p = skip_str(p, e)))
				return NULL;
			break;
		case '{': case '[':
			if (depth == 512)
				return NULL;
			if (*p == '{')
				obj[depth / 64] |= 1ull << (depth % 64);
			else
				obj[depth / 64] &= ~(1ull << (depth % 64));
			depth++;
			p++;
			break;
		case '}': case ']':
			if (!depth--)
				return NULL;
			if ((int)(obj[depth / 64] >> (depth % 64) & 1) != (*p == '}'))
				return NULL; /* [} or {]: a parser could read it any way */
			p++;
			break;
		default: {
			/* scalars, and inside containers also ',' ':' and whitespace */
			const char *q = p;
			int stop = depth ? J_NEST : J_BARE;

			while (q < e && !(jcls[(unsigned char)*q] & stop))
				q++;
			if (q == p)
				return NULL;
			p = q;
		}
		}
	} while (depth);
	return p;
}

/* Skip any value at <p>. */
static inline const char *skip_val(const char *p, const char *e)
{
	p = ws(p, e);
	if (p < e && *p == '"')
		return skip_str(p, e);
	return skip_any(p, e);
}

/* An object member's key at <p> and its ':'; sets [*k, *k + *kl) to the key. A key with
 * an escape is refused: "\u0076" is "v" to the client's parser, and its value would go
 * out unmasked. */
static inline const char *member(const char *p, const char *e, const char **k, size_t *kl)
{
	const char *q;
	int esc = 0;

	p = ws(p, e);
	if (p >= e || *p != '"')
		return NULL;
	if (e - p >= 3 && p[2] == '"' && p[1] != '"' && p[1] != '\\')
		q = p + 3; /* "f", "v": no scan */
	else if (!(q = scan_str(p, e, &esc)) || esc)
		return NULL;
	*k = p + 1;
	*kl = (size_t)(q - p - 2);
	return eat(q, e, ':');
}

/* Is there a null at <p>? */
static inline int at_null(const char *p, const char *e)
{
	return e - p >= 4 && !memcmp(p, "null", 4);
}

/* The value of the four hex digits at <p>, or -1. */
static long hex4(const char *p)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		int c = lc((unsigned char)p[i]);

		if (c >= '0' && c <= '9')
			v = v * 16 + c - '0';
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + c - 'a' + 10;
		else
			return -1;
	}
	return v;
}

/* Write code point <cp> as UTF-8 at <o>; returns the end. */
static char *put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* Decode the inside of a JSON string s[0..n) into <out> (n bytes suffice: no escape grows).
 * Returns the length or -1. */
static long decode_str(const char *s, size_t n, char *out)
{
	const char *p = s, *e = s + n, *b;
	char *o = out;

	while ((b = memchr(p, '\\', (size_t)(e - p)))) {
		memcpy(o, p, (size_t)(b - p));
		o += b - p;
		p = b + 1;
		if (p >= e)
			return -1;
		switch (*p++) {
		case 'n': *o++ = '\n'; break;
		case 't': *o++ = '\t'; break;
		case 'r': *o++ = '\r'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'u': {
			long cp, lo;

			if (e - p < 4 || (cp = hex4(p)) < 0)
				return -1;
			p += 4;
			/* a surrogate pair is one character; a lone surrogate stays as it is */
			if (cp >= 0xd800 && cp < 0xdc00 && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
			    (lo = hex4(p + 2)) >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			}
			o = put_utf8(o, (unsigned)cp);
			break;
		}
		default: *o++ = p[-1];
		}
	}
	memcpy(o, p, (size_t)(e - p));
	return o + (e - p) - out;
}

/* Bytes a JSON string adds to byte c: 5 for \u00XX, 1 for \" and \\. */
static const unsigned char jesc[256] = {
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	['"'] = 1, ['\\'] = 1,
};

/* Bytes escapes add to s[0..n) written as a JSON string. */
static size_t jstr_extra(const char *s, size_t n)
{
	size_t i = 0, x = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 8 <= n; i += 8) { /* masked values seldom need escapes: 8 bytes at a time */
		uint64_t v;

		memcpy(&v, s + i, 8);
		if (((v - ONES * 0x20) & ~v & (ONES * 0x80)) || zero_bytes(v ^ (ONES * '"')) ||
		    zero_bytes(v ^ (ONES * '\\')))
			break;
	}
#endif
	for (; i < n; i++)
		x += jesc[(unsigned char)s[i]];
	return x;
}

/* Write s[0..n) as a JSON string at <o>, with <extra> bytes of escapes (jstr_extra). */
static void put_jstr(char *o, const char *s, size_t n, size_t extra)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	*o++ = '"';
	if (!extra) {
		memcpy(o, s, n);
		o[n] = '"';
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20) {
			memcpy(o, "\\u00", 4);
			o[4] = hx[c >> 4];
			o[5] = hx[c & 15];
			o += 6;
			continue;
		}
		if (c == '"' || c == '\\')
			*o++ = '\\';
		*o++ = (char)c;
	}
	*o = '"';
}

/* Replace the input value [a, b) with the JSON string s[0..n) (NULL: null) in the output,
 * after the input not copied yet: one reservation for both. Returns 0 or -1. */
static int emit(struct jw *w, const char *a, const char *b, const char *s, size_t n)
{
	struct mask_buf *out = w->out;
	size_t pre = (size_t)(a - w->copied), x = s ? jstr_extra(s, n) : 0;
	size_t need = pre + (s ? n + x + 2 : 4);
	char *o;

	if (buf_room(out, need))
		return -1;
	o = out->p + out->len;
	memcpy(o, w->copied, pre);
	if (s)
		put_jstr(o + pre, s, n, x);
	else
		memcpy(o + pre, "null", 4);
	out->len += need;
	w->copied = b;
	return 0;
}

/* Copy the input not copied yet, up to <end>, to the output. Returns 0 or -1. */
static int flush(struct jw *w, const char *end)
{
	size_t n = (size_t)(end - w->copied);

	if (!n)
		return 0;
	if (buf_room(w->out, n))
		return -1;
	memcpy(w->out->p + w->out->len, w->copied, n);
	w->out->len += n;
	w->copied = end;
	return 0;
}

/* Mask the scalar at <p> (a string or null) with node <d>'s routine. A value without escapes
 * is masked where it lies in the input; one with escapes is decoded first. */
static const char *mask_scalar(struct jw *w, const char *p, const struct pnode *d)
{
	const char *e = w->e, *a = ws(p, e), *b, *v = a;
	char res[MASK_EXPR_MAX], small[1024], *big = NULL;
	long n = 0;
	int is_null = 0, m;

	if (a < e && *a == '"') {
		int esc = 0;

		if (!(b = scan_str(a, e, &esc)))
			return NULL;
		v = a + 1;
		n = b - a - 2;
		if (esc) {
			char *o = (size_t)n <= sizeof(small) ? small : (big = malloc((size_t)n));

			if (!o || (n = decode_str(v, (size_t)n, o)) < 0) {
				free(big);
				return NULL;
			}
			v = o;
		}
	} else {
		b = skip_any(a, e);
		if (!b || b - a != 4 || memcmp(a, "null", 4))
			return NULL;
		is_null = 1;
	}
	m = mask_value((enum mask_routine)d->routine, d->type, d->opts, v, (size_t)n, &is_null,
		       res, sizeof(res));
	free(big);
	if (m < 0 || emit(w, a, b, is_null ? NULL : res, (size_t)m))
		return NULL;
	w->masked++;
	return b;
}

static const char *walk_value(struct jw *w, const char *p, const struct pnode *d, int depth,
			      int in_array);
static const char *walk_fields(struct jw *w, const char *p, int first, int n, int depth);

/* The usual unmasked cell, {"v":"..."} or {"v":null} (or with a space after the ':'), at
 * <p> (after whitespace): the cursor after it, or NULL when it is anything else (walk_cell
 * then reads it). Most cells are this, and most time went to walking them one byte class
 * at a time. */
static inline const char *plain_cell(const char *p, const char *e)
{
	const char *q;

	if (e - p < 8 || memcmp(p, "{\"v\":", 5))
		return NULL;
	q = p + 5 + (p[5] == ' ');
	if (*q == '"')
		q = skip_str(q, e);
	else if (at_null(q, e))
		q += 4;
	else
		return NULL;
	return q && q < e && *q == '}' ? q + 1 : NULL;
}

/* A cell {"v": x} at <p> for node <d>; other keys are skipped. */
static const char *walk_cell(struct jw *w, const char *p, const struct pnode *d, int depth,
			     int in_array)
{
	const char *e = w->e, *k, *q;
	size_t kl;
	int r;

	if (!(p = eat(p, e, '{')))
		return NULL;
	if ((q = eat(p, e, '}')))
		return q;
	do {
		if (!(p = member(p, e, &k, &kl)))
			return NULL;
		if (kl == 1 && *k == 'v' && d->has_mask)
			p = walk_value(w, p, d, depth, in_array);
		else
			p = skip_val(p, e);
		if (!p)
			return NULL;
	} while ((r = sep(&p, e, '}')) == 1);
	return r ? NULL : p;
}

/* A row or a RECORD's value {"f": [...]} at <p>: "f" holds the cells of the fields
 * nodes[first..first+n); other keys are skipped. */
static const char *walk_f(struct jw *w, const char *p, int first, int n, int depth)
{
	const char *e = w->e, *k, *q;
	size_t kl;
	int r;

	if (!(p = eat(p, e, '{')))
		return NULL;
	if ((q = eat(p, e, '}')))
		return q;
	do {
		if (!(p = member(p, e, &k, &kl)))
			return NULL;
		if (kl == 1 && *k == 'f')
			p = walk_fields(w, p, first, n, depth);
		else
			p = skip_val(p, e);
		if (!p)
			return NULL;
	} while ((r = sep(&p, e, '}')) == 1);
	return r ? NULL : p;
}

/* The value x of a cell {"v": x} at <p> for node <d>, which has masked leaves. */
static const char *walk_value(struct jw *w, const char *p, const struct pnode *d, int depth,
			      int in_array)
{
	const char *e = w->e, *q;
	int r;

	if (d->repeated && !in_array) {
		/* [{"v": x}, ...] or null; anything else could hide the values from the walk */
		p = ws(p, e);
		if (at_null(p, e))
			return p + 4;
		if (!(p = eat(p, e, '[')))
			return NULL;
		if ((q = eat(p, e, ']')))
			return q;
		do {
			if (!(p = walk_cell(w, p, d, depth + 1, 1)))
				return NULL;
		} while ((r = sep(&p, e, ']')) == 1);
		return r ? NULL : p;
	}
	if (d->type == MASK_T_STRUCT) {
		/* {"f": [...]} or null, as for REPEATED */
		p = ws(p, e);
		return at_null(p, e) ? p + 4 : walk_f(w, p, d->first, d->n, depth + 1);
	}
	return mask_scalar(w, p, d);
}

/* An "f" array at <p>: the cells of nodes[first..first+n), in schema order. */
static const char *walk_fields(struct jw *w, const char *p, int first, int n, int depth)
{
	const struct pnode *d = &w->plan->nodes[first];
	const char *e = w->e, *q;
	int i = 0, r;

	if (depth > MASK_MAX_DEPTH * 2 || !(p = eat(p, e, '[')))
		return NULL;
	if ((q = eat(p, e, ']')))
		return q;
	do {
		if (i++ >= n)
			return NULL; /* more cells than fields: refuse, never guess */
		p = ws(p, e);
		if (d->has_mask || !(q = plain_cell(p, e)))
			q = walk_cell(w, p, d, depth, 0);
		if (!(p = q))
			return NULL;
		d++;
	} while ((r = sep(&p, e, ']')) == 1);
	return r ? NULL : p;
}

/* The "rows" array (or null) of a response body at <p>: each row as mask_row masks it. */
static const char *walk_rows(struct jw *w, const char *p)
{
	const struct mask_plan *plan = w->plan;
	const char *e = w->e, *q;
	int r;

	p = ws(p, e);
	if (at_null(p, e))
		return p + 4;
	if (!(p = eat(p, e, '[')))
		return NULL;
	if ((q = eat(p, e, ']')))
		return q;
	do {
		if (!(p = walk_f(w, p, plan->root_first, plan->root_n, 0)))
			return NULL;
	} while ((r = sep(&p, e, ']')) == 1);
	return r ? NULL : p;
}

/* A response body {"rows": [...], ...} at <p>; every other key is skipped. */
static const char *walk_body(struct jw *w, const char *p)
{
	const char *e = w->e, *k, *q;
	size_t kl;
	int r;

	if (!(p = eat(p, e, '{')))
		return NULL;
	if ((q = eat(p, e, '}')))
		return q;
	do {
		if (!(p = member(p, e, &k, &kl)))
			return NULL;
		if (kl == 4 && !memcmp(k, "rows", 4))
			p = walk_rows(w, p);
		else
			p = skip_val(p, e);
		if (!p)
			return NULL;
	} while ((r = sep(&p, e, '}')) == 1);
	return r ? NULL : p;
}

/* Start a walk of json[0..len) appending to <out>: the output will be about the input's
 * size, so room for that is made at once (when the bound allows) instead of by doubling. */
static void jw_init(struct jw *w, const struct mask_plan *plan, const char *json, size_t len,
		    struct mask_buf *out)
{
	*w = (struct jw){ json + len, json, out, plan, 0 };
	if (out->len <= out->max && len <= out->max - out->len)
		buf_room(out, len); /* may fail: then the walk fails where it needs the room */
}

/* End a walk that stopped at <p> (NULL: it failed): only whitespace may follow, and the
 * input not copied yet goes out. On failure the output is cut back to <start>, so no part of
 * a refused input is ever in it. */
static long jw_end(struct jw *w, const char *p, size_t start)
{
	if (p)
		p = ws(p, w->e);
	if (!p || p != w->e || flush(w, w->e)) {
		w->out->len = start;
		return -1;
	}
	return w->masked;
}

long mask_row(const struct mask_plan *plan, const char *json, size_t len, struct mask_buf *out)
{
	struct jw w;
	size_t start = out->len;

	jw_init(&w, plan, json, len, out);
	return jw_end(&w, walk_f(&w, json, plan->root_first, plan->root_n, 0), start);
}

long mask_rows(const struct mask_plan *plan, const char *json, size_t len, struct mask_buf *out)
{
	struct jw w;
	size_t start = out->len;

	jw_init(&w, plan, json, len, out);
	return jw_end(&w, walk_body(&w, json), start);
}
