/* route.c - the BigQuery v2 REST API model: host, path, query parameters and body of one
 * request turned into a method of the table below, or a refusal.
 *
 * The order of the checks is the order of trust: host, method (with its override), target
 * bytes, path prefix, path shape against the table's flatPaths, path parameters, query
 * parameters, then the body (gunzipped, de-multiparted, depth-checked, parsed with duplicate
 * keys refused) and the few fields of it that policy needs. Each check that fails writes one
 * reason naming what it did not know; the result is then wiped so that nothing half-filled
 * can be mistaken for a classification. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "route.h"

#define REFUSED 1           /* an internal function refused the request: reason is set */
#define MAX_QUERY_PARAMS 64 /* query parameters of one request */
#define GZIP_MAX_RATIO 1024 /* decompressed/compressed bytes allowed past the first MiB */

/* The 47 methods of shared/bigquery/methods.tsv, in its order (sorted by id). The access of
 * jobs.insert and jobs.query is decided by their body; the table's value is the least. */
static const struct route_method methods[] = {
	{ "bigquery.datasets.delete", "DELETE",
	  "projects/{+projectId}/datasets/{+datasetId}",
	  "projects/{projectsId}/datasets/{datasetsId}",
	  NULL, "deleteContents", ROUTE_DDL },
	{ "bigquery.datasets.get", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}",
	  "projects/{projectsId}/datasets/{datasetsId}",
	  NULL, "accessPolicyVersion,datasetView", ROUTE_READ_METADATA },
	{ "bigquery.datasets.insert", "POST",
	  "projects/{+projectId}/datasets",
	  "projects/{projectsId}/datasets",
	  "Dataset", "accessPolicyVersion", ROUTE_DDL },
	{ "bigquery.datasets.list", "GET",
	  "projects/{+projectId}/datasets",
	  "projects/{projectsId}/datasets",
	  NULL, "all,filter,maxResults,pageToken", ROUTE_READ_METADATA },
	{ "bigquery.datasets.patch", "PATCH",
	  "projects/{+projectId}/datasets/{+datasetId}",
	  "projects/{projectsId}/datasets/{datasetsId}",
	  "Dataset", "accessPolicyVersion,updateMode", ROUTE_DDL },
	{ "bigquery.datasets.undelete", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}:undelete",
	  "projects/{projectsId}/datasets/{datasetsId}:undelete",
	  "UndeleteDatasetRequest", "", ROUTE_DDL },
	{ "bigquery.datasets.update", "PUT",
	  "projects/{+projectId}/datasets/{+datasetId}",
	  "projects/{projectsId}/datasets/{datasetsId}",
	  "Dataset", "accessPolicyVersion,updateMode", ROUTE_DDL },
	{ "bigquery.jobs.cancel", "POST",
	  "projects/{+projectId}/jobs/{+jobId}/cancel",
	  "projects/{projectsId}/jobs/{jobsId}/cancel",
	  NULL, "location", ROUTE_JOB_CONTROL },
	{ "bigquery.jobs.delete", "DELETE",
	  "projects/{+projectId}/jobs/{+jobId}/delete",
	  "projects/{projectsId}/jobs/{jobsId}/delete",
	  NULL, "location", ROUTE_JOB_CONTROL },
	{ "bigquery.jobs.get", "GET",
	  "projects/{+projectId}/jobs/{+jobId}",
	  "projects/{projectsId}/jobs/{jobsId}",
	  NULL, "location", ROUTE_READ_METADATA },
	{ "bigquery.jobs.getQueryResults", "GET",
	  "projects/{+projectId}/queries/{+jobId}",
	  "projects/{projectsId}/queries/{queriesId}",
	  NULL, "formatOptions.timestampOutputFormat,formatOptions.useInt64Timestamp,location,maxResults,pageToken,startIndex,timeoutMs", ROUTE_READ_DATA },
	{ "bigquery.jobs.insert", "POST",
	  "projects/{+projectId}/jobs",
	  "projects/{projectsId}/jobs",
	  "Job", "", ROUTE_READ_DATA },
	{ "bigquery.jobs.list", "GET",
	  "projects/{+projectId}/jobs",
	  "projects/{projectsId}/jobs",
	  NULL, "allUsers,maxCreationTime,maxResults,minCreationTime,pageToken,parentJobId,projection,stateFilter", ROUTE_READ_METADATA },
	{ "bigquery.jobs.query", "POST",
	  "projects/{+projectId}/queries",
	  "projects/{projectsId}/queries",
	  "QueryRequest", "", ROUTE_READ_DATA },
	{ "bigquery.models.delete", "DELETE",
	  "projects/{+projectId}/datasets/{+datasetId}/models/{+modelId}",
	  "projects/{projectsId}/datasets/{datasetsId}/models/{modelsId}",
	  NULL, "", ROUTE_DDL },
	{ "bigquery.models.get", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/models/{+modelId}",
	  "projects/{projectsId}/datasets/{datasetsId}/models/{modelsId}",
	  NULL, "", ROUTE_READ_METADATA },
	{ "bigquery.models.list", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/models",
	  "projects/{projectsId}/datasets/{datasetsId}/models",
	  NULL, "maxResults,pageToken", ROUTE_READ_METADATA },
	{ "bigquery.models.patch", "PATCH",
	  "projects/{+projectId}/datasets/{+datasetId}/models/{+modelId}",
	  "projects/{projectsId}/datasets/{datasetsId}/models/{modelsId}",
	  "Model", "", ROUTE_DDL },
	{ "bigquery.projects.getServiceAccount", "GET",
	  "projects/{+projectId}/serviceAccount",
	  "projects/{projectsId}/serviceAccount",
	  NULL, "", ROUTE_READ_METADATA },
	{ "bigquery.projects.list", "GET",
	  "projects",
	  "projects",
	  NULL, "maxResults,pageToken", ROUTE_READ_METADATA },
	{ "bigquery.routines.delete", "DELETE",
	  "projects/{+projectId}/datasets/{+datasetId}/routines/{+routineId}",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}",
	  NULL, "", ROUTE_DDL },
	{ "bigquery.routines.get", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/routines/{+routineId}",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}",
	  NULL, "readMask", ROUTE_READ_METADATA },
	{ "bigquery.routines.getIamPolicy", "POST",
	  "{+resource}:getIamPolicy",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}:getIamPolicy",
	  "GetIamPolicyRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.routines.insert", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}/routines",
	  "projects/{projectsId}/datasets/{datasetsId}/routines",
	  "Routine", "", ROUTE_DDL },
	{ "bigquery.routines.list", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/routines",
	  "projects/{projectsId}/datasets/{datasetsId}/routines",
	  NULL, "filter,maxResults,pageToken,readMask", ROUTE_READ_METADATA },
	{ "bigquery.routines.setIamPolicy", "POST",
	  "{+resource}:setIamPolicy",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}:setIamPolicy",
	  "SetIamPolicyRequest", "", ROUTE_IAM },
	{ "bigquery.routines.testIamPermissions", "POST",
	  "{+resource}:testIamPermissions",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}:testIamPermissions",
	  "TestIamPermissionsRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.routines.update", "PUT",
	  "projects/{+projectId}/datasets/{+datasetId}/routines/{+routineId}",
	  "projects/{projectsId}/datasets/{datasetsId}/routines/{routinesId}",
	  "Routine", "", ROUTE_DDL },
	{ "bigquery.rowAccessPolicies.batchDelete", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies:batchDelete",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies:batchDelete",
	  "BatchDeleteRowAccessPoliciesRequest", "", ROUTE_DDL },
	{ "bigquery.rowAccessPolicies.delete", "DELETE",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies/{+policyId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies/{rowAccessPoliciesId}",
	  NULL, "force", ROUTE_DDL },
	{ "bigquery.rowAccessPolicies.get", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies/{+policyId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies/{rowAccessPoliciesId}",
	  NULL, "", ROUTE_READ_METADATA },
	{ "bigquery.rowAccessPolicies.getIamPolicy", "POST",
	  "{+resource}:getIamPolicy",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies/{rowAccessPoliciesId}:getIamPolicy",
	  "GetIamPolicyRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.rowAccessPolicies.insert", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies",
	  "RowAccessPolicy", "", ROUTE_DDL },
	{ "bigquery.rowAccessPolicies.list", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies",
	  NULL, "pageSize,pageToken", ROUTE_READ_METADATA },
	{ "bigquery.rowAccessPolicies.testIamPermissions", "POST",
	  "{+resource}:testIamPermissions",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies/{rowAccessPoliciesId}:testIamPermissions",
	  "TestIamPermissionsRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.rowAccessPolicies.update", "PUT",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/rowAccessPolicies/{+policyId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/rowAccessPolicies/{rowAccessPoliciesId}",
	  "RowAccessPolicy", "", ROUTE_DDL },
	{ "bigquery.tabledata.insertAll", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/insertAll",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/insertAll",
	  "TableDataInsertAllRequest", "", ROUTE_WRITE_DATA },
	{ "bigquery.tabledata.list", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}/data",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}/data",
	  NULL, "formatOptions.timestampOutputFormat,formatOptions.useInt64Timestamp,maxResults,pageToken,selectedFields,startIndex", ROUTE_READ_DATA },
	{ "bigquery.tables.delete", "DELETE",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}",
	  NULL, "", ROUTE_DDL },
	{ "bigquery.tables.get", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}",
	  NULL, "selectedFields,view", ROUTE_READ_METADATA },
	{ "bigquery.tables.getIamPolicy", "POST",
	  "{+resource}:getIamPolicy",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}:getIamPolicy",
	  "GetIamPolicyRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.tables.insert", "POST",
	  "projects/{+projectId}/datasets/{+datasetId}/tables",
	  "projects/{projectsId}/datasets/{datasetsId}/tables",
	  "Table", "", ROUTE_DDL },
	{ "bigquery.tables.list", "GET",
	  "projects/{+projectId}/datasets/{+datasetId}/tables",
	  "projects/{projectsId}/datasets/{datasetsId}/tables",
	  NULL, "maxResults,pageToken", ROUTE_READ_METADATA },
	{ "bigquery.tables.patch", "PATCH",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}",
	  "Table", "autodetect_schema", ROUTE_DDL },
	{ "bigquery.tables.setIamPolicy", "POST",
	  "{+resource}:setIamPolicy",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}:setIamPolicy",
	  "SetIamPolicyRequest", "", ROUTE_IAM },
	{ "bigquery.tables.testIamPermissions", "POST",
	  "{+resource}:testIamPermissions",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}:testIamPermissions",
	  "TestIamPermissionsRequest", "", ROUTE_READ_METADATA },
	{ "bigquery.tables.update", "PUT",
	  "projects/{+projectId}/datasets/{+datasetId}/tables/{+tableId}",
	  "projects/{projectsId}/datasets/{datasetsId}/tables/{tablesId}",
	  "Table", "autodetect_schema", ROUTE_DDL },
};

#define N_METHODS ((int)(sizeof(methods) / sizeof(methods[0])))

/* Where the path of a request points. */
enum prefix { P_REST, P_UPLOAD, P_RESUMABLE };

/* One query parameter, its name decoded. */
struct qparam {
	char name[64];
	const char *raw; /* the raw value, percent-encoded */
	size_t raw_len;
};

/* State of one classification. */
struct ctx {
	struct route_result *out;
	const struct route_method *m;
	char method[8];          /* effective HTTP method */
	enum prefix prefix;
	const char *path;        /* after the prefix, up to '?' */
	size_t path_len;
	const char *query;       /* after '?', NULL when there is none */
	size_t query_len;
	struct qparam q[MAX_QUERY_PARAMS];
	int nq;
	int upload_type;         /* 0 none, 1 multipart, 2 resumable */
	int has_upload_id;
};

int route_method_count(void)
{
	return N_METHODS;
}

const struct route_method *route_method_at(int i)
{
	return i >= 0 && i < N_METHODS ? &methods[i] : NULL;
}

const struct route_method *route_method_find(const char *id)
{
	int i;

	for (i = 0; id && i < N_METHODS; i++)
		if (!strcmp(methods[i].id, id))
			return &methods[i];
	return NULL;
}

const char *route_access_name(enum route_access a)
{
	static const char *const names[] = { "read-data", "read-metadata", "write-data", "ddl",
					     "iam", "job-control" };

	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Is s[0..n) equal to the C string <lit>, ignoring ASCII case? */
static int ieqn(const char *s, size_t n, const char *lit)
{
	size_t i;

	if (strlen(lit) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
			return 0;
	return 1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copy s[0..n) to dst[0..cap) for a message: printable ASCII as is, other bytes as \xNN,
 * cut at 80 bytes with "...". <dst> is always NUL-terminated. */
static const char *shown(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == 80) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"')
			dst[o++] = (char)ch;
		else
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", ch);
	}
	dst[o] = 0;
	return dst;
}

/* Refuse the request with a printf-style reason. Returns REFUSED, for "return refuse(...)". */
__attribute__((format(printf, 2, 3))) static int refuse(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->out->refusal)
		return REFUSED;
	va_start(ap, fmt);
	vsnprintf(c->out->reason_buf, sizeof(c->out->reason_buf), fmt, ap);
	va_end(ap);
	c->out->refusal = c->out->reason_buf;
	return REFUSED;
}

/* Percent-decode s[0..n) into dst[0..cap) (NUL-terminated); in a query, '+' is a space.
 * Returns the decoded length, -1 for a malformed escape, -2 when it does not fit. */
static long pct_decode(const char *s, size_t n, char *dst, size_t cap, int query)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];

		if (ch == '%') {
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				return -1;
			ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		} else if (ch == '+' && query) {
			ch = ' ';
		}
		if (o + 1 >= cap)
			return -2;
		dst[o++] = (char)ch;
	}
	if (cap)
		dst[o] = 0;
	return (long)o;
}

/* Check an identifier (decoded) for use as a path component or a table reference part: no
 * '/', '\', "..", NUL or control bytes; ':' only where <colon> allows one (domain-scoped
 * project ids, "example.com:project"); no '.' when <nodot> (dataset and table ids of a
 * "project.dataset.table" reference). Returns NULL or what is wrong. */
static const char *bad_id(const char *s, size_t n, int colon, int nodot)
{
	size_t i, colons = 0;

	if (!n)
		return "is empty";
	if (n == 1 && s[0] == '.')
		return "is \".\"";
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return "contains a control character";
		if (ch == '/' || ch == '\\')
			return "contains a slash";
		if (ch == '.' && i + 1 < n && s[i + 1] == '.')
			return "contains \"..\"";
		if (ch == '.' && nodot)
			return "contains '.'";
		if (ch == ':' && (!colon || ++colons > 1))
			return "contains ':'";
	}
	return NULL;
}

/* Copy the checked identifier s[0..n) to dst[0..cap). <what> names it for the reason.
 * Returns 0 or REFUSED. */
static int copy_id(struct ctx *c, char *dst, size_t cap, const char *s, size_t n,
		   const char *what, int colon, int nodot)
{
	const char *why = bad_id(s, n, colon, nodot);
	char show[128];

	if (!why && n >= cap)
		why = "is too long";
	if (why)
		return refuse(c, "%s \"%s\" %s", what, shown(show, sizeof(show), s, n), why);
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

/* --- host, method, target ------------------------------------------------------------- */

/* Is <h> a BigQuery API host: global, legacy www, mTLS or bigquery.LOCATION.rep? */
static int host_ok(const char *h)
{
	static const char pre[] = "bigquery.", suf[] = ".rep.googleapis.com";
	size_t n = strlen(h), i;

	if (!strcmp(h, "bigquery.googleapis.com") || !strcmp(h, "www.googleapis.com") ||
	    !strcmp(h, "bigquery.mtls.googleapis.com"))
		return 1;
	if (n <= sizeof(pre) - 1 + sizeof(suf) - 1 || strncmp(h, pre, sizeof(pre) - 1) ||
	    strcmp(h + n - (sizeof(suf) - 1), suf))
		return 0;
	n -= sizeof(pre) - 1 + sizeof(suf) - 1;
	h += sizeof(pre) - 1;
	if (n > 63 || h[0] < 'a' || h[0] > 'z' || h[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' && h[i] <= '9') || h[i] == '-'))
			return 0;
	return 1;
}

/* Set c->method from <method> and the X-HTTP-Method-Override value <ovr> (honoured on POST
 * only, as Google's front end does). Returns 0 or REFUSED. */
static int effective_method(struct ctx *c, const char *method, const char *ovr)
{
	static const char *const known[] = { "GET", "POST", "PUT", "PATCH", "DELETE" };
	char show[128];
	const char *m = method;
	size_t i;

	if (ovr) {
		if (strcmp(method, "POST"))
			return refuse(c, "X-HTTP-Method-Override is accepted on POST only, not on %s",
				      shown(show, sizeof(show), method, strlen(method)));
		m = ovr;
	}
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(m, known[i])) {
			strcpy(c->method, known[i]);
			return 0;
		}
	return refuse(c, "HTTP method %s\"%s\" is not used by the BigQuery API",
		      ovr ? "override " : "", shown(show, sizeof(show), m, strlen(m)));
}

/* Split the target into prefix, path and query, refusing bytes no client sends. */
static int split_target(struct ctx *c, const char *t, size_t n)
{
	static const struct { const char *s; enum prefix p; } prefixes[] = {
		{ "/bigquery/v2/", P_REST },
		{ "/upload/bigquery/v2/", P_UPLOAD },
		{ "/resumable/upload/bigquery/v2/", P_RESUMABLE },
	};
	const char *q;
	char show[128];
	size_t i, plen;

	for (i = 0; i < n; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f || t[i] == '#' ||
		    t[i] == '\\')
			return refuse(c, "request target contains byte 0x%02x",
				      (unsigned char)t[i]);
	if (!n || t[0] != '/')
		return refuse(c, "request target is not a path");
	q = memchr(t, '?', n);
	plen = q ? (size_t)(q - t) : n;
	if (q) {
		c->query = q + 1;
		c->query_len = n - plen - 1;
	}
	if ((plen == 6 && !memcmp(t, "/batch", 6)) || (plen > 6 && !memcmp(t, "/batch/", 7)))
		return refuse(c, "batch requests are refused: send each request on its own");
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t l = strlen(prefixes[i].s);

		if (plen >= l && !memcmp(t, prefixes[i].s, l)) {
			c->prefix = prefixes[i].p;
			c->path = t + l;
			c->path_len = plen - l;
			return 0;
		}
	}
	return refuse(c, "unknown path \"%s\": not a BigQuery v2 API path",
		      shown(show, sizeof(show), t, plen));
}

/* --- path ---------------------------------------------------------------------------- */

/* A path parameter captured by match(): the flatPath name and the raw value. */
struct capture {
	const char *name;
	size_t name_len;
	const char *v;
	size_t len;
};

/* Does path[0..n) have the shape of the flatPath <tpl>? Each "{name}" matches one non-empty
 * segment; "{name}:verb" one ending in ":verb". Fills cap[0..*ncap) (at most 5). */
static int match(const char *tpl, const char *path, size_t n, struct capture *cap, int *ncap)
{
	const char *pe = path + n;

	*ncap = 0;
	for (;;) {
		const char *te = strchr(tpl, '/'), *se = memchr(path, '/', (size_t)(pe - path));
		size_t tl, sl;

		if (!te)
			te = tpl + strlen(tpl);
		if (!se)
			se = pe;
		tl = (size_t)(te - tpl);
		sl = (size_t)(se - path);
		if (tpl[0] == '{') {
			const char *close = memchr(tpl, '}', tl);
			size_t suf = (size_t)(te - close - 1);

			if (sl <= suf || memcmp(se - suf, close + 1, suf) || *ncap == 5)
				return 0;
			cap[*ncap] = (struct capture){ tpl + 1, (size_t)(close - tpl - 1), path,
						       sl - suf };
			++*ncap;
		} else if (tl != sl || memcmp(tpl, path, tl)) {
			return 0;
		}
		if (!*te || se == pe)
			return !*te && se == pe;
		tpl = te + 1;
		path = se + 1;
	}
}

/* Decode the captured path parameter <cp> into the result field it names. */
static int set_capture(struct ctx *c, const struct capture *cp)
{
	static const struct { const char *flat, *name; size_t off, cap; } fields[] = {
		{ "projectsId", "projectId", offsetof(struct route_result, project), ROUTE_PROJECT_MAX },
		{ "datasetsId", "datasetId", offsetof(struct route_result, dataset), ROUTE_ID_MAX },
		{ "tablesId", "tableId", offsetof(struct route_result, table), ROUTE_ID_MAX },
		{ "jobsId", "jobId", offsetof(struct route_result, job_id), ROUTE_ID_MAX },
		{ "queriesId", "jobId", offsetof(struct route_result, job_id), ROUTE_ID_MAX },
		{ "modelsId", "modelId", offsetof(struct route_result, object), ROUTE_ID_MAX },
		{ "routinesId", "routineId", offsetof(struct route_result, object), ROUTE_ID_MAX },
		{ "rowAccessPoliciesId", "policyId", offsetof(struct route_result, object),
		  ROUTE_ID_MAX },
	};
	char buf[ROUTE_ID_MAX], show[128];
	size_t i;
	long n;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].flat) == cp->name_len &&
		    !memcmp(cp->name, fields[i].flat, cp->name_len))
			break;
	if (i == sizeof(fields) / sizeof(fields[0]))
		return refuse(c, "internal: unknown path parameter");
	n = pct_decode(cp->v, cp->len, buf, sizeof(buf), 0);
	if (n == -1)
		return refuse(c, "path parameter %s \"%s\" has a malformed %%-escape",
			      fields[i].name, shown(show, sizeof(show), cp->v, cp->len));
	if (n == -2)
		return refuse(c, "path parameter %s is too long", fields[i].name);
	return copy_id(c, (char *)c->out + fields[i].off, fields[i].cap, buf, (size_t)n,
		       fields[i].name, i == 0, 0);
}

/* Find the method whose flatPath and HTTP method match, and decode its path parameters. */
static int find_method(struct ctx *c)
{
	struct capture cap[5];
	const struct route_method *path_only = NULL;
	char show[128];
	int i, j, ncap, rc;

	for (i = 0; i < N_METHODS; i++) {
		if (c->prefix != P_REST && strcmp(methods[i].id, "bigquery.jobs.insert"))
			continue;
		if (!match(methods[i].flat, c->path, c->path_len, cap, &ncap))
			continue;
		if (strcmp(methods[i].http_method, c->method) &&
		    !(c->prefix != P_REST && !strcmp(c->method, "PUT"))) {
			path_only = &methods[i];
			continue;
		}
		c->m = &methods[i];
		for (j = 0; j < ncap; j++)
			if ((rc = set_capture(c, &cap[j])))
				return rc;
		return 0;
	}
	if (path_only)
		return refuse(c, "HTTP method %s is not allowed on \"%s\" (%s is %s)", c->method,
			      shown(show, sizeof(show), c->path, c->path_len), path_only->id,
			      path_only->http_method);
	return refuse(c, "unknown BigQuery API path \"%s%s\"",
		      c->prefix == P_REST ? "" : "upload: ",
		      shown(show, sizeof(show), c->path, c->path_len));
}

/* --- query parameters -------------------------------------------------------------- */

/* Is <name> in the comma-joined list <list>? */
static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == n && !memcmp(p, name, n))
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* Decode the value of <q> into dst[0..cap); refuse it when malformed or longer. */
static int qvalue(struct ctx *c, const struct qparam *q, char *dst, size_t cap)
{
	long n = pct_decode(q->raw, q->raw_len, dst, cap, 1);

	if (n == -1)
		return refuse(c, "query parameter %s has a malformed %%-escape", q->name);
	if (n == -2)
		return refuse(c, "query parameter %s is too long", q->name);
	if (memchr(dst, 0, (size_t)n))
		return refuse(c, "query parameter %s contains NUL", q->name);
	return 0;
}

/* Every value, even one not read here, must be well-formed and free of NUL. */
static int check_raw_value(struct ctx *c, const struct qparam *q)
{
	size_t i;

	for (i = 0; i < q->raw_len; i++)
		if (q->raw[i] == '%') {
			if (i + 2 >= q->raw_len || hexval(q->raw[i + 1]) < 0 ||
			    hexval(q->raw[i + 2]) < 0)
				return refuse(c, "query parameter %s has a malformed %%-escape",
					      q->name);
			if (q->raw[i + 1] == '0' && q->raw[i + 2] == '0')
				return refuse(c, "query parameter %s contains NUL", q->name);
		}
	return 0;
}

/* Judge one query parameter: global ones by their value, then the method's own. */
static int check_param(struct ctx *c, const struct qparam *q)
{
	char v[256], show[128];
	int rc, upload = c->prefix != P_REST;

	if (!strcmp(q->name, "fields"))
		return refuse(c, "query parameter fields= is refused: responses are returned whole");
	if (!strcmp(q->name, "callback"))
		return refuse(c, "query parameter callback= (JSONP) is refused");
	if (!strcmp(q->name, "access_token") || !strcmp(q->name, "oauth_token") ||
	    !strcmp(q->name, "key"))
		return refuse(c, "query parameter %s= is refused: credentials in the URL are not "
			      "accepted, sluice supplies them", q->name);
	if (!strcmp(q->name, "alt")) {
		if ((rc = qvalue(c, q, v, sizeof(v))))
			return rc;
		return strcmp(v, "json") ? refuse(c, "alt=%s is refused: only alt=json is accepted",
						  shown(show, sizeof(show), v, strlen(v))) : 0;
	}
	if (!strcmp(q->name, "$.xgafv")) {
		if ((rc = qvalue(c, q, v, sizeof(v))))
			return rc;
		return strcmp(v, "1") && strcmp(v, "2") ? refuse(c, "$.xgafv must be 1 or 2") : 0;
	}
	if (!strcmp(q->name, "prettyPrint")) {
		if ((rc = qvalue(c, q, v, sizeof(v))))
			return rc;
		return strcmp(v, "true") && strcmp(v, "false")
			       ? refuse(c, "prettyPrint must be true or false") : 0;
	}
	if (!strcmp(q->name, "quotaUser"))
		return qvalue(c, q, v, sizeof(v));
	if (upload && !strcmp(q->name, "uploadType")) {
		if ((rc = qvalue(c, q, v, sizeof(v))))
			return rc;
		if (!strcmp(v, "multipart"))
			c->upload_type = 1;
		else if (!strcmp(v, "resumable"))
			c->upload_type = 2;
		else
			return refuse(c, "uploadType=%s is refused: use multipart or resumable, "
				      "which carry the job configuration",
				      shown(show, sizeof(show), v, strlen(v)));
		return 0;
	}
	if (upload && !strcmp(q->name, "upload_protocol"))
		return qvalue(c, q, v, sizeof(v));
	if (upload && !strcmp(q->name, "upload_id")) {
		c->has_upload_id = 1;
		return qvalue(c, q, v, sizeof(v));
	}
	if (in_list(c->m->params, q->name)) {
		if (!strcmp(q->name, "selectedFields"))
			c->out->selected_fields = 1;
		if (!strcmp(q->name, "location")) {
			if ((rc = qvalue(c, q, c->out->location, sizeof(c->out->location))))
				return rc;
			return bad_id(c->out->location, strlen(c->out->location), 0, 0)
				       ? refuse(c, "query parameter location is malformed") : 0;
		}
		return 0;
	}
	return refuse(c, "unknown query parameter \"%s\" for %s", q->name, c->m->id);
}

/* Parse the query string: decode names, refuse duplicates, judge each parameter. Repeated
 * parameters of the API (jobs.list stateFilter) may appear more than once. */
static int check_query(struct ctx *c)
{
	const char *p = c->query, *end;
	char show[128];
	int i, rc;

	if (!c->query)
		return 0; /* no query string (and no arithmetic on a NULL pointer) */
	end = c->query + c->query_len;
	while (p <= end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
		struct qparam *q;
		long n;

		if (!amp)
			amp = end;
		if (amp == p) {
			p = amp + 1;
			continue;
		}
		if (c->nq == MAX_QUERY_PARAMS)
			return refuse(c, "more than %d query parameters", MAX_QUERY_PARAMS);
		q = &c->q[c->nq];
		eq = memchr(p, '=', (size_t)(amp - p));
		if (!eq)
			eq = amp;
		n = pct_decode(p, (size_t)(eq - p), q->name, sizeof(q->name), 1);
		if (n < 0 || !n || bad_id(q->name, (size_t)n, 1, 0) || strpbrk(q->name, " \"\x7f"))
			return refuse(c, "unknown query parameter \"%s\"",
				      shown(show, sizeof(show), p, (size_t)(eq - p)));
		q->raw = eq < amp ? eq + 1 : amp;
		q->raw_len = (size_t)(amp - q->raw);
		for (i = 0; i < c->nq; i++)
			if (!strcmp(c->q[i].name, q->name) && strcmp(q->name, "stateFilter"))
				return refuse(c, "query parameter %s appears more than once",
					      shown(show, sizeof(show), q->name, strlen(q->name)));
		c->nq++;
		if ((rc = check_raw_value(c, q)) || (rc = check_param(c, q)))
			return rc;
		p = amp + 1;
	}
	return 0;
}

/* --- body: decoding ----------------------------------------------------------------- */

/* Inflate the gzip body in[0..n) into a malloc'd *out (*outlen bytes), bounded by
 * ROUTE_MAX_BODY and by GZIP_MAX_RATIO. One gzip member, nothing after it. Returns 0,
 * REFUSED or -1. */
static int gunzip(struct ctx *c, const char *in, size_t n, char **out, size_t *outlen)
{
	z_stream z;
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap), *nb;
	int zr = Z_OK;

	*out = NULL;
	if (!buf)
		return -1;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		free(buf);
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = n > 0x7fffffff ? 0x7fffffff : (uInt)n;
	if (n > 0x7fffffff)
		goto refused;
	while (zr != Z_STREAM_END) {
		if (len == cap) {
			if (cap >= ROUTE_MAX_BODY)
				goto too_big;
			cap *= 2;
			if (!(nb = realloc(buf, cap)))
				goto err;
			buf = nb;
		}
		z.next_out = (Bytef *)buf + len;
		z.avail_out = (uInt)(cap - len);
		zr = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		if (zr == Z_MEM_ERROR)
			goto err;
		if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && z.avail_out == 0))
			goto refused;
		if (len > (1u << 20) && len / GZIP_MAX_RATIO > n)
			goto too_big;
	}
	if (z.avail_in)
		goto refused;
	inflateEnd(&z);
	*out = buf;
	*outlen = len;
	return 0;
too_big:
	inflateEnd(&z);
	free(buf);
	return refuse(c, "gzip body decompresses to more than allowed (%u MiB, ratio %d)",
		      ROUTE_MAX_BODY >> 20, GZIP_MAX_RATIO);
refused:
	inflateEnd(&z);
	free(buf);
	return refuse(c, "Content-Encoding gzip: the body is not one complete gzip stream");
err:
	inflateEnd(&z);
	free(buf);
	return -1;
}

/* Parse a media type header value: the type in [*t, *t + *tl), and the value of parameter
 * <pname> (unquoted, in pv[0..pvcap)) when asked. Returns 0, or -1 when malformed. */
static int media_type(const char *ct, const char **t, size_t *tl, const char *pname, char *pv,
		      size_t pvcap)
{
	const char *p = ct, *e;
	int found = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	for (e = p; *e && *e != ';' && *e != ' ' && *e != '\t'; e++)
		;
	*t = p;
	*tl = (size_t)(e - p);
	if (pv)
		pv[0] = 0;
	p = e;
	while (*p) {
		const char *n, *ne;
		size_t o = 0;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p != ';')
			return -1;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		for (n = p; *p && *p != '=' && *p != ';'; p++)
			;
		ne = p;
		while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		if (*p != '=')
			return -1;
		p++;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (pv && pname && ieqn(n, (size_t)(ne - n), pname)) {
					if (o + 1 >= pvcap)
						return -1;
					pv[o++] = *p;
				}
			}
			if (*p++ != '"')
				return -1;
		} else {
			for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++)
				if (pv && pname && ieqn(n, (size_t)(ne - n), pname)) {
					if (o + 1 >= pvcap)
						return -1;
					pv[o++] = *p;
				}
		}
		if (pv && pname && ieqn(n, (size_t)(ne - n), pname)) {
			if (found++ || !o)
				return -1; /* repeated or empty */
			pv[o] = 0;
		}
	}
	return 0;
}

/* Is <ct> application/json, with at most a UTF-8 charset? */
static int is_json_type(const char *ct)
{
	const char *t;
	size_t tl;
	char cs[32];

	if (!ct || media_type(ct, &t, &tl, "charset", cs, sizeof(cs)))
		return 0;
	return ieqn(t, tl, "application/json") && (!cs[0] || ieqn(cs, strlen(cs), "utf-8"));
}

/* Find b[0..n) ("--boundary") in s[0..len) preceded by CRLF; returns its offset or -1. */
static long find_delim(const char *s, size_t len, const char *b, size_t bl)
{
	const char *p = s, *end = s + len;

	while ((size_t)(end - p) >= bl + 2) {
		const char *hit = memmem(p, (size_t)(end - p), b, bl);

		if (!hit)
			return -1;
		if (hit - s >= 2 && hit[-2] == '\r' && hit[-1] == '\n')
			return hit - 2 - s;
		p = hit + 1;
	}
	return -1;
}

/* The first part of a multipart/related upload body, which must be the JSON job
 * configuration: *json (*jlen bytes) points into <body>. Strict: no preamble, CRLF line ends, part
 * headers limited to Content-Type (JSON), MIME-Version, Content-ID and an identity
 * Content-Transfer-Encoding. Returns 0 or REFUSED. */
static int multipart_first(struct ctx *c, const char *ct, const char *body, size_t n,
			   const char **json, size_t *jlen)
{
	char b[80], hdr[256];
	const char *t, *p, *end = body + n;
	size_t tl, bl;
	long d;
	int have_type = 0;

	if (!ct || media_type(ct, &t, &tl, "boundary", b + 2, sizeof(b) - 2) ||
	    !ieqn(t, tl, "multipart/related") || !b[2] || strlen(b + 2) > 70)
		return refuse(c, "a multipart upload needs Content-Type multipart/related with a "
			      "boundary");
	b[0] = b[1] = '-';
	bl = strlen(b);
	if (n < bl + 2 || memcmp(body, b, bl) || body[bl] != '\r' || body[bl + 1] != '\n')
		return refuse(c, "multipart upload body does not start with its boundary");
	for (p = body + bl + 2;;) {
		const char *le = memmem(p, (size_t)(end - p), "\r\n", 2), *colon;
		size_t hl;

		if (!le)
			return refuse(c, "multipart upload: unterminated part headers");
		if (le == p) {
			p += 2;
			break;
		}
		hl = (size_t)(le - p);
		colon = memchr(p, ':', hl);
		if (!colon || hl >= sizeof(hdr))
			return refuse(c, "multipart upload: malformed part header");
		memcpy(hdr, colon + 1, (size_t)(le - colon - 1));
		hdr[le - colon - 1] = 0;
		if (memchr(hdr, 0, (size_t)(le - colon - 1)))
			return refuse(c, "multipart upload: NUL in a part header");
		if (ieqn(p, (size_t)(colon - p), "content-type")) {
			if (have_type++ || !is_json_type(hdr))
				return refuse(c, "multipart upload: the first part must be one "
					      "application/json job configuration");
		} else if (ieqn(p, (size_t)(colon - p), "content-transfer-encoding")) {
			const char *v = hdr + strspn(hdr, " \t");

			if (!ieqn(v, strcspn(v, " \t"), "binary") &&
			    !ieqn(v, strcspn(v, " \t"), "8bit") && !ieqn(v, strcspn(v, " \t"), "7bit"))
				return refuse(c, "multipart upload: Content-Transfer-Encoding of the "
					      "configuration is refused");
		} else if (!ieqn(p, (size_t)(colon - p), "mime-version") &&
			   !ieqn(p, (size_t)(colon - p), "content-id")) {
			return refuse(c, "multipart upload: unexpected header in the configuration "
				      "part");
		}
		p = le + 2;
	}
	if (!have_type)
		return refuse(c, "multipart upload: the first part must be one application/json "
			      "job configuration");
	d = find_delim(p, (size_t)(end - p), b, bl);
	if (d < 0 || (size_t)(end - (p + d + 2 + bl)) < 2 ||
	    (memcmp(p + d + 2 + bl, "\r\n", 2) && memcmp(p + d + 2 + bl, "--", 2)))
		return refuse(c, "multipart upload: the configuration part is not terminated");
	*json = p;
	*jlen = (size_t)d;
	return 0;
}

/* Is JSON text s[0..n) nested deeper than ROUTE_MAX_DEPTH? Strings are skipped. */
static int too_deep(const char *s, size_t n)
{
	size_t i;
	int depth = 0, instr = 0;

	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (instr) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				instr = 0;
		} else if (ch == '"') {
			instr = 1;
		} else if (ch == '[' || ch == '{') {
			if (++depth > ROUTE_MAX_DEPTH)
				return 1;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return 0;
}

/* Parse the JSON body s[0..n) into c->out->json: one object, duplicate keys refused. */
static int parse_json(struct ctx *c, const char *s, size_t n)
{
	json_error_t err;
	json_t *j;

	if (n > ROUTE_MAX_BODY)
		return refuse(c, "JSON body larger than %u MiB", ROUTE_MAX_BODY >> 20);
	if (too_deep(s, n))
		return refuse(c, "JSON body nested deeper than %d levels", ROUTE_MAX_DEPTH);
	j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return refuse(c, "invalid JSON body: %s at line %d column %d", err.text, err.line,
			      err.column);
	c->out->json = j;
	if (!json_is_object(j))
		return refuse(c, "JSON body is not an object");
	return 0;
}

/* --- body: the fields policy needs -------------------------------------------------- */

/* Refuse snake_case keys in <o>: Google's JSON front end also accepts a field's proto name
 * ("use_legacy_sql"), which would let a request say what this reader does not see. Every
 * key of the objects read here is lowerCamelCase. */
static int camel_only(struct ctx *c, json_t *o, const char *where)
{
	const char *k;
	json_t *v;
	char show[128];

	json_object_foreach(o, k, v)
		if (strchr(k, '_'))
			return refuse(c, "field \"%s\" in %s: only lowerCamelCase field names are "
				      "accepted", shown(show, sizeof(show), k, strlen(k)), where);
	return 0;
}

/* Get <key> of <o> as an object (*v = NULL when absent or null). */
static int get_obj(struct ctx *c, json_t *o, const char *key, const char *where, json_t **v)
{
	*v = json_object_get(o, key);
	if (*v && json_is_null(*v))
		*v = NULL;
	if (*v && !json_is_object(*v))
		return refuse(c, "%s.%s must be an object", where, key);
	return *v ? camel_only(c, *v, key) : 0;
}

/* Get <key> of <o> as a string (*s = NULL when absent or null). */
static int get_str(struct ctx *c, json_t *o, const char *key, const char *where,
		   const char **s, size_t *len)
{
	json_t *v = json_object_get(o, key);

	*s = NULL;
	*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return refuse(c, "%s.%s must be a string", where, key);
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

/* Get <key> of <o> as a boolean: *b = -1 when absent or null, else 0 or 1. Strings "true"
 * and "false" count too: Google's parser takes them. */
static int get_bool(struct ctx *c, json_t *o, const char *key, const char *where, int *b)
{
	json_t *v = json_object_get(o, key);

	*b = -1;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_boolean(v))
		*b = json_is_true(v);
	else if (json_is_string(v) && !strcmp(json_string_value(v), "true"))
		*b = 1;
	else if (json_is_string(v) && !strcmp(json_string_value(v), "false"))
		*b = 0;
	else
		return refuse(c, "%s.%s must be true or false", where, key);
	return 0;
}

/* Copy a string field that names an id into dst[0..cap) ("" when absent). */
static int get_id(struct ctx *c, json_t *o, const char *key, const char *where, char *dst,
		  size_t cap, int colon, int nodot)
{
	const char *s;
	size_t n;
	char what[96];
	int rc;

	dst[0] = 0;
	if ((rc = get_str(c, o, key, where, &s, &n)) || !s)
		return rc;
	snprintf(what, sizeof(what), "%s.%s", where, key);
	return copy_id(c, dst, cap, s, n, what, colon, nodot);
}

/* A TableReference {projectId, datasetId, tableId} as "project.dataset.table" in
 * dst[ROUTE_TABLE_REF_MAX]; the project defaults to the request's. */
static int table_ref(struct ctx *c, json_t *ref, const char *where, char *dst)
{
	char p[ROUTE_PROJECT_MAX], d[ROUTE_ID_MAX], t[ROUTE_ID_MAX];
	int rc;

	if (!json_is_object(ref))
		return refuse(c, "%s must be an object", where);
	if ((rc = camel_only(c, ref, where)) ||
	    (rc = get_id(c, ref, "projectId", where, p, sizeof(p), 1, 0)) ||
	    (rc = get_id(c, ref, "datasetId", where, d, sizeof(d), 0, 1)) ||
	    (rc = get_id(c, ref, "tableId", where, t, sizeof(t), 0, 1)))
		return rc;
	if (!d[0] || !t[0])
		return refuse(c, "%s needs datasetId and tableId", where);
	snprintf(dst, ROUTE_TABLE_REF_MAX, "%s.%s.%s", p[0] ? p : c->out->project, d, t);
	return 0;
}

/* Record one SQL text of the request. */
static int add_sql(struct ctx *c, const char *text, size_t len, const char *field, int legacy,
		   int non_sql)
{
	struct route_sql *s;

	if (c->out->n_sql == ROUTE_MAX_SQL)
		return refuse(c, "more than %d SQL texts in one request", ROUTE_MAX_SQL);
	s = &c->out->sql[c->out->n_sql++];
	*s = (struct route_sql){ text, len, field, legacy, non_sql };
	return 0;
}

/* Does the SQL text start with a dialect prefix? 1 "#legacySQL", 2 "#standardSQL", else 0
 * (case-insensitive, after leading whitespace, followed by whitespace or the end). */
static int dialect_prefix(const char *s, size_t n)
{
	static const char *const pre[] = { "#legacysql", "#standardsql" };
	size_t i = 0, k, l;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	for (k = 0; k < 2; k++) {
		l = strlen(pre[k]);
		if (n - i >= l && ieqn(s + i, l, pre[k]) &&
		    (n - i == l || s[i + l] == ' ' || s[i + l] == '\t' || s[i + l] == '\r' ||
		     s[i + l] == '\n'))
			return (int)k + 1;
	}
	return 0;
}

/* Record a query with its useLegacySql flag <flag> (-1 absent): absent means legacy SQL
 * (BigQuery's default for jobs and views) unless the text starts with #standardSQL; a
 * prefix that contradicts the flag is refused, as BigQuery would. */
static int add_query(struct ctx *c, const char *text, size_t len, const char *field, int flag)
{
	int pre = dialect_prefix(text, len);

	if ((flag == 1 && pre == 2) || (flag == 0 && pre == 1))
		return refuse(c, "%s: the dialect prefix contradicts useLegacySql", field);
	return add_sql(c, text, len, field, flag == -1 ? pre != 2 : flag, 0);
}

/* defaultDataset {projectId, datasetId} of a query. */
static int default_dataset(struct ctx *c, json_t *q, const char *where)
{
	json_t *dd;
	int rc;

	if ((rc = get_obj(c, q, "defaultDataset", where, &dd)) || !dd)
		return rc;
	if ((rc = get_id(c, dd, "projectId", "defaultDataset", c->out->default_project,
			 sizeof(c->out->default_project), 1, 0)) ||
	    (rc = get_id(c, dd, "datasetId", "defaultDataset", c->out->default_dataset,
			 sizeof(c->out->default_dataset), 0, 1)))
		return rc;
	if (!c->out->default_dataset[0])
		return refuse(c, "defaultDataset needs a datasetId");
	if (!c->out->default_project[0])
		strcpy(c->out->default_project, c->out->project);
	return 0;
}

/* connectionProperties [{key, value}] of a query: session_id and dataset_project_id are
 * recorded, time_zone and query_label accepted, any other key refused. */
static int connection_properties(struct ctx *c, json_t *q)
{
	json_t *a = json_object_get(q, "connectionProperties"), *e;
	size_t i;
	char ds_project[ROUTE_PROJECT_MAX] = "", show[128];
	int rc;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return refuse(c, "connectionProperties must be an array");
	json_array_foreach(a, i, e) {
		const char *k, *v;
		size_t kl, vl;

		if (!json_is_object(e))
			return refuse(c, "connectionProperties entries must be objects");
		if ((rc = camel_only(c, e, "connectionProperties")) ||
		    (rc = get_str(c, e, "key", "connectionProperties", &k, &kl)) ||
		    (rc = get_str(c, e, "value", "connectionProperties", &v, &vl)))
			return rc;
		if (!k || !v)
			return refuse(c, "connectionProperties entries need a key and a value");
		if (!strcmp(k, "session_id")) {
			if (c->out->session_id[0])
				return refuse(c, "connectionProperties: session_id given twice");
			if ((rc = copy_id(c, c->out->session_id, sizeof(c->out->session_id), v, vl,
					  "session_id", 0, 0)))
				return rc;
		} else if (!strcmp(k, "dataset_project_id")) {
			if (ds_project[0])
				return refuse(c, "connectionProperties: dataset_project_id given twice");
			if ((rc = copy_id(c, ds_project, sizeof(ds_project), v, vl,
					  "dataset_project_id", 1, 0)))
				return rc;
		} else if (strcmp(k, "time_zone") && strcmp(k, "query_label")) {
			return refuse(c, "connectionProperties: unknown key \"%s\"",
				      shown(show, sizeof(show), k, kl));
		}
	}
	if (ds_project[0]) {
		if (c->out->default_project[0] && strcmp(c->out->default_project, ds_project))
			return refuse(c, "connectionProperties dataset_project_id contradicts "
				      "defaultDataset.projectId");
		strcpy(c->out->default_project, ds_project);
	}
	return 0;
}

/* writeDisposition of a job section into *wd (ROUTE_WD_NONE when absent). */
static int write_disposition(struct ctx *c, json_t *o, const char *where, enum route_wd *wd)
{
	const char *s;
	size_t n;
	char show[128];
	int rc;

	*wd = ROUTE_WD_NONE;
	if ((rc = get_str(c, o, "writeDisposition", where, &s, &n)) || !s)
		return rc;
	if (!strcmp(s, "WRITE_TRUNCATE") || !strcmp(s, "WRITE_TRUNCATE_DATA"))
		*wd = ROUTE_WD_TRUNCATE;
	else if (!strcmp(s, "WRITE_APPEND"))
		*wd = ROUTE_WD_APPEND;
	else if (!strcmp(s, "WRITE_EMPTY"))
		*wd = ROUTE_WD_EMPTY;
	else if (strcmp(s, "WRITE_DISPOSITION_UNSPECIFIED"))
		return refuse(c, "%s.writeDisposition \"%s\" is unknown", where,
			      shown(show, sizeof(show), s, n));
	return 0;
}

/* The query settings shared by jobs.query and jobs.insert's configuration.query. */
static int query_common(struct ctx *c, json_t *q, const char *where, const char *field)
{
	const char *text;
	size_t len;
	int rc, legacy, session;

	if ((rc = get_str(c, q, "query", where, &text, &len)) ||
	    (rc = get_bool(c, q, "useLegacySql", where, &legacy)) ||
	    (rc = get_bool(c, q, "createSession", where, &session)) ||
	    (rc = default_dataset(c, q, where)) || (rc = connection_properties(c, q)))
		return rc;
	if (!text || !len)
		return refuse(c, "%s carries no query", where);
	c->out->job_type = ROUTE_JOB_QUERY;
	c->out->create_session = session == 1;
	if (!c->out->default_project[0])
		strcpy(c->out->default_project, c->out->project);
	return add_query(c, text, len, field, legacy);
}

/* jobs.query: a QueryRequest. */
static int body_query_request(struct ctx *c, json_t *j)
{
	int rc, dry;

	if ((rc = get_bool(c, j, "dryRun", "QueryRequest", &dry)) ||
	    (rc = query_common(c, j, "QueryRequest", "query")))
		return rc;
	c->out->dry_run = dry == 1;
	c->out->access = c->out->dry_run ? ROUTE_READ_METADATA : ROUTE_READ_DATA;
	return 0;
}

/* A list of TableReferences <key> of <o> added to the sources. */
static int add_sources(struct ctx *c, json_t *o, const char *key, const char *where)
{
	json_t *v = json_object_get(o, key), *e;
	size_t i;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_object(v)) {
		if (c->out->n_sources == ROUTE_MAX_SOURCES)
			return refuse(c, "more than %d source tables", ROUTE_MAX_SOURCES);
		return table_ref(c, v, where, c->out->sources[c->out->n_sources++]);
	}
	if (!json_is_array(v))
		return refuse(c, "%s must be a list of tables", where);
	json_array_foreach(v, i, e) {
		if (c->out->n_sources == ROUTE_MAX_SOURCES)
			return refuse(c, "more than %d source tables", ROUTE_MAX_SOURCES);
		if ((rc = table_ref(c, e, where, c->out->sources[c->out->n_sources++])))
			return rc;
	}
	return 0;
}

/* jobs.insert: a Job. Exactly one of configuration.query/load/copy/extract. An upload must
 * carry a load job. */
static int body_job(struct ctx *c, json_t *j)
{
	static const char *const kinds[] = { "query", "load", "copy", "extract" };
	json_t *conf, *ref, *sec = NULL, *dest;
	const char *s;
	size_t n, k;
	int rc, dry, kind = -1;
	char show[128];

	if ((rc = get_obj(c, j, "jobReference", "Job", &ref)))
		return rc;
	if (ref) {
		char p[ROUTE_PROJECT_MAX];

		if ((rc = get_id(c, ref, "jobId", "jobReference", c->out->job_id,
				 sizeof(c->out->job_id), 0, 0)) ||
		    (rc = get_id(c, ref, "projectId", "jobReference", p, sizeof(p), 1, 0)))
			return rc;
		if (p[0] && strcmp(p, c->out->project))
			return refuse(c, "jobReference.projectId differs from the path's project");
	}
	if ((rc = get_obj(c, j, "configuration", "Job", &conf)))
		return rc;
	if (!conf)
		return refuse(c, "jobs.insert without a job configuration");
	if ((rc = get_bool(c, conf, "dryRun", "configuration", &dry)))
		return rc;
	c->out->dry_run = dry == 1;
	for (k = 0; k < 4; k++) {
		json_t *v;

		if ((rc = get_obj(c, conf, kinds[k], "configuration", &v)))
			return rc;
		if (v && sec)
			return refuse(c, "a job configuration names more than one job type");
		if (v) {
			sec = v;
			kind = (int)k;
		}
	}
	if (!sec)
		return refuse(c, "the job configuration names no job type (query, load, copy, "
			      "extract)");
	if (c->out->upload != ROUTE_UPLOAD_NONE && kind != 1)
		return refuse(c, "an upload must carry a load job, not a %s job", kinds[kind]);
	c->out->job_type = (enum route_job)(kind + 1);
	dest = json_object_get(sec, "destinationTable");
	if (dest && json_is_null(dest))
		dest = NULL;
	if (dest && (rc = table_ref(c, dest, "destinationTable", c->out->dest_table)))
		return rc;
	if (kind != 3 && (rc = write_disposition(c, sec, kinds[kind], &c->out->write_disposition)))
		return rc;
	switch (kind) {
	case 0:
		if ((rc = query_common(c, sec, "configuration.query", "configuration.query.query")))
			return rc;
		c->out->access = dest ? ROUTE_WRITE_DATA : ROUTE_READ_DATA;
		if (dest && c->out->write_disposition == ROUTE_WD_NONE)
			c->out->write_disposition = ROUTE_WD_EMPTY;
		break;
	case 1:
		if (!dest)
			return refuse(c, "a load job needs a destinationTable");
		c->out->access = ROUTE_WRITE_DATA;
		if (c->out->write_disposition == ROUTE_WD_NONE)
			c->out->write_disposition = ROUTE_WD_APPEND;
		break;
	case 2:
		if ((rc = get_str(c, sec, "operationType", "copy", &s, &n)))
			return rc;
		if (!s || !strcmp(s, "COPY") || !strcmp(s, "OPERATION_TYPE_UNSPECIFIED"))
			c->out->copy_kind = ROUTE_COPY_COPY;
		else if (!strcmp(s, "SNAPSHOT"))
			c->out->copy_kind = ROUTE_COPY_SNAPSHOT;
		else if (!strcmp(s, "RESTORE"))
			c->out->copy_kind = ROUTE_COPY_RESTORE;
		else if (!strcmp(s, "CLONE"))
			c->out->copy_kind = ROUTE_COPY_CLONE;
		else
			return refuse(c, "copy.operationType \"%s\" is unknown",
				      shown(show, sizeof(show), s, n));
		if ((rc = add_sources(c, sec, "sourceTable", "copy.sourceTable")) ||
		    (rc = add_sources(c, sec, "sourceTables", "copy.sourceTables")))
			return rc;
		if (!dest || !c->out->n_sources)
			return refuse(c, "a copy job needs source and destination tables");
		c->out->access = ROUTE_WRITE_DATA;
		if (c->out->write_disposition == ROUTE_WD_NONE)
			c->out->write_disposition = ROUTE_WD_EMPTY;
		break;
	default:
		/* Extract: rows leave BigQuery for Cloud Storage; READ_DATA with job_type
		 * EXTRACT, which policy treats as exfiltration. */
		if (dest)
			return refuse(c, "an extract job has no destinationTable");
		if ((rc = add_sources(c, sec, "sourceTable", "extract.sourceTable")) ||
		    (rc = add_sources(c, sec, "sourceModel", "extract.sourceModel")))
			return rc;
		if (c->out->n_sources != 1)
			return refuse(c, "an extract job needs exactly one sourceTable or "
				      "sourceModel");
		c->out->access = ROUTE_READ_DATA;
		break;
	}
	if (c->out->dry_run)
		c->out->access = ROUTE_READ_METADATA;
	return 0;
}

/* A reference object <key> of the body ({projectId, datasetId, tableId, <idkey>}) must agree
 * with the path; its <idkey> is the id of the resource created, copied to <dst> (a
 * ROUTE_ID_MAX field of the result). */
static int body_reference(struct ctx *c, json_t *j, const char *key, const char *idkey,
			  char *dst)
{
	json_t *ref;
	char p[ROUTE_PROJECT_MAX], d[ROUTE_ID_MAX], t[ROUTE_ID_MAX], id[ROUTE_ID_MAX];
	int rc;

	if ((rc = get_obj(c, j, key, "body", &ref)) || !ref)
		return rc;
	if ((rc = get_id(c, ref, "projectId", key, p, sizeof(p), 1, 0)) ||
	    (rc = get_id(c, ref, "datasetId", key, d, sizeof(d), 0, 0)) ||
	    (rc = get_id(c, ref, "tableId", key, t, sizeof(t), 0, 0)) ||
	    (idkey && (rc = get_id(c, ref, idkey, key, id, sizeof(id), 0, 0))))
		return rc;
	if ((p[0] && strcmp(p, c->out->project)) ||
	    (d[0] && c->out->dataset[0] && strcmp(d, c->out->dataset)) ||
	    (t[0] && c->out->table[0] && strcmp(t, c->out->table) &&
	     (!idkey || strcmp(idkey, "tableId"))))
		return refuse(c, "%s differs from the request path", key);
	if (!c->out->dataset[0] && d[0])
		strcpy(c->out->dataset, d);
	if (idkey && id[0]) {
		if (dst[0] && strcmp(dst, id))
			return refuse(c, "%s.%s differs from the request path", key, idkey);
		strcpy(dst, id);
	}
	return 0;
}

/* tables.insert/patch/update: a Table, whose view or materialized view carries SQL. */
static int body_table(struct ctx *c, json_t *j)
{
	json_t *v;
	const char *text;
	size_t len;
	int rc, legacy;

	if ((rc = body_reference(c, j, "tableReference", "tableId", c->out->table)) ||
	    (rc = get_obj(c, j, "view", "Table", &v)))
		return rc;
	if (v) {
		if ((rc = get_str(c, v, "query", "view", &text, &len)) ||
		    (rc = get_bool(c, v, "useLegacySql", "view", &legacy)))
			return rc;
		if (text && (rc = add_query(c, text, len, "view.query", legacy)))
			return rc;
	}
	if ((rc = get_obj(c, j, "materializedView", "Table", &v)))
		return rc;
	if (v) {
		if ((rc = get_str(c, v, "query", "materializedView", &text, &len)))
			return rc;
		if (text && (rc = add_sql(c, text, len, "materializedView.query", 0, 0)))
			return rc;
	}
	return 0;
}

/* routines.insert/update: a Routine; definitionBody is SQL unless language says otherwise. */
static int body_routine(struct ctx *c, json_t *j)
{
	const char *text, *lang;
	size_t len, ll;
	int rc, non_sql = 0;
	char show[128];

	if ((rc = body_reference(c, j, "routineReference", "routineId", c->out->object)) ||
	    (rc = get_str(c, j, "definitionBody", "Routine", &text, &len)) ||
	    (rc = get_str(c, j, "language", "Routine", &lang, &ll)))
		return rc;
	if (lang && strcmp(lang, "SQL")) {
		if (strcmp(lang, "JAVASCRIPT") && strcmp(lang, "PYTHON") && strcmp(lang, "JAVA") &&
		    strcmp(lang, "SCALA"))
			return refuse(c, "Routine.language \"%s\" is unknown",
				      shown(show, sizeof(show), lang, ll));
		non_sql = 1;
	}
	return text ? add_sql(c, text, len, "definitionBody", 0, non_sql) : 0;
}

/* rowAccessPolicies.insert/update: the filterPredicate is a SQL expression. */
static int body_row_policy(struct ctx *c, json_t *j)
{
	const char *text;
	size_t len;
	int rc;

	if ((rc = body_reference(c, j, "rowAccessPolicyReference", "policyId", c->out->object)) ||
	    (rc = get_str(c, j, "filterPredicate", "RowAccessPolicy", &text, &len)))
		return rc;
	return text ? add_sql(c, text, len, "filterPredicate", 0, 0) : 0;
}

/* datasets.insert/patch/update: an "access" list grants roles on the dataset: that is IAM. */
static int body_dataset(struct ctx *c, json_t *j)
{
	json_t *a = json_object_get(j, "access");
	int rc;

	if ((rc = body_reference(c, j, "datasetReference", NULL, NULL)))
		return rc;
	if (a && !json_is_null(a))
		c->out->access = ROUTE_IAM;
	return 0;
}

/* Read the body: none for methods that take none, the JSON request (whole, or as the first
 * part of a multipart upload) otherwise, then the fields of it policy needs. */
static int read_body(struct ctx *c, const char *ctype, const char *cenc, const char *body,
		     size_t len)
{
	const char *id = c->m->id, *json = body;
	char *plain = NULL, show[128];
	size_t jlen = len;
	json_t *j;
	int rc;

	if (c->out->upload == ROUTE_UPLOAD_RESUMABLE_DATA)
		return 0; /* media bytes of a session whose configuration was classified */
	if (len && cenc && cenc[0] && !ieqn(cenc, strlen(cenc), "identity")) {
		if (!ieqn(cenc, strlen(cenc), "gzip"))
			return refuse(c, "Content-Encoding \"%s\" is refused (gzip is accepted)",
				      shown(show, sizeof(show), cenc, strlen(cenc)));
		if ((rc = gunzip(c, body, len, &plain, &jlen)))
			return rc;
		body = json = plain;
		len = jlen;
	}
	if (!len) {
		if (!strcmp(id, "bigquery.jobs.insert") || !strcmp(id, "bigquery.jobs.query"))
			rc = refuse(c, "%s needs a request body", id);
		else
			rc = 0; /* an empty body: nothing to read */
		goto out;
	}
	if (!c->m->request) {
		rc = refuse(c, "%s takes no request body", id);
		goto out;
	}
	if (c->out->upload == ROUTE_UPLOAD_MULTIPART) {
		if ((rc = multipart_first(c, ctype, body, len, &json, &jlen)))
			goto out;
	} else if (!is_json_type(ctype)) {
		rc = refuse(c, "%s: the body must be Content-Type application/json", id);
		goto out;
	}
	if ((rc = parse_json(c, json, jlen)))
		goto out;
	j = c->out->json;
	if ((rc = camel_only(c, j, c->m->request)))
		goto out;
	if (!strcmp(id, "bigquery.jobs.query"))
		rc = body_query_request(c, j);
	else if (!strcmp(id, "bigquery.jobs.insert"))
		rc = body_job(c, j);
	else if (!strcmp(c->m->request, "Table"))
		rc = body_table(c, j);
	else if (!strcmp(c->m->request, "Routine"))
		rc = body_routine(c, j);
	else if (!strcmp(c->m->request, "RowAccessPolicy"))
		rc = body_row_policy(c, j);
	else if (!strcmp(c->m->request, "Dataset"))
		rc = body_dataset(c, j);
out:
	free(plain);
	return rc;
}

/* --- entry points --------------------------------------------------------------------- */

int route_classify(const char *host, const char *method, const char *target, size_t target_len,
		   const char *method_override, const char *content_type,
		   const char *content_encoding, const char *body, size_t body_len,
		   struct route_result *out)
{
	struct ctx c;
	char show[128], reason[sizeof(out->reason_buf)];
	int rc;

	if (!out)
		return -1;
	memset(out, 0, sizeof(*out));
	if (!host || !method || (!target && target_len) || (!body && body_len))
		return -1;
	memset(&c, 0, sizeof(c));
	c.out = out;
	if (!host_ok(host)) {
		rc = refuse(&c, "host \"%s\" is not a BigQuery API host",
			    shown(show, sizeof(show), host, strlen(host)));
		goto done;
	}
	if ((rc = effective_method(&c, method, method_override)) ||
	    (rc = split_target(&c, target ? target : "", target_len)) || (rc = find_method(&c)))
		goto done;
	out->access = c.m->access;
	if ((rc = check_query(&c)))
		goto done;
	if (c.prefix != P_REST) {
		if (!c.upload_type) {
			rc = refuse(&c, "an upload needs uploadType=multipart or uploadType=resumable");
			goto done;
		}
		if (c.has_upload_id && c.upload_type != 2) {
			rc = refuse(&c, "upload_id belongs to resumable uploads");
			goto done;
		}
		if (c.upload_type == 1 && !strcmp(c.method, "PUT")) {
			rc = refuse(&c, "a multipart upload is a POST");
			goto done;
		}
		if (c.upload_type == 2 && !c.has_upload_id && !strcmp(c.method, "PUT")) {
			rc = refuse(&c, "a resumable upload starts with a POST");
			goto done;
		}
		out->upload = c.upload_type == 1 ? ROUTE_UPLOAD_MULTIPART
			      : c.has_upload_id  ? ROUTE_UPLOAD_RESUMABLE_DATA
						 : ROUTE_UPLOAD_RESUMABLE;
		out->access = ROUTE_WRITE_DATA;
		out->job_type = ROUTE_JOB_LOAD;
	}
	rc = read_body(&c, content_type, content_encoding, body, body_len);
done:
	if (rc < 0 && !out->refusal) {
		route_result_free(out);
		return -1;
	}
	if (out->refusal) {
		memcpy(reason, out->reason_buf, sizeof(reason));
		route_result_free(out);
		memset(out, 0, sizeof(*out));
		memcpy(out->reason_buf, reason, sizeof(reason));
		out->refusal = out->reason_buf;
		return 0;
	}
	out->method = c.m;
	out->method_id = c.m->id;
	return 0;
}

void route_result_free(struct route_result *r)
{
	if (!r)
		return;
	json_decref(r->json);
	r->json = NULL;
	r->n_sql = 0;
}
