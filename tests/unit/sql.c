/* Description: GoogleSQL analyzer: every case of tests/data/sql/NAME.cases (statement kinds,
 * table references, unbounded writes, evasions), reference offsets, bounds, unterminated
 * constructs, and a rough throughput note. */
#include <glob.h>
#include <time.h>

#include "sql.h"
#include "tap.h"

#define MAX_STMTS 256
#define MAX_TABLES 128
#define MAX_TOKS 4096

static struct sql_stmt stmts[MAX_STMTS];
static struct sql_table tables[MAX_TABLES];
static struct sql_token toks[MAX_TOKS];
static char names[16384];
static struct sql_result res;

/* Analyze s[0..len), placed right before a guard page, with the full-size buffers. */
static int analyze(const char *s, size_t len, const char *proj, const char *ds)
{
	sql_result_init(&res, stmts, MAX_STMTS, tables, MAX_TABLES, toks, MAX_TOKS, names,
			sizeof(names));
	return sql_analyze(tap_guarded(s, len), len, proj, ds, &res);
}

static int analyze_str(const char *s, const char *ds)
{
	return analyze(s, strlen(s), "demo-project", ds);
}

/* Expand the case file's placeholders in src into out[0..cap): {nl} {cr} {tab} {nul}
 * {x:HH} (a byte) {u+XXXX} (UTF-8). Returns the length or -1. */
static long expand(const char *src, char *out, size_t cap)
{
	size_t o = 0;

	while (*src) {
		unsigned long cp;
		int n = 0;

		if (o + 4 >= cap)
			return -1;
		if (*src != '{') {
			out[o++] = *src++;
			continue;
		}
		if (!strncmp(src, "{nl}", 4))
			out[o++] = '\n', src += 4;
		else if (!strncmp(src, "{cr}", 4))
			out[o++] = '\r', src += 4;
		else if (!strncmp(src, "{tab}", 5))
			out[o++] = '\t', src += 5;
		else if (!strncmp(src, "{nul}", 5))
			out[o++] = '\0', src += 5;
		else if (sscanf(src, "{x:%2lx}%n", &cp, &n) == 1 && n)
			out[o++] = (char)cp, src += n;
		else if (sscanf(src, "{u+%lx}%n", &cp, &n) == 1 && n) {
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | cp >> 6);
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xe0 | cp >> 12);
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			src += n;
		} else
			out[o++] = *src++;
	}
	return (long)o;
}

/* The analysis as the case format spells it, into the three buffers. */
static void describe(char *kinds, char *tabs, size_t cap)
{
	int i;

	kinds[0] = tabs[0] = 0;
	for (i = 0; i < res.n_stmts; i++)
		snprintf(kinds + strlen(kinds), cap - strlen(kinds), "%s%s", i ? "," : "",
			 sql_kind_name(res.stmts[i].kind));
	if (!res.n_stmts)
		strcpy(kinds, "-");
	for (i = 0; i < res.n_tables; i++) {
		const struct sql_table *t = &res.tables[i];
		char fl[16] = "";
		size_t f = 0;

		if (t->flags & SQL_TF_WILDCARD) fl[f++] = 'W';
		if (t->flags & SQL_TF_INFO_SCHEMA) fl[f++] = 'I';
		if (t->flags & SQL_TF_UNRESOLVED) fl[f++] = 'U';
		if (t->flags & SQL_TF_ROUTINE) fl[f++] = 'R';
		if (t->flags & SQL_TF_MODEL) fl[f++] = 'M';
		if (t->flags & SQL_TF_SCHEMA) fl[f++] = 'S';
		if (t->flags & SQL_TF_TEMP) fl[f++] = 'T';
		fl[f] = 0;
		snprintf(tabs + strlen(tabs), cap - strlen(tabs), "%s%c:%s%s%s", i ? "," : "",
			 t->role, t->name, f ? "/" : "", fl);
	}
	if (!res.n_tables)
		strcpy(tabs, "-");
}

/* Run one case line; the format is described at the top of tests/data/sql/basics.cases. */
static void run_case(const char *file, int lineno, char *line)
{
	char *bar = strstr(line, " | "), *f, *save = NULL;
	char sql[8192], kinds[4096], tabs[8192];
	const char *want_kinds = NULL, *want_tables = NULL, *proj = "demo-project", *ds = NULL;
	int want_unb = -1, want_rep = -1, want_unk = -1, want_rc = 0, want_ifx = -1;
	int rc, i, unb = 0, rep = 0, ifx = 0, pass = 1;
	long n;

	if (!bar) {
		ok(0, "%s:%d: no \" | \" in the case line", file, lineno);
		return;
	}
	*bar = 0;
	n = expand(bar + 3, sql, sizeof(sql));
	for (f = strtok_r(line, " \t", &save); f; f = strtok_r(NULL, " \t", &save)) {
		if (!strncmp(f, "kinds=", 6)) want_kinds = f + 6;
		else if (!strncmp(f, "tables=", 7)) want_tables = f + 7;
		else if (!strncmp(f, "unbounded=", 10)) want_unb = atoi(f + 10);
		else if (!strncmp(f, "replace=", 8)) want_rep = atoi(f + 8);
		else if (!strncmp(f, "unknown=", 8)) want_unk = atoi(f + 8);
		else if (!strncmp(f, "ifx=", 4)) want_ifx = atoi(f + 4);
		else if (!strncmp(f, "rc=", 3)) want_rc = atoi(f + 3);
		else if (!strncmp(f, "ds=", 3)) ds = f + 3;
		else if (!strncmp(f, "proj=", 5)) proj = strcmp(f + 5, "-") ? f + 5 : NULL;
		else {
			ok(0, "%s:%d: unknown field %s", file, lineno, f);
			return;
		}
	}
	if (n < 0) {
		ok(0, "%s:%d: SQL too long", file, lineno);
		return;
	}
	if (want_unk < 0 && want_kinds)
		want_unk = strstr(want_kinds, "UNKNOWN") != NULL;
	rc = analyze(sql, (size_t)n, proj, ds);
	describe(kinds, tabs, sizeof(tabs));
	for (i = 0; i < res.n_stmts; i++) {
		unb |= res.stmts[i].unbounded;
		rep |= res.stmts[i].replace;
		ifx |= res.stmts[i].if_exists;
	}
	if (rc != want_rc || (want_kinds && strcmp(kinds, want_kinds)) ||
	    (want_tables && strcmp(tabs, want_tables)) || (want_unb >= 0 && unb != want_unb) ||
	    (want_rep >= 0 && rep != want_rep) || (want_unk >= 0 && res.unknown != want_unk) ||
	    (want_ifx >= 0 && ifx != want_ifx))
		pass = 0;
	ok(pass, "%s:%d: %.60s", file, lineno, bar + 3);
	if (!pass)
		printf("#   got rc=%d kinds=%s tables=%s unbounded=%d replace=%d unknown=%d ifx=%d"
		       "\n#   error: %s at %zu\n", rc, kinds, tabs, unb, rep, res.unknown, ifx,
		       res.error ? res.error : "-", res.error_off);
}

static void case_files(void)
{
	glob_t g;
	size_t k;
	int files = 0, cases = 0;

	if (glob("tests/data/sql/*.cases", 0, NULL, &g)) {
		ok(0, "tests/data/sql/*.cases found (run from the repository root)");
		return;
	}
	for (k = 0; k < g.gl_pathc; k++) {
		FILE *fp = fopen(g.gl_pathv[k], "r");
		char line[8192];
		int lineno = 0;

		if (!fp) {
			ok(0, "open %s", g.gl_pathv[k]);
			continue;
		}
		files++;
		while (fgets(line, sizeof(line), fp)) {
			size_t l = strlen(line);

			lineno++;
			while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
				line[--l] = 0;
			if (!l || line[0] == '#')
				continue;
			run_case(g.gl_pathv[k], lineno, line);
			cases++;
		}
		fclose(fp);
	}
	globfree(&g);
	printf("# %d cases in %d files\n", cases, files);
	ok(cases >= 200, "at least 200 cases (%d)", cases);
}

/* A reference's slice is the text it was found at. */
static int ref_is(int k, const char *text)
{
	return k < res.n_tables && res.tables[k].len == strlen(text) &&
	       !memcmp(res.tables[k].p, text, res.tables[k].len);
}

static void offsets(void)
{
	static const char q[] = "SELECT a FROM `p.d`.t AS x JOIN my-proj-1.ds.u ON x.a = u.a "
				"WHERE a IN (SELECT b FROM ds . v)";
	const char *g;
	int rc;

	rc = analyze(q, sizeof(q) - 1, "demo-project", NULL);
	g = res.stmts[0].off == 0 ? q : q;
	is_int(rc, 0, "offsets: analyzed");
	is_int(res.n_tables, 3, "offsets: three references");
	ok(ref_is(0, "`p.d`.t"), "offsets: quoted path slice");
	ok(ref_is(1, "my-proj-1.ds.u"), "offsets: dashed path slice");
	ok(ref_is(2, "ds . v"), "offsets: path with spaces around the dot");
	is_str(res.tables[0].name, "p.d.t", "offsets: resolved p.d.t");
	is_str(res.tables[2].name, "demo-project.ds.v", "offsets: resolved with default project");
	(void)g;

	rc = analyze_str("SELECT 1; DELETE FROM ds.t WHERE id = 3 ;  UPDATE ds.u SET a = 1 WHERE TRUE", NULL);
	is_int(res.n_stmts, 3, "statements: three");
	is_int(res.stmts[1].off, 10, "statements: second starts at DELETE");
	is_int(res.stmts[1].len, strlen("DELETE FROM ds.t WHERE id = 3"), "statements: without ';'");
	ok(!res.stmts[1].unbounded && res.stmts[2].unbounded, "statements: bounded, unbounded");
	is_int(res.tables[1].stmt, 2, "references know their statement");
	ok(!sql_all_bounded(&res), "sql_all_bounded: no");
	is_str(sql_kind_name(SQL_CREATE_TABLE_AS_SELECT), "CREATE_TABLE_AS_SELECT", "kind name");
	is_str(sql_kind_name((enum sql_kind)999), "UNKNOWN", "kind name out of range");
}

/* Bounds: each array too small gives -1 and unknown; nesting beyond SQL_MAX_DEPTH too. */
static void bounds(void)
{
	static char deep[4096];
	const char *q = "SELECT * FROM a, b, c; SELECT 1; SELECT 2";
	int rc, k;

	sql_result_init(&res, stmts, MAX_STMTS, tables, 2, toks, MAX_TOKS, names, sizeof(names));
	rc = sql_analyze(tap_guarded(q, strlen(q)), strlen(q), "p", "d", &res);
	ok(rc == -1 && res.unknown && res.error, "bounds: tables (%d, %s)", rc, res.error);
	sql_result_init(&res, stmts, 2, tables, MAX_TABLES, toks, MAX_TOKS, names, sizeof(names));
	rc = sql_analyze(tap_guarded(q, strlen(q)), strlen(q), "p", "d", &res);
	ok(rc == -1 && res.unknown && res.n_stmts <= 2, "bounds: statements (%d, %s)", rc, res.error);
	sql_result_init(&res, stmts, MAX_STMTS, tables, MAX_TABLES, toks, 8, names, sizeof(names));
	rc = sql_analyze(tap_guarded(q, strlen(q)), strlen(q), "p", "d", &res);
	ok(rc == -1 && res.unknown && res.n_stmts == 1 && res.stmts[0].kind == SQL_UNKNOWN,
	   "bounds: tokens (%d, %s)", rc, res.error);
	sql_result_init(&res, stmts, MAX_STMTS, tables, MAX_TABLES, toks, MAX_TOKS, names, 10);
	rc = sql_analyze(tap_guarded(q, strlen(q)), strlen(q), "p", "d", &res);
	ok(rc == -1 && res.unknown, "bounds: name arena (%d, %s)", rc, res.error);
	sql_result_init(&res, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
	rc = sql_analyze(tap_guarded(q, strlen(q)), strlen(q), "p", "d", &res);
	ok(rc == -1 && res.unknown, "bounds: no storage at all");

	for (k = 0; k < 300; k++)
		deep[k] = '(';
	memcpy(deep + 300, "SELECT 1", 8);
	for (k = 0; k < 300; k++)
		deep[308 + k] = ')';
	rc = analyze(deep, 608, "p", NULL);
	ok(rc == -1 && res.unknown, "bounds: 300 nested brackets (%d, %s)", rc, res.error);
	deep[0] = 0;
	for (k = 0; k < 300; k++)
		strcat(deep, "BEGIN ");
	strcat(deep, "SELECT 1;");
	for (k = 0; k < 300; k++)
		strcat(deep, " END;");
	rc = analyze(deep, strlen(deep), "p", NULL);
	ok(rc == -1 && res.unknown, "bounds: 300 nested blocks (%d, %s)", rc, res.error);
	deep[0] = 0;
	for (k = 0; k < 100; k++)
		strcat(deep, "BEGIN ");
	strcat(deep, "SELECT 1;");
	for (k = 0; k < 100; k++)
		strcat(deep, " END;");
	rc = analyze(deep, strlen(deep), "p", NULL);
	ok(rc == 0 && !res.unknown && res.n_stmts == 101, "100 nested blocks are fine (%d, %s)", rc,
	   res.error);
}

static void unterminated(void)
{
	static const char *const bad[] = {
		"SELECT 'abc", "SELECT \"abc", "SELECT '''abc''", "SELECT r'abc", "SELECT b\"x",
		"SELECT * FROM `p.d.t", "SELECT 1 /* comment", "SELECT 'a\\'", "SELECT (1",
		"SELECT 1)", "SELECT 'a\nb'", "DROP TABLE t /* */ /*", "SELECT @@", NULL,
	};
	int k, rc;

	for (k = 0; bad[k]; k++) {
		rc = analyze_str(bad[k], "d");
		ok(rc == -1 && res.unknown && res.n_stmts == 1 && res.stmts[0].kind == SQL_UNKNOWN &&
			   res.error, "unterminated/invalid refused: case %d (%s)", k, res.error);
	}
}

/* Rough statements per second on typical statements (not asserted). */
static void throughput(void)
{
	static const char *const q[] = {
		"SELECT a, b, COUNT(*) AS n FROM `demo-project.crm.customers` c JOIN crm.orders o "
		"ON c.id = o.customer_id WHERE o.created_at > TIMESTAMP '2024-01-01' GROUP BY a, b "
		"ORDER BY n DESC LIMIT 100",
		"DELETE FROM crm.sessions WHERE last_seen < DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY)",
		"WITH recent AS (SELECT * FROM events.raw WHERE day >= '2024-01-01') SELECT user_id, "
		"ARRAY_AGG(kind ORDER BY ts LIMIT 5) FROM recent, UNNEST(recent.tags) tag GROUP BY 1",
		"INSERT INTO crm.audit (who, what) VALUES ('agent', 'read'), ('agent', 'write')",
	};
	struct timespec a, b;
	long iters = 0, k;
	double sec;

	sql_result_init(&res, stmts, MAX_STMTS, tables, MAX_TABLES, toks, MAX_TOKS, names,
			sizeof(names));
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		for (k = 0; k < 1000; k++)
			sql_analyze(q[k % 4], strlen(q[k % 4]), "demo-project", "crm", &res);
		iters += 1000;
		clock_gettime(CLOCK_MONOTONIC, &b);
		sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	} while (sec < 0.5);
	printf("# note: %.0f statements/s (typical statements)\n",
	       (double)iters / sec);
	ok(1, "throughput measured");
}

int main(void)
{
	case_files();
	offsets();
	bounds();
	unterminated();
	throughput();
	return tap_done();
}
