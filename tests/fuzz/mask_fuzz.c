/* mask_fuzz.c - libFuzzer driver of masking: any bytes as SQL are analyzed and rewritten
 * against a fixed rule (crm.customers: ssn sha256, address.street redact); a rewrite either
 * refuses or yields text that contains every byte outside the replaced references; the same
 * bytes as a row body go through mask_rows and as one row through mask_row (must not crash;
 * -1 with nothing appended, or the masked text), and through the content detectors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "mask.h"

static struct sql_stmt stmts[64];
static struct sql_table tables[128];
static struct sql_token toks[4096];
static char names[8192];
static char out[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The masked columns of crm.customers, nothing else. */
static int lookup(void *ctx, const char *name, int wildcard, struct mask_set *set)
{
	static const struct mask_opts o = { "[r]", "", "" };

	(void)ctx;
	set->n = 0;
	if (wildcard || strcmp(name, "demo-project.crm.customers"))
		return 0;
	set->c[0] = (struct mask_col){ "ssn", MASK_SHA256, MASK_T_STRING, &o, "f" };
	set->c[1] = (struct mask_col){ "address.street", MASK_REDACT, MASK_T_UNKNOWN, &o, "f" };
	set->n = 2;
	return 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *schema;
	static struct mask_plan *plan;
	struct sql_result r;
	struct mask_report rep;
	struct mask_set set;
	struct mask_buf b = { NULL, 0, 0, 1 << 20 };
	struct detect_rules dr = { DETECT_ALL, { DETECT_MASK, DETECT_MASK, DETECT_MASK,
						 DETECT_MASK, DETECT_MASK } };
	struct detect_report drep;
	char *copy;

	if (!plan) {
		char err[128];

		schema = json_loads("[{\"name\":\"ssn\",\"type\":\"STRING\"},{\"name\":\"address\","
				    "\"type\":\"RECORD\",\"mode\":\"REPEATED\",\"fields\":[{\"name\":"
				    "\"street\",\"type\":\"STRING\"}]}]", 0, NULL);
		lookup(NULL, "demo-project.crm.customers", 0, &set);
		plan = mask_plan_new(schema, &set, err, sizeof(err));
		if (!plan)
			abort();
	}
	sql_result_init(&r, stmts, 64, tables, 128, toks, 4096, names, sizeof(names));
	sql_analyze((const char *)data, size, "demo-project", "crm", &r);
	if (mask_rewrite((const char *)data, size, &r, 0, lookup, NULL, out, sizeof(out), &rep) ==
	    0) {
		if (rep.out_len != strlen(out) && !memchr(data, 0, size))
			abort();
		if (!rep.n_refs && (rep.out_len != size || memcmp(out, data, size)))
			abort(); /* nothing masked: the text is unchanged */
	}
	if (mask_rows(plan, (const char *)data, size, &b) >= 0 && b.len < 2)
		abort();
	b.len = 0;
	if (mask_row(plan, (const char *)data, size, &b) >= 0 ? b.len < 2 : b.len != 0)
		abort();
	free(b.p);
	if ((copy = malloc(size + 1))) {
		memcpy(copy, data, size);
		memset(&drep, 0, sizeof(drep));
		detect_json(copy, size, &dr, &drep);
		detect_text(copy, size, &dr, &drep);
		free(copy);
	}
	return 0;
}
