/* policy.h - policy v1: ordered rules that decide each part of a BigQuery request.
 *
 * A request is broken into items (policy_item): one per statement and table it touches, or
 * one for the API operation when it carries no SQL. Each item gets the decision of the first
 * rule that matches it (default: deny); the request gets the strictest decision of its items
 * (deny > approve > allow), with the rule and reason of the item that decided it. Policy
 * files are JSON, validated whole with errors naming file, line and key. */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stddef.h>

#define POLICY_MAX_RULES 512
#define POLICY_MAX_LIST 64

enum policy_verdict { POLICY_ALLOW, POLICY_APPROVE, POLICY_DENY }; /* ordered: strictest last */

/* Access kinds, as the API model classifies requests and the analyzer statements. */
enum policy_access {
	POLICY_READ_DATA, POLICY_READ_METADATA, POLICY_WRITE_DATA, POLICY_DDL, POLICY_IAM,
	POLICY_JOB_CONTROL, POLICY_ACCESS_COUNT
};

/* Who is asking: the container's cgroup path and the groups configured for it. */
struct policy_subject {
	const char *cgroup;
	const char *identity;    /* who asks: the verified subject, else the cgroup (NULL: cgroup) */
	const char *const *groups;
	int n_groups;
	const void *claims;      /* json_t object of the verified identity's claims, or NULL */
};

/* One decidable part of a request. Strings may be "" (unknown or not applicable). */
struct policy_item {
	const char *operation;  /* "bigquery.jobs.query" */
	enum policy_access access;
	const char *kind;       /* statement kind ("DROP_TABLE"), "" for an API-level item */
	const char *project, *dataset, *table;
	int unbounded;          /* DELETE/UPDATE/MERGE that can touch every row */
	int legacy_sql;         /* the SQL is legacy SQL (by omission or explicitly) */
	int statement;          /* index of the statement in the script, -1 for API items */
};

/* The outcome for a request. */
struct policy_decision {
	enum policy_verdict verdict;
	const char *rule;       /* name of the deciding rule; "default" when none matched */
	int item;               /* index of the deciding item */
	char reason[512];       /* for the agent: names the rule, statement and table */
};

struct policy;
struct mask_rules;
struct detect_rules;

/* Load and validate the policy file <path>. Returns NULL with <err> "FILE:LINE: KEY: ...". */
struct policy *policy_load(const char *path, char *err, size_t errlen);
void policy_free(struct policy *p);

/* Decide items[0..n) for <subject> into <out>. With n == 0 the default applies. */
void policy_decide(const struct policy *p, const struct policy_subject *subject,
		   const struct policy_item *items, int n, struct policy_decision *out);

/* The groups the policy's "groups" map gives cgroup <cgroup> (globs on cgroup paths): fills
 * out[0..max) with names owned by <p>; returns how many. */
int policy_groups_of(const struct policy *p, const char *cgroup, const char **out, int max);

/* The policy's masking rules ("masks"), or NULL when it masks nothing. */
const struct mask_rules *policy_masks(const struct policy *p);

/* The content detectors to run over responses ("detect"), or NULL when none is on. */
const struct detect_rules *policy_detect(const struct policy *p);

/* "allow", "approve", "deny". */
const char *policy_verdict_name(enum policy_verdict v);
/* "read-data", ... as written in policy files. */
const char *policy_access_name(enum policy_access a);

#endif
