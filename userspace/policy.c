/* policy.c - load policy v1 files (jansson, errors with file:line) and decide items. */
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include "jsonpos.h"
#include "detect.h"
#include "mask.h"
#include "policy.h"

#define POLICY_MAX_FILE (4 << 20)

struct list {
	char *v[POLICY_MAX_LIST];
	int n; /* 0: the rule does not constrain this */
};

struct rule {
	char *name, *reason;
	struct list cgroups, groups, projects, datasets, tables, statements, operations;
	unsigned access_mask;   /* 0: any */
	json_t *claims;         /* {"claim": "glob"}: the identity's claims must match; NULL: any */
	int unbounded;          /* -1 any, 0 bounded only, 1 unbounded only */
	int legacy_sql;         /* 1: may allow legacy SQL */
	enum policy_verdict verdict;
};

struct group {
	char *name;
	struct list cgroups;
};

struct policy {
	struct rule rules[POLICY_MAX_RULES];
	int n;
	enum policy_verdict dflt;
	struct group groups[POLICY_MAX_LIST];
	int n_groups;
	struct mask_rules *masks;
	struct detect_rules detect;
};

const struct detect_rules *policy_detect(const struct policy *p)
{
	return p && p->detect.enabled ? &p->detect : NULL;
}

const struct mask_rules *policy_masks(const struct policy *p)
{
	return p ? p->masks : NULL;
}

static const char *const access_names[POLICY_ACCESS_COUNT] = {
	"read-data", "read-metadata", "write-data", "ddl", "iam", "job-control",
};

const char *policy_verdict_name(enum policy_verdict v)
{
	return v == POLICY_ALLOW ? "allow" : v == POLICY_APPROVE ? "approve" : "deny";
}

const char *policy_access_name(enum policy_access a)
{
	return (unsigned)a < POLICY_ACCESS_COUNT ? access_names[a] : "unknown";
}



static int parse_verdict(const char *s, enum policy_verdict *v)
{
	if (!strcmp(s, "allow"))
		*v = POLICY_ALLOW;
	else if (!strcmp(s, "approve"))
		*v = POLICY_APPROVE;
	else if (!strcmp(s, "deny"))
		*v = POLICY_DENY;
	else
		return -1;
	return 0;
}

static void get_list(struct jsonpos_ctx *c, json_t *r, const char *path, const char *key, struct list *l,
		     int upper)
{
	json_t *v = json_object_get(r, key), *e;
	char kp[300];
	const char *s;
	size_t i;

	if (!v)
		return;
	snprintf(kp, sizeof(kp), "%s.%s", path, key);
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > POLICY_MAX_LIST) {
		jsonpos_fail(c, kp, "must be a non-empty list of at most %d strings (leave the key out to "
			    "match anything)", POLICY_MAX_LIST);
		return;
	}
	json_array_foreach(v, i, e) {
		s = json_string_value(e);
		if (!s || !*s) {
			snprintf(kp, sizeof(kp), "%s.%s[%zu]", path, key, i);
			jsonpos_fail(c, kp, "must be a non-empty string");
			return;
		}
		if (upper && strcmp(s, "*") && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(s)) {
			snprintf(kp, sizeof(kp), "%s.%s[%zu]", path, key, i);
			jsonpos_fail(c, kp, "\"%s\" is not a statement kind; kinds are written as BigQuery's "
				    "statementType, e.g. \"SELECT\", \"DROP_TABLE\" (sluicectl explain "
				    "shows a query's kinds)", s);
			return;
		}
		l->v[l->n++] = strdup(s);
	}
}

static void load_rule(struct jsonpos_ctx *c, json_t *r, int idx, struct rule *out, struct policy *p)
{
	static const char *const known[] = { "name", "reason", "cgroups", "groups", "projects",
		"datasets", "tables", "statements", "operations", "access", "unbounded",
		"legacy_sql", "decision", "claims", NULL };
	char path[64], kp[128];
	const char *s;
	json_t *v, *e;
	size_t i;
	int k, j;

	snprintf(path, sizeof(path), "rules[%d]", idx);
	if (!json_is_object(r)) {
		jsonpos_fail(c, path, "each rule must be an object");
		return;
	}
	jsonpos_known_keys(c, r, path, known);
	s = json_string_value(json_object_get(r, "name"));
	if (!s || !*s) {
		snprintf(kp, sizeof(kp), "%s", path);
		jsonpos_fail(c, kp, "needs a \"name\": it is quoted to agents and in recordings");
		return;
	}
	for (j = 0; j < idx; j++)
		if (p->rules[j].name && !strcmp(p->rules[j].name, s)) {
			snprintf(kp, sizeof(kp), "%s.name", path);
			jsonpos_fail(c, kp, "\"%s\" is already the name of rules[%d]; names must be unique", s, j);
		}
	out->name = strdup(s);
	s = json_string_value(json_object_get(r, "decision"));
	snprintf(kp, sizeof(kp), "%s.decision", path);
	if (!s || parse_verdict(s, &out->verdict))
		jsonpos_fail(c, kp, "must be \"allow\", \"deny\" or \"approve\"");
	v = json_object_get(r, "reason");
	if (v && !json_is_string(v)) {
		snprintf(kp, sizeof(kp), "%s.reason", path);
		jsonpos_fail(c, kp, "must be a string");
	}
	out->reason = strdup(v ? json_string_value(v) : "");
	get_list(c, r, path, "cgroups", &out->cgroups, 0);
	get_list(c, r, path, "groups", &out->groups, 0);
	get_list(c, r, path, "projects", &out->projects, 0);
	get_list(c, r, path, "datasets", &out->datasets, 0);
	get_list(c, r, path, "tables", &out->tables, 0);
	get_list(c, r, path, "statements", &out->statements, 1);
	get_list(c, r, path, "operations", &out->operations, 0);
	v = json_object_get(r, "access");
	if (v) {
		snprintf(kp, sizeof(kp), "%s.access", path);
		if (!json_is_array(v) || !json_array_size(v))
			jsonpos_fail(c, kp, "must be a non-empty list");
		json_array_foreach(v, i, e) {
			for (k = 0; k < POLICY_ACCESS_COUNT; k++)
				if (json_is_string(e) && !strcmp(json_string_value(e), access_names[k]))
					break;
			if (k == POLICY_ACCESS_COUNT) {
				snprintf(kp, sizeof(kp), "%s.access[%zu]", path, i);
				jsonpos_fail(c, kp, "must be one of read-data, read-metadata, write-data, ddl, "
					    "iam, job-control");
			} else {
				out->access_mask |= 1u << k;
			}
		}
	}
	v = json_object_get(r, "claims");
	if (v) {
		const char *ck;
		json_t *cv;

		snprintf(kp, sizeof(kp), "%s.claims", path);
		if (!json_is_object(v) || !json_object_size(v))
			jsonpos_fail(c, kp, "must be an object of claim name to glob, e.g. "
				    "{\"environment\": \"production\"}");
		json_object_foreach(v, ck, cv)
			if (!json_is_string(cv)) {
				snprintf(kp, sizeof(kp), "%s.claims.%s", path, ck);
				jsonpos_fail(c, kp, "must be a string (a glob the claim's value must match)");
			}
		out->claims = json_incref(v);
	}
	out->unbounded = -1;
	v = json_object_get(r, "unbounded");
	if (v) {
		snprintf(kp, sizeof(kp), "%s.unbounded", path);
		if (!json_is_boolean(v))
			jsonpos_fail(c, kp, "must be true or false");
		out->unbounded = json_is_true(v);
	}
	v = json_object_get(r, "legacy_sql");
	if (v) {
		snprintf(kp, sizeof(kp), "%s.legacy_sql", path);
		if (!json_is_boolean(v))
			jsonpos_fail(c, kp, "must be true or false");
		out->legacy_sql = json_is_true(v);
	}
}

/* "detect": {"email": "mask", "card": "refuse", "ssn": "mask", "phone": "report",
 * "iban": "off"}: content detectors over every response, with an action per kind. */
static void load_detect(struct jsonpos_ctx *c, json_t *root, struct policy *p)
{
	static const char *const kinds[5] = { "email", "card", "ssn", "phone", "iban" };
	static const char *const acts[3] = { "report", "mask", "refuse" };
	json_t *d = json_object_get(root, "detect"), *v;
	const char *k;
	char kp[64];
	int i, a;

	if (!d)
		return;
	if (!json_is_object(d)) {
		jsonpos_fail(c, "detect", "must be an object of kind (email, card, ssn, phone, iban) "
			     "to action (report, mask, refuse, off)");
		return;
	}
	json_object_foreach(d, k, v) {
		snprintf(kp, sizeof(kp), "detect.%s", k);
		for (i = 0; i < 5 && strcmp(kinds[i], k); i++)
			;
		if (i == 5) {
			jsonpos_fail(c, kp, "unknown detector; the detectors are email, card, ssn, "
				     "phone and iban");
			continue;
		}
		if (json_is_string(v) && !strcmp(json_string_value(v), "off"))
			continue;
		for (a = 0; a < 3 && !(json_is_string(v) && !strcmp(json_string_value(v), acts[a]));
		     a++)
			;
		if (a == 3) {
			jsonpos_fail(c, kp, "must be \"report\", \"mask\", \"refuse\" or \"off\"");
			continue;
		}
		p->detect.enabled |= 1u << i;
		p->detect.action[i] = (enum detect_action)a;
	}
}

/* The "masks" section (mask.c validates it; its errors name the key path, to which the line
 * is added here) and the tokenize key: a root-only file, or random bytes for this process. */
static void load_masks(struct jsonpos_ctx *c, json_t *root, struct policy *p)
{
	json_t *m = json_object_get(root, "masks");
	const char *kf = json_string_value(json_object_get(root, "mask_key_file"));
	unsigned char key[64];
	char merr[400], kp[256];
	struct stat st;
	size_t n = 0;
	FILE *f;

	if (!m)
		return;
	if (mask_rules_load(m, &p->masks, merr, sizeof(merr))) {
		size_t k = strcspn(merr, ": ");

		snprintf(kp, sizeof(kp), "%.*s", (int)k, merr);
		jsonpos_fail(c, kp, "%s", merr[k] ? merr + k + 2 : merr);
		return;
	}
	if (kf) {
		f = fopen(kf, "re");
		if (!f || fstat(fileno(f), &st) || (st.st_mode & 077) ||
		    (n = fread(key, 1, sizeof(key), f)) < 16)
			jsonpos_fail(c, "mask_key_file", "%s: must be a file of at least 16 random bytes that "
			     "only its owner can read (chmod 600)", kf);
		if (f)
			fclose(f);
	} else {
		n = RAND_bytes(key, 32) == 1 ? 32 : 0; /* tokens then last as long as the process */
	}
	if (!c->failed && (n < 16 || mask_rules_set_key(p->masks, key, n)))
		jsonpos_fail(c, "mask_key_file", "the tokenize key could not be set");
	OPENSSL_cleanse(key, sizeof(key));
}

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
	struct jsonpos_ctx c = { .file = path, .err = err, .errlen = errlen };
	struct policy *p = calloc(1, sizeof(*p));
	json_t *root = NULL, *rules, *v;
	json_error_t jerr;
	const char *key, *s;
	char *text = NULL;
	size_t len = 0, i;
	FILE *f = fopen(path, "re");

	if (!f || !p) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	text = malloc(POLICY_MAX_FILE + 1);
	if (text)
		len = fread(text, 1, POLICY_MAX_FILE + 1, f);
	if (!text || len > POLICY_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than 4 MiB", path);
		goto fail;
	}
	c.text = text;
	c.len = len;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
			 jerr.text);
		goto fail;
	}
	if (!json_is_object(root)) {
		jsonpos_fail(&c, "", "a policy is a JSON object with \"rules\" and \"default\"");
		goto fail;
	}
	jsonpos_known_keys(&c, root, "", (const char *const[]){ "description", "groups",
			   "default", "rules", "masks", "mask_key_file", "detect", NULL });
	load_detect(&c, root, p);
	load_masks(&c, root, p);
	v = json_object_get(root, "groups");
	if (v && (!json_is_object(v) || json_object_size(v) > POLICY_MAX_LIST))
		jsonpos_fail(&c, "groups", "must be an object mapping a group name to cgroup path globs, "
			 "e.g. {\"analysts\": [\"/agents.slice/analyst-*\"]}");
	else if (v) {
		json_t *g;

		json_object_foreach(v, key, g) {
			struct group *gr = &p->groups[p->n_groups++];

			gr->name = strdup(key);
			get_list(&c, v, "groups", key, &gr->cgroups, 0);
			if (!gr->cgroups.n && !c.failed) {
				char kp[300];

				snprintf(kp, sizeof(kp), "groups.%s", key);
				jsonpos_fail(&c, kp, "must list at least one cgroup path glob");
			}
		}
	}
	p->dflt = POLICY_DENY;
	v = json_object_get(root, "default");
	if (v && (!(s = json_string_value(v)) || parse_verdict(s, &p->dflt)))
		jsonpos_fail(&c, "default", "must be \"allow\", \"deny\" or \"approve\"");
	rules = json_object_get(root, "rules");
	if (!json_is_array(rules) || json_array_size(rules) > POLICY_MAX_RULES) {
		jsonpos_fail(&c, "rules", "must be a list of at most %d rules", POLICY_MAX_RULES);
		goto fail;
	}
	json_array_foreach(rules, i, v) {
		load_rule(&c, v, (int)i, &p->rules[p->n], p);
		p->n++;
	}
	if (c.failed)
		goto fail;
	json_decref(root);
	fclose(f);
	free(text);
	return p;
fail:
	json_decref(root);
	if (f)
		fclose(f);
	free(text);
	policy_free(p);
	return NULL;
}

static void list_free(struct list *l)
{
	while (l->n > 0)
		free(l->v[--l->n]);
}

void policy_free(struct policy *p)
{
	int i;

	if (!p)
		return;
	mask_rules_free(p->masks);
	for (i = 0; i < p->n_groups; i++) {
		free(p->groups[i].name);
		list_free(&p->groups[i].cgroups);
	}
	for (i = 0; i < p->n; i++) {
		struct rule *r = &p->rules[i];

		free(r->name);
		free(r->reason);
		json_decref(r->claims);
		list_free(&r->cgroups);
		list_free(&r->groups);
		list_free(&r->projects);
		list_free(&r->datasets);
		list_free(&r->tables);
		list_free(&r->statements);
		list_free(&r->operations);
	}
	free(p);
}

int policy_groups_of(const struct policy *p, const char *cgroup, const char **out, int max)
{
	int i, j, n = 0;

	for (i = 0; i < p->n_groups && n < max; i++)
		for (j = 0; j < p->groups[i].cgroups.n; j++)
			if (!fnmatch(p->groups[i].cgroups.v[j], cgroup ? cgroup : "", 0)) {
				out[n++] = p->groups[i].name;
				break;
			}
	return n;
}

/* Does <s> match one of the globs of <l>? An unconstrained list matches anything. */
static int globs(const struct list *l, const char *s)
{
	int i;

	if (!l->n)
		return 1;
	for (i = 0; i < l->n; i++)
		if (!fnmatch(l->v[i], s ? s : "", 0))
			return 1;
	return 0;
}

static int rule_matches(const struct rule *r, const struct policy_subject *sub,
			const struct policy_item *it)
{
	int i, j, hit;

	if (!globs(&r->cgroups, sub->cgroup))
		return 0;
	if (r->groups.n) {
		for (hit = 0, i = 0; i < r->groups.n && !hit; i++)
			for (j = 0; j < sub->n_groups && !hit; j++)
				hit = !fnmatch(r->groups.v[i], sub->groups[j], 0);
		if (!hit)
			return 0;
	}
	if (r->claims) { /* every named claim of the verified identity must match its glob */
		const char *ck;
		json_t *cv, *have;

		json_object_foreach(r->claims, ck, cv) {
			have = sub->claims ? json_object_get((json_t *)sub->claims, ck) : NULL;
			if (!json_is_string(have) ||
			    fnmatch(json_string_value(cv), json_string_value(have), 0))
				return 0;
		}
	}
	if (!globs(&r->projects, it->project) || !globs(&r->datasets, it->dataset) ||
	    !globs(&r->tables, it->table) || !globs(&r->operations, it->operation))
		return 0;
	if (r->access_mask && !(r->access_mask & (1u << it->access)))
		return 0;
	if (r->unbounded >= 0 && r->unbounded != !!it->unbounded)
		return 0;
	if (r->statements.n) {
		if (!it->kind || !*it->kind)
			return 0;
		for (hit = 0, i = 0; i < r->statements.n && !hit; i++)
			hit = !strcmp(r->statements.v[i], it->kind) ||
			      (!strcmp(r->statements.v[i], "*") && strcmp(it->kind, "UNKNOWN"));
		if (!hit)
			return 0;
	}
	return 1;
}

/* Allowing needs more than a match for what the analyzer could not vouch for. */
static int may_allow(const struct rule *r, const struct policy_item *it)
{
	if (it->legacy_sql && !(r && r->legacy_sql))
		return 0;
	if (it->kind && !strcmp(it->kind, "UNKNOWN") && !r)
		return 0;
	return 1;
}

static void describe(const struct policy_item *it, char *out, size_t outlen)
{
	char where[600] = "";

	if (it->table && *it->table)
		snprintf(where, sizeof(where), " on %s.%s.%s", it->project, it->dataset, it->table);
	else if (it->dataset && *it->dataset)
		snprintf(where, sizeof(where), " on dataset %s.%s", it->project, it->dataset);
	else if (it->project && *it->project)
		snprintf(where, sizeof(where), " in project %s", it->project);
	if (it->kind && *it->kind && it->statement >= 0) {
		if (snprintf(out, outlen, "%s%s%s (statement %d)", it->kind,
			     !it->unbounded ? "" : !strncmp(it->kind, "CREATE", 6) ?
			     " replacing the whole table" : " without a real WHERE", where,
			     it->statement + 1) >= (int)outlen)
			return; /* truncated names stay readable */
	} else if (snprintf(out, outlen, "%s%s%s", it->operation ? it->operation : "request",
			    it->unbounded ? " with WRITE_TRUNCATE (replacing every row)" : "",
			    where) >= (int)outlen) {
		return;
	}
}

void policy_decide(const struct policy *p, const struct policy_subject *sub,
		   const struct policy_item *items, int n, struct policy_decision *out)
{
	enum policy_verdict v;
	const struct rule *r;
	const char *extra;
	char what[768];
	int i, k, worst = -1;

	out->verdict = p->dflt;
	out->rule = "default";
	out->item = -1;
	snprintf(out->reason, sizeof(out->reason), "sluice: no rule matched this request; the "
		 "policy's default is %s", policy_verdict_name(p->dflt));
	for (i = 0; i < n; i++) {
		for (r = NULL, k = 0; k < p->n; k++) {
			if (rule_matches(&p->rules[k], sub, &items[i])) {
				r = &p->rules[k];
				/* a match that may not allow falls through to later rules */
				if (r->verdict != POLICY_ALLOW || may_allow(r, &items[i]))
					break;
				r = NULL;
			}
		}
		v = r ? r->verdict : p->dflt;
		if (v == POLICY_ALLOW && !may_allow(r, &items[i]))
			v = POLICY_DENY;
		if (worst >= 0 && v <= out->verdict)
			continue;
		worst = i;
		out->verdict = v;
		out->item = i;
		out->rule = r ? r->name : "default";
		describe(&items[i], what, sizeof(what));
		extra = r && r->reason && *r->reason ? r->reason : "";
		if (!r && v == POLICY_DENY && items[i].legacy_sql)
			extra = "legacy SQL is refused unless a rule allows it: send useLegacySql: false";
		else if (!r && v == POLICY_DENY && items[i].kind && !strcmp(items[i].kind, "UNKNOWN"))
			extra = "sluice could not analyze this statement, and what it cannot analyze it "
				"does not allow";
		if (snprintf(out->reason, sizeof(out->reason), "sluice: %s %s by %s%s%s%s%s", what,
			 v == POLICY_DENY ? "is denied" : v == POLICY_APPROVE ?
			 "needs a human's approval" : "is allowed",
			 r ? "rule '" : "the policy default", r ? r->name : "", r ? "'" : "",
			 *extra ? ": " : "", extra) >= (int)sizeof(out->reason))
			memcpy(out->reason + sizeof(out->reason) - 4, "...", 4); /* still says who */
	}
}
