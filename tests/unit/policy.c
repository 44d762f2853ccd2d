/* Description: policy v1: loading with file:line errors, first-match rules, strictest item
 * wins, legacy SQL and UNKNOWN never allowed by accident; the shipped example policies. */
#include <jansson.h>

#include "policy.h"
#include "tap.h"

static char path[] = "/tmp/sluice-policy-test-XXXXXX";

static struct policy *load_text(const char *text, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return policy_load(path, err, errlen);
}

static void refused(const char *text, int line, const char *key, const char *what)
{
	char err[512], want[512];
	struct policy *p = load_text(text, err, sizeof(err));

	snprintf(want, sizeof(want), "%s:%d: %s: ", path, line, key);
	ok(!p && !strncmp(err, want, strlen(want)) && strstr(err, what),
	   "refused: %s ... %s (got: %s)", want, what, err);
	policy_free(p);
}

static struct policy_item stmt(const char *kind, enum policy_access a, const char *d,
			       const char *t, int unbounded)
{
	struct policy_item it = { .operation = "bigquery.jobs.query", .access = a, .kind = kind,
				  .project = "demo-project", .dataset = d, .table = t,
				  .unbounded = unbounded, .statement = 0 };
	return it;
}

static struct policy_item api(const char *op, enum policy_access a, const char *d, const char *t)
{
	struct policy_item it = { .operation = op, .access = a, .kind = "", .project = "demo-project",
				  .dataset = d, .table = t, .statement = -1 };
	return it;
}

static enum policy_verdict decide1(struct policy *p, struct policy_item it, struct policy_decision *d)
{
	static const char *const groups[] = { "agents" };
	struct policy_subject sub = { .cgroup = "/agents.slice/a1", .groups = groups, .n_groups = 1 };

	policy_decide(p, &sub, &it, 1, d);
	return d->verdict;
}

int main(void)
{
	struct policy_subject sub = { .cgroup = "/agents.slice/a1" };
	struct policy_decision d;
	struct policy_item items[3];
	struct policy *p;
	char err[512];
	int fd = mkstemp(path);

	close(fd);
	refused("{\"rules\": [{\"name\": \"a\", \"decision\": \"maybe\"}]}", 1, "rules[0].decision",
		"allow");
	refused("{\"rules\": [\n{\"name\": \"a\", \"decision\": \"allow\"},\n"
		"{\"name\": \"a\", \"decision\": \"deny\"}]}", 3, "rules[1].name", "unique");
	refused("{\"rules\": [{\"name\": \"a\", \"decision\": \"allow\",\n \"statments\": []}]}",
		2, "rules[0].statments", "unknown key");
	refused("{\"rules\": [{\"name\": \"a\", \"decision\": \"allow\",\n \"statements\": "
		"[\"select\"]}]}", 2, "rules[0].statements[0]", "statement kind");
	refused("{\"rules\": [{\"name\": \"a\", \"decision\": \"allow\", \"access\": [\"read\"]}]}",
		1, "rules[0].access[0]", "read-data");
	refused("{\"rules\": [{\"decision\": \"allow\"}]}", 1, "rules[0]", "name");
	refused("{\"default\": \"open\", \"rules\": []}", 1, "default", "allow");

	p = load_text("{\"default\": \"allow\", \"rules\": [\n"
		      "{\"name\": \"deny-drop\", \"statements\": [\"DROP_TABLE\"], \"decision\": \"deny\","
		      " \"reason\": \"never\"},\n"
		      "{\"name\": \"any\", \"statements\": [\"*\"], \"decision\": \"allow\"}]}",
		      err, sizeof(err));
	ok(p != NULL, "a policy with default allow loads (%s)", err);
	items[0] = stmt("SELECT", POLICY_READ_DATA, "crm", "customers", 0);
	items[1] = stmt("DROP_TABLE", POLICY_DDL, "crm", "customers", 0);
	items[1].statement = 1;
	policy_decide(p, &sub, items, 2, &d);
	is_int(d.verdict, POLICY_DENY, "a script is as strict as its strictest statement");
	is_str(d.rule, "deny-drop", "the deciding rule is named");
	ok(strstr(d.reason, "DROP_TABLE on demo-project.crm.customers (statement 2)") &&
		   strstr(d.reason, "deny-drop") && strstr(d.reason, "never"),
	   "the reason names statement, table, rule and why: %s", d.reason);
	items[0] = stmt("UNKNOWN", POLICY_DDL, "", "", 0);
	is_int(decide1(p, items[0], &d), POLICY_DENY, "UNKNOWN is not matched by '*' nor default allow");
	ok(strstr(d.reason, "could not analyze"), "... and the reason says why (%s)", d.reason);
	items[0] = stmt("SELECT", POLICY_READ_DATA, "crm", "customers", 0);
	items[0].legacy_sql = 1;
	is_int(decide1(p, items[0], &d), POLICY_DENY, "legacy SQL is not allowed without legacy_sql");
	ok(strstr(d.reason, "useLegacySql"), "... and the reason says what to send (%s)", d.reason);
	policy_free(p);

	p = load_text("{\"groups\": {\"analysts\": [\"/agents.slice/analyst-*\"]},\n"
		      " \"rules\": [{\"name\": \"analysts-read\", \"groups\": [\"analysts\"],"
		      " \"statements\": [\"SELECT\"], \"decision\": \"allow\"}]}", err, sizeof(err));
	ok(p != NULL, "a policy with a groups map loads (%s)", err);
	if (p) {
		const char *g[4];
		struct policy_subject an = { .cgroup = "/agents.slice/analyst-7", .groups = g };

		an.n_groups = policy_groups_of(p, an.cgroup, g, 4);
		is_int(an.n_groups, 1, "the cgroup glob gives the group");
		items[0] = stmt("SELECT", POLICY_READ_DATA, "crm", "customers", 0);
		policy_decide(p, &an, items, 1, &d);
		is_int(d.verdict, POLICY_ALLOW, "a rule on the group matches its cgroups");
		policy_decide(p, &sub, items, 1, &d);
		is_int(d.verdict, POLICY_DENY, "... and no other cgroup");
		policy_free(p);
	}
	refused("{\"groups\": {\"a\": []}, \"rules\": []}", 1, "groups.a", "non-empty list");

	p = load_text("{\"rules\": [{\"name\": \"prod-read\", \"claims\": {\"environment\": \"prod*\"},"
		      " \"statements\": [\"SELECT\"], \"decision\": \"allow\"}]}", err, sizeof(err));
	ok(p != NULL, "a rule on claims loads (%s)", err);
	if (p) {
		json_t *prod = json_pack("{s:s}", "environment", "production");
		json_t *dev = json_pack("{s:s}", "environment", "dev");
		struct policy_subject who = { .cgroup = "/a", .claims = prod };

		items[0] = stmt("SELECT", POLICY_READ_DATA, "crm", "customers", 0);
		policy_decide(p, &who, items, 1, &d);
		is_int(d.verdict, POLICY_ALLOW, "claims match: environment=production");
		who.claims = dev;
		policy_decide(p, &who, items, 1, &d);
		is_int(d.verdict, POLICY_DENY, "... and not environment=dev");
		who.claims = NULL;
		policy_decide(p, &who, items, 1, &d);
		is_int(d.verdict, POLICY_DENY, "... nor an identity without claims");
		json_decref(prod);
		json_decref(dev);
		policy_free(p);
	}
	refused("{\"rules\": [{\"name\": \"x\", \"decision\": \"allow\",\n \"claims\": {\"a\": 1}}]}", 2,
		"rules[0].claims.a", "glob");

	p = policy_load("policies/readonly-agent.json", err, sizeof(err));
	ok(p != NULL, "policies/readonly-agent.json loads (%s)", err);
	if (p) {
		is_int(decide1(p, stmt("SELECT", POLICY_READ_DATA, "crm", "customers", 0), &d),
		       POLICY_ALLOW, "read-only: SELECT allowed");
		is_int(decide1(p, stmt("SELECT", POLICY_READ_DATA, "hr", "salaries", 0), &d),
		       POLICY_DENY, "read-only: HR refused");
		is_int(decide1(p, stmt("INSERT", POLICY_WRITE_DATA, "sales", "orders", 0), &d),
		       POLICY_DENY, "read-only: INSERT refused by default");
		is_int(decide1(p, api("bigquery.tabledata.list", POLICY_READ_DATA, "sales", "orders"), &d),
		       POLICY_ALLOW, "read-only: tabledata.list allowed");
		is_int(decide1(p, api("bigquery.tabledata.insertAll", POLICY_WRITE_DATA, "sales", "orders"), &d),
		       POLICY_DENY, "read-only: insertAll refused");
		policy_free(p);
	}
	p = policy_load("policies/production.json", err, sizeof(err));
	ok(p != NULL, "policies/production.json loads (%s)", err);
	if (p) {
		is_int(decide1(p, stmt("DROP_TABLE", POLICY_DDL, "sales", "orders", 0), &d),
		       POLICY_DENY, "production: DROP TABLE refused");
		is_int(decide1(p, stmt("DELETE", POLICY_WRITE_DATA, "sales", "orders", 1), &d),
		       POLICY_DENY, "production: unbounded DELETE refused");
		ok(strstr(d.reason, "WHERE"), "... saying to add a WHERE (%s)", d.reason);
		is_int(decide1(p, stmt("DELETE", POLICY_WRITE_DATA, "sales", "orders", 0), &d),
		       POLICY_ALLOW, "production: bounded DELETE on sales allowed");
		is_int(decide1(p, stmt("UPDATE", POLICY_WRITE_DATA, "crm", "customers", 0), &d),
		       POLICY_APPROVE, "production: write to crm needs approval");
		is_int(decide1(p, api("bigquery.tables.delete", POLICY_DDL, "sales", "orders"), &d),
		       POLICY_DENY, "production: tables.delete refused");
		is_int(decide1(p, api("bigquery.tables.setIamPolicy", POLICY_IAM, "sales", "orders"), &d),
		       POLICY_DENY, "production: setIamPolicy refused");
		is_int(decide1(p, stmt("GRANT", POLICY_IAM, "sales", "orders", 0), &d),
		       POLICY_DENY, "production: GRANT refused");
		is_int(decide1(p, stmt("SELECT", POLICY_READ_DATA, "hr", "salaries", 0), &d),
		       POLICY_ALLOW, "production: SELECT allowed");
		policy_free(p);
	}
	unlink(path);
	return tap_done();
}
