/* sql.c - GoogleSQL statement classifier, table-reference finder and unbounded-write check.
 *
 * The text is tokenized once (sqllex.c) into the caller's token array, brackets matched. A
 * recursive-descent parser then walks the statements: scripting blocks are parsed as such and
 * every statement inside is reported; queries are parsed clause by clause, with the scopes
 * that decide what a name in FROM is (a CTE, a correlated path of an alias, or a table).
 * Expressions are not fully parsed: they are scanned for subqueries, TABLE/MODEL arguments
 * and anything that must not be there (a FROM outside a query, a hint), and a failure of any
 * kind longjmps back to sql_analyze, which turns the statement into SQL_UNKNOWN. The WHERE
 * of a DELETE/UPDATE (and MERGE's conditions) goes through a small three-valued evaluator
 * that decides whether it can be false. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

#define MAX_SCOPE 256 /* aliases, CTE names, variables visible at once */
#define MAX_TEMP 64   /* temporary tables created by one script */
#define MAX_PARTS 8   /* components of one path */
#define NAME_MAX_LEN 1100

/* A name as written: unquoted, or the inside of a backtick part (escapes not decoded). */
struct name {
	const char *p;
	unsigned len;
	unsigned char quoted;
};

/* A path as parsed: its parts (a backtick part holding dots is split) and its tokens. */
struct path {
	int n;
	struct name c[MAX_PARTS];
	int first, last; /* token indexes */
};

struct parser {
	const char *s;
	size_t len;
	const struct sql_token *t;
	int i;
	struct sql_result *r;
	const char *proj, *ds;
	char projbuf[NAME_MAX_LEN], dsbuf[NAME_MAX_LEN];
	jmp_buf jb;
	int bound; /* the failure was an exceeded bound */
	int stop_do; /* DO ends an expression (WHILE cond DO) */
	int depth;
	int open;   /* statement being parsed, or -1 */
	int parent; /* enclosing statement for new ones, or -1 */
	struct name alias[MAX_SCOPE];
	int n_alias, alias_floor;
	struct name cte[MAX_SCOPE];
	int n_cte;
	struct name var[MAX_SCOPE];
	int n_var;
	struct name temp[MAX_TEMP];
	int n_temp;
};

static const char *const kind_names[] = {
#define SQL_KIND_NAME(name) #name,
	SQL_KINDS(SQL_KIND_NAME)
#undef SQL_KIND_NAME
};

const char *sql_kind_name(enum sql_kind k)
{
	return (unsigned)k < SQL_KIND_COUNT ? kind_names[k] : "UNKNOWN";
}

void sql_result_init(struct sql_result *r, struct sql_stmt *stmts, int max_stmts,
		     struct sql_table *tables, int max_tables, struct sql_token *toks,
		     int max_toks, char *names, size_t names_cap)
{
	memset(r, 0, sizeof(*r));
	r->stmts = stmts;
	r->max_stmts = max_stmts;
	r->tables = tables;
	r->max_tables = max_tables;
	r->toks = toks;
	r->max_toks = max_toks;
	r->names = names;
	r->names_cap = names_cap;
}

int sql_all_bounded(const struct sql_result *r)
{
	int i;

	if (r->unknown)
		return 0;
	for (i = 0; i < r->n_stmts; i++)
		if (r->stmts[i].unbounded)
			return 0;
	return 1;
}

/* --- failure and token helpers ------------------------------------------------------------ */

/* Abandon the analysis at the current token: record <why> and jump back to sql_analyze. */
__attribute__((noreturn)) static void fail(struct parser *p, const char *why)
{
	if (!p->r->error) {
		p->r->error = why;
		p->r->error_off = (size_t)(p->t[p->i].p - p->s);
	}
	longjmp(p->jb, 1);
}

/* As fail, for an exceeded bound: sql_analyze then returns -1. */
__attribute__((noreturn)) static void fail_bound(struct parser *p, const char *why)
{
	p->bound = 1;
	fail(p, why);
}

static void enter(struct parser *p)
{
	if (++p->depth > SQL_MAX_DEPTH)
		fail_bound(p, "nested too deep");
}

static void leave(struct parser *p)
{
	p->depth--;
}

static const struct sql_token *tk(const struct parser *p, int k)
{
	return &p->t[k];
}

static int is_kw_at(const struct parser *p, int k, int kw)
{
	return p->t[k].type == SQL_TOK_IDENT && p->t[k].code == kw;
}

static int is_kw(const struct parser *p, int kw)
{
	return is_kw_at(p, p->i, kw);
}

static int is_op_at(const struct parser *p, int k, int c)
{
	return p->t[k].type == SQL_TOK_OP && p->t[k].code == c;
}

static int is_op(const struct parser *p, int c)
{
	return is_op_at(p, p->i, c);
}

static int at_end(const struct parser *p)
{
	return p->t[p->i].type == SQL_TOK_EOF || is_op(p, ';');
}

/* Next token index, never past the EOF token. */
static int nx(const struct parser *p, int k)
{
	return p->t[k].type == SQL_TOK_EOF ? k : k + 1;
}

static void adv(struct parser *p)
{
	p->i = nx(p, p->i);
}

static int accept_kw(struct parser *p, int kw)
{
	if (!is_kw(p, kw))
		return 0;
	adv(p);
	return 1;
}

static void expect_kw(struct parser *p, int kw, const char *why)
{
	if (!accept_kw(p, kw))
		fail(p, why);
}

static int accept_op(struct parser *p, int c)
{
	if (!is_op(p, c))
		return 0;
	adv(p);
	return 1;
}

/* Is token k the word <w> (upper case), keyword or not? For words not in the keyword list. */
static int is_word_at(const struct parser *p, int k, const char *w)
{
	const struct sql_token *t = &p->t[k];
	size_t n = strlen(w), j;

	if (t->type != SQL_TOK_IDENT || t->len != n)
		return 0;
	for (j = 0; j < n; j++)
		if ((t->p[j] & ~0x20) != w[j] && t->p[j] != w[j])
			return 0;
	return 1;
}

/* Can token k be a name: an unquoted non-reserved word or a backtick identifier? */
static int is_name_at(const struct parser *p, int k)
{
	const struct sql_token *t = &p->t[k];

	return t->type == SQL_TOK_QIDENT || (t->type == SQL_TOK_IDENT && !(t->flags & SQL_TOKF_RESERVED));
}

/* Is token k the start of a query: SELECT, or WITH [RECURSIVE] name AS? */
static int query_at(const struct parser *p, int k)
{
	if (is_kw_at(p, k, SQL_KW_SELECT))
		return 1;
	if (!is_kw_at(p, k, SQL_KW_WITH))
		return 0;
	k = nx(p, k);
	return is_kw_at(p, k, SQL_KW_RECURSIVE) ||
	       (is_name_at(p, k) && is_kw_at(p, nx(p, k), SQL_KW_AS));
}

/* Does the bracket run starting at token k ("((SELECT") open a query? */
static int paren_query_at(const struct parser *p, int k)
{
	while (is_op_at(p, k, '('))
		k = nx(p, k);
	return query_at(p, k);
}

/* --- names ---------------------------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Put code point <cp> as UTF-8 at out[*o..cap). Returns 0 or -1 when it does not fit. */
static int put_utf8(char *out, size_t cap, size_t *o, unsigned long cp)
{
	unsigned char b[4];
	int n, k;

	if (cp < 0x80)
		b[0] = (unsigned char)cp, n = 1;
	else if (cp < 0x800)
		b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
		b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
	else
		b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f)),
		n = 4;
	if (*o + (size_t)n > cap)
		return -1;
	for (k = 0; k < n; k++)
		out[(*o)++] = (char)b[k];
	return 0;
}

/* Decode the backslash escapes of a quoted name part p[0..len) into out[0..cap). Returns the
 * decoded length, -1 for an invalid escape or no room, -2 when an escape yields a '.', a '`'
 * is fine, or a NUL (a name that could be split differently by BigQuery). */
static long unescape(const char *p, size_t len, char *out, size_t cap)
{
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned long cp;
		int k, nd, v;

		if (p[i] != '\\') {
			if (o >= cap)
				return -1;
			out[o++] = p[i++];
			continue;
		}
		if (++i >= len)
			return -1;
		switch (p[i]) {
		case 'a': cp = 7; break;
		case 'b': cp = 8; break;
		case 'f': cp = 12; break;
		case 'n': cp = 10; break;
		case 'r': cp = 13; break;
		case 't': cp = 9; break;
		case 'v': cp = 11; break;
		case '\\': case '?': case '"': case '\'': case '`': cp = (unsigned char)p[i]; break;
		case 'x': case 'X': case 'u': case 'U':
			nd = p[i] == 'u' ? 4 : p[i] == 'U' ? 8 : 2;
			for (cp = 0, k = 1; k <= nd; k++) {
				if (i + (size_t)k >= len || (v = hexval((unsigned char)p[i + k])) < 0)
					return -1;
				cp = cp * 16 + (unsigned long)v;
			}
			i += (size_t)nd;
			if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				return -1;
			if (cp == '.' || cp == 0)
				return -2;
			break;
		default:
			if (p[i] < '0' || p[i] > '7' || i + 2 >= len || p[i + 1] < '0' || p[i + 1] > '7' ||
			    p[i + 2] < '0' || p[i + 2] > '7')
				return -1;
			cp = (unsigned long)((p[i] - '0') * 64 + (p[i + 1] - '0') * 8 + (p[i + 2] - '0'));
			i += 2;
			if (cp == '.' || cp == 0)
				return -2;
		}
		i++;
		if (put_utf8(out, cap, &o, cp))
			return -1;
	}
	return (long)o;
}

/* The decoded text of name <n> in buf[0..cap): sets *len. Returns a pointer to the text (the
 * name itself when it needs no decoding), NULL when it cannot be decoded. */
static const char *name_text(const struct name *n, char *buf, size_t cap, size_t *len)
{
	long l;

	if (!n->quoted || !memchr(n->p, '\\', n->len)) {
		*len = n->len;
		return n->p;
	}
	l = unescape(n->p, n->len, buf, cap);
	if (l < 0)
		return NULL;
	*len = (size_t)l;
	return buf;
}

static int ieq(const char *a, size_t al, const char *b, size_t bl)
{
	size_t k;

	if (al != bl)
		return 0;
	for (k = 0; k < al; k++) {
		int x = (unsigned char)a[k], y = (unsigned char)b[k];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return 0;
	}
	return 1;
}

/* Are the two names equal, ignoring ASCII case (<icase>) or exactly? */
static int name_eq(const struct name *a, const struct name *b, int icase)
{
	char ba[256], bb[256];
	size_t al, bl;
	const char *x = name_text(a, ba, sizeof(ba), &al), *y = name_text(b, bb, sizeof(bb), &bl);

	if (!x || !y)
		return 0;
	return icase ? ieq(x, al, y, bl) : (al == bl && !memcmp(x, y, al));
}

/* The name of a single name token (a backtick token without its backticks). */
static struct name tok_name(const struct sql_token *t)
{
	if (t->type == SQL_TOK_QIDENT)
		return (struct name){ t->p + 1, t->len - 2, 1 };
	return (struct name){ t->p, t->len, 0 };
}

static void push_name(struct parser *p, struct name *arr, int *n, int cap, struct name nm)
{
	if (*n >= cap)
		fail_bound(p, "too many names in scope");
	arr[(*n)++] = nm;
}

static int find_name(const struct name *arr, int from, int n, const struct name *nm, int icase)
{
	int k;

	for (k = n - 1; k >= from; k--)
		if (name_eq(&arr[k], nm, icase))
			return 1;
	return 0;
}

/* --- paths and references ------------------------------------------------------------------- */

/* Append part <nm> to <pa>, splitting a backtick part on its dots. */
static void add_part(struct parser *p, struct path *pa, struct name nm)
{
	size_t a = 0, k;

	if (!nm.quoted) {
		if (pa->n >= MAX_PARTS)
			fail(p, "path has too many parts");
		pa->c[pa->n++] = nm;
		return;
	}
	for (k = 0; k <= nm.len; k++) {
		if (k < nm.len && nm.p[k] == '\\') {
			k++;
			continue;
		}
		if (k == nm.len || nm.p[k] == '.') {
			if (k == a)
				fail(p, "empty part in quoted name");
			if (pa->n >= MAX_PARTS)
				fail(p, "path has too many parts");
			pa->c[pa->n++] = (struct name){ nm.p + a, (unsigned)(k - a), 1 };
			a = k + 1;
		}
	}
}

/* Parse a path at the cursor: name {. name}. With <dashed>, an unquoted part may be a dashed
 * name ("my-project-1"), the adjacent tokens joined. Fails when there is no name here. */
static void parse_path(struct parser *p, struct path *pa, int dashed)
{
	pa->n = 0;
	pa->first = p->i;
	if (!is_name_at(p, p->i))
		fail(p, "expected a name");
	for (;;) {
		const struct sql_token *t = tk(p, p->i);

		if (t->type == SQL_TOK_QIDENT) {
			add_part(p, pa, tok_name(t));
			adv(p);
		} else if (t->type == SQL_TOK_IDENT || (pa->n && t->type == SQL_TOK_NUMBER &&
							 (t->flags & SQL_TOKF_INT))) {
			const char *b = t->p, *e = t->p + t->len;

			adv(p);
			/* my-project-123: "-" and words or numbers, each touching the previous. */
			while (dashed && is_op(p, '-') && tk(p, p->i)->p == e) {
				const struct sql_token *w = tk(p, p->i + 1);

				if ((w->type != SQL_TOK_IDENT && !(w->type == SQL_TOK_NUMBER &&
								  (w->flags & SQL_TOKF_INT))) ||
				    w->p != e + 1)
					break;
				adv(p);
				e++;
				for (w = tk(p, p->i); (w->type == SQL_TOK_IDENT ||
						       (w->type == SQL_TOK_NUMBER &&
							(w->flags & SQL_TOKF_INT))) && w->p == e;
				     w = tk(p, p->i)) {
					e = w->p + w->len;
					adv(p);
				}
			}
			add_part(p, pa, (struct name){ b, (unsigned)(e - b), 0 });
		} else {
			fail(p, "expected a name after '.'");
		}
		pa->last = p->i - 1;
		if (!is_op(p, '.'))
			break;
		t = tk(p, p->i + 1);
		if (t->type != SQL_TOK_IDENT && t->type != SQL_TOK_QIDENT &&
		    !(t->type == SQL_TOK_NUMBER && (t->flags & SQL_TOKF_INT)))
			break;
		adv(p);
	}
}

/* Append <n> bytes to the name arena. */
static void arena_put(struct parser *p, const char *s, size_t n)
{
	struct sql_result *r = p->r;

	if (r->names_len + n + 1 > r->names_cap)
		fail_bound(p, "name arena full");
	memcpy(r->names + r->names_len, s, n);
	r->names_len += n;
}

/* Append part <nm>, decoded, to the arena; fails on a name BigQuery could read otherwise. */
static void arena_part(struct parser *p, const struct name *nm)
{
	char buf[NAME_MAX_LEN];
	size_t n;
	const char *s = name_text(nm, buf, sizeof(buf), &n);

	if (!s)
		fail(p, "invalid or ambiguous escape in quoted name");
	if (memchr(s, '.', n) || memchr(s, '\0', n))
		fail(p, "ambiguous quoted name");
	arena_put(p, s, n);
}

/* Record a reference to the object at path <pa> with <role> and <flags>, resolving it against
 * the defaults: a table (or routine, model) needs 3 parts, a schema 2. */
static void add_ref(struct parser *p, const struct path *pa, int role, int flags)
{
	struct sql_result *r = p->r;
	struct sql_table *t;
	int want = flags & SQL_TF_SCHEMA ? 2 : 3, k, info = -1, have = pa->n;
	size_t name_off = r->names_len;
	const char *pre[2];
	int n_pre = 0;

	for (k = 0; k < pa->n; k++)
		if (!pa->c[k].quoted || !memchr(pa->c[k].p, '\\', pa->c[k].len))
			if (ieq(pa->c[k].p, pa->c[k].len, "INFORMATION_SCHEMA", 18))
				info = k;
	if (info >= 0 && !(flags & (SQL_TF_SCHEMA | SQL_TF_ROUTINE | SQL_TF_MODEL))) {
		flags |= SQL_TF_INFO_SCHEMA;
		if (info > 2 || info != pa->n - 2)
			fail(p, "unsupported INFORMATION_SCHEMA path");
		want = 4;
	}
	if (flags & SQL_TF_TEMP) {
		want = have;
	} else if (have > want) {
		fail(p, "path has too many parts");
	}
	/* Fill the missing leading parts from the defaults. */
	if (have < want && want - have <= 2) {
		int miss = want - have;

		if (miss == 2) {
			if (p->proj && p->ds)
				pre[n_pre++] = p->proj, pre[n_pre++] = p->ds;
			else
				flags |= SQL_TF_UNRESOLVED;
		} else {
			if (p->proj)
				pre[n_pre++] = p->proj;
			else
				flags |= SQL_TF_UNRESOLVED;
		}
	} else if (have < want) {
		flags |= SQL_TF_UNRESOLVED;
	}
	for (k = 0; k < n_pre; k++) {
		arena_put(p, pre[k], strlen(pre[k]));
		arena_put(p, ".", 1);
	}
	for (k = 0; k < pa->n; k++) {
		if (k)
			arena_put(p, ".", 1);
		arena_part(p, &pa->c[k]);
	}
	r->names[r->names_len++] = '\0';
	if (pa->c[pa->n - 1].len && pa->c[pa->n - 1].p[pa->c[pa->n - 1].len - 1] == '*') {
		if (!pa->c[pa->n - 1].quoted)
			fail(p, "unquoted wildcard");
		flags |= SQL_TF_WILDCARD;
	}
	if (r->n_tables >= r->max_tables)
		fail_bound(p, "too many table references");
	t = &r->tables[r->n_tables++];
	t->p = tk(p, pa->first)->p;
	t->len = (size_t)(tk(p, pa->last)->p + tk(p, pa->last)->len - t->p);
	t->name = r->names + name_off;
	t->stmt = p->open;
	t->role = (unsigned char)role;
	t->flags = (unsigned char)flags;
	t->place = SQL_PLACE_OTHER;
	t->kw = NULL;
	t->end = t->p + t->len;
	t->alias = t->time = t->sample = NULL;
	t->alias_len = t->time_len = t->sample_len = 0;
}

/* The reference added since the table count was <n0>, or NULL (a CTE, an alias path). */
static struct sql_table *added_ref(struct parser *p, int n0)
{
	return p->r->n_tables > n0 ? &p->r->tables[p->r->n_tables - 1] : NULL;
}

/* End of token k in the text. */
static const char *tok_end(const struct parser *p, int k)
{
	return tk(p, k)->p + tk(p, k)->len;
}

/* A path read as a table in a FROM clause or TABLE argument: not a table when it is a CTE
 * name in scope (one part) or, in FROM, a path starting at a visible alias (an array of the
 * aliased row); a temporary table of the script when one part names one. */
static void table_read(struct parser *p, const struct path *pa, int in_from, int flags)
{
	if (pa->n == 1 && !(flags & SQL_TF_MODEL) && find_name(p->cte, 0, p->n_cte, &pa->c[0], 1))
		return;
	if (in_from && pa->n >= 2 && find_name(p->alias, p->alias_floor, p->n_alias, &pa->c[0], 1))
		return;
	if (pa->n == 1 && !(flags & SQL_TF_MODEL) &&
	    find_name(p->temp, 0, p->n_temp, &pa->c[0], 0))
		flags |= SQL_TF_TEMP;
	add_ref(p, pa, SQL_ROLE_READ, flags);
}

/* Parse a path at the cursor and record it with <role> and <flags>. */
static void ref_here(struct parser *p, int role, int flags, struct path *out)
{
	struct path pa;

	parse_path(p, &pa, 1);
	if (pa.n == 1 && !(flags & (SQL_TF_ROUTINE | SQL_TF_MODEL | SQL_TF_SCHEMA)) &&
	    find_name(p->temp, 0, p->n_temp, &pa.c[0], 0))
		flags |= SQL_TF_TEMP;
	add_ref(p, &pa, role, flags);
	if (out)
		*out = pa;
}

/* --- expressions ---------------------------------------------------------------------------- */

static void query(struct parser *p);
static void query_set(struct parser *p);
static void query_term(struct parser *p);
static void expr(struct parser *p);
static void bracket(struct parser *p);

/* Reserved words that may also start an expression's function call: IF(...), LEFT(...). */
static int reserved_fn(int kw)
{
	switch (kw) {
	case SQL_KW_IF: case SQL_KW_LEFT: case SQL_KW_RIGHT: case SQL_KW_ROLLUP: case SQL_KW_CUBE:
	case SQL_KW_GROUPING: case SQL_KW_RANGE: case SQL_KW_COLLATE:
		return 1;
	}
	return 0;
}

/* Reserved words that continue an expression. */
static int expr_kw(int kw)
{
	switch (kw) {
	case SQL_KW_AND: case SQL_KW_OR: case SQL_KW_NOT: case SQL_KW_IS: case SQL_KW_NULL:
	case SQL_KW_TRUE: case SQL_KW_FALSE: case SQL_KW_IN: case SQL_KW_BETWEEN: case SQL_KW_LIKE:
	case SQL_KW_ANY: case SQL_KW_SOME: case SQL_KW_ALL: case SQL_KW_ESCAPE: case SQL_KW_AT:
	case SQL_KW_NEW: case SQL_KW_DEFAULT: case SQL_KW_UNNEST: case SQL_KW_INTERVAL:
	case SQL_KW_ARRAY: case SQL_KW_STRUCT: case SQL_KW_EXISTS: case SQL_KW_CAST:
	case SQL_KW_EXTRACT: case SQL_KW_OVER: case SQL_KW_IGNORE: case SQL_KW_RESPECT:
	case SQL_KW_NULLS: case SQL_KW_PROTO: case SQL_KW_ENUM: case SQL_KW_CURRENT:
		return 1;
	}
	return 0;
}

/* Is the FROM at token k the end of "IS [NOT] DISTINCT FROM"? */
static int distinct_from(const struct parser *p, int k)
{
	return k >= 2 && is_kw_at(p, k - 1, SQL_KW_DISTINCT) &&
	       (is_kw_at(p, k - 2, SQL_KW_IS) ||
		(k >= 3 && is_kw_at(p, k - 2, SQL_KW_NOT) && is_kw_at(p, k - 3, SQL_KW_IS)));
}

/* CASE ... END at the cursor. */
static void case_expr(struct parser *p)
{
	enter(p);
	adv(p);
	for (;;) {
		expr(p);
		if (is_kw(p, SQL_KW_WHEN) || is_kw(p, SQL_KW_THEN) || is_kw(p, SQL_KW_ELSE)) {
			adv(p);
			continue;
		}
		if (!accept_kw(p, SQL_KW_END))
			fail(p, "CASE without END");
		break;
	}
	leave(p);
}

/* An expression at the cursor, at bracket depth 0: consumes up to the first token that
 * cannot continue it (a comma, a closing bracket, ';', a clause keyword), recording the
 * tables of its subqueries. May consume nothing. Two operands in a row are refused except a
 * name after an operand (an alias) and a string after a word (DATE '2024-01-01'), so that
 * "SELECT 1 DROP TABLE t" is not taken for one odd SELECT. */
static void expr(struct parser *p)
{
	int operand = 0, adj = 0;

	enter(p);
	for (;;) {
		const struct sql_token *t = tk(p, p->i);

		if (t->type == SQL_TOK_EOF)
			break;
		if (t->type == SQL_TOK_OP) {
			if (t->code == ')' || t->code == ']' || t->code == '}' || t->code == ',' ||
			    t->code == ';')
				break;
			if (t->code == '(' || t->code == '[' || t->code == '{') {
				/* a call, subscript or group: an operand either way */
				bracket(p);
				operand = 1;
				continue;
			}
			if (t->code == SQL_OP_PIPE)
				fail(p, "pipe syntax is not supported");
			if (t->code == '@')
				fail(p, "hints are not supported");
			adv(p);
			operand = adj = 0;
			continue;
		}
		if (t->type != SQL_TOK_IDENT || !(t->flags & SQL_TOKF_RESERVED)) {
			if (t->type == SQL_TOK_IDENT && t->code == SQL_KW_DO && p->stop_do)
				break;
			if (t->type == SQL_TOK_IDENT && t->code == SQL_KW_OFFSET) {
				adv(p); /* LIMIT n OFFSET m */
				operand = adj = 0;
				continue;
			}
			if (operand) {
				int name = t->type == SQL_TOK_IDENT || t->type == SQL_TOK_QIDENT;
				int typed = (t->type == SQL_TOK_STRING || t->type == SQL_TOK_BYTES) &&
					    tk(p, p->i - 1)->type == SQL_TOK_IDENT;

				if (!typed && (!name || adj))
					fail(p, "unexpected token in expression");
				if (!typed)
					adj = 1;
			}
			operand = 1;
			adv(p);
			continue;
		}
		operand = adj = 0;
		if (t->code == SQL_KW_CASE) {
			case_expr(p);
			operand = 1;
		} else if (expr_kw(t->code)) {
			adv(p);
		} else if (reserved_fn(t->code) && is_op_at(p, p->i + 1, '(')) {
			adv(p);
		} else if (t->code == SQL_KW_DISTINCT && is_kw_at(p, p->i + 1, SQL_KW_FROM) &&
			   distinct_from(p, p->i + 1)) {
			adv(p);
			adv(p);
		} else if (t->code == SQL_KW_WITH && is_op_at(p, p->i + 1, '(')) {
			adv(p);
		} else {
			break;
		}
	}
	leave(p);
}

/* The inside of the bracket at the cursor, not a subquery: everything may appear except a
 * FROM outside EXTRACT(... FROM ...) and IS DISTINCT FROM; SELECT starts a query; TABLE name
 * and MODEL name are read references (table-valued function arguments). */
static void inner(struct parser *p)
{
	int open = p->i, close = tk(p, p->i)->match, fn = 0;

	if (open > 0 && tk(p, open - 1)->type == SQL_TOK_IDENT)
		fn = tk(p, open - 1)->code;
	enter(p);
	adv(p);
	while (p->i < close) {
		const struct sql_token *t = tk(p, p->i);

		if (t->type == SQL_TOK_OP) {
			if (t->code == '(' || t->code == '[' || t->code == '{')
				bracket(p);
			else if (t->code == ';' || t->code == SQL_OP_PIPE || t->code == '@')
				fail(p, "unexpected token in brackets");
			else
				adv(p);
			continue;
		}
		if (t->type != SQL_TOK_IDENT) {
			adv(p);
			continue;
		}
		switch (t->code) {
		case SQL_KW_SELECT:
			query_set(p);
			break;
		case SQL_KW_WITH:
			if (query_at(p, p->i))
				query(p);
			else
				adv(p);
			break;
		case SQL_KW_FROM:
			if (fn != SQL_KW_EXTRACT && !distinct_from(p, p->i))
				fail(p, "FROM outside a query");
			adv(p);
			break;
		case SQL_KW_CASE:
			case_expr(p);
			break;
		case SQL_KW_TABLE:
		case SQL_KW_MODEL:
			if (is_name_at(p, p->i + 1) && !is_kw_at(p, p->i + 1, SQL_KW_TABLE)) {
				struct path pa;
				int model = t->code == SQL_KW_MODEL, n0 = p->r->n_tables;
				struct sql_table *ref;

				adv(p);
				parse_path(p, &pa, 1);
				table_read(p, &pa, 0, model ? SQL_TF_MODEL : 0);
				if (!model && (ref = added_ref(p, n0))) {
					ref->place = SQL_PLACE_TABLE_ARG;
					ref->kw = t->p;
				}
			} else {
				adv(p);
			}
			break;
		default:
			adv(p);
		}
	}
	if (p->i != close)
		fail(p, "unexpected token before closing bracket");
	adv(p);
	leave(p);
}

/* A bracket at the cursor in an expression: a subquery "(SELECT ...)", "((SELECT ...) UNION
 * ...)", or anything else scanned by inner(). An opening run of brackets that turns out not to
 * be one query ("((SELECT 1) + 1)") is scanned again as an expression. */
static void bracket(struct parser *p)
{
	const struct sql_token *t = tk(p, p->i);

	if (t->code == '{')
		fail(p, "braces are not supported");
	if (t->code == '(' && query_at(p, p->i + 1)) {
		query_term(p);
		return;
	}
	if (t->code == '(' && is_op_at(p, p->i + 1, '(') && paren_query_at(p, p->i)) {
		/* Try the run as a query; on failure, undo and scan it as an expression. Scopes
		 * only grow by appending, so restoring their counts restores them. */
		int i = p->i, depth = p->depth, n_alias = p->n_alias, floor = p->alias_floor;
		int n_cte = p->n_cte, n_var = p->n_var, n_temp = p->n_temp;
		int n_tables = p->r->n_tables;
		size_t names_len = p->r->names_len;
		jmp_buf jb;

		memcpy(jb, p->jb, sizeof(jb));
		if (!setjmp(p->jb)) {
			query_term(p);
			memcpy(p->jb, jb, sizeof(jb));
			return;
		}
		memcpy(p->jb, jb, sizeof(jb));
		if (p->bound)
			longjmp(p->jb, 1);
		p->i = i, p->depth = depth, p->n_alias = n_alias, p->alias_floor = floor;
		p->n_cte = n_cte, p->n_var = n_var, p->n_temp = n_temp;
		p->r->n_tables = n_tables, p->r->names_len = names_len;
		p->r->error = NULL;
		p->r->error_off = 0;
	}
	inner(p);
}

/* --- queries -------------------------------------------------------------------------------- */

/* An alias at the cursor, "AS name" or a bare name; pushed into scope. Returns 1 if any. */
static int alias(struct parser *p)
{
	if (accept_kw(p, SQL_KW_AS)) {
		if (!is_name_at(p, p->i))
			fail(p, "expected an alias after AS");
	} else if (!is_name_at(p, p->i) || is_op_at(p, p->i + 1, '(') ||
		   ((is_kw(p, SQL_KW_PIVOT) || is_kw(p, SQL_KW_UNPIVOT)) &&
		    (is_op_at(p, p->i + 1, '(') || is_kw_at(p, p->i + 1, SQL_KW_INCLUDE) ||
		     is_kw_at(p, p->i + 1, SQL_KW_EXCLUDE)))) {
		return 0;
	}
	push_name(p, p->alias, &p->n_alias, MAX_SCOPE, tok_name(tk(p, p->i)));
	adv(p);
	return 1;
}

/* The bracket at the cursor, which must be there. */
static void need_bracket(struct parser *p, const char *why)
{
	if (!is_op(p, '('))
		fail(p, why);
	bracket(p);
}

/* An ORDER BY list: expr [ASC|DESC] [NULLS FIRST|LAST] {, ...}. */
static void order_list(struct parser *p)
{
	do {
		expr(p);
		if (!accept_kw(p, SQL_KW_ASC))
			accept_kw(p, SQL_KW_DESC);
		if (accept_kw(p, SQL_KW_NULLS))
			adv(p);
	} while (accept_op(p, ','));
}

/* One FROM item with its suffixes: a table path (or CTE name, or correlated array path), a
 * table-valued function call, UNNEST(...), a subquery or a parenthesised join. Subqueries in
 * FROM do not see the aliases around them. */
static void from_list(struct parser *p);

static void from_item(struct parser *p)
{
	int named = 0, n0 = p->r->n_tables;
	struct path pa;
	struct sql_table *ref = NULL;

	enter(p);
	if (is_op(p, '(')) {
		if (paren_query_at(p, p->i)) {
			int floor = p->alias_floor;

			p->alias_floor = p->n_alias;
			query_term(p);
			p->alias_floor = floor;
		} else {
			int close = tk(p, p->i)->match;

			adv(p);
			from_list(p);
			if (p->i != close)
				fail(p, "unexpected token in parenthesised join");
			adv(p);
		}
		named = alias(p);
	} else if (is_kw(p, SQL_KW_UNNEST)) {
		adv(p);
		need_bracket(p, "expected ( after UNNEST");
		named = alias(p);
	} else if (is_name_at(p, p->i)) {
		parse_path(p, &pa, 1);
		if (is_op(p, '(')) {
			bracket(p); /* table-valued function: TABLE/MODEL arguments are read */
		} else {
			table_read(p, &pa, 1, 0);
			if ((ref = added_ref(p, n0)))
				ref->place = SQL_PLACE_FROM;
			if (accept_kw(p, SQL_KW_FOR)) {
				int a = p->i - 1;

				if (accept_kw(p, SQL_KW_SYSTEM)) {
					if (!is_word_at(p, p->i, "TIME"))
						fail(p, "expected FOR SYSTEM TIME");
					adv(p);
				} else {
					expect_kw(p, SQL_KW_SYSTEM_TIME, "expected FOR SYSTEM_TIME");
				}
				expect_kw(p, SQL_KW_AS, "expected AS OF");
				expect_kw(p, SQL_KW_OF, "expected AS OF");
				expr(p);
				if (ref) {
					ref->time = tk(p, a)->p;
					ref->time_len = (size_t)(tok_end(p, p->i - 1) - ref->time);
					ref->end = tok_end(p, p->i - 1);
				}
			}
		}
		named = alias(p);
		if (!named)
			push_name(p, p->alias, &p->n_alias, MAX_SCOPE, pa.c[pa.n - 1]);
		else if (ref) {
			ref->alias = tk(p, p->i - 1)->p;
			ref->alias_len = tk(p, p->i - 1)->len;
			ref->end = tok_end(p, p->i - 1);
		}
		if (ref && is_kw(p, SQL_KW_TABLESAMPLE) && is_kw_at(p, p->i + 1, SQL_KW_SYSTEM) &&
		    is_op_at(p, p->i + 2, '(')) {
			ref->sample = tk(p, p->i)->p;
			ref->end = tok_end(p, tk(p, p->i + 2)->match);
			ref->sample_len = (size_t)(ref->end - ref->sample);
		}
	} else {
		fail(p, "expected a table");
	}
	for (;;) {
		if (is_kw(p, SQL_KW_WITH) && is_kw_at(p, p->i + 1, SQL_KW_OFFSET)) {
			adv(p);
			adv(p);
			alias(p);
		} else if (accept_kw(p, SQL_KW_TABLESAMPLE)) {
			expect_kw(p, SQL_KW_SYSTEM, "expected TABLESAMPLE SYSTEM");
			need_bracket(p, "expected ( after TABLESAMPLE SYSTEM");
		} else if (is_kw(p, SQL_KW_PIVOT) || is_kw(p, SQL_KW_UNPIVOT)) {
			adv(p);
			if (accept_kw(p, SQL_KW_INCLUDE) || accept_kw(p, SQL_KW_EXCLUDE))
				expect_kw(p, SQL_KW_NULLS, "expected NULLS");
			need_bracket(p, "expected ( after PIVOT");
			alias(p);
		} else {
			break;
		}
	}
	leave(p);
}

/* Is the cursor at a join: [NATURAL] [INNER|CROSS|FULL|LEFT|RIGHT [OUTER]] [HASH|LOOKUP] JOIN?
 * If so, consume it. */
static int join_op(struct parser *p)
{
	int k = p->i;

	if (is_kw_at(p, k, SQL_KW_NATURAL))
		k++;
	if (is_kw_at(p, k, SQL_KW_INNER) || is_kw_at(p, k, SQL_KW_CROSS))
		k++;
	else if (is_kw_at(p, k, SQL_KW_FULL) || is_kw_at(p, k, SQL_KW_LEFT) ||
		 is_kw_at(p, k, SQL_KW_RIGHT))
		k += is_kw_at(p, k + 1, SQL_KW_OUTER) ? 2 : 1;
	if (is_kw_at(p, k, SQL_KW_HASH) || is_kw_at(p, k, SQL_KW_LOOKUP))
		k++;
	if (!is_kw_at(p, k, SQL_KW_JOIN))
		return 0;
	p->i = k + 1;
	return 1;
}

/* FROM items joined by commas and JOINs, with ON/USING conditions. */
static void from_list(struct parser *p)
{
	enter(p);
	from_item(p);
	for (;;) {
		if (accept_op(p, ',')) {
			from_item(p);
		} else if (join_op(p)) {
			from_item(p);
			if (accept_kw(p, SQL_KW_ON))
				expr(p);
			else if (accept_kw(p, SQL_KW_USING))
				need_bracket(p, "expected ( after USING");
		} else {
			break;
		}
	}
	leave(p);
}

/* Index of the token ending the SELECT list that starts at k: FROM, another clause, a closing
 * bracket, ';' or the end. */
static int select_list_end(const struct parser *p, int k)
{
	for (;;) {
		const struct sql_token *t = tk(p, k);

		if (t->type == SQL_TOK_EOF)
			return k;
		if (t->type == SQL_TOK_OP) {
			if (t->code == ')' || t->code == ']' || t->code == '}' || t->code == ';')
				return k;
			k = t->match >= 0 ? t->match + 1 : k + 1;
			continue;
		}
		if (t->type == SQL_TOK_IDENT) {
			switch (t->code) {
			case SQL_KW_FROM:
				if (distinct_from(p, k))
					break;
				return k;
			case SQL_KW_WHERE: case SQL_KW_GROUP: case SQL_KW_HAVING: case SQL_KW_QUALIFY:
			case SQL_KW_WINDOW: case SQL_KW_ORDER: case SQL_KW_LIMIT: case SQL_KW_UNION:
			case SQL_KW_INTERSECT:
				return k;
			case SQL_KW_EXCEPT:
				if (!is_op_at(p, k + 1, '('))
					return k;
				break;
			}
		}
		k++;
	}
}

/* The SELECT list: items expr [AS alias], *, t.*, with EXCEPT(...)/REPLACE(...). */
static void select_list(struct parser *p, int end)
{
	for (;;) {
		expr(p);
		if (accept_kw(p, SQL_KW_EXCEPT))
			need_bracket(p, "expected ( after EXCEPT");
		if (accept_kw(p, SQL_KW_AS)) {
			if (!is_name_at(p, p->i))
				fail(p, "expected an alias after AS");
			adv(p);
		}
		if (!accept_op(p, ','))
			break;
		if (p->i == end)
			break; /* trailing comma */
	}
	if (p->i != end)
		fail(p, "unexpected token in SELECT list");
}

/* SELECT ... [FROM ...] [WHERE] [GROUP BY] [HAVING] [QUALIFY] [WINDOW]. The FROM clause is
 * parsed first so that its aliases are in scope for the SELECT list's subqueries. */
static void select_core(struct parser *p)
{
	int mark = p->n_alias, list, end;

	enter(p);
	adv(p);
	if (is_kw(p, SQL_KW_WITH))
		fail(p, "SELECT WITH is not supported");
	if (accept_kw(p, SQL_KW_AS)) {
		if (!is_kw(p, SQL_KW_STRUCT) && !is_name_at(p, p->i))
			fail(p, "expected STRUCT or VALUE after SELECT AS");
		adv(p);
	}
	if (!accept_kw(p, SQL_KW_ALL))
		accept_kw(p, SQL_KW_DISTINCT);
	list = p->i;
	end = select_list_end(p, list);
	if (is_kw_at(p, end, SQL_KW_FROM)) {
		int after;

		p->i = end + 1;
		from_list(p);
		after = p->i;
		p->i = list;
		select_list(p, end);
		p->i = after;
	} else {
		select_list(p, end);
	}
	if (accept_kw(p, SQL_KW_WHERE))
		expr(p);
	if (accept_kw(p, SQL_KW_GROUP)) {
		expect_kw(p, SQL_KW_BY, "expected GROUP BY");
		do
			expr(p);
		while (accept_op(p, ','));
	}
	if (accept_kw(p, SQL_KW_HAVING))
		expr(p);
	if (accept_kw(p, SQL_KW_QUALIFY))
		expr(p);
	if (accept_kw(p, SQL_KW_WINDOW)) {
		do {
			if (!is_name_at(p, p->i))
				fail(p, "expected a window name");
			adv(p);
			expect_kw(p, SQL_KW_AS, "expected AS in WINDOW");
			need_bracket(p, "expected ( in WINDOW");
		} while (accept_op(p, ','));
	}
	p->n_alias = mark;
	leave(p);
}

/* A query term: SELECT ... or ( query ). */
static void query_term(struct parser *p)
{
	enter(p);
	if (is_op(p, '(')) {
		int close = tk(p, p->i)->match;

		adv(p);
		query(p);
		if (p->i != close)
			fail(p, "unexpected token in parenthesised query");
		adv(p);
	} else if (is_kw(p, SQL_KW_SELECT)) {
		select_core(p);
	} else {
		fail(p, "expected a query");
	}
	leave(p);
}

/* Query terms joined by UNION/INTERSECT/EXCEPT ALL|DISTINCT. */
static void query_set(struct parser *p)
{
	enter(p);
	query_term(p);
	while (is_kw(p, SQL_KW_UNION) || is_kw(p, SQL_KW_INTERSECT) || is_kw(p, SQL_KW_EXCEPT)) {
		adv(p);
		if (!accept_kw(p, SQL_KW_ALL) && !accept_kw(p, SQL_KW_DISTINCT))
			fail(p, "set operation without ALL or DISTINCT");
		query_term(p);
	}
	leave(p);
}

/* [WITH [RECURSIVE] name AS (query), ...] set-query [ORDER BY ...] [LIMIT n [OFFSET m]]. CTE
 * names are in scope for the rest of the query (a recursive one in its own body too). */
static void query(struct parser *p)
{
	int mark = p->n_cte;

	enter(p);
	if (accept_kw(p, SQL_KW_WITH)) {
		int rec = accept_kw(p, SQL_KW_RECURSIVE);

		do {
			struct name nm;

			if (!is_name_at(p, p->i) || is_op_at(p, p->i + 1, '.'))
				fail(p, "expected a WITH name");
			nm = tok_name(tk(p, p->i));
			adv(p);
			if (rec)
				push_name(p, p->cte, &p->n_cte, MAX_SCOPE, nm);
			expect_kw(p, SQL_KW_AS, "expected AS in WITH");
			if (!is_op(p, '('))
				fail(p, "expected ( in WITH");
			query_term(p);
			if (!rec)
				push_name(p, p->cte, &p->n_cte, MAX_SCOPE, nm);
		} while (accept_op(p, ','));
	}
	query_set(p);
	if (accept_kw(p, SQL_KW_ORDER)) {
		expect_kw(p, SQL_KW_BY, "expected ORDER BY");
		order_list(p);
	}
	if (accept_kw(p, SQL_KW_LIMIT)) {
		expr(p);
		if (accept_kw(p, SQL_KW_OFFSET))
			expr(p);
	}
	p->n_cte = mark;
	leave(p);
}

/* --- conditions that cannot be false -------------------------------------------------------- */

/* What a condition (or operand) is known to be for every row, ordered so that AND is the
 * minimum and OR the maximum: FALSE and NULL select no row; COL depends on the row; CONST is
 * the same for every row but unknown (a parameter, RAND(), an uncorrelated subquery); TAUT
 * holds for every row where it is not NULL (x = x); TRUE holds always. */
enum tv { TV_FALSE, TV_NULL, TV_COL, TV_CONST, TV_TAUT, TV_TRUE };

/* An operand: its truth value, a folded constant when known, and its token range. */
struct val {
	enum tv v;
	int kind;       /* 0 unknown, 'n' number, 's' string, 'b' bool, 'z' NULL */
	double num;
	const char *str;
	unsigned slen;
	int a, b;       /* tokens [a, b) */
};

/* The evaluator's state: the condition is tokens [i, end) of the parser's text; <target> and
 * <talias> are the last part and alias of the statement's target, for correlated subqueries
 * and "t.x = x". */
struct ev {
	const struct parser *p;
	int i, end;
	struct name target, talias;
	int depth;
};

static int ev_kw(const struct ev *e, int kw)
{
	return e->i < e->end && is_kw_at(e->p, e->i, kw);
}

static int ev_op(const struct ev *e, int c)
{
	return e->i < e->end && is_op_at(e->p, e->i, c);
}

/* Is the name token k the statement's target or its alias? */
static int ev_is_target(const struct ev *e, int k)
{
	struct name nm;

	if (!is_name_at(e->p, k))
		return 0;
	nm = tok_name(tk(e->p, k));
	return (e->talias.len && name_eq(&nm, &e->talias, 1)) ||
	       (e->target.len && name_eq(&nm, &e->target, 1));
}

/* Words that are constants without parentheses. */
static int const_word(const struct parser *p, int k)
{
	static const char *const w[] = { "CURRENT_DATE", "CURRENT_TIMESTAMP", "CURRENT_DATETIME",
					 "CURRENT_TIME", "SESSION_USER", NULL };
	int j;

	for (j = 0; w[j]; j++)
		if (is_word_at(p, k, w[j]))
			return 1;
	return 0;
}

/* Does tokens [a, b) refer to a column of the row? Subqueries count only when they name the
 * target (correlated); function names, declared variables, constant words, type names after
 * AS, INTERVAL units and date parts in EXTRACT(part FROM) or a *_DIFF/_TRUNC last argument
 * do not. */
static int has_col(const struct ev *e, int a, int b)
{
	const struct parser *p = e->p;
	int k;

	for (k = a; k < b; k++) {
		const struct sql_token *t = tk(p, k);

		if (t->type == SQL_TOK_OP && t->code == '(' && query_at(p, k + 1)) {
			int j, close = t->match;

			for (j = k + 1; j < close; j++)
				if (ev_is_target(e, j) && is_op_at(p, j + 1, '.'))
					return 1;
			k = close;
			continue;
		}
		if (!is_name_at(p, k))
			continue;
		if (k > a && is_op_at(p, k - 1, '.'))
			continue; /* a field: its base was looked at */
		if (is_op_at(p, k + 1, '('))
			continue; /* a function */
		if (t->type == SQL_TOK_IDENT && (is_op_at(p, k + 1, '.') && tk(p, k + 2)->type == SQL_TOK_IDENT &&
						 is_op_at(p, k + 3, '(')))
			continue; /* NET.HOST(...), SAFE.F(...) */
		if (const_word(p, k))
			continue;
		if (tk(p, k + 1)->type == SQL_TOK_STRING && t->type == SQL_TOK_IDENT)
			continue; /* DATE '2020-01-01' */
		if (k > a && (is_kw_at(p, k - 1, SQL_KW_AS) || is_kw_at(p, k - 1, SQL_KW_INTERVAL)))
			continue;
		if (k > a + 1 && tk(p, k - 1)->type == SQL_TOK_NUMBER && is_kw_at(p, k - 2, SQL_KW_INTERVAL))
			continue; /* INTERVAL 1 DAY */
		if (is_kw_at(p, k + 1, SQL_KW_FROM) && k > 0 && is_op_at(p, k - 1, '(') && k > 1 &&
		    is_kw_at(p, k - 2, SQL_KW_EXTRACT))
			continue;
		if (is_op_at(p, k + 1, ')') && k > 0 && is_op_at(p, k - 1, ',')) {
			int open = tk(p, k + 1)->match;

			if (open > 0 && tk(p, open - 1)->type == SQL_TOK_IDENT) {
				const struct sql_token *f = tk(p, open - 1);

				if ((f->len > 5 && ieq(f->p + f->len - 5, 5, "_DIFF", 5)) ||
				    (f->len > 6 && ieq(f->p + f->len - 6, 6, "_TRUNC", 6)))
					continue;
			}
		}
		{
			struct name nm = tok_name(t);

			if (find_name(p->var, 0, p->n_var, &nm, 1))
				continue; /* a script variable */
		}
		return 1;
	}
	return 0;
}

/* Tokens [a, b) and [c, d) spell the same operand, ignoring case, backticks and a leading
 * "target." or "alias." qualifier? */
static int same_operand(const struct ev *e, int a, int b, int c, int d)
{
	const struct parser *p = e->p;

	while (b - a >= 2 && is_op_at(p, a, '(') && tk(p, a)->match == b - 1)
		a++, b--;
	while (d - c >= 2 && is_op_at(p, c, '(') && tk(p, c)->match == d - 1)
		c++, d--;
	if (b - a > 2 && ev_is_target(e, a) && is_op_at(p, a + 1, '.'))
		a += 2;
	if (d - c > 2 && ev_is_target(e, c) && is_op_at(p, c + 1, '.'))
		c += 2;
	if (b - a != d - c || b == a)
		return 0;
	for (; a < b; a++, c++) {
		const struct sql_token *x = tk(p, a), *y = tk(p, c);

		if (is_name_at(p, a) && is_name_at(p, c)) {
			struct name nx = tok_name(x), ny = tok_name(y);

			if (!name_eq(&nx, &ny, 1))
				return 0;
		} else if (x->type != y->type || !ieq(x->p, x->len, y->p, y->len)) {
			return 0;
		}
	}
	return 1;
}

static struct val ev_or(struct ev *e);

/* An operand for which only "column or constant" is known. */
static struct val opaque(const struct ev *e, int a, int b)
{
	struct val v = { has_col(e, a, b) ? TV_COL : TV_CONST, 0, 0, NULL, 0, a, b };

	return v;
}

/* Skip one primary operand at e->i generically: a bracket group, a word with its call and
 * field/subscript suffixes, a typed literal, or any single token. */
static void ev_skip_primary(struct ev *e)
{
	const struct parser *p = e->p;

	if (e->i >= e->end)
		return;
	if (is_kw_at(p, e->i, SQL_KW_CASE)) {
		int d = 0;

		for (; e->i < e->end; e->i++) {
			if (is_kw_at(p, e->i, SQL_KW_CASE))
				d++;
			else if (is_kw_at(p, e->i, SQL_KW_END) && !--d) {
				e->i++;
				break;
			}
			if (tk(p, e->i)->match > e->i)
				e->i = tk(p, e->i)->match;
		}
		return;
	}
	if (is_kw_at(p, e->i, SQL_KW_INTERVAL)) {
		e->i++;
		ev_skip_primary(e);
		if (e->i < e->end && tk(p, e->i)->type == SQL_TOK_IDENT)
			e->i++;
		return;
	}
	if (tk(p, e->i)->type == SQL_TOK_IDENT && e->i + 1 < e->end &&
	    tk(p, e->i + 1)->type == SQL_TOK_STRING) {
		e->i += 2;
		return;
	}
	if (tk(p, e->i)->match > e->i)
		e->i = tk(p, e->i)->match;
	e->i++;
	for (;;) {
		if (ev_op(e, '.') && e->i + 1 < e->end) {
			e->i += 2;
		} else if (ev_op(e, '(') || ev_op(e, '[')) {
			e->i = tk(p, e->i)->match + 1;
		} else {
			break;
		}
	}
}

/* Fold a number or string literal token k. */
static struct val literal(const struct ev *e, int k)
{
	const struct sql_token *t = tk(e->p, k);
	struct val v = { TV_CONST, 0, 0, NULL, 0, k, k + 1 };

	if (t->type == SQL_TOK_NUMBER && t->len < 40) {
		char buf[48];

		memcpy(buf, t->p, t->len);
		buf[t->len] = 0;
		v.kind = 'n';
		v.num = (t->len > 2 && (buf[1] | 0x20) == 'x') ? (double)strtoull(buf, NULL, 16)
							    : strtod(buf, NULL);
	} else if (t->type == SQL_TOK_STRING && !(t->flags & SQL_TOKF_TRIPLE) &&
		   !memchr(t->p, '\\', t->len) && (t->p[0] == '\'' || t->p[0] == '"')) {
		v.kind = 's';
		v.str = t->p + 1;
		v.slen = t->len - 2;
	}
	return v;
}

/* A primary operand. */
static struct val ev_primary(struct ev *e)
{
	const struct parser *p = e->p;
	int a = e->i;
	struct val v;

	if (e->i >= e->end || ++e->depth > SQL_MAX_DEPTH) {
		struct val none = { TV_CONST, 0, 0, NULL, 0, a, a };

		return none;
	}
	if (ev_kw(e, SQL_KW_TRUE) || ev_kw(e, SQL_KW_FALSE) || ev_kw(e, SQL_KW_NULL)) {
		int kw = tk(p, e->i)->code;

		e->i++;
		v = (struct val){ kw == SQL_KW_TRUE ? TV_TRUE : kw == SQL_KW_FALSE ? TV_FALSE : TV_NULL,
				  kw == SQL_KW_NULL ? 'z' : 'b', kw == SQL_KW_TRUE, NULL, 0, a, e->i };
	} else if ((tk(p, e->i)->type == SQL_TOK_NUMBER || tk(p, e->i)->type == SQL_TOK_STRING) &&
		   !(e->i + 1 < e->end && (ev_op(e, '.') || is_op_at(p, e->i + 1, '[')))) {
		v = literal(e, e->i++);
	} else if (ev_op(e, '(') && !query_at(p, e->i + 1)) {
		struct ev sub = *e;
		int close = tk(p, e->i)->match;

		sub.i = e->i + 1;
		sub.end = close;
		v = ev_or(&sub);
		if (sub.i != close)
			v = opaque(e, e->i, close + 1); /* a tuple, or something not understood */
		e->i = close + 1;
		v.a = a, v.b = e->i;
		if (ev_op(e, '.') || ev_op(e, '['))
			ev_skip_primary(e), v = opaque(e, a, e->i);
	} else {
		ev_skip_primary(e);
		v = opaque(e, a, e->i);
	}
	e->depth--;
	return v;
}

/* Unary +, -, ~ and the arithmetic, concatenation and bitwise operators, folded for + - * /
 * on numbers with their precedence; anything else is an opaque constant or column. */
static struct val ev_unary(struct ev *e)
{
	int a = e->i;
	struct val v;

	if (ev_op(e, '-') || ev_op(e, '+') || ev_op(e, '~')) {
		int neg = ev_op(e, '-'), other = ev_op(e, '~');

		e->i++;
		v = ev_unary(e);
		if (v.kind == 'n' && !other)
			v.num = neg ? -v.num : v.num;
		else if (v.v != TV_COL)
			v.kind = 0, v.v = TV_CONST;
		v.a = a;
		return v;
	}
	return ev_primary(e);
}

/* Combine l op r for arithmetic: fold numbers, else column if either is. */
static struct val arith(struct val l, struct val r, int op)
{
	struct val v = { l.v == TV_COL || r.v == TV_COL ? TV_COL : TV_CONST, 0, 0, NULL, 0, l.a, r.b };

	if (l.kind == 'z' || r.kind == 'z') {
		v.kind = 'z';
		v.v = TV_NULL;
	} else if (l.kind == 'n' && r.kind == 'n' && v.v == TV_CONST) {
		v.kind = 'n';
		if (op == '+')
			v.num = l.num + r.num;
		else if (op == '-')
			v.num = l.num - r.num;
		else if (op == '*')
			v.num = l.num * r.num;
		else if (op == '/' && r.num != 0)
			v.num = l.num / r.num;
		else
			v.kind = 0;
	}
	return v;
}

static struct val ev_mul(struct ev *e)
{
	struct val l = ev_unary(e);

	while (ev_op(e, '*') || ev_op(e, '/') || ev_op(e, SQL_OP_CONCAT)) {
		int op = tk(e->p, e->i++)->code;

		l = arith(l, ev_unary(e), op);
	}
	return l;
}

static struct val ev_add(struct ev *e)
{
	struct val l = ev_mul(e);

	while (ev_op(e, '+') || ev_op(e, '-')) {
		int op = tk(e->p, e->i++)->code;

		l = arith(l, ev_mul(e), op);
	}
	return l;
}

static struct val ev_bits(struct ev *e)
{
	struct val l = ev_add(e);

	while (ev_op(e, '&') || ev_op(e, '|') || ev_op(e, '^') || ev_op(e, SQL_OP_SHL) ||
	       ev_op(e, SQL_OP_SHR)) {
		e->i++;
		l = arith(l, ev_add(e), 0);
	}
	return l;
}

/* Compare two folded constants: -2 unknown, else <0, 0, >0. */
static int cmp_const(const struct val *l, const struct val *r)
{
	if (l->kind == 'n' && r->kind == 'n')
		return l->num < r->num ? -1 : l->num > r->num;
	if (l->kind == 'b' && r->kind == 'b')
		return (int)l->num - (int)r->num;
	if (l->kind == 's' && r->kind == 's') {
		unsigned n = l->slen < r->slen ? l->slen : r->slen;
		int c = memcmp(l->str, r->str, n);

		return c ? (c < 0 ? -1 : 1) : (l->slen > r->slen) - (l->slen < r->slen);
	}
	return -2;
}

static struct val tv(enum tv t, int a, int b)
{
	struct val v = { t, t == TV_TRUE || t == TV_FALSE ? 'b' : t == TV_NULL ? 'z' : 0,
			 t == TV_TRUE, NULL, 0, a, b };

	return v;
}

/* l op r for a comparison operator. */
static struct val compare(const struct ev *e, struct val l, struct val r, int op)
{
	int c;

	if (l.kind == 'z' || r.kind == 'z')
		return tv(TV_NULL, l.a, r.b);
	if (l.v == TV_COL || r.v == TV_COL) {
		if (same_operand(e, l.a, l.b, r.a, r.b))
			return tv(op == '=' || op == SQL_OP_LE || op == SQL_OP_GE ? TV_TAUT : TV_FALSE,
				  l.a, r.b);
		return tv(TV_COL, l.a, r.b);
	}
	c = cmp_const(&l, &r);
	if (c == -2)
		return tv(TV_CONST, l.a, r.b);
	switch (op) {
	case '=': c = c == 0; break;
	case SQL_OP_NE: c = c != 0; break;
	case '<': c = c < 0; break;
	case '>': c = c > 0; break;
	case SQL_OP_LE: c = c <= 0; break;
	default: c = c >= 0;
	}
	return tv(c ? TV_TRUE : TV_FALSE, l.a, r.b);
}

static enum tv tv_not(enum tv t)
{
	switch (t) {
	case TV_TRUE: return TV_FALSE;
	case TV_FALSE: return TV_TRUE;
	case TV_TAUT: return TV_FALSE;
	default: return t;
	}
}

/* Comparisons, IS, [NOT] IN / LIKE / BETWEEN. */
static struct val ev_cmp(struct ev *e)
{
	const struct parser *p = e->p;
	struct val l = ev_bits(e);

	for (;;) {
		int neg = 0, op;

		if (ev_op(e, '=') || ev_op(e, '<') || ev_op(e, '>') || ev_op(e, SQL_OP_LE) ||
		    ev_op(e, SQL_OP_GE) || ev_op(e, SQL_OP_NE)) {
			op = tk(p, e->i++)->code;
			l = compare(e, l, ev_bits(e), op);
			continue;
		}
		if (ev_kw(e, SQL_KW_IS)) {
			e->i++;
			if (ev_kw(e, SQL_KW_NOT))
				neg = 1, e->i++;
			if (ev_kw(e, SQL_KW_NULL) || ev_kw(e, SQL_KW_TRUE) || ev_kw(e, SQL_KW_FALSE)) {
				int kw = tk(p, e->i++)->code;
				enum tv r;

				if (l.v == TV_COL || (l.v == TV_CONST && !l.kind))
					r = l.v;
				else if (kw == SQL_KW_NULL)
					r = l.kind == 'z' ? TV_TRUE : TV_FALSE;
				else
					r = (l.v == TV_TRUE) == (kw == SQL_KW_TRUE) && l.kind == 'b' ? TV_TRUE
												  : TV_FALSE;
				l = tv(neg && r != TV_COL && r != TV_CONST ? tv_not(r) : r, l.a, e->i);
				continue;
			}
			if (ev_kw(e, SQL_KW_DISTINCT) && e->i + 1 < e->end &&
			    is_kw_at(p, e->i + 1, SQL_KW_FROM)) {
				struct val r;

				e->i += 2;
				r = ev_bits(e);
				if ((l.v == TV_COL || r.v == TV_COL) &&
				    same_operand(e, l.a, l.b, r.a, r.b))
					l = tv(neg ? TV_TRUE : TV_FALSE, l.a, r.b);
				else
					l = tv(l.v == TV_COL || r.v == TV_COL ? TV_COL : TV_CONST, l.a, r.b);
				continue;
			}
			l = opaque(e, l.a, e->i);
			ev_skip_primary(e);
			continue;
		}
		if (ev_kw(e, SQL_KW_NOT) && e->i + 1 < e->end &&
		    (is_kw_at(p, e->i + 1, SQL_KW_IN) || is_kw_at(p, e->i + 1, SQL_KW_LIKE) ||
		     is_kw_at(p, e->i + 1, SQL_KW_BETWEEN)))
			neg = 1, e->i++;
		if (ev_kw(e, SQL_KW_BETWEEN)) {
			struct val lo, hi, a1, a2;

			e->i++;
			lo = ev_bits(e);
			if (!ev_kw(e, SQL_KW_AND))
				return opaque(e, l.a, e->end);
			e->i++;
			hi = ev_bits(e);
			a1 = compare(e, l, lo, SQL_OP_GE);
			a2 = compare(e, l, hi, SQL_OP_LE);
			l = tv(a1.v < a2.v ? a1.v : a2.v, l.a, e->i);
			if (neg)
				l.v = tv_not(l.v);
			continue;
		}
		if (ev_kw(e, SQL_KW_LIKE)) {
			struct val r;
			unsigned k;
			int all = 1;

			e->i++;
			if (ev_kw(e, SQL_KW_ANY) || ev_kw(e, SQL_KW_ALL) || ev_kw(e, SQL_KW_SOME)) {
				e->i++;
				ev_skip_primary(e);
				l = opaque(e, l.a, e->i);
				continue;
			}
			r = ev_bits(e);
			for (k = 0; r.kind == 's' && k < r.slen; k++)
				all &= r.str[k] == '%';
			if (r.kind == 's' && r.slen && all && l.v == TV_COL)
				l = tv(neg ? TV_FALSE : TV_TAUT, l.a, r.b);
			else
				l = tv(l.v == TV_COL || r.v == TV_COL ? TV_COL : TV_CONST, l.a, r.b);
			continue;
		}
		if (ev_kw(e, SQL_KW_IN)) {
			int open, close, k, item, any_true = 0, col = l.v == TV_COL;

			e->i++;
			if (ev_kw(e, SQL_KW_UNNEST))
				e->i++;
			if (!ev_op(e, '('))
				return opaque(e, l.a, e->end);
			open = e->i;
			close = tk(p, open)->match;
			if (query_at(p, open + 1)) {
				col |= has_col(e, open, close + 1);
			} else {
				for (k = open + 1, item = k; k <= close; k++) {
					if (tk(p, k)->match > k) {
						k = tk(p, k)->match;
						continue;
					}
					if (k == close || is_op_at(p, k, ',')) {
						if (l.v == TV_COL && same_operand(e, l.a, l.b, item, k))
							any_true = 1;
						col |= has_col(e, item, k);
						item = k + 1;
					}
				}
			}
			e->i = close + 1;
			l = tv(any_true ? (neg ? TV_FALSE : TV_TAUT) : col ? TV_COL : TV_CONST, l.a, e->i);
			continue;
		}
		return l;
	}
}

static struct val ev_not(struct ev *e)
{
	int a = e->i;

	if (ev_kw(e, SQL_KW_NOT)) {
		struct val v;

		e->i++;
		v = ev_not(e);
		return tv(tv_not(v.v), a, e->i);
	}
	return ev_cmp(e);
}

static struct val ev_and(struct ev *e)
{
	struct val l = ev_not(e);

	while (ev_kw(e, SQL_KW_AND)) {
		struct val r;

		e->i++;
		r = ev_not(e);
		l = tv(l.v < r.v ? l.v : r.v, l.a, r.b);
	}
	return l;
}

static struct val ev_or(struct ev *e)
{
	struct val l = ev_and(e);

	while (ev_kw(e, SQL_KW_OR)) {
		struct val r;

		e->i++;
		r = ev_and(e);
		l = tv(l.v > r.v ? l.v : r.v, l.a, r.b);
	}
	return l;
}

/* Can the condition in tokens [a, b) select every row of the target? An empty condition can;
 * one the evaluator does not follow to its end counts as a column condition if it names a
 * column, else as a constant. */
static int cond_unbounded(const struct parser *p, int a, int b, struct name target,
			  struct name talias)
{
	struct ev e = { p, a, b, target, talias, 0 };
	struct val v;

	if (a >= b)
		return 1;
	v = ev_or(&e);
	if (e.i != b)
		v = opaque(&e, a, b);
	return v.v >= TV_CONST;
}

/* --- statements ----------------------------------------------------------------------------- */

/* Start a statement record of <kind> at the cursor; it becomes the open one. */
static int stmt_begin(struct parser *p, enum sql_kind kind)
{
	struct sql_result *r = p->r;
	struct sql_stmt *st;

	if (r->n_stmts >= r->max_stmts)
		fail_bound(p, "too many statements");
	st = &r->stmts[r->n_stmts];
	memset(st, 0, sizeof(*st));
	st->kind = kind;
	st->off = (size_t)(tk(p, p->i)->p - p->s);
	st->parent = p->parent;
	st->first_table = r->n_tables;
	p->open = r->n_stmts;
	return r->n_stmts++;
}

/* Close statement <k> at the last consumed token: its length and references (sorted into text
 * order: the FROM clause is parsed before the SELECT list). */
static void stmt_end(struct parser *p, int k)
{
	struct sql_result *r = p->r;
	struct sql_stmt *st = &r->stmts[k];
	int a, b;
	const struct sql_token *last = tk(p, p->i > 0 ? p->i - 1 : 0);

	st->len = p->i > 0 && last->p + last->len > p->s + st->off
			  ? (size_t)(last->p + last->len - p->s) - st->off : 0;
	st->n_tables = r->n_tables - st->first_table;
	for (a = st->first_table + 1; a < r->n_tables; a++) {
		struct sql_table t = r->tables[a];

		for (b = a; b > st->first_table && r->tables[b - 1].p > t.p; b--)
			r->tables[b] = r->tables[b - 1];
		r->tables[b] = t;
	}
	p->open = -1;
}

/* The rest of a statement whose clauses are not analyzed further (OPTIONS(...), column
 * lists, connection names): up to ';' or the end, brackets scanned for subqueries, a query at
 * depth 0 refused. */
static void rest(struct parser *p)
{
	while (!at_end(p)) {
		if (is_op(p, '(') || is_op(p, '[') || is_op(p, '{'))
			bracket(p);
		else if (query_at(p, p->i) || is_kw(p, SQL_KW_FROM))
			fail(p, "unexpected query");
		else if (is_op(p, '@') || is_op(p, SQL_OP_PIPE))
			fail(p, "unexpected token");
		else
			adv(p);
	}
}

static int accept_if_exists(struct parser *p, int not)
{
	if (!is_kw(p, SQL_KW_IF))
		return 0;
	adv(p);
	if (not)
		expect_kw(p, SQL_KW_NOT, "expected IF NOT EXISTS");
	expect_kw(p, SQL_KW_EXISTS, "expected IF EXISTS");
	return 1;
}

/* A column-definition list at the cursor: skipped, except REFERENCES other_table. */
static void column_defs(struct parser *p)
{
	int close = tk(p, p->i)->match;

	for (adv(p); p->i < close;) {
		if (is_word_at(p, p->i, "REFERENCES") && is_name_at(p, p->i + 1)) {
			adv(p);
			ref_here(p, SQL_ROLE_READ, 0, NULL);
		} else {
			adv(p);
		}
	}
	adv(p);
}

/* CLONE/COPY/LIKE source [FOR SYSTEM_TIME AS OF expr]. */
static void source_ref(struct parser *p)
{
	adv(p);
	ref_here(p, SQL_ROLE_SOURCE, 0, NULL);
	if (accept_kw(p, SQL_KW_FOR)) {
		if (!accept_kw(p, SQL_KW_SYSTEM_TIME)) {
			expect_kw(p, SQL_KW_SYSTEM, "expected FOR SYSTEM_TIME");
			adv(p);
		}
		expect_kw(p, SQL_KW_AS, "expected AS OF");
		expect_kw(p, SQL_KW_OF, "expected AS OF");
		expr(p);
	}
}

/* Clauses of CREATE TABLE/VIEW/MODEL/FUNCTION after the name: AS query or AS (expr), sources,
 * bracketed lists; anything else passed over. Sets the kind to <as_kind> on AS query. */
static void create_rest(struct parser *p, int k, enum sql_kind as_kind)
{
	while (!at_end(p)) {
		if (is_kw(p, SQL_KW_AS)) {
			adv(p);
			if (query_at(p, p->i) || (is_op(p, '(') && paren_query_at(p, p->i))) {
				query(p);
				if (as_kind != SQL_UNKNOWN)
					p->r->stmts[k].kind = as_kind;
			} else if (is_op(p, '(')) {
				bracket(p);
			} else if (is_kw(p, SQL_KW_REPLACE) || is_word_at(p, p->i, "REPLICA")) {
				fail(p, "AS REPLICA OF is not supported");
			}
		} else if (is_kw(p, SQL_KW_CLONE) || is_kw(p, SQL_KW_COPY) || is_kw(p, SQL_KW_LIKE)) {
			source_ref(p);
		} else if (is_op(p, '(') || is_op(p, '[')) {
			bracket(p);
		} else if (query_at(p, p->i) || is_kw(p, SQL_KW_FROM) || is_op(p, '@')) {
			fail(p, "unexpected token in CREATE");
		} else {
			adv(p);
		}
	}
}

static void block(struct parser *p, int parent);

/* CREATE ... */
static void create_stmt(struct parser *p)
{
	int k = stmt_begin(p, SQL_UNKNOWN), replace = 0, temp = 0, ine;
	struct sql_stmt *st;
	struct path pa;

	adv(p);
	if (accept_kw(p, SQL_KW_OR)) {
		expect_kw(p, SQL_KW_REPLACE, "expected OR REPLACE");
		replace = 1;
	}
	if (accept_kw(p, SQL_KW_TEMP) || accept_kw(p, SQL_KW_TEMPORARY))
		temp = 1;
	st = &p->r->stmts[k];
	st->replace = (unsigned char)replace;
	st->temp = (unsigned char)temp;
	if (is_kw(p, SQL_KW_TABLE) && is_kw_at(p, p->i + 1, SQL_KW_FUNCTION)) {
		p->i += 2;
		st->kind = SQL_CREATE_TABLE_FUNCTION;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, SQL_TF_ROUTINE, NULL);
		create_rest(p, k, SQL_UNKNOWN);
	} else if (accept_kw(p, SQL_KW_SNAPSHOT)) {
		expect_kw(p, SQL_KW_TABLE, "expected SNAPSHOT TABLE");
		st->kind = SQL_CREATE_SNAPSHOT_TABLE;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, 0, NULL);
		if (!is_kw(p, SQL_KW_CLONE))
			fail(p, "expected CLONE");
		create_rest(p, k, SQL_UNKNOWN);
	} else if (accept_kw(p, SQL_KW_EXTERNAL)) {
		expect_kw(p, SQL_KW_TABLE, "expected EXTERNAL TABLE");
		st->kind = SQL_CREATE_EXTERNAL_TABLE;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, 0, NULL);
		if (is_op(p, '('))
			column_defs(p);
		rest(p);
	} else if (accept_kw(p, SQL_KW_TABLE)) {
		st->kind = SQL_CREATE_TABLE;
		st->if_exists = (unsigned char)(ine = accept_if_exists(p, 1));
		parse_path(p, &pa, 1);
		add_ref(p, &pa, SQL_ROLE_DDL, temp ? SQL_TF_TEMP : 0);
		if (temp && pa.n == 1)
			push_name(p, p->temp, &p->n_temp, MAX_TEMP, pa.c[0]);
		if (is_op(p, '(') && !paren_query_at(p, p->i))
			column_defs(p);
		create_rest(p, k, SQL_CREATE_TABLE_AS_SELECT);
	} else if (accept_kw(p, SQL_KW_VIEW) ||
		   (accept_kw(p, SQL_KW_MATERIALIZED) && (st->kind = SQL_CREATE_MATERIALIZED_VIEW) &&
		    accept_kw(p, SQL_KW_VIEW))) {
		if (st->kind == SQL_UNKNOWN)
			st->kind = SQL_CREATE_VIEW;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, 0, NULL);
		create_rest(p, k, SQL_UNKNOWN);
	} else if (accept_kw(p, SQL_KW_FUNCTION) ||
		   (accept_kw(p, SQL_KW_AGGREGATE) && accept_kw(p, SQL_KW_FUNCTION))) {
		st->kind = SQL_CREATE_FUNCTION;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, SQL_TF_ROUTINE, NULL);
		if (is_op(p, '('))
			p->i = tk(p, p->i)->match + 1; /* parameters: names and types */
		create_rest(p, k, SQL_UNKNOWN);
	} else if (accept_kw(p, SQL_KW_PROCEDURE)) {
		st->kind = SQL_CREATE_PROCEDURE;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, SQL_TF_ROUTINE, NULL);
		if (!is_op(p, '('))
			fail(p, "expected ( after the procedure name");
		p->i = tk(p, p->i)->match + 1;
		while (!at_end(p) && !is_kw(p, SQL_KW_BEGIN)) {
			if (is_op(p, '('))
				bracket(p);
			else if (is_kw(p, SQL_KW_AS) || query_at(p, p->i))
				fail(p, "unsupported procedure body");
			else
				adv(p);
		}
		if (!is_kw(p, SQL_KW_BEGIN))
			fail(p, "expected BEGIN");
		stmt_end(p, k);
		block(p, k);
		return;
	} else if (is_kw(p, SQL_KW_ROW) && is_kw_at(p, p->i + 1, SQL_KW_ACCESS) &&
		   is_kw_at(p, p->i + 2, SQL_KW_POLICY)) {
		p->i += 3;
		st->kind = SQL_CREATE_ROW_ACCESS_POLICY;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		if (!is_name_at(p, p->i))
			fail(p, "expected a policy name");
		adv(p);
		expect_kw(p, SQL_KW_ON, "expected ON");
		ref_here(p, SQL_ROLE_DDL, 0, NULL);
		rest(p);
	} else if (accept_kw(p, SQL_KW_SCHEMA)) {
		st->kind = SQL_CREATE_SCHEMA;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, SQL_TF_SCHEMA, NULL);
		rest(p);
	} else if (accept_kw(p, SQL_KW_MODEL)) {
		st->kind = SQL_CREATE_MODEL;
		st->if_exists = (unsigned char)accept_if_exists(p, 1);
		ref_here(p, SQL_ROLE_DDL, SQL_TF_MODEL, NULL);
		create_rest(p, k, SQL_UNKNOWN);
	} else {
		fail(p, "unsupported CREATE statement");
	}
	stmt_end(p, k);
}

/* DROP ... */
static void drop_stmt(struct parser *p)
{
	int k = stmt_begin(p, SQL_UNKNOWN), flags = 0;
	struct sql_stmt *st = &p->r->stmts[k];

	adv(p);
	if (is_kw(p, SQL_KW_TABLE) && is_kw_at(p, p->i + 1, SQL_KW_FUNCTION))
		p->i += 2, st->kind = SQL_DROP_TABLE_FUNCTION, flags = SQL_TF_ROUTINE;
	else if (accept_kw(p, SQL_KW_TABLE))
		st->kind = SQL_DROP_TABLE;
	else if (accept_kw(p, SQL_KW_EXTERNAL) && accept_kw(p, SQL_KW_TABLE))
		st->kind = SQL_DROP_EXTERNAL_TABLE;
	else if (accept_kw(p, SQL_KW_SNAPSHOT) && accept_kw(p, SQL_KW_TABLE))
		st->kind = SQL_DROP_SNAPSHOT_TABLE;
	else if (accept_kw(p, SQL_KW_VIEW))
		st->kind = SQL_DROP_VIEW;
	else if (accept_kw(p, SQL_KW_MATERIALIZED) && accept_kw(p, SQL_KW_VIEW))
		st->kind = SQL_DROP_MATERIALIZED_VIEW;
	else if (accept_kw(p, SQL_KW_FUNCTION))
		st->kind = SQL_DROP_FUNCTION, flags = SQL_TF_ROUTINE;
	else if (accept_kw(p, SQL_KW_PROCEDURE))
		st->kind = SQL_DROP_PROCEDURE, flags = SQL_TF_ROUTINE;
	else if (accept_kw(p, SQL_KW_MODEL))
		st->kind = SQL_DROP_MODEL, flags = SQL_TF_MODEL;
	else if (accept_kw(p, SQL_KW_SCHEMA))
		st->kind = SQL_DROP_SCHEMA, flags = SQL_TF_SCHEMA;
	else if (is_kw(p, SQL_KW_ROW) && is_kw_at(p, p->i + 1, SQL_KW_ACCESS) &&
		 is_kw_at(p, p->i + 2, SQL_KW_POLICY))
		p->i += 3, st->kind = SQL_DROP_ROW_ACCESS_POLICY;
	else if (is_kw(p, SQL_KW_ALL) && is_kw_at(p, p->i + 1, SQL_KW_ROW) &&
		 is_kw_at(p, p->i + 2, SQL_KW_ACCESS) && is_kw_at(p, p->i + 3, SQL_KW_POLICIES))
		p->i += 4, st->kind = SQL_DROP_ALL_ROW_ACCESS_POLICIES;
	else
		fail(p, "unsupported DROP statement");
	st->if_exists = (unsigned char)accept_if_exists(p, 0);
	if (st->kind == SQL_DROP_ROW_ACCESS_POLICY) {
		if (!is_name_at(p, p->i))
			fail(p, "expected a policy name");
		adv(p);
		expect_kw(p, SQL_KW_ON, "expected ON");
	} else if (st->kind == SQL_DROP_ALL_ROW_ACCESS_POLICIES) {
		expect_kw(p, SQL_KW_ON, "expected ON");
	}
	ref_here(p, SQL_ROLE_DDL, flags, NULL);
	if (st->kind == SQL_DROP_SCHEMA && !accept_kw(p, SQL_KW_CASCADE))
		accept_kw(p, SQL_KW_RESTRICT);
	stmt_end(p, k);
}

/* ALTER TABLE|VIEW|MATERIALIZED VIEW|SCHEMA name ...; RENAME TO records the new name too. */
static void alter_stmt(struct parser *p)
{
	int k = stmt_begin(p, SQL_UNKNOWN), flags = 0;
	struct path target;
	struct sql_stmt *st = &p->r->stmts[k];

	adv(p);
	if (accept_kw(p, SQL_KW_TABLE))
		st->kind = SQL_ALTER_TABLE;
	else if (accept_kw(p, SQL_KW_VIEW))
		st->kind = SQL_ALTER_VIEW;
	else if (accept_kw(p, SQL_KW_MATERIALIZED) && accept_kw(p, SQL_KW_VIEW))
		st->kind = SQL_ALTER_MATERIALIZED_VIEW;
	else if (accept_kw(p, SQL_KW_SCHEMA))
		st->kind = SQL_ALTER_SCHEMA, flags = SQL_TF_SCHEMA;
	else
		fail(p, "unsupported ALTER statement");
	st->if_exists = (unsigned char)accept_if_exists(p, 0);
	ref_here(p, SQL_ROLE_DDL, flags, &target);
	while (!at_end(p)) {
		if (is_kw(p, SQL_KW_RENAME) && is_kw_at(p, p->i + 1, SQL_KW_TO)) {
			struct path np;

			/* The new name is in the table's dataset. */
			p->i += 2;
			parse_path(p, &np, 1);
			if (np.n == 1 && target.n > 1) {
				struct name nm = np.c[0];

				np.n = target.n;
				memcpy(np.c, target.c, sizeof(np.c));
				np.c[np.n - 1] = nm;
			}
			add_ref(p, &np, SQL_ROLE_DDL, flags);
		} else if (is_word_at(p, p->i, "REFERENCES") && is_name_at(p, p->i + 1)) {
			adv(p);
			ref_here(p, SQL_ROLE_READ, 0, NULL);
		} else if (is_op(p, '(') || is_op(p, '[')) {
			bracket(p);
		} else if (query_at(p, p->i) || is_kw(p, SQL_KW_FROM) || is_op(p, '@')) {
			fail(p, "unexpected token in ALTER");
		} else {
			adv(p);
		}
	}
	stmt_end(p, k);
}

/* The target of DELETE/UPDATE/MERGE, with its alias: sets *target and *talias. */
static void dml_target(struct parser *p, struct name *target, struct name *talias)
{
	struct path pa;

	ref_here(p, SQL_ROLE_WRITE, 0, &pa);
	*target = pa.c[pa.n - 1];
	push_name(p, p->alias, &p->n_alias, MAX_SCOPE, pa.c[pa.n - 1]);
	*talias = (struct name){ NULL, 0, 0 };
	if (is_kw(p, SQL_KW_AS) || (is_name_at(p, p->i) && !is_op_at(p, p->i + 1, '('))) {
		accept_kw(p, SQL_KW_AS);
		if (!is_name_at(p, p->i))
			fail(p, "expected an alias");
		*talias = tok_name(tk(p, p->i));
		push_name(p, p->alias, &p->n_alias, MAX_SCOPE, *talias);
		adv(p);
	}
}

/* WHERE cond at the cursor (or none): is it unbounded? */
static int where_unbounded(struct parser *p, struct name target, struct name talias)
{
	int a;

	if (!accept_kw(p, SQL_KW_WHERE))
		return 1;
	a = p->i;
	expr(p);
	return cond_unbounded(p, a, p->i, target, talias);
}

/* MERGE [INTO] t [AS a] USING source ON cond WHEN ... */
static void merge_stmt(struct parser *p, int k)
{
	struct name target, talias;
	int on_a, on_all;

	adv(p);
	accept_kw(p, SQL_KW_INTO);
	dml_target(p, &target, &talias);
	expect_kw(p, SQL_KW_USING, "expected USING");
	from_item(p);
	expect_kw(p, SQL_KW_ON, "expected ON");
	on_a = p->i;
	expr(p);
	on_all = cond_unbounded(p, on_a, p->i, target, talias);
	while (accept_kw(p, SQL_KW_WHEN)) {
		int not = accept_kw(p, SQL_KW_NOT), by_source = 0, cond_all = 1, changes = 0;

		if (!accept_kw(p, SQL_KW_MATCHED))
			fail(p, "expected MATCHED");
		if (accept_kw(p, SQL_KW_BY)) {
			if (accept_kw(p, SQL_KW_SOURCE))
				by_source = 1;
			else
				expect_kw(p, SQL_KW_TARGET, "expected BY SOURCE or BY TARGET");
		}
		if (accept_kw(p, SQL_KW_AND)) {
			int a = p->i;

			expr(p);
			cond_all = cond_unbounded(p, a, p->i, target, talias);
		}
		expect_kw(p, SQL_KW_THEN, "expected THEN");
		if (accept_kw(p, SQL_KW_DELETE)) {
			changes = 1;
		} else if (accept_kw(p, SQL_KW_UPDATE)) {
			expect_kw(p, SQL_KW_SET, "expected UPDATE SET");
			do
				expr(p);
			while (accept_op(p, ','));
			changes = 1;
		} else if (accept_kw(p, SQL_KW_INSERT)) {
			if (is_op(p, '('))
				p->i = tk(p, p->i)->match + 1;
			if (accept_kw(p, SQL_KW_VALUES))
				need_bracket(p, "expected ( after VALUES");
			else if (!accept_kw(p, SQL_KW_ROW))
				fail(p, "expected VALUES or ROW");
		} else {
			fail(p, "expected DELETE, UPDATE or INSERT");
		}
		if (changes && cond_all && (by_source || (!not && on_all)))
			p->r->stmts[k].unbounded = 1;
	}
}

/* The statement starting at the cursor: DML, DDL, scripting. */
static void statement(struct parser *p);

/* Statements up to (not including) END, ELSE, ELSEIF, UNTIL, WHEN or EXCEPTION, each ended
 * by ';'; their parent is <parent>. */
static void stmt_list(struct parser *p, int parent)
{
	int save = p->parent, first;

	enter(p);
	p->parent = parent;
	for (;;) {
		while (accept_op(p, ';'))
			;
		if (tk(p, p->i)->type == SQL_TOK_EOF || is_kw(p, SQL_KW_END) || is_kw(p, SQL_KW_ELSE) ||
		    is_kw(p, SQL_KW_ELSEIF) || is_kw(p, SQL_KW_UNTIL) || is_kw(p, SQL_KW_WHEN) ||
		    is_kw(p, SQL_KW_EXCEPTION))
			break;
		first = p->r->n_stmts;
		statement(p);
		if (!is_op(p, ';')) {
			p->open = first < p->r->n_stmts ? first : -1;
			fail(p, "expected ; after a statement in a block");
		}
	}
	p->parent = save;
	leave(p);
}

/* END <kw> [label] closing a block. */
static void end_of(struct parser *p, int kw, const char *why)
{
	expect_kw(p, SQL_KW_END, why);
	if (kw)
		expect_kw(p, kw, why);
	if (is_name_at(p, p->i) && tk(p, p->i)->type == SQL_TOK_IDENT && !is_kw(p, SQL_KW_IF))
		adv(p); /* label */
}

/* BEGIN stmts [EXCEPTION WHEN ERROR THEN stmts] END, the statements' parent being <parent>
 * (a CREATE PROCEDURE) or a new CONTROL record when <parent> < 0. */
static void block(struct parser *p, int parent)
{
	int k = parent;

	if (k < 0) {
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		stmt_end(p, k);
	} else {
		adv(p);
	}
	stmt_list(p, k);
	if (accept_kw(p, SQL_KW_EXCEPTION)) {
		expect_kw(p, SQL_KW_WHEN, "expected EXCEPTION WHEN ERROR THEN");
		expect_kw(p, SQL_KW_ERROR, "expected EXCEPTION WHEN ERROR THEN");
		expect_kw(p, SQL_KW_THEN, "expected EXCEPTION WHEN ERROR THEN");
		stmt_list(p, k);
	}
	end_of(p, 0, "expected END of BEGIN block");
}

/* A CONTROL record for a header "KW expr <until>" (IF/ELSEIF/WHILE/UNTIL/WHEN); returns it. */
static int control_cond(struct parser *p, int until, const char *why)
{
	int k = stmt_begin(p, SQL_CONTROL);

	adv(p);
	expr(p);
	if (until)
		expect_kw(p, until, why);
	stmt_end(p, k);
	return k;
}

/* SET @@dataset_id / @@dataset_project_id = 'literal': the new default for what follows.
 * Any other value is not followed: the statement is refused. */
static void set_default(struct parser *p, int project)
{
	const struct sql_token *t = tk(p, p->i);
	char *buf = project ? p->projbuf : p->dsbuf;

	if (t->type != SQL_TOK_STRING || (t->flags & (SQL_TOKF_TRIPLE)) ||
	    memchr(t->p, '\\', t->len) || t->len > NAME_MAX_LEN - 1 || !(is_op_at(p, p->i + 1, ';') ||
	    tk(p, p->i + 1)->type == SQL_TOK_EOF))
		fail(p, "SET of the default dataset to a computed value");
	{
		const char *q = t->p;
		size_t n = t->len;

		while (*q != '\'' && *q != '"')
			q++, n--;
		memcpy(buf, q + 1, n - 2);
		buf[n - 2] = 0;
		if (!buf[0] || memchr(buf, '.', n - 2) || memchr(buf, '`', n - 2))
			fail(p, "invalid default dataset");
	}
	if (project)
		p->proj = p->projbuf;
	else
		p->ds = p->dsbuf;
	adv(p);
}

static void statement(struct parser *p)
{
	const struct sql_token *t = tk(p, p->i);
	int k;

	enter(p);
	/* label: BEGIN|LOOP|WHILE|FOR|REPEAT */
	if (is_name_at(p, p->i) && is_op_at(p, p->i + 1, ':') &&
	    (is_kw_at(p, p->i + 2, SQL_KW_BEGIN) || is_kw_at(p, p->i + 2, SQL_KW_LOOP) ||
	     is_kw_at(p, p->i + 2, SQL_KW_WHILE) || is_kw_at(p, p->i + 2, SQL_KW_FOR) ||
	     is_kw_at(p, p->i + 2, SQL_KW_REPEAT))) {
		p->i += 2;
		t = tk(p, p->i);
	}
	if (query_at(p, p->i) || (is_op(p, '(') && paren_query_at(p, p->i))) {
		k = stmt_begin(p, SQL_SELECT);
		query(p);
		stmt_end(p, k);
		leave(p);
		return;
	}
	if (t->type != SQL_TOK_IDENT)
		fail(p, "unknown statement");
	switch (t->code) {
	case SQL_KW_INSERT:
		k = stmt_begin(p, SQL_INSERT);
		adv(p);
		accept_kw(p, SQL_KW_INTO);
		ref_here(p, SQL_ROLE_WRITE, 0, NULL);
		if (is_op(p, '(') && !paren_query_at(p, p->i))
			p->i = tk(p, p->i)->match + 1; /* column names */
		if (accept_kw(p, SQL_KW_VALUES)) {
			do
				need_bracket(p, "expected ( in VALUES");
			while (accept_op(p, ','));
		} else if (query_at(p, p->i) || (is_op(p, '(') && paren_query_at(p, p->i))) {
			query(p);
		} else {
			fail(p, "expected VALUES or a query");
		}
		stmt_end(p, k);
		break;
	case SQL_KW_UPDATE: {
		struct name target, talias;
		int mark = p->n_alias, unb;

		k = stmt_begin(p, SQL_UPDATE);
		adv(p);
		dml_target(p, &target, &talias);
		expect_kw(p, SQL_KW_SET, "expected SET");
		do
			expr(p);
		while (accept_op(p, ','));
		if (accept_kw(p, SQL_KW_FROM))
			from_list(p);
		unb = where_unbounded(p, target, talias);
		p->r->stmts[k].unbounded = (unsigned char)unb;
		p->n_alias = mark;
		stmt_end(p, k);
		break;
	}
	case SQL_KW_DELETE: {
		struct name target, talias;
		int mark = p->n_alias, unb;

		k = stmt_begin(p, SQL_DELETE);
		adv(p);
		accept_kw(p, SQL_KW_FROM);
		dml_target(p, &target, &talias);
		unb = where_unbounded(p, target, talias);
		p->r->stmts[k].unbounded = (unsigned char)unb;
		p->n_alias = mark;
		stmt_end(p, k);
		break;
	}
	case SQL_KW_MERGE: {
		int mark = p->n_alias;

		k = stmt_begin(p, SQL_MERGE);
		merge_stmt(p, k);
		p->n_alias = mark;
		stmt_end(p, k);
		break;
	}
	case SQL_KW_TRUNCATE:
		k = stmt_begin(p, SQL_TRUNCATE_TABLE);
		adv(p);
		expect_kw(p, SQL_KW_TABLE, "expected TRUNCATE TABLE");
		ref_here(p, SQL_ROLE_DDL, 0, NULL);
		stmt_end(p, k);
		break;
	case SQL_KW_CREATE:
		create_stmt(p);
		break;
	case SQL_KW_DROP:
		drop_stmt(p);
		break;
	case SQL_KW_ALTER:
		alter_stmt(p);
		break;
	case SQL_KW_EXPORT:
		k = stmt_begin(p, SQL_UNKNOWN);
		adv(p);
		if (accept_kw(p, SQL_KW_DATA)) {
			p->r->stmts[k].kind = SQL_EXPORT_DATA;
			while (!at_end(p) && !is_kw(p, SQL_KW_AS)) {
				if (is_op(p, '('))
					bracket(p);
				else if (query_at(p, p->i) || is_kw(p, SQL_KW_FROM))
					fail(p, "unexpected query");
				else
					adv(p);
			}
			expect_kw(p, SQL_KW_AS, "expected AS query");
			query(p);
		} else if (accept_kw(p, SQL_KW_MODEL)) {
			p->r->stmts[k].kind = SQL_EXPORT_MODEL;
			ref_here(p, SQL_ROLE_READ, SQL_TF_MODEL, NULL);
			rest(p);
		} else {
			fail(p, "unsupported EXPORT statement");
		}
		stmt_end(p, k);
		break;
	case SQL_KW_LOAD:
		k = stmt_begin(p, SQL_LOAD_DATA);
		adv(p);
		expect_kw(p, SQL_KW_DATA, "expected LOAD DATA");
		if (!accept_kw(p, SQL_KW_INTO))
			expect_kw(p, SQL_KW_OVERWRITE, "expected INTO or OVERWRITE");
		if (accept_kw(p, SQL_KW_TEMP) || accept_kw(p, SQL_KW_TEMPORARY))
			p->r->stmts[k].temp = 1;
		ref_here(p, SQL_ROLE_WRITE, p->r->stmts[k].temp ? SQL_TF_TEMP : 0, NULL);
		while (!at_end(p)) {
			if (is_op(p, '('))
				bracket(p);
			else if (query_at(p, p->i))
				fail(p, "unexpected query");
			else
				adv(p);
		}
		stmt_end(p, k);
		break;
	case SQL_KW_CALL:
		k = stmt_begin(p, SQL_CALL);
		adv(p);
		ref_here(p, SQL_ROLE_CALL, SQL_TF_ROUTINE, NULL);
		need_bracket(p, "expected ( after the procedure name");
		stmt_end(p, k);
		break;
	case SQL_KW_GRANT:
	case SQL_KW_REVOKE: {
		int flags = 0;

		k = stmt_begin(p, t->code == SQL_KW_GRANT ? SQL_GRANT : SQL_REVOKE);
		adv(p);
		while (!at_end(p) && !is_kw(p, SQL_KW_ON))
			adv(p);
		expect_kw(p, SQL_KW_ON, "expected ON");
		if (accept_kw(p, SQL_KW_SCHEMA))
			flags = SQL_TF_SCHEMA;
		else if (!accept_kw(p, SQL_KW_TABLE) && !accept_kw(p, SQL_KW_VIEW) &&
			 !(accept_kw(p, SQL_KW_EXTERNAL) && accept_kw(p, SQL_KW_TABLE)) &&
			 !(accept_kw(p, SQL_KW_MATERIALIZED) && accept_kw(p, SQL_KW_VIEW)))
			fail(p, "unsupported GRANT resource");
		ref_here(p, SQL_ROLE_DDL, flags, NULL);
		if (!accept_kw(p, SQL_KW_TO) && !accept_kw(p, SQL_KW_FROM))
			fail(p, "expected TO or FROM");
		while (!at_end(p)) {
			if (tk(p, p->i)->type != SQL_TOK_STRING && !is_op(p, ','))
				fail(p, "expected user strings");
			adv(p);
		}
		stmt_end(p, k);
		break;
	}
	case SQL_KW_EXECUTE:
		k = stmt_begin(p, SQL_EXECUTE_IMMEDIATE);
		adv(p);
		expect_kw(p, SQL_KW_IMMEDIATE, "expected EXECUTE IMMEDIATE");
		for (;;) {
			expr(p);
			if (!accept_kw(p, SQL_KW_INTO) && !accept_kw(p, SQL_KW_USING) &&
			    !accept_kw(p, SQL_KW_AS) && !accept_op(p, ','))
				break;
		}
		stmt_end(p, k);
		break;
	case SQL_KW_DECLARE:
		k = stmt_begin(p, SQL_DECLARE);
		adv(p);
		do {
			if (!is_name_at(p, p->i))
				fail(p, "expected a variable name");
			push_name(p, p->var, &p->n_var, MAX_SCOPE, tok_name(tk(p, p->i)));
			adv(p);
		} while (accept_op(p, ','));
		while (!at_end(p) && !is_kw(p, SQL_KW_DEFAULT)) {
			if (tk(p, p->i)->match > p->i)
				p->i = tk(p, p->i)->match + 1; /* STRING(10), NUMERIC(10, 2) */
			else if (query_at(p, p->i) || is_kw(p, SQL_KW_FROM))
				fail(p, "unexpected query in DECLARE");
			else
				adv(p);
		}
		if (accept_kw(p, SQL_KW_DEFAULT))
			expr(p);
		stmt_end(p, k);
		break;
	case SQL_KW_SET:
		k = stmt_begin(p, SQL_SET);
		adv(p);
		if (tk(p, p->i)->type == SQL_TOK_SYSVAR) {
			const struct sql_token *v = tk(p, p->i);

			adv(p);
			if (!accept_op(p, '='))
				fail(p, "expected =");
			if (ieq(v->p, v->len, "@@dataset_id", 12))
				set_default(p, 0);
			else if (ieq(v->p, v->len, "@@dataset_project_id", 20))
				set_default(p, 1);
			else if (v->p[2] == '`')
				fail(p, "quoted system variable");
			else
				expr(p);
		} else {
			if (is_op(p, '('))
				p->i = tk(p, p->i)->match + 1;
			else if (is_name_at(p, p->i))
				adv(p);
			else
				fail(p, "expected a variable");
			if (!accept_op(p, '='))
				fail(p, "expected =");
			expr(p);
		}
		stmt_end(p, k);
		break;
	case SQL_KW_BEGIN:
		if (is_kw_at(p, p->i + 1, SQL_KW_TRANSACTION) || is_op_at(p, p->i + 1, ';') ||
		    tk(p, p->i + 1)->type == SQL_TOK_EOF) {
			k = stmt_begin(p, SQL_BEGIN_TRANSACTION);
			adv(p);
			accept_kw(p, SQL_KW_TRANSACTION);
			stmt_end(p, k);
		} else {
			block(p, -1);
		}
		break;
	case SQL_KW_COMMIT:
	case SQL_KW_ROLLBACK:
		k = stmt_begin(p, t->code == SQL_KW_COMMIT ? SQL_COMMIT_TRANSACTION
							  : SQL_ROLLBACK_TRANSACTION);
		adv(p);
		accept_kw(p, SQL_KW_TRANSACTION);
		stmt_end(p, k);
		break;
	case SQL_KW_RAISE:
		k = stmt_begin(p, SQL_RAISE);
		adv(p);
		if (accept_kw(p, SQL_KW_USING)) {
			if (!is_word_at(p, p->i, "MESSAGE") || !is_op_at(p, p->i + 1, '='))
				fail(p, "expected USING MESSAGE =");
			p->i += 2;
			expr(p);
		}
		stmt_end(p, k);
		break;
	case SQL_KW_ASSERT:
		k = stmt_begin(p, SQL_ASSERT);
		adv(p);
		expr(p);
		if (accept_kw(p, SQL_KW_AS))
			expr(p);
		stmt_end(p, k);
		break;
	case SQL_KW_IF:
		k = control_cond(p, SQL_KW_THEN, "expected THEN");
		stmt_list(p, k);
		while (is_kw(p, SQL_KW_ELSEIF)) {
			k = control_cond(p, SQL_KW_THEN, "expected THEN");
			stmt_list(p, k);
		}
		if (accept_kw(p, SQL_KW_ELSE))
			stmt_list(p, k);
		expect_kw(p, SQL_KW_END, "expected END IF");
		expect_kw(p, SQL_KW_IF, "expected END IF");
		break;
	case SQL_KW_LOOP:
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		stmt_end(p, k);
		stmt_list(p, k);
		end_of(p, SQL_KW_LOOP, "expected END LOOP");
		break;
	case SQL_KW_WHILE:
		p->stop_do = 1;
		k = control_cond(p, SQL_KW_DO, "expected DO");
		p->stop_do = 0;
		stmt_list(p, k);
		end_of(p, SQL_KW_WHILE, "expected END WHILE");
		break;
	case SQL_KW_REPEAT:
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		stmt_end(p, k);
		stmt_list(p, k);
		if (!is_kw(p, SQL_KW_UNTIL))
			fail(p, "expected UNTIL");
		control_cond(p, 0, NULL);
		end_of(p, SQL_KW_REPEAT, "expected END REPEAT");
		break;
	case SQL_KW_FOR:
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		if (!is_name_at(p, p->i))
			fail(p, "expected a loop variable");
		push_name(p, p->var, &p->n_var, MAX_SCOPE, tok_name(tk(p, p->i)));
		adv(p);
		expect_kw(p, SQL_KW_IN, "expected IN");
		if (!is_op(p, '(') || !paren_query_at(p, p->i))
			fail(p, "expected (query) in FOR");
		query_term(p);
		expect_kw(p, SQL_KW_DO, "expected DO");
		stmt_end(p, k);
		stmt_list(p, k);
		end_of(p, SQL_KW_FOR, "expected END FOR");
		break;
	case SQL_KW_CASE:
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		expr(p);
		stmt_end(p, k);
		if (!is_kw(p, SQL_KW_WHEN))
			fail(p, "expected WHEN");
		while (is_kw(p, SQL_KW_WHEN)) {
			k = control_cond(p, SQL_KW_THEN, "expected THEN");
			stmt_list(p, k);
		}
		if (accept_kw(p, SQL_KW_ELSE))
			stmt_list(p, k);
		expect_kw(p, SQL_KW_END, "expected END CASE");
		expect_kw(p, SQL_KW_CASE, "expected END CASE");
		break;
	case SQL_KW_BREAK:
	case SQL_KW_LEAVE:
	case SQL_KW_CONTINUE:
	case SQL_KW_ITERATE:
	case SQL_KW_RETURN:
		k = stmt_begin(p, SQL_CONTROL);
		adv(p);
		if (t->code != SQL_KW_RETURN && is_name_at(p, p->i))
			adv(p);
		stmt_end(p, k);
		break;
	default:
		fail(p, "unknown statement");
	}
	leave(p);
}

int sql_analyze(const char *text, size_t len, const char *default_project,
		const char *default_dataset, struct sql_result *out)
{
	struct parser p;
	int n, first;
	size_t err_off;

	out->n_stmts = out->n_tables = 0;
	out->names_len = 0;
	out->unknown = 0;
	out->error = NULL;
	out->error_off = 0;
	n = sql_lex(text, len, out->toks, out->max_toks, SQL_MAX_DEPTH, &out->error, &err_off);
	if (n < 0) {
		out->error_off = err_off;
		out->unknown = 1;
		if (out->max_stmts > 0) {
			out->stmts[0] = (struct sql_stmt){ SQL_UNKNOWN, 0, len, -1, 0, 0, 0, 0, 0, 0 };
			out->n_stmts = 1;
		}
		return -1;
	}
	memset(&p, 0, offsetof(struct parser, alias));
	p.s = text;
	p.len = len;
	p.t = out->toks;
	p.r = out;
	p.proj = default_project && *default_project ? default_project : NULL;
	p.ds = default_dataset && *default_dataset ? default_dataset : NULL;
	p.open = p.parent = -1;
	p.n_alias = p.alias_floor = p.n_cte = p.n_var = p.n_temp = p.stop_do = 0;
	if (setjmp(p.jb)) {
		/* The open statement, or a new one from the failing token, becomes UNKNOWN and runs
		 * to the end of the text; nothing after it is analyzed. */
		struct sql_stmt *st;

		out->unknown = 1;
		if (p.open < 0) {
			if (out->n_stmts >= out->max_stmts) {
				if (!out->n_stmts)
					return -1;
				p.open = out->n_stmts - 1;
			} else {
				st = &out->stmts[out->n_stmts];
				memset(st, 0, sizeof(*st));
				st->off = out->error_off;
				st->parent = p.parent;
				st->first_table = out->n_tables;
				p.open = out->n_stmts++;
			}
		}
		st = &out->stmts[p.open];
		st->kind = SQL_UNKNOWN;
		st->len = len - st->off;
		st->n_tables = out->n_tables - st->first_table;
		return p.bound ? -1 : 0;
	}
	for (;;) {
		while (accept_op(&p, ';'))
			;
		if (tk(&p, p.i)->type == SQL_TOK_EOF)
			break;
		first = out->n_stmts;
		statement(&p);
		if (!at_end(&p)) {
			p.open = first < out->n_stmts ? first : -1;
			fail(&p, "unexpected token after the statement");
		}
	}
	return 0;
}
