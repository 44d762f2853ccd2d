/* mask.h - column masking at the source: mask rules (a policy's "masks" section), the
 * masking routines as GoogleSQL expressions and as C functions that give the same values,
 * the rewrite that replaces every read of a masked table in a statement by a masked derived
 * table, and the masking of BigQuery row JSON (tabledata.list, getQueryResults) by schema.
 *
 * Masking by result-column name is bypassed by aliases, TO_JSON_STRING(t), WHERE probes;
 * so each reference to a table with masked columns, at any depth, becomes
 *   (SELECT * REPLACE (<routine>(col) AS col, ...) FROM <path> [FOR SYSTEM_TIME AS OF ...]
 *    [TABLESAMPLE ...]) AS <alias or last path component>
 * and the query computes on masked values only. Everything is bounded; nothing allocates
 * during a rewrite, and row masking grows its output buffer by doubling up to a maximum. */
#ifndef SLUICE_MASK_H
#define SLUICE_MASK_H

#include <stddef.h>

#include <jansson.h>

#include "sql.h"

#define MASK_MAX_RULES 64   /* entries of "masks" */
#define MASK_MAX_LIST 64    /* globs per list, columns per rule */
#define MASK_MAX_COLS 128   /* masked columns of one table for one subject */
#define MASK_NAME_MAX 300   /* a column path ("address.street") or a type name */
#define MASK_TEXT_MAX 128   /* redact_text */
#define MASK_EXPR_MAX 1024  /* one routine expression */
#define MASK_MAX_DEPTH 32   /* RECORD nesting in row masking */
#define MASK_MAX_FIELDS 4096 /* schema fields of one row-masking plan */

/* The masking routines: BigQuery's data-masking rules plus redact and tokenize. */
enum mask_routine {
	MASK_NULLIFY,    /* "nullify": a NULL of the column's type */
	MASK_DEFAULT,    /* "default": the type's default masking value ('' 0 FALSE 1970-01-01) */
	MASK_SHA256,     /* "sha256": SHA-256; STRING -> lower-case hex STRING, BYTES -> BYTES */
	MASK_EMAIL,      /* "email": XXXXX@domain; not an email -> sha256 */
	MASK_FIRST_FOUR, /* "first_four": first 4 characters + XXXXX; <= 4 characters -> sha256 */
	MASK_LAST_FOUR,  /* "last_four": XXXXX + last 4 characters; <= 4 characters -> sha256 */
	MASK_DATE_YEAR,  /* "date_year": truncated to its year (UTC) */
	MASK_REDACT,     /* "redact": the rule's redact_text */
	MASK_TOKENIZE,   /* "tokenize": keyed deterministic hex token (see mask.c) */
	MASK_ROUTINE_COUNT
};

/* Column types the routines distinguish; MASK_T_UNKNOWN when not given. */
enum mask_type {
	MASK_T_UNKNOWN, MASK_T_STRING, MASK_T_BYTES, MASK_T_INT64, MASK_T_FLOAT64,
	MASK_T_NUMERIC, MASK_T_BIGNUMERIC, MASK_T_BOOL, MASK_T_DATE, MASK_T_DATETIME,
	MASK_T_TIME, MASK_T_TIMESTAMP, MASK_T_GEOGRAPHY, MASK_T_JSON, MASK_T_INTERVAL,
	MASK_T_ARRAY, MASK_T_STRUCT, MASK_T_COUNT
};

/* Options the routines need: redact text and the tokenize keys (hex, 64 characters, NUL
 * terminated; empty when no key was set: tokenize is then refused). */
struct mask_opts {
	const char *redact_text;
	char k1[65], k2[65];
};

/* One masked column of a table for a subject. */
struct mask_col {
	const char *name;           /* column path as in the rule: "ssn", "address.street" */
	enum mask_routine routine;
	enum mask_type type;
	const struct mask_opts *opts;
	const char *rule;           /* name of the mask rule that decided it */
};

/* The masked columns of one table (first rule naming a column wins). */
struct mask_set {
	int n;
	struct mask_col c[MASK_MAX_COLS];
};

struct mask_rules;

/* Parse the "masks" array (NULL or empty: no masking). Returns 0, or -1 with <err> naming
 * the key path ("masks[1].columns.ssn: unknown routine 'md5'"). */
int mask_rules_load(json_t *masks, struct mask_rules **out, char *err, size_t errlen);

/* Free rules from mask_rules_load (NULL is fine). */
void mask_rules_free(struct mask_rules *r);

/* Set the secret the tokenize keys are derived from (HMAC-SHA256 of fixed labels): at least
 * 16 bytes, e.g. read from a root-only file by the caller. Returns 0 or -1. */
int mask_rules_set_key(struct mask_rules *r, const unsigned char *key, size_t len);

/* Does any rule apply to the subject? (Then the request must go through mask_rewrite.) */
int mask_rules_any(const struct mask_rules *r, const char *cgroup, const char *const *groups,
		   int n_groups);

/* The masked columns of table <name> ("project.dataset.table", as sql.c resolves it) for a
 * subject, into <out>. With <wildcard> the name ends in '*' and a rule matches when it can
 * match any table the wildcard covers. Returns out->n, or -1 when MASK_MAX_COLS is exceeded. */
int mask_rules_for(const struct mask_rules *r, const char *cgroup, const char *const *groups,
		   int n_groups, const char *name, int wildcard, struct mask_set *out);

/* The routine named <s> ("sha256") or -1; the name of routine <r>. */
int mask_routine_parse(const char *s);
const char *mask_routine_name(enum mask_routine r);

/* The type named <s> ("STRING", "INTEGER", "ARRAY<STRING>", "RECORD"), MASK_T_UNKNOWN if
 * NULL or not known. */
enum mask_type mask_type_parse(const char *s);

/* Write the GoogleSQL expression of routine <r> over the column expression <col_sql> of type
 * <type> into out[0..outlen), NUL-terminated. NULL stays NULL for every routine. Returns the
 * length, or -1 when it does not fit or tokenize has no key. */
int mask_expr(enum mask_routine r, const char *col_sql, enum mask_type type,
	      const struct mask_opts *o, char *out, size_t outlen);

/* Apply routine <r> in C to a value as BigQuery's row JSON encodes it (the decoded string
 * of "v": BYTES in base64, TIMESTAMP in float seconds or int64 micros): the same value the
 * SQL expression gives, encoded the same way. *is_null in: the value is NULL; out: the
 * result is NULL. Returns the length written to out (NUL-terminated) or -1. */
int mask_value(enum mask_routine r, enum mask_type type, const struct mask_opts *o,
	       const char *v, size_t vlen, int *is_null, char *out, size_t outlen);

/* Looks up the masked columns of a table for a rewrite: fills <out> for resolved name
 * <name>; returns out->n (0: not masked) or -1 (refuse). */
typedef int (*mask_lookup_fn)(void *ctx, const char *name, int wildcard, struct mask_set *out);

/* What a rewrite did. */
struct mask_report {
	int refused;              /* 1: the request must be refused with <reason> */
	char reason[256];
	size_t out_len;           /* length of the rewritten SQL */
	int n_refs;               /* references replaced by a masked derived table */
	int n_tables;             /* distinct masked tables in tables[] */
	struct {
		char name[MASK_NAME_MAX];
		char columns[512];    /* "ssn:sha256,email:email" (truncated with "...") */
	} tables[16];
	int uses_key;             /* some expression embeds the tokenize keys */
};

/* Rewrite sql[0..len), analyzed into <a> (sql_analyze with the same text), so that every
 * read of a masked table computes on masked values, into out[0..outlen) (NUL-terminated).
 * <legacy_sql>: the request is legacy SQL (refused when anything is masked). Returns 0
 * (rep->out_len bytes written; identical text when nothing is masked), 1 when refused (see
 * rep->reason), -1 when out is too small. */
int mask_rewrite(const char *sql, size_t len, const struct sql_result *a, int legacy_sql,
		 mask_lookup_fn lookup, void *ctx, char *out, size_t outlen,
		 struct mask_report *rep);

/* --- row masking ------------------------------------------------------------------------ */

struct mask_plan;

/* Build a plan from a BigQuery schema ({"fields": [...]} or the fields array) and the masked
 * columns <set> (paths into RECORDs: "address.street"; a masked RECORD masks every leaf).
 * Types come from the schema. Returns NULL with <err> on an invalid schema or a bound. */
struct mask_plan *mask_plan_new(json_t *schema, const struct mask_set *set, char *err,
				size_t errlen);
void mask_plan_free(struct mask_plan *p);

/* A growing output buffer: *p (malloc'd, may start NULL), len used, cap allocated; it never
 * grows past max. */
struct mask_buf {
	char *p;
	size_t len, cap, max;
};

/* Mask the rows of a BigQuery response body json[0..len) ({"rows": [{"f": [{"v": ...}]}]}
 * at top level; every other key copied as is) by <plan>, appending the result to <out>.
 * Returns the number of values masked, or -1 (invalid JSON, depth or the buffer's max:
 * then the caller must refuse the response, never forward it unmasked; out->len is left as
 * it was). Each row is masked as mask_row masks it. */
long mask_rows(const struct mask_plan *plan, const char *json, size_t len, struct mask_buf *out);
/* Mask one row object of a "rows" array, json[0..len) = {"f":[...]} (surrounding whitespace
 * allowed), appending the masked text to <out>. Returns the number of cells masked, or -1
 * (malformed, or the output bound reached): then nothing of this row may be relayed. */
long mask_row(const struct mask_plan *plan, const char *json, size_t len, struct mask_buf *out);

#endif
