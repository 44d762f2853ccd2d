/* sqllex.c - GoogleSQL tokenizer: comments, Unicode whitespace, every string and identifier
 * form, numbers, parameters, operators, bracket matching.
 *
 * One pass over the text, no allocation. The rules follow ZetaSQL's flex tokenizer where it
 * matters for finding statement and token boundaries; where ZetaSQL would refuse something
 * (newline in a one-line string, an unterminated comment) the lexer refuses it too, so that
 * what the analyzer sees is never a different split of the text than BigQuery's. */
#include <string.h>

#include "sqllex.h"

static const char *const kw_names[] = {
	"",
#define SQL_KW_NAME(name, reserved) #name,
	SQL_KEYWORDS(SQL_KW_NAME)
#undef SQL_KW_NAME
};

static const unsigned char kw_res[] = {
	0,
#define SQL_KW_RES(name, reserved) reserved,
	SQL_KEYWORDS(SQL_KW_RES)
#undef SQL_KW_RES
};

static int upper(int c)
{
	return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static int is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident_char(int c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(int c)
{
	return is_digit(c) || (upper(c) >= 'A' && upper(c) <= 'F');
}

const char *sql_kw_name(int kw)
{
	return kw > 0 && kw < SQL_KW_COUNT ? kw_names[kw] : "";
}

int sql_kw_reserved(int kw)
{
	return kw > 0 && kw < SQL_KW_COUNT && kw_res[kw];
}

/* Compare p[0..len) in any case with the upper-case NUL-terminated <name>: <0, 0, >0. */
static int kwcmp(const char *p, size_t len, const char *name)
{
	size_t i;

	for (i = 0; i < len && name[i]; i++)
		if (upper((unsigned char)p[i]) != (unsigned char)name[i])
			return upper((unsigned char)p[i]) - (unsigned char)name[i];
	if (i < len)
		return 1;
	return name[i] ? -1 : 0;
}

int sql_kw_lookup(const char *p, size_t len)
{
	int lo = 1, hi = SQL_KW_COUNT - 1;

	if (len < 2 || len > 20)
		return SQL_KW_NONE;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = kwcmp(p, len, kw_names[mid]);

		if (!c)
			return mid;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return SQL_KW_NONE;
}

int sql_unicode_space(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
		return 2;
	if (n < 3)
		return 0;
	if (p[0] == 0xe2 && p[1] == 0x80 && ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 ||
					     p[2] == 0xa9 || p[2] == 0xaf))
		return 3;
	if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
		return 3;
	if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80)
		return 3;
	if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		return 3;
	return 0;
}

/* Skip the body of a quoted literal or identifier whose opening quote(s) end at s[*i], with
 * <q> the quote character and <triple> for ''' or """. A backslash always takes the next
 * byte with it, raw or not (in a raw string \' does not end it either). Newlines end nothing
 * but are refused outside triple quotes. Sets *i past the closing quote(s); returns 0, or -1
 * with *err when the text ends first. */
static int skip_quoted(const char *s, size_t len, size_t *i, char q, int triple, const char **err)
{
	size_t j = *i;

	while (j < len) {
		char c = s[j];

		if (c == '\\') {
			if (j + 1 >= len)
				break;
			if (!triple && (s[j + 1] == '\n' || s[j + 1] == '\r'))
				break;
			j += 2;
			continue;
		}
		if (c == q) {
			if (!triple) {
				*i = j + 1;
				return 0;
			}
			if (j + 2 < len && s[j + 1] == q && s[j + 2] == q) {
				*i = j + 3;
				return 0;
			}
		} else if (!triple && (c == '\n' || c == '\r')) {
			*err = q == '`' ? "newline in quoted identifier" : "newline in string literal";
			return -1;
		}
		j++;
	}
	*err = q == '`' ? "unterminated quoted identifier" : "unterminated string literal";
	return -1;
}

/* Scan a number starting at s[i]: decimal digits, 0x hex, a fraction, an exponent. A dot
 * followed by a letter other than an exponent is left alone, so that "p-123.ds" keeps its
 * path dot. Sets *flags (SQL_TOKF_INT) and returns the end index. */
static size_t scan_number(const char *s, size_t len, size_t i, unsigned char *flags)
{
	size_t j = i;
	int frac = 0;

	*flags = 0;
	if (s[j] == '0' && j + 2 < len && (s[j + 1] | 0x20) == 'x' &&
	    is_hex((unsigned char)s[j + 2])) {
		for (j += 2; j < len && is_hex((unsigned char)s[j]); j++)
			;
		return j;
	}
	while (j < len && is_digit((unsigned char)s[j]))
		j++;
	if (j < len && s[j] == '.') {
		int nx = j + 1 < len ? (unsigned char)s[j + 1] : 0;
		int nx2 = j + 2 < len ? (unsigned char)s[j + 2] : 0;

		if (is_digit(nx) || !is_ident_start(nx) ||
		    ((nx | 0x20) == 'e' && (is_digit(nx2) || nx2 == '+' || nx2 == '-'))) {
			frac = 1;
			for (j++; j < len && is_digit((unsigned char)s[j]); j++)
				;
		}
	}
	if (j < len && (s[j] | 0x20) == 'e') {
		size_t k = j + 1;

		if (k < len && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < len && is_digit((unsigned char)s[k])) {
			frac = 1;
			for (j = k; j < len && is_digit((unsigned char)s[j]); j++)
				;
		}
	}
	if (!frac && j > i && s[i] != '.')
		*flags = SQL_TOKF_INT;
	return j;
}

/* Operators of two characters, with their codes. */
static int two_char_op(char a, char b)
{
	switch (a) {
	case '<':
		return b == '=' ? SQL_OP_LE : b == '>' ? SQL_OP_NE : b == '<' ? SQL_OP_SHL : 0;
	case '>':
		return b == '=' ? SQL_OP_GE : b == '>' ? SQL_OP_SHR : 0;
	case '!':
		return b == '=' ? SQL_OP_NE : 0;
	case '|':
		return b == '|' ? SQL_OP_CONCAT : b == '>' ? SQL_OP_PIPE : 0;
	case '=':
		return b == '>' ? SQL_OP_ARROW : 0;
	case '-':
		return b == '>' ? SQL_OP_LAMBDA : 0;
	}
	return 0;
}

#define LEXFAIL(msg, at) return (*err = (msg), *err_off = (at), -1)
#define LEXBOUND(msg, at) return (*err = (msg), *err_off = (at), -2)

int sql_lex(const char *s, size_t len, struct sql_token *toks, int max_toks, int max_depth,
	    const char **err, size_t *err_off)
{
	int n = 0, depth = 0, open = -1;
	size_t i = 0;

	*err = NULL;
	*err_off = 0;
	if (max_toks < 1 || max_depth < 1)
		LEXBOUND("token or depth limit below 1", 0);
	while (i < len) {
		unsigned char c = (unsigned char)s[i], fl = 0;
		size_t start = i;
		int type, code = 0, u;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			i++;
			continue;
		}
		if (c >= 0x80 && (u = sql_unicode_space(s + i, len - i))) {
			i += (size_t)u;
			continue;
		}
		if (c == '#' || (c == '-' && i + 1 < len && s[i + 1] == '-')) {
			while (i < len && s[i] != '\n' && s[i] != '\r')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			for (i += 2; i + 1 < len && !(s[i] == '*' && s[i + 1] == '/'); i++)
				;
			if (i + 1 >= len)
				LEXFAIL("unterminated comment", start);
			i += 2;
			continue;
		}
		if (n >= max_toks - 1)
			LEXBOUND("too many tokens", start);

		if (is_ident_start(c)) {
			size_t j = i;
			int pre = 0;

			while (j < len && is_ident_char((unsigned char)s[j]))
				j++;
			/* r'..', b"..", rb'..', br'..' in any case: a string with a prefix. */
			if (j < len && (s[j] == '\'' || s[j] == '"') && j - i <= 2) {
				int r = 0, b = 0;
				size_t k;

				for (k = i; k < j; k++) {
					if ((s[k] | 0x20) == 'r' && !r)
						r = 1;
					else if ((s[k] | 0x20) == 'b' && !b)
						b = 1;
					else
						break;
				}
				if (k == j)
					pre = 1 | (r ? 2 : 0) | (b ? 4 : 0);
			}
			if (!pre) {
				type = SQL_TOK_IDENT;
				code = sql_kw_lookup(s + i, j - i);
				if (sql_kw_reserved(code))
					fl = SQL_TOKF_RESERVED;
				i = j;
			} else {
				char q = s[j];
				int triple = j + 2 < len && s[j + 1] == q && s[j + 2] == q;

				type = pre & 4 ? SQL_TOK_BYTES : SQL_TOK_STRING;
				fl = (pre & 2 ? SQL_TOKF_RAW : 0) | (triple ? SQL_TOKF_TRIPLE : 0);
				i = j + (triple ? 3 : 1);
				if (skip_quoted(s, len, &i, q, triple, err))
					LEXFAIL(*err, start);
			}
		} else if (c == '\'' || c == '"') {
			int triple = i + 2 < len && s[i + 1] == (char)c && s[i + 2] == (char)c;

			type = SQL_TOK_STRING;
			fl = triple ? SQL_TOKF_TRIPLE : 0;
			i += triple ? 3 : 1;
			if (skip_quoted(s, len, &i, (char)c, triple, err))
				LEXFAIL(*err, start);
		} else if (c == '`') {
			type = SQL_TOK_QIDENT;
			i++;
			if (skip_quoted(s, len, &i, '`', 0, err))
				LEXFAIL(*err, start);
			if (i - start == 2)
				LEXFAIL("empty quoted identifier", start);
		} else if (is_digit(c) || (c == '.' && i + 1 < len && is_digit((unsigned char)s[i + 1]))) {
			type = SQL_TOK_NUMBER;
			i = scan_number(s, len, i, &fl);
		} else if (c == '@' && i + 1 < len && s[i + 1] == '@') {
			size_t j = i + 2;

			if (j < len && s[j] == '`') {
				j++;
				if (skip_quoted(s, len, &j, '`', 0, err))
					LEXFAIL(*err, start);
			} else {
				while (j < len && is_ident_char((unsigned char)s[j]))
					j++;
			}
			if (j == i + 2)
				LEXFAIL("empty system variable name", start);
			type = SQL_TOK_SYSVAR;
			i = j;
		} else if (c == '@' && i + 1 < len &&
			   (is_ident_start((unsigned char)s[i + 1]) || s[i + 1] == '`')) {
			size_t j = i + 1;

			if (s[j] == '`') {
				j++;
				if (skip_quoted(s, len, &j, '`', 0, err))
					LEXFAIL(*err, start);
			} else {
				while (j < len && is_ident_char((unsigned char)s[j]))
					j++;
			}
			type = SQL_TOK_PARAM;
			i = j;
		} else if (c == '?') {
			type = SQL_TOK_PARAM;
			i++;
		} else if (c && strchr("()[]{},;.+-*/%=<>!~&|^:@", c)) {
			type = SQL_TOK_OP;
			code = i + 1 < len ? two_char_op((char)c, s[i + 1]) : 0;
			if (code)
				i += 2;
			else
				code = c, i++;
		} else {
			LEXFAIL(c >= 0x80 ? "non-ASCII character outside a string or identifier"
					  : "unexpected character", start);
		}

		toks[n] = (struct sql_token){ s + start, (unsigned)(i - start), (unsigned char)type,
					      fl, (unsigned short)code, -1 };
		if (type == SQL_TOK_OP && (code == '(' || code == '[' || code == '{')) {
			if (depth >= max_depth)
				LEXBOUND("brackets nested too deep", start);
			toks[n].match = open; /* the enclosing open bracket until matched */
			open = n;
			depth++;
		} else if (type == SQL_TOK_OP && (code == ')' || code == ']' || code == '}')) {
			int want = code == ')' ? '(' : code == ']' ? '[' : '{';

			if (open < 0 || toks[open].code != want)
				LEXFAIL("unbalanced bracket", start);
			u = toks[open].match;
			toks[open].match = n;
			toks[n].match = open;
			open = u;
			depth--;
		}
		n++;
	}
	if (open >= 0)
		LEXFAIL("unclosed bracket", (size_t)(toks[open].p - s));
	toks[n] = (struct sql_token){ s + len, 0, SQL_TOK_EOF, 0, 0, -1 };
	return n;
}
