/* approve.h - just-in-time approvals: requests a policy rule holds for a human approver.
 *
 * The store keeps every pending and recently decided approval in memory and in an
 * append-only JSON-lines journal (<dir>/approvals.jsonl, 0600) that a store thread writes
 * and fsyncs, so workers never wait for I/O; it is compacted when opened. Pending approvals
 * survive a restart (reloaded with their deadlines) or, when so configured, are failed with
 * a reason that says why: never silently lost. The store thread also expires pending
 * requests past their deadline and runs the notify hook for each new one.
 *
 * Approvers answer with `sluicectl approvals|show|approve|deny` over the control socket
 * (ctlsock.h); every decision goes to the on_decision hook and the log. */
#ifndef SLUICE_APPROVE_H
#define SLUICE_APPROVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define APPROVE_ID_LEN 8          /* buffer for an id: 6 characters and NUL ("a7f3k2") */
#define APPROVE_FP_LEN 32         /* SHA-256 */
#define APPROVE_JOB_ID_LEN 64     /* buffer for a job id: "sluice_approval_" + 24 chars */
#define APPROVE_DEFAULT_TIMEOUT_S 900
#define APPROVE_DEFAULT_MAX_PENDING 256
#define APPROVE_DEFAULT_MAX_WINDOW_S 86400

/* How the agent gets its answer. */
enum approve_kind {
	APPROVE_JOB, /* a query job: answered when the agent polls the job sluiced named */
	APPROVE_OP,  /* any other operation: held up to a bound, then 403; an identical retry
		      * after approval passes once (approve_consume) */
};

enum approve_state { APPROVE_PENDING, APPROVE_APPROVED, APPROVE_DENIED, APPROVE_EXPIRED };

/* What happens to pending approvals found in the journal when the store is opened. */
enum approve_on_restart {
	APPROVE_RESTART_KEEP, /* reload them, with their deadlines (default) */
	APPROVE_RESTART_FAIL, /* expire them with the reason "sluiced restarted ..." */
};

/* A request to hold. Strings may be NULL (stored as ""); everything is copied. */
struct approve_info {
	enum approve_kind kind;
	const char *container;             /* cgroup path of the requesting container */
	const char *identity;              /* the subject, as the lead names it */
	const char *project;
	const char *method;                /* "bigquery.jobs.insert" */
	const char *const *statements;     /* statement kinds ("DELETE") */
	int n_statements;
	const char *const *tables;         /* "project.dataset.table" */
	int n_tables;
	const char *sql;                   /* the whole text; NULL when none */
	const char *rule, *reason;         /* the policy rule that asked, and its reason */
	unsigned char fingerprint[APPROVE_FP_LEN]; /* approve_fingerprint(identity, request) */
	const char *job_id;                /* APPROVE_JOB: the id from approve_job_id() */
	const char *payload;               /* APPROVE_JOB: what to submit once approved (JSON) */
	int timeout_s;                     /* 0: the store's timeout */
};

/* The state of one approval, copied out (strings truncated to fit). */
struct approve_status {
	char id[APPROVE_ID_LEN];
	enum approve_kind kind;
	enum approve_state state;
	char container[512], identity[256], project[256];
	char job_id[APPROVE_JOB_ID_LEN];
	char fingerprint[2 * APPROVE_FP_LEN + 1]; /* hex */
	char approver[128];  /* "alice (uid 1000)"; "sluiced" when it expired or failed */
	char reason[512];    /* the approver's reason, or why it expired */
	int64_t created_at, expires_at, decided_at; /* unix seconds; decided_at 0 while pending */
	int64_t window_until; /* approved with --for: identical requests pass until then; or 0 */
	int consumed;         /* APPROVE_OP: the retry it approved has passed */
};

/* The store's configuration; zero values take the defaults. */
struct approve_conf {
	const char *dir;            /* journal directory (created 0700); NULL: memory only */
	int timeout_s;              /* pending -> expired after this (default 900) */
	int max_pending;            /* more are refused with -ENOSPC (default 256) */
	int max_window_s;           /* the longest --for (default 86400) */
	int keep_s;                 /* decided approvals are kept this long (default timeout_s) */
	enum approve_on_restart on_restart;
	const char *const *notify_argv; /* program and arguments, NULL-terminated; NULL: none */
	/* Every decision (approved, denied, expired, failed at restart), from the deciding
	 * thread (approve_open's for failures at restart); may be NULL. */
	void (*on_decision)(void *arg, const struct approve_status *st);
	void *on_decision_arg;
};

struct approve;

/* Open the store: read and compact the journal, start the store thread. Returns 0 and
 * *out, or -errno with <err>. */
int approve_open(const struct approve_conf *conf, struct approve **out, char *err, size_t errlen);

/* Stop the store thread, write what is queued, free everything. <a> may be NULL. */
void approve_close(struct approve *a);

/* The payload stored with approval <id>, malloc'd into *out. Returns 0 or -ENOENT. */
int approve_payload(struct approve *a, const char *id, char **out);

/* Hold a request: fills <id_out> (APPROVE_ID_LEN bytes) with its approval id. Returns 0 for
 * a new pending approval, 1 when the same identity already has an identical request
 * pending (its id is returned), or -errno: -ENOSPC (too many pending), -EINVAL. Does no
 * I/O. */
int approve_request(struct approve *a, const struct approve_info *info, char *id_out,
		    size_t idlen);

/* The state of approval <id> (expired as of now if past its deadline). 0 or -ENOENT. */
int approve_state(struct approve *a, const char *id, struct approve_status *out);

/* The approval holding BigQuery job <job_id> (APPROVE_JOB). 0 and <id_out>, or -ENOENT. */
int approve_find_job(struct approve *a, const char *job_id, char *id_out, size_t idlen);

/* Decide <id>: <approved> or denied, by <approver> (a person: "alice (uid 1000)"), with
 * <reason> (may be NULL for approvals); <for_s> > 0 opens a window for identical requests
 * of the same identity. Calls the listener and on_decision. Returns 0, -ENOENT, -EALREADY
 * (already decided: <out> says how), -ERANGE (<for_s> above max_window_s) or -EINVAL.
 * <out> may be NULL. */
int approve_decide(struct approve *a, const char *id, int approved, const char *approver,
		   const char *reason, int64_t for_s, struct approve_status *out);

/* Does an approval window of <identity> cover this fingerprint at <now>? 1 or 0. */
int approve_check_window(struct approve *a, const char *identity,
			 const unsigned char fp[APPROVE_FP_LEN], time_t now);

/* Use up an approved, not yet consumed APPROVE_OP approval of <identity> for this
 * fingerprint (within timeout_s of its decision): 1 when one was consumed, else 0. */
int approve_consume(struct approve *a, const char *identity,
		    const unsigned char fp[APPROVE_FP_LEN]);

/* Called with the id and new state (enum approve_state) whenever an approval is decided
 * or expires, from the deciding thread, without the store's lock held (it may call
 * approve_state, never the setters). Once this returns, the old listener is not called. */
void approve_set_listener(struct approve *a, void (*fn)(void *arg, const char *id, int state),
			  void *arg);

/* Called with "pending" and a new approval (a JSON object string), or "decided" and a
 * decided one, from the thread that made it; the control socket's `watch` uses it. <fn>
 * must not block. Once this returns, the old watcher is not called. */
void approve_set_watcher(struct approve *a, void (*fn)(void *arg, const char *event,
						       const char *item_json), void *arg);

/* Expire every pending approval whose deadline is before <now> (the store thread does this
 * every second; tests call it). Returns how many expired. */
int approve_expire_due(struct approve *a, time_t now);

/* Wait until everything decided so far is in the journal (fsynced). 0 or -errno (-EIO when
 * a write failed). */
int approve_flush(struct approve *a);

/* All approvals (pending first, then decided, newest first) as a JSON array string the
 * caller frees; with <pending_only>, only pending ones. NULL on out of memory. */
char *approve_list_json(struct approve *a, int pending_only);

/* One approval as a JSON object string the caller frees, or NULL (-ENOENT). */
char *approve_show_json(struct approve *a, const char *id);

/* SHA-256 of <identity>, a NUL and the normalized request bytes. */
void approve_fingerprint(const char *identity, const void *req, size_t len,
			 unsigned char out[APPROVE_FP_LEN]);

/* A fresh BigQuery job id for a held query: "sluice_approval_" and 24 random characters. */
void approve_job_id(char *out, size_t len);

/* "pending", "approved", "denied", "expired". */
const char *approve_state_name(int state);

/* Parse a duration "90s", "30m", "2h", "1d" or seconds alone. Returns seconds or -1. */
int64_t approve_parse_duration(const char *s);

/* sluicectl approvals [--watch] [--json] [--socket PATH]: the pending approvals. */
int approve_cmd_list(int argc, char **argv);

/* sluicectl show ID [--json] [--socket PATH]: one approval in full. */
int approve_cmd_show(int argc, char **argv);

/* sluicectl approve ID [--reason R] [--for DURATION] [--socket PATH]. */
int approve_cmd_approve(int argc, char **argv);

/* sluicectl deny ID --reason R [--socket PATH]. */
int approve_cmd_deny(int argc, char **argv);

#endif
