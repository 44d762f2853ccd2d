/* sql_fuzz.c - libFuzzer driver of the GoogleSQL analyzer: any bytes, analyzed with and
 * without a default dataset; checks the result's invariants (references inside the text and
 * inside their statement's range, names NUL-terminated in the arena, unknown when -1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

static struct sql_stmt stmts[64];
static struct sql_table tables[128];
static struct sql_token toks[4096];
static char names[8192];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct sql_result r;
	int pass, rc, k;

	for (pass = 0; pass < 2; pass++) {
		sql_result_init(&r, stmts, 64, tables, 128, toks, 4096, names, sizeof(names));
		rc = sql_analyze(text, size, "demo-project", pass ? "crm" : NULL, &r);
		if (rc == -1 && !r.unknown)
			abort();
		if (r.unknown && !r.error)
			abort();
		for (k = 0; k < r.n_stmts; k++)
			if (r.stmts[k].off + r.stmts[k].len > size ||
			    r.stmts[k].first_table + r.stmts[k].n_tables > r.n_tables)
				abort();
		for (k = 0; k < r.n_tables; k++) {
			const struct sql_table *t = &r.tables[k];

			if (t->p < text || t->p + t->len > text + size || t->name < names ||
			    t->name + strlen(t->name) >= names + r.names_len + 1)
				abort();
		}
	}
	return 0;
}
