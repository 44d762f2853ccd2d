/* Description: GoogleSQL tokenizer: token kinds and extents of every literal and identifier
 * form, comments, Unicode whitespace, bracket matching, errors and bounds; keyword table. */
#include "sqllex.h"
#include "tap.h"

static struct sql_token toks[256];
static const char *err;
static size_t err_off;

/* Tokenize <s> (placed before a guard page); returns the token count or the error. */
static int lex(const char *s)
{
	return sql_lex(tap_guarded(s, strlen(s)), strlen(s), toks, 256, 256, &err, &err_off);
}

static int tok_is(int k, int type, const char *text)
{
	return toks[k].type == type && toks[k].len == strlen(text) &&
	       !memcmp(toks[k].p, text, toks[k].len);
}

int main(void)
{
	int k, n, sorted = 1;

	for (k = 2; k < SQL_KW_COUNT; k++)
		sorted &= strcmp(sql_kw_name(k - 1), sql_kw_name(k)) < 0;
	ok(sorted, "keyword list sorted (binary search)");
	is_int(sql_kw_lookup("sElEcT", 6), SQL_KW_SELECT, "keywords in any case");
	is_int(sql_kw_lookup("selects", 7), SQL_KW_NONE, "not a keyword");
	ok(sql_kw_reserved(SQL_KW_FROM) && !sql_kw_reserved(SQL_KW_TABLE), "reserved flags");

	n = lex("SELECT `a\\`b`.c, r'x\\'y', b\"z\", '''t'''' ', \"\"\"u\"\"\", rb'''v''', 0x1F, 1.5e3, .5, 12");
	is_int(n, 23, "token count (%s)", err ? err : "");
	ok(tok_is(1, SQL_TOK_QIDENT, "`a\\`b`"), "backtick identifier with escaped backtick");
	ok(tok_is(5, SQL_TOK_STRING, "r'x\\'y'") && (toks[5].flags & SQL_TOKF_RAW), "raw string: \\' does not end it");
	ok(tok_is(7, SQL_TOK_BYTES, "b\"z\""), "bytes literal");
	ok(tok_is(9, SQL_TOK_STRING, "'''t'''") && (toks[9].flags & SQL_TOKF_TRIPLE), "triple-quoted ends at the first '''");
	ok(tok_is(10, SQL_TOK_STRING, "' '"), "then a new string");
	ok(tok_is(12, SQL_TOK_STRING, "\"\"\"u\"\"\""), "triple double-quoted");
	ok(tok_is(14, SQL_TOK_BYTES, "rb'''v'''"), "raw triple bytes");
	ok(tok_is(16, SQL_TOK_NUMBER, "0x1F") && tok_is(18, SQL_TOK_NUMBER, "1.5e3") &&
	   tok_is(20, SQL_TOK_NUMBER, ".5") && (toks[22].flags & SQL_TOKF_INT), "numbers");
	is_int(toks[n].type, SQL_TOK_EOF, "EOF token last");

	n = lex("a\xc2\xa0" "b\xe2\x80\x83" "c\xe3\x80\x80" "d\xef\xbb\xbf" "e\xe2\x80\xa8" "f -- x\ng # y\rh /* z */ i");
	is_int(n, 9, "Unicode spaces and comments separate tokens (%s)", err ? err : "");
	n = lex("p-123.ds");
	ok(n == 5 && tok_is(2, SQL_TOK_NUMBER, "123") && tok_is(3, SQL_TOK_OP, "."), "123.ds keeps its dot");
	n = lex("@p @`q` ? @@dataset_id <= <> != || => -> |>");
	ok(n == 11 && toks[0].type == SQL_TOK_PARAM && toks[1].type == SQL_TOK_PARAM &&
	   toks[2].type == SQL_TOK_PARAM && toks[3].type == SQL_TOK_SYSVAR &&
	   toks[4].code == SQL_OP_LE && toks[5].code == SQL_OP_NE && toks[6].code == SQL_OP_NE &&
	   toks[7].code == SQL_OP_CONCAT && toks[10].code == SQL_OP_PIPE, "parameters and operators");
	n = lex("f(a[1], (b))");
	ok(n == 11 && toks[1].match == 10 && toks[10].match == 1 && toks[3].match == 5 &&
	   toks[7].match == 9, "brackets matched");

	ok(lex("'abc") == -1 && err_off == 0, "unterminated string");
	ok(lex("x '''a''") == -1 && err_off == 2, "unterminated triple string");
	ok(lex("`a") == -1, "unterminated backtick");
	ok(lex("``") == -1, "empty backtick");
	ok(lex("a /* b") == -1 && err_off == 2, "unterminated comment");
	ok(lex("'a\nb'") == -1, "newline in one-line string");
	ok(lex("a\xe2\x80\x8b" "b") == -1, "zero-width space is not whitespace");
	ok(lex("(]") == -1 && lex(")") == -1 && lex("((") == -1, "unbalanced brackets");
	ok(lex("a \x01") == -1, "control byte");
	ok(sql_lex("a b c", 5, toks, 3, 8, &err, &err_off) == -2, "token bound");
	ok(sql_lex("((()))", 6, toks, 16, 2, &err, &err_off) == -2, "depth bound");
	ok(sql_lex("a b", 3, toks, 3, 8, &err, &err_off) == 2, "exactly enough tokens");
	return tap_done();
}
