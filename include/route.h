/* route.h - the BigQuery v2 REST API model: which of the 47 methods a request calls, what it
 * touches and what SQL it carries.
 *
 * route_classify() takes one decoded HTTP request (host from the TLS SNI, method, raw target,
 * three headers and the body) and either names the method, with its path parameters, job
 * details and SQL, or refuses it with a reason meant for the agent. Fail closed: an unknown
 * host, path, method, query parameter, JSON field spelling or body shape is refused, never
 * guessed. The access kind is the least the request does; the SQL it carries (sql[]) may do
 * more, which the SQL classifier decides. */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stddef.h>

#define ROUTE_MAX_BODY (32u << 20) /* bytes of a JSON body or of a decompressed body */
#define ROUTE_MAX_DEPTH 64         /* nesting of JSON arrays and objects */
#define ROUTE_MAX_SQL 4            /* SQL texts one request may carry */
#define ROUTE_MAX_SOURCES 8        /* source tables of a copy or extract job */
#define ROUTE_ID_MAX 1024          /* bytes of a dataset, table, job ... id, with its NUL */
#define ROUTE_PROJECT_MAX 128      /* bytes of a project id, with its NUL */
#define ROUTE_TABLE_REF_MAX (3 * ROUTE_ID_MAX) /* "project.dataset.table", with its NUL */

/* What a request does, before any SQL it carries is looked at. */
enum route_access {
	ROUTE_READ_DATA,     /* rows leave BigQuery: tabledata.list, getQueryResults, queries, extract */
	ROUTE_READ_METADATA, /* *.get, *.list, getIamPolicy, testIamPermissions, dry runs */
	ROUTE_WRITE_DATA,    /* insertAll, load, copy, query jobs with a destination table */
	ROUTE_DDL,           /* create/patch/update/delete/undelete of datasets, tables, ... */
	ROUTE_IAM,           /* setIamPolicy, and dataset bodies that carry an "access" list */
	ROUTE_JOB_CONTROL,   /* jobs.cancel, jobs.delete */
};

/* Effective write disposition of a job with a destination (BigQuery's default if absent). */
enum route_wd { ROUTE_WD_NONE, ROUTE_WD_TRUNCATE, ROUTE_WD_APPEND, ROUTE_WD_EMPTY };

/* Kind of job of jobs.insert; jobs.query is a QUERY job too. */
enum route_job { ROUTE_JOB_NONE, ROUTE_JOB_QUERY, ROUTE_JOB_LOAD, ROUTE_JOB_COPY,
		 ROUTE_JOB_EXTRACT };

/* configuration.copy.operationType (COPY when absent). */
enum route_copy { ROUTE_COPY_NONE, ROUTE_COPY_COPY, ROUTE_COPY_SNAPSHOT, ROUTE_COPY_RESTORE,
		  ROUTE_COPY_CLONE };

/* Which media upload protocol, for jobs.insert under /upload/ or /resumable/upload/. */
enum route_upload {
	ROUTE_UPLOAD_NONE,
	ROUTE_UPLOAD_MULTIPART,      /* uploadType=multipart: config and data in one body */
	ROUTE_UPLOAD_RESUMABLE,      /* uploadType=resumable without upload_id: config, no data */
	ROUTE_UPLOAD_RESUMABLE_DATA, /* with upload_id: a data chunk of a session started earlier */
};

/* One row of the method table, as in shared/bigquery/methods.tsv. */
struct route_method {
	const char *id;          /* "bigquery.tables.delete" */
	const char *http_method; /* "DELETE" */
	const char *path;        /* the tsv's path, relative to /bigquery/v2/ */
	const char *flat;        /* the tsv's flatPath: the shape requests are matched against */
	const char *request;     /* request body schema ("Table"), NULL when the method takes none */
	const char *params;      /* the method's own query parameters, comma-joined, "" if none */
	enum route_access access; /* for jobs.insert and jobs.query, refined by the body */
};

/* One SQL text carried by a request; <text> points into route_result.json. */
struct route_sql {
	const char *text;
	size_t len;
	const char *field; /* "query", "configuration.query.query", "view.query", ... */
	int legacy;        /* legacy SQL: explicit, by omission of useLegacySql, or "#legacySQL" */
	int non_sql;       /* a routine body in another language (JAVASCRIPT, PYTHON, ...) */
};

/* What route_classify found. When <refusal> is set everything else is zeroed/NULL. */
struct route_result {
	const char *method_id; /* "bigquery.jobs.query"; NULL when refused */
	const struct route_method *method;
	enum route_access access;
	char project[ROUTE_PROJECT_MAX]; /* percent-decoded path parameters, "" when absent */
	char dataset[ROUTE_ID_MAX], table[ROUTE_ID_MAX];
	char object[ROUTE_ID_MAX];       /* model, routine or row access policy id */
	char job_id[ROUTE_ID_MAX];       /* path jobId, or jobs.insert's jobReference.jobId */
	char location[64];               /* ?location= of jobs.* methods */
	int selected_fields;             /* ?selectedFields= (tabledata.list, tables.get) */
	struct route_sql sql[ROUTE_MAX_SQL];
	int n_sql;
	/* job details, for policy */
	int dry_run;
	enum route_wd write_disposition;
	enum route_job job_type;
	enum route_copy copy_kind;
	int create_session;
	char default_project[ROUTE_PROJECT_MAX]; /* what unqualified datasets resolve in */
	char default_dataset[ROUTE_ID_MAX];      /* what unqualified tables resolve in */
	char session_id[256];
	char dest_table[ROUTE_TABLE_REF_MAX];    /* "project.dataset.table"; split from the right */
	char sources[ROUTE_MAX_SOURCES][ROUTE_TABLE_REF_MAX]; /* copy/extract sources, same form */
	int n_sources;
	enum route_upload upload;
	const char *refusal; /* non-NULL: refuse, for this reason (points to reason_buf) */
	char reason_buf[512];
	void *json;          /* parsed body (json_t *), owner of sql[].text; see route_result_free */
};

/* Classify one request. <host> is the TLS SNI (lower case), <target> the raw request target
 * (origin form: path and query), <method_override> the X-HTTP-Method-Override value or NULL,
 * <content_type> and <content_encoding> the headers' values or NULL, <body> the whole
 * (de-chunked) body. The caller must refuse duplicated framing or override headers itself.
 * Returns 0 when classified (check out->refusal) or -1 on an internal error (no memory, bad
 * arguments); free <out> with route_result_free in both cases. */
int route_classify(const char *host, const char *method, const char *target, size_t target_len,
		   const char *method_override, const char *content_type,
		   const char *content_encoding, const char *body, size_t body_len,
		   struct route_result *out);

/* Release what route_classify kept in <r> (the parsed body); <r> may then be reused. */
void route_result_free(struct route_result *r);

/* Number of methods in the table (47). */
int route_method_count(void);

/* Method <i> of the table (0-based), or NULL when out of range. */
const struct route_method *route_method_at(int i);

/* The method with id <id>, or NULL. */
const struct route_method *route_method_find(const char *id);

/* Name of an access kind: "read-data", "read-metadata", "write-data", "ddl", "iam",
 * "job-control". */
const char *route_access_name(enum route_access a);

#endif
