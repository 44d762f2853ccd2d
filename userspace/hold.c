/* hold.c - risky requests wait for a human. Job requests are answered at once as a pending
 * BigQuery job under sluice's job id and submitted when approved; other operations are held
 * for a while and then answered, and their identical retry goes through once approved. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "exchange.h"
#include "gate.h"
#include "hold.h"
#include "log.h"


/* Jobs sluiced submitted after an approval, so that later polls are forwarded. */
static pthread_mutex_t submitted_mu = PTHREAD_MUTEX_INITIALIZER;
static char submitted[1024][APPROVE_JOB_ID_LEN];
static unsigned submitted_next;

static int was_submitted(const char *job)
{
	unsigned i;
	int hit = 0;

	pthread_mutex_lock(&submitted_mu);
	for (i = 0; i < 1024 && !hit; i++)
		hit = !strcmp(submitted[i], job);
	pthread_mutex_unlock(&submitted_mu);
	return hit;
}

void hold_mark_submitted(const char *job)
{
	pthread_mutex_lock(&submitted_mu);
	snprintf(submitted[submitted_next++ % 1024], APPROVE_JOB_ID_LEN, "%s", job);
	pthread_mutex_unlock(&submitted_mu);
}


static void hold(struct conn *c, const char *id, enum hold_kind kind, int ms)
{
	snprintf(c->hold_id, sizeof(c->hold_id), "%s", id);
	c->hold = kind;
	c->st = C_HOLD;
	c->hold_until = worker_now_ms(c->w) + (uint64_t)(ms > 0 ? ms : 0);
	c->deadline = c->hold_until + 5000;
}

/* Is this request a poll about a job that waited for approval? Answers it (1), lets it go
 * on to BigQuery (0), or sends the approved job in its place (2: forward, no new decision). */
int hold_poll(struct conn *c, int timed_out)
{
	struct approve *a = c->env->approve;
	struct approve_status st;
	char method[16], id[APPROVE_ID_LEN], msg[700], *s = NULL;
	long tmo;

	if (!a || c->req.method.len >= sizeof(method))
		return 0;
	memcpy(method, c->req.method.p, c->req.method.len);
	method[c->req.method.len] = '\0';
	c->poll = jobs_parse_poll(method, c->req.target.p, c->req.target.len, c->poll_project,
				  sizeof(c->poll_project), c->poll_job, sizeof(c->poll_job),
				  c->poll_loc, sizeof(c->poll_loc), &tmo);
	if (c->poll == JOBS_NOT_A_POLL || approve_find_job(a, c->poll_job, id, sizeof(id)) ||
	    approve_state(a, id, &st))
		return 0;
	/* only who asked may follow, cancel or release it, and only in its own project: for
	 * anyone else it is not a held job (it goes on as any request, and is not found) */
	if (strcmp(st.container, c->cgroup) || strcmp(st.identity, conn_identity(c)) ||
	    strcmp(st.project, c->poll_project))
		return 0;
	if (st.state == APPROVE_PENDING && c->poll == JOBS_CANCEL)
		approve_decide(a, id, 0, "the agent", "cancelled by the agent", 0, &st);
	switch (st.state) {
	case APPROVE_PENDING:
		if (c->poll == JOBS_GET)
			s = jobs_pending_job(c->poll_project, c->poll_job, c->poll_loc, NULL);
		else if (!timed_out) /* getQueryResults long-polls: wait here for the decision */
			return hold(c, id, HOLD_POLL, tmo >= 0 && tmo < 10000 ? (int)tmo : 10000), 1;
		else
			s = jobs_pending_query_response(c->poll_project, c->poll_job, c->poll_loc);
		conn_reply(c, 200, s);
		free(s);
		return 1;
	case APPROVE_APPROVED:
		if (was_submitted(c->poll_job) || c->poll == JOBS_CANCEL)
			return 0;
		if (approve_payload(a, id, &c->submit_body)) {
			conn_reply_error(c, 500, "backendError", "sluice: the approved job was lost");
			return 1;
		}
		return 2;
	default:
		if (st.state == APPROVE_DENIED)
			snprintf(msg, sizeof(msg), "denied by %s%s%s", st.approver,
				 st.reason[0] ? ": " : "", st.reason);
		else
			snprintf(msg, sizeof(msg), "approval %s expired: %s", id,
				 st.reason[0] ? st.reason : "no approver decided in time");
		if (c->poll == JOBS_GET || c->poll == JOBS_CANCEL) {
			s = jobs_failed_job(c->poll_project, c->poll_job, c->poll_loc, "accessDenied", msg);
			conn_reply(c, 200, s);
			free(s);
		} else {
			conn_reply_error(c, 403, "accessDenied", msg);
		}
		return 1;
	}
}

/* An approver must see what runs, not a decoy beside it. */
const char *body_sql(json_t *o, const char *method_id)
{
	json_t *q = NULL;

	if (method_id && !strcmp(method_id, "bigquery.jobs.query"))
		q = json_object_get(o, "query");
	else if (method_id && !strcmp(method_id, "bigquery.jobs.insert"))
		q = json_object_get(json_object_get(json_object_get(o, "configuration"), "query"),
				    "query");
	return json_is_string(q) ? json_string_value(q) : "";
}

/* Fingerprint of a request for "the identical request": method, path and body, minus what
 * clients make unique per attempt (requestId, a client-chosen jobReference, insertAll's
 * per-row insertId). */
static void fingerprint(struct conn *c, const char *identity, unsigned char out[APPROVE_FP_LEN])
{
	struct buf b = { 0 };
	json_t *o = json_loadb(c->s[CLI].in.p + c->head_len, c->body_len, 0, NULL);
	char *body = NULL;

	if (json_is_object(o)) {
		json_t *row;
		size_t i;

		json_object_del(o, "requestId");
		json_object_del(o, "jobReference");
		json_array_foreach(json_object_get(o, "rows"), i, row) /* insertAll dedup ids */
			json_object_del(row, "insertId");
		body = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	}
	out_append(&b, c->req.method.p, c->req.method.len);
	out_str(&b, " ");
	/* the query string too: datasets.delete?deleteContents=true is not the approved delete */
	out_append(&b, c->req.target.p, c->req.target.len);
	out_str(&b, "\n");
	if (body)
		out_str(&b, body);
	else
		out_append(&b, c->s[CLI].in.p + c->head_len, c->body_len);
	approve_fingerprint(identity, b.p, b.len, out);
	buf_free(&b);
	free(body);
	json_decref(o);
}

/* The policy says a human decides. Returns 1 when an approval already covers the request
 * (a window, or the one retry an approved operation gets), 0 when it was answered or held. */
int hold_request(struct conn *c, const struct gate_request *g,
			    const struct policy_subject *sub, const struct gate_verdict *v)
{
	struct approve *a = c->env->approve;
	const char *identity = conn_identity(c), *kinds[64], *tables[256], *sql = "";
	int is_job = v->method_id && (!strcmp(v->method_id, "bigquery.jobs.query") ||
				      !strcmp(v->method_id, "bigquery.jobs.insert"));
	struct approve_info info = { .kind = is_job ? APPROVE_JOB : APPROVE_OP,
				     .container = c->cgroup, .identity = identity,
				     .method = v->method_id ? v->method_id : "",
				     .rule = v->d.rule, .reason = v->d.reason };
	char id[APPROVE_ID_LEN], job[APPROVE_JOB_ID_LEN], project[128] = "", loc[64] = "US";
	char err[256], msg[1024], *s = NULL;
	struct gate_verdict full;
	struct approve_status st;
	json_t *it, *o;
	size_t i;
	int rc;

	fingerprint(c, identity, info.fingerprint);
	if (approve_check_window(a, identity, info.fingerprint, time(NULL)))
		return 1;
	if (!is_job && approve_consume(a, identity, info.fingerprint))
		return 1;
	/* what approvers see: statement kinds, tables, the SQL */
	gate_decide(c->env->policy, sub, g, 1, &full);
	json_array_foreach(json_object_get(full.analysis, "statements"), i, it)
		if (info.n_statements < 64)
			kinds[info.n_statements++] = json_string_value(json_object_get(it, "kind"));
	json_array_foreach(json_object_get(full.analysis, "items"), i, it) {
		if (info.n_tables < 256 && *json_string_value(json_object_get(it, "table"))) {
			char *t = NULL;

			if (asprintf(&t, "%s.%s.%s", json_string_value(json_object_get(it, "project")),
				     json_string_value(json_object_get(it, "dataset")),
				     json_string_value(json_object_get(it, "table"))) > 0)
				tables[info.n_tables++] = t;
		}
		if (!project[0])
			snprintf(project, sizeof(project), "%s",
				 json_string_value(json_object_get(it, "project")));
	}
	info.statements = kinds;
	info.tables = tables;
	o = json_loadb(g->body, g->body_len, 0, NULL);
	sql = body_sql(o, v->method_id);
	if (json_is_string(json_object_get(o, "location")))
		snprintf(loc, sizeof(loc), "%s", json_string_value(json_object_get(o, "location")));
	info.sql = sql;
	{ /* the job's project is the one in the path: /bigquery/v2/projects/P/... */
		const char *p = memmem(g->target, g->target_len, "/projects/", 10), *e;

		if (p && (e = memchr(p + 10, '/', (size_t)(g->target + g->target_len - p - 10))) &&
		    (size_t)(e - p - 10) < sizeof(project)) {
			memcpy(project, p + 10, (size_t)(e - p - 10));
			project[e - p - 10] = '\0';
		}
	}
	info.project = project;
	if (is_job) {
		/* the job id the client chose (jobs.insert's jobReference), so that it finds its
		 * job where it looks; sluice's own when there is none, or it is taken or odd */
		const char *mine = json_string_value(json_object_get(json_object_get(o,
			"jobReference"), "jobId"));
		char other[APPROVE_ID_LEN];

		if (mine && *mine && strlen(mine) < sizeof(job) &&
		    strspn(mine, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
		    strlen(mine) && approve_find_job(a, mine, other, sizeof(other)))
			snprintf(job, sizeof(job), "%s", mine);
		else
			approve_job_id(job, sizeof(job));
		info.job_id = job;
		info.payload = jobs_insert_body(v->method_id, g->body, g->body_len, project, job, loc,
						err, sizeof(err));
	}
	rc = is_job && !info.payload ? -EINVAL : approve_request(a, &info, id, sizeof(id));
	if (rc == 1 && approve_state(a, id, &st) == 0) /* the identical request already waits */
		snprintf(job, sizeof(job), "%s", st.job_id);
	free((char *)info.payload);
	for (i = 0; i < (size_t)info.n_tables; i++)
		free((char *)tables[i]);
	json_decref(o);
	gate_verdict_free(&full);
	if (rc < 0) {
		if (snprintf(msg, sizeof(msg), "%s. sluice could not hold it for an approver (%s); "
			     "try again later", v->d.reason, rc == -ENOSPC ?
			     "too many approvals are pending" : rc == -EINVAL ? err : strerror(-rc)) < 0)
			msg[0] = '\0';
		exchange_record_request(c, "deny", v->d.rule, msg);
		conn_deny(c, 403, "PERMISSION_DENIED", "accessDenied", msg);
		return 0;
	}
	log_info("proxy", "approval %s requested by %s (%s): %s", id, c->origin.comm, c->cgroup,
		 v->d.reason);
	/* what was asked goes into the recording now, whatever the approver decides later */
	snprintf(msg, sizeof(msg), "waits for approval %s: %s", id, v->d.reason);
	exchange_record_request(c, "held", v->d.rule, msg);
	if (!is_job) {
		memcpy(c->hold_fp, info.fingerprint, sizeof(c->hold_fp));
		hold(c, id, HOLD_OP, c->env->conf->approval_hold_ms);
		return 0;
	}
	if (!strcmp(v->method_id, "bigquery.jobs.query")) {
		s = jobs_pending_query_response(project, job, loc);
		if (s && (o = json_loads(s, 0, NULL))) {
			json_object_set_new(o, "kind", json_string("bigquery#queryResponse"));
			free(s);
			s = json_dumps(o, JSON_COMPACT);
			json_decref(o);
		}
	} else {
		o = json_loadb(g->body, g->body_len, 0, NULL);
		s = json_object_get(o, "configuration") ?
			json_dumps(json_object_get(o, "configuration"), JSON_COMPACT) : NULL;
		json_decref(o);
		o = NULL;
		{
			char *conf_json = s;

			s = jobs_pending_job(project, job, loc, conf_json);
			free(conf_json);
		}
	}
	conn_reply(c, 200, s);
	free(s);
	return 0;
}

/* A held request looks again: decided, or its time is up (<timed_out>). */
void hold_recheck(struct conn *c, int timed_out)
{
	struct approve_status st;
	char msg[700];
	int rc;

	if (c->st != C_HOLD)
		return;
	if (c->hold == HOLD_POLL) {
		c->st = C_REQ;
		rc = hold_poll(c, timed_out);
		if (rc == 0 || rc == 2)
			exchange_forward(c);
		else if (c->st == C_REQ && c->hold != HOLD_NONE)
			c->st = C_HOLD; /* still pending, still within its wait */
		return;
	}
	if (approve_state(c->env->approve, c->hold_id, &st) ||
	    (st.state == APPROVE_PENDING && !timed_out))
		return;
	c->st = C_REQ;
	c->hold = HOLD_NONE;
	if (st.state == APPROVE_APPROVED &&
	    approve_consume(c->env->approve, conn_identity(c), c->hold_fp)) {
		exchange_forward(c);
		return;
	}
	if (st.state == APPROVE_PENDING)
		snprintf(msg, sizeof(msg), "sluice: this request waits for approval %s: ask an "
			 "approver to run 'sluicectl approve %s', then send the identical request "
			 "again", c->hold_id, c->hold_id);
	else if (st.state == APPROVE_DENIED)
		snprintf(msg, sizeof(msg), "denied by %s%s%s", st.approver, st.reason[0] ? ": " : "",
			 st.reason);
	else
		snprintf(msg, sizeof(msg), "approval %s expired: %s", c->hold_id,
			 st.reason[0] ? st.reason : "no approver decided in time");
	conn_reply_error(c, 403, "accessDenied", msg);
}
