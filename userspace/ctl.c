/* ctl.c - `sluicectl explain`: a policy author's view of one query, offline, through the same
 * analyzer and policy code that sluiced runs. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "gate.h"

static void explain_usage(FILE *out)
{
	fprintf(out, "usage: sluicectl explain --sql TEXT [--project P] [--default-dataset D]\n"
		     "                         [--policy FILE] [--group G]... [--cgroup PATH] [--json]\n"
		     "Shows the statements, their kinds and tables, and (with --policy) the decision.\n");
}

/* The JSON answer: statements, tables (unique, in order), unknown, and the decision. */
static json_t *answer(const struct gate_verdict *v, int with_policy)
{
	json_t *o = json_object(), *stmts = json_object_get(v->analysis, "statements");
	json_t *tables = json_array(), *st, *t, *out_stmts = json_array();
	size_t i, j, k;
	int unknown = 0;

	json_array_foreach(stmts, i, st) {
		json_t *names = json_array();

		if (!strcmp(json_string_value(json_object_get(st, "kind")), "UNKNOWN"))
			unknown = 1;
		json_array_foreach(json_object_get(st, "tables"), j, t) {
			json_t *n = json_object_get(t, "name"), *seen;

			json_array_append(names, n);
			json_array_foreach(tables, k, seen)
				if (json_equal(seen, n))
					break;
			if (k == json_array_size(tables))
				json_array_append(tables, n);
		}
		json_array_append_new(out_stmts, json_pack("{s:O, s:O, s:o, s:O}", "kind",
			json_object_get(st, "kind"), "unbounded", json_object_get(st, "unbounded"),
			"tables", names, "offset", json_object_get(st, "offset")));
		if (json_object_get(st, "error"))
			json_object_set(json_array_get(out_stmts, json_array_size(out_stmts) - 1),
					"error", json_object_get(st, "error"));
	}
	json_object_set_new(o, "statements", out_stmts);
	json_object_set_new(o, "unknown", json_boolean(unknown));
	json_object_set_new(o, "tables", tables);
	if (with_policy) {
		json_object_set_new(o, "decision", json_string(policy_verdict_name(v->d.verdict)));
		json_object_set_new(o, "rule", json_string(v->d.rule));
		json_object_set_new(o, "reason", json_string(v->d.reason));
	}
	json_object_set_new(o, "rewritten_sql", v->rewritten_sql ? json_string(v->rewritten_sql)
								 : json_null());
	json_object_set_new(o, "masked", json_object_get(v->analysis, "masked") ?
			    json_incref(json_object_get(v->analysis, "masked")) : json_array());
	return o;
}

static void print_human(json_t *o, int with_policy)
{
	json_t *st, *t;
	size_t i, j;

	json_array_foreach(json_object_get(o, "statements"), i, st) {
		printf("statement %zu: %s%s\n", i + 1, json_string_value(json_object_get(st, "kind")),
		       json_is_true(json_object_get(st, "unbounded")) ? " (unbounded: no real WHERE)" : "");
		if (json_object_get(st, "error"))
			printf("  not understood: %s\n", json_string_value(json_object_get(st, "error")));
		json_array_foreach(json_object_get(st, "tables"), j, t)
			printf("  table %s\n", json_string_value(t));
	}
	json_array_foreach(json_object_get(o, "masked"), i, st)
		printf("masked in %s: %s\n", json_string_value(json_object_get(st, "table")),
		       json_string_value(json_object_get(st, "columns")));
	if (json_is_string(json_object_get(o, "rewritten_sql")))
		printf("rewritten for masking (what BigQuery runs):\n  %s\n",
		       json_string_value(json_object_get(o, "rewritten_sql")));
	if (with_policy)
		printf("decision: %s (rule %s)\n%s\n", json_string_value(json_object_get(o, "decision")),
		       json_string_value(json_object_get(o, "rule")),
		       json_string_value(json_object_get(o, "reason")));
}

int ctl_cmd_explain(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sql", required_argument, NULL, 's' }, { "project", required_argument, NULL, 'p' },
		{ "default-dataset", required_argument, NULL, 'd' },
		{ "policy", required_argument, NULL, 'P' }, { "group", required_argument, NULL, 'g' },
		{ "cgroup", required_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *sql = NULL, *project = "", *dataset = NULL, *policy_path = NULL;
	const char *groups[64];
	struct policy_subject sub = { .cgroup = "", .groups = groups };
	struct policy *pol = NULL;
	struct gate_verdict v;
	char err[512];
	json_t *o;
	int opt, json = 0, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sql = optarg; break;
		case 'p': project = optarg; break;
		case 'd': dataset = optarg; break;
		case 'P': policy_path = optarg; break;
		case 'c': sub.cgroup = optarg; break;
		case 'j': json = 1; break;
		case 'g':
			if (sub.n_groups < 64)
				groups[sub.n_groups++] = optarg;
			break;
		case 'h': explain_usage(stdout); return 0;
		default: explain_usage(stderr); return 2;
		}
	}
	if (!sql || optind < argc) {
		fprintf(stderr, "sluicectl explain: %s\n", sql ? "unexpected argument" : "--sql is required");
		explain_usage(stderr);
		return 2;
	}
	if (policy_path && !(pol = policy_load(policy_path, err, sizeof(err)))) {
		fprintf(stderr, "sluicectl explain: %s\n", err);
		return 2;
	}
	if (pol && *sub.cgroup) /* the groups the policy gives that cgroup, besides --group */
		sub.n_groups += policy_groups_of(pol, sub.cgroup, groups + sub.n_groups,
						 64 - sub.n_groups);
	rc = gate_explain_sql(pol, &sub, sql, strlen(sql), project, dataset, &v);
	o = answer(&v, pol != NULL);
	if (json) {
		char *s = json_dumps(o, JSON_INDENT(2));

		puts(s);
		free(s);
	} else {
		print_human(o, pol != NULL);
	}
	json_decref(o);
	gate_verdict_free(&v);
	policy_free(pol);
	return rc ? 2 : 0;
}
