/* sql.h - the GoogleSQL analyzer: splits a BigQuery script into statements, names the kind of
 * each (as BigQuery's statementType), finds every table, model and routine it references with
 * its role and resolved "project.dataset.table" name, and flags DELETE/UPDATE/MERGE that can
 * touch every row.
 *
 * The analyzer owns nothing and allocates nothing: the caller gives the statement, table and
 * token arrays and a character arena for resolved names, all with hard sizes; references are
 * {p, len} slices of the caller's text. It is deliberately conservative: whatever it does not
 * understand is a statement of kind SQL_UNKNOWN, and out->unknown is set, so a policy can
 * refuse it. Lexical errors (unterminated string, comment, backtick) and exceeded bounds make
 * sql_analyze return -1. */
#ifndef SLUICE_SQL_H
#define SLUICE_SQL_H

#include <stddef.h>

#include "sqllex.h"

#define SQL_MAX_DEPTH 256 /* brackets, subqueries and blocks nested at most this deep */

/* Statement kinds, named as BigQuery's statementType. CONTROL is a scripting construct
 * (IF/ELSEIF/WHILE/FOR/REPEAT-UNTIL/CASE header, BEGIN block, LOOP, BREAK, RETURN...): its
 * condition's tables are attached to it; the statements inside are reported on their own. */
#define SQL_KINDS(X)                                                                        \
	X(SELECT) X(INSERT) X(UPDATE) X(DELETE) X(MERGE) X(TRUNCATE_TABLE) X(CREATE_TABLE)  \
	X(CREATE_TABLE_AS_SELECT) X(CREATE_VIEW) X(CREATE_MATERIALIZED_VIEW)                \
	X(CREATE_SNAPSHOT_TABLE) X(CREATE_EXTERNAL_TABLE) X(CREATE_FUNCTION)                \
	X(CREATE_TABLE_FUNCTION) X(CREATE_PROCEDURE) X(CREATE_ROW_ACCESS_POLICY)            \
	X(CREATE_SCHEMA) X(CREATE_MODEL) X(DROP_TABLE) X(DROP_EXTERNAL_TABLE) X(DROP_VIEW)  \
	X(DROP_MATERIALIZED_VIEW) X(DROP_SNAPSHOT_TABLE) X(DROP_FUNCTION)                   \
	X(DROP_TABLE_FUNCTION) X(DROP_PROCEDURE) X(DROP_ROW_ACCESS_POLICY)                  \
	X(DROP_ALL_ROW_ACCESS_POLICIES) X(DROP_SCHEMA) X(DROP_MODEL) X(ALTER_TABLE)         \
	X(ALTER_VIEW) X(ALTER_MATERIALIZED_VIEW) X(ALTER_SCHEMA) X(EXPORT_DATA)             \
	X(EXPORT_MODEL) X(LOAD_DATA) X(CALL) X(GRANT) X(REVOKE) X(EXECUTE_IMMEDIATE)        \
	X(DECLARE) X(SET) X(BEGIN_TRANSACTION) X(COMMIT_TRANSACTION)                        \
	X(ROLLBACK_TRANSACTION) X(RAISE) X(ASSERT) X(CONTROL) X(UNKNOWN)

/* Statement kinds: SQL_SELECT ... SQL_UNKNOWN. */
enum sql_kind {
#define SQL_KIND_ENUM(name) SQL_##name,
	SQL_KINDS(SQL_KIND_ENUM)
#undef SQL_KIND_ENUM
	SQL_KIND_COUNT
};

/* What a statement does with a referenced object. */
enum sql_role {
	SQL_ROLE_READ = 'r',   /* read: FROM, JOIN, subquery, TABLE arg, MERGE USING, model use */
	SQL_ROLE_WRITE = 'w',  /* DML target: INSERT, UPDATE, DELETE, MERGE, LOAD DATA */
	SQL_ROLE_DDL = 'd',    /* created, dropped, altered, truncated, granted on */
	SQL_ROLE_SOURCE = 's', /* source of CLONE, COPY, LIKE, SNAPSHOT */
	SQL_ROLE_CALL = 'c',   /* the procedure of a CALL */
};

#define SQL_TF_WILDCARD 0x01    /* name ends in '*' (`p.d.events_*`) */
#define SQL_TF_INFO_SCHEMA 0x02 /* an INFORMATION_SCHEMA view */
#define SQL_TF_UNRESOLVED 0x04  /* no default project/dataset to complete it: name as written */
#define SQL_TF_ROUTINE 0x08     /* a function or procedure, not a table */
#define SQL_TF_MODEL 0x10       /* a BigQuery ML model */
#define SQL_TF_SCHEMA 0x20      /* a dataset ("project.dataset") */
#define SQL_TF_TEMP 0x40        /* a script's temporary table (name as written) */

/* One reference. <p, len> is the path in the text (first to last token, quotes included);
 * <name> is NUL-terminated in the caller's arena: "project.dataset.table" with quotes removed
 * and escapes decoded, "project.qualifier.INFORMATION_SCHEMA.VIEW" for INFORMATION_SCHEMA,
 * "project.dataset" for a schema. */
struct sql_table {
	const char *p;
	size_t len;
	const char *name;
	int stmt;            /* index of its statement */
	unsigned char role;  /* enum sql_role */
	unsigned char flags; /* SQL_TF_* */
	/* Where a read stands, for a rewrite that puts a derived table in its place (mask.c):
	 * the text to replace is [p or kw, end). The spans are NULL/0 when absent. */
	unsigned char place; /* SQL_PLACE_* */
	const char *kw;      /* SQL_PLACE_TABLE_ARG: the TABLE keyword before the path */
	const char *end;     /* end of the path and of what follows it that belongs to it */
	const char *alias;   /* SQL_PLACE_FROM: the alias name token (AS excluded) */
	size_t alias_len;
	const char *time;    /* SQL_PLACE_FROM: "FOR SYSTEM_TIME AS OF expr" */
	size_t time_len;
	const char *sample;  /* SQL_PLACE_FROM: "TABLESAMPLE SYSTEM (...)" right after it */
	size_t sample_len;
};

/* Where a reference stands (struct sql_table.place). */
enum sql_place {
	SQL_PLACE_OTHER, /* a DML/DDL target, a CLONE/COPY/LIKE source, a model, a CALL... */
	SQL_PLACE_FROM,  /* a FROM item (also JOIN, MERGE USING): path [FOR...] [alias] [TABLESAMPLE] */
	SQL_PLACE_TABLE_ARG, /* "TABLE path" argument of a table-valued function */
};

/* One statement: text[off..off+len) without its ';'. Its references are
 * tables[first_table..first_table+n_tables), in text order. */
struct sql_stmt {
	enum sql_kind kind;
	size_t off, len;
	int parent;      /* index of the enclosing CONTROL or CREATE_PROCEDURE, or -1 */
	int first_table, n_tables;
	unsigned char unbounded; /* DELETE/UPDATE/MERGE that may change every row */
	unsigned char replace;   /* CREATE OR REPLACE */
	unsigned char if_exists; /* IF EXISTS / IF NOT EXISTS */
	unsigned char temp;      /* CREATE TEMP ... */
};

/* Caller's storage (set before the call) and the analysis (filled in). */
struct sql_result {
	struct sql_stmt *stmts;    /* max_stmts entries */
	struct sql_table *tables;  /* max_tables entries */
	struct sql_token *toks;    /* max_toks entries: scratch for the tokens (+1 for the end) */
	char *names;               /* names_cap bytes: resolved names */
	int max_stmts, max_tables, max_toks;
	size_t names_cap;

	int n_stmts, n_tables;
	size_t names_len;
	int unknown;           /* some statement is SQL_UNKNOWN, or the text was refused */
	const char *error;     /* constant reason when unknown, else NULL */
	size_t error_off;      /* byte of the text where it was found */
};

/* Set up <r> with the caller's arrays (any may be sized 0: analysis then fails with -1). */
void sql_result_init(struct sql_result *r, struct sql_stmt *stmts, int max_stmts,
		     struct sql_table *tables, int max_tables, struct sql_token *toks,
		     int max_toks, char *names, size_t names_cap);

/* Analyze the script text[0..len). <default_project> completes "dataset.table" and
 * <default_dataset> (may be NULL) completes "table"; either missing leaves the reference
 * flagged SQL_TF_UNRESOLVED. A "SET @@dataset_id = 'x'" (or @@dataset_project_id) in the
 * script changes the defaults for the statements after it. Returns 0 (statements may still be
 * SQL_UNKNOWN: see out->unknown) or -1 when the text is lexically invalid or a bound (tokens,
 * statements, tables, names, nesting) was exceeded; then out->unknown is 1, out->error set and
 * the statements analyzed before the failure are kept, ending with one SQL_UNKNOWN. */
int sql_analyze(const char *text, size_t len, const char *default_project,
		const char *default_dataset, struct sql_result *out);

/* BigQuery's name of <k> ("CREATE_TABLE_AS_SELECT"), "UNKNOWN" when out of range. */
const char *sql_kind_name(enum sql_kind k);

/* Is the whole script understood and free of any statement that may change every row? A
 * convenience for policies: 1 when out->unknown is 0 and no statement is unbounded. */
int sql_all_bounded(const struct sql_result *r);

#endif
