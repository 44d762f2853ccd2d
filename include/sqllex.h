/* sqllex.h - the GoogleSQL tokenizer under the SQL analyzer (ZetaSQL's tokenizer is the model).
 *
 * The lexer owns nothing: every token is a {p, len} slice of the caller's text and the token
 * array is the caller's. Comments (--, #, slash-star) and whitespace, including the Unicode
 * spaces BigQuery accepts, separate tokens and produce none. Strings keep their prefix and
 * quotes; backtick identifiers keep their backticks. Brackets are matched while lexing, so a
 * parser can jump over a parenthesised group in one step. Anything ZetaSQL would refuse
 * lexically (an unterminated string, comment or identifier, a stray byte) is an error: the
 * caller must then treat the whole text as not understood. */
#ifndef SLUICE_SQLLEX_H
#define SLUICE_SQLLEX_H

#include <stddef.h>

/* Keywords the analyzer looks at, sorted by name; 1 marks GoogleSQL's reserved words, which
 * can be neither an alias nor an unquoted table name. */
#define SQL_KEYWORDS(X)                                                                    \
	X(ACCESS, 0) X(AGGREGATE, 0) X(ALL, 1) X(ALTER, 0) X(AND, 1) X(ANY, 1) X(ARRAY, 1)  \
	X(AS, 1) X(ASC, 1) X(ASSERT, 0) X(ASSERT_ROWS_MODIFIED, 1) X(AT, 1) X(BEGIN, 0)    \
	X(BETWEEN, 1) X(BREAK, 0) X(BY, 1) X(CALL, 0) X(CASCADE, 0) X(CASE, 1) X(CAST, 1)  \
	X(CLONE, 0) X(COLLATE, 1) X(COMMIT, 0) X(CONTAINS, 1) X(CONTINUE, 0) X(COPY, 0)    \
	X(CREATE, 1) X(CROSS, 1) X(CUBE, 1) X(CURRENT, 1) X(DATA, 0) X(DECLARE, 0)         \
	X(DEFAULT, 1) X(DEFINE, 1) X(DELETE, 0) X(DESC, 1) X(DISTINCT, 1) X(DO, 0)         \
	X(DROP, 0) X(ELSE, 1) X(ELSEIF, 0) X(END, 1) X(ENUM, 1) X(ERROR, 0) X(ESCAPE, 1)   \
	X(EXCEPT, 1) X(EXCEPTION, 0) X(EXCLUDE, 1) X(EXECUTE, 0) X(EXISTS, 1)             \
	X(EXPORT, 0) X(EXTERNAL, 0) X(EXTRACT, 1) X(FALSE, 1) X(FETCH, 1) X(FILTER, 0)     \
	X(FOLLOWING, 1) X(FOR, 1) X(FROM, 1) X(FULL, 1) X(FUNCTION, 0) X(GRANT, 0)         \
	X(GROUP, 1) X(GROUPING, 1) X(GROUPS, 1) X(HASH, 1) X(HAVING, 1) X(IF, 1)           \
	X(IGNORE, 1) X(IMMEDIATE, 0) X(IN, 1) X(INCLUDE, 0) X(INNER, 1) X(INSERT, 0)       \
	X(INTERSECT, 1) X(INTERVAL, 1) X(INTO, 1) X(IS, 1) X(ITERATE, 0) X(JOIN, 1)        \
	X(LATERAL, 1) X(LEAVE, 0) X(LEFT, 1) X(LIKE, 1) X(LIMIT, 1) X(LOAD, 0)             \
	X(LOOKUP, 1) X(LOOP, 0) X(MATCHED, 0) X(MATERIALIZED, 0) X(MERGE, 1) X(MODEL, 0)   \
	X(NATURAL, 1) X(NEW, 1) X(NO, 1) X(NOT, 1) X(NULL, 1) X(NULLS, 1) X(OF, 1)         \
	X(OFFSET, 0) X(ON, 1) X(OPTIONS, 0) X(OR, 1) X(ORDER, 1) X(OUTER, 1) X(OVER, 1)    \
	X(OVERWRITE, 0) X(PARTITION, 1) X(PERCENT, 0) X(PIVOT, 0) X(POLICIES, 0)          \
	X(POLICY, 0) X(PRECEDING, 1) X(PROCEDURE, 0) X(PROTO, 1) X(QUALIFY, 1) X(RAISE, 0) \
	X(RANGE, 1) X(RECURSIVE, 1) X(RENAME, 0) X(REPEAT, 0) X(REPLACE, 0) X(RESPECT, 1)  \
	X(RESTRICT, 0) X(RETURN, 0) X(REVOKE, 0) X(RIGHT, 1) X(ROLLBACK, 0) X(ROLLUP, 1)   \
	X(ROW, 0) X(ROWS, 1) X(SCHEMA, 0) X(SELECT, 1) X(SET, 1) X(SNAPSHOT, 0) X(SOME, 1) \
	X(SOURCE, 0) X(STRUCT, 1) X(SYSTEM, 0) X(SYSTEM_TIME, 0) X(TABLE, 0)               \
	X(TABLESAMPLE, 1) X(TARGET, 0) X(TEMP, 0) X(TEMPORARY, 0) X(THEN, 1) X(TO, 1)      \
	X(TRANSACTION, 0) X(TREAT, 1) X(TRUE, 1) X(TRUNCATE, 0) X(UNBOUNDED, 1)           \
	X(UNION, 1) X(UNNEST, 1) X(UNPIVOT, 0) X(UNTIL, 0) X(UPDATE, 0) X(USING, 1)        \
	X(VALUES, 0) X(VIEW, 0) X(WHEN, 1) X(WHERE, 1) X(WHILE, 0) X(WINDOW, 1) X(WITH, 1) \
	X(WITHIN, 1)

/* Keyword ids: SQL_KW_SELECT...; 0 (SQL_KW_NONE) for any other word. */
enum sql_kw {
	SQL_KW_NONE,
#define SQL_KW_ENUM(name, reserved) SQL_KW_##name,
	SQL_KEYWORDS(SQL_KW_ENUM)
#undef SQL_KW_ENUM
	SQL_KW_COUNT
};

/* Token types. */
enum sql_tok {
	SQL_TOK_EOF,    /* the end of the text: always the last token written */
	SQL_TOK_IDENT,  /* unquoted identifier or keyword (code = enum sql_kw) */
	SQL_TOK_QIDENT, /* `backtick identifier`, backticks included; never a keyword */
	SQL_TOK_STRING, /* string literal with prefix and quotes: r'x', """y""" */
	SQL_TOK_BYTES,  /* bytes literal: b'x', rb"y" */
	SQL_TOK_NUMBER, /* 12, 0x1F, 1.5e3, .5 */
	SQL_TOK_PARAM,  /* @name, @`name` or ? */
	SQL_TOK_SYSVAR, /* @@name */
	SQL_TOK_OP,     /* operator or punctuation (code = the character or enum sql_op) */
};

/* Codes of the operators longer than one character; one-character ones are the character. */
enum sql_op {
	SQL_OP_LE = 256, /* <= */
	SQL_OP_GE,       /* >= */
	SQL_OP_NE,       /* != or <> */
	SQL_OP_SHL,      /* << */
	SQL_OP_SHR,      /* >> */
	SQL_OP_CONCAT,   /* || */
	SQL_OP_ARROW,    /* => */
	SQL_OP_LAMBDA,   /* -> */
	SQL_OP_PIPE,     /* |> */
};

#define SQL_TOKF_RESERVED 1 /* IDENT: a reserved keyword */
#define SQL_TOKF_RAW 2      /* STRING/BYTES: r prefix, no escapes */
#define SQL_TOKF_TRIPLE 4   /* STRING/BYTES: triple-quoted */
#define SQL_TOKF_INT 8      /* NUMBER: decimal digits only */

/* One token: a slice of the text. <match> is, for ( [ { and ) ] }, the index of the
 * matching bracket; -1 otherwise. */
struct sql_token {
	const char *p;
	unsigned len;
	unsigned char type;  /* enum sql_tok */
	unsigned char flags; /* SQL_TOKF_* */
	unsigned short code; /* enum sql_kw for IDENT, character or enum sql_op for OP */
	int match;
};

/* Tokenize text[0..len) into toks[0..max_toks): the tokens, then one SQL_TOK_EOF at offset
 * <len>. Brackets nest at most <max_depth> deep. Returns the number of tokens before the EOF
 * token, -1 when the text is lexically invalid, -2 when max_toks or max_depth is too small;
 * on failure *err is a constant reason and *err_off the byte where it was found. */
int sql_lex(const char *text, size_t len, struct sql_token *toks, int max_toks, int max_depth,
	    const char **err, size_t *err_off);

/* The keyword id of the word p[0..len) in any case, or SQL_KW_NONE. */
int sql_kw_lookup(const char *p, size_t len);

/* The upper-case name of keyword <kw> ("SELECT"), "" for SQL_KW_NONE or out of range. */
const char *sql_kw_name(int kw);

/* Is <kw> a GoogleSQL reserved keyword? */
int sql_kw_reserved(int kw);

/* Length of the Unicode space (UTF-8) at p[0..n) that GoogleSQL treats as whitespace
 * (U+0085, U+00A0, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF), or 0. */
int sql_unicode_space(const char *p, size_t n);

#endif
