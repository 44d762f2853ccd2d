/* approve.c - the store of pending approvals: memory, an fsynced JSON-lines journal written
 * by a store thread, expiry, the notify hook; and the approvers' sluicectl commands, which
 * talk to sluiced's control socket (ctlsock.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "approve.h"
#include "log.h"

#define JOURNAL "approvals.jsonl"
#define NOTIFY_SQL_MAX 8192        /* the notify hook gets the SQL cut to this */
#define NOTIFY_MAX_CHILDREN 32
#define NOTIFY_KILL_AFTER_S 60
#define COMPACT_AFTER_BYTES (64u << 20)
#define DEFAULT_SOCKET "/run/sluice/sluice.sock"

/* One approval. */
struct entry {
	struct entry *next;
	char id[APPROVE_ID_LEN];
	enum approve_kind kind;
	enum approve_state state;
	char *container, *identity, *project, *method, *sql, *rule, *why, *job_id;
	char *payload;  /* what to submit once approved: journaled, never shown */
	json_t *statements, *tables;
	unsigned char fp[APPROVE_FP_LEN];
	int64_t created, expires, decided, window_until;
	int consumed;
	char *approver, *reason;
};

/* A line queued for the journal, or a payload queued for the notify hook. */
struct qline {
	struct qline *next;
	char *text;
	char id[APPROVE_ID_LEN];
};

/* What happened under the lock, to be told to listeners after it is released. */
struct event {
	struct approve_status st;
	char *item;   /* JSON of the item */
	int pending;  /* a new pending request rather than a decision */
};

struct events {
	struct event *v;
	int n, cap;
};

struct child {
	pid_t pid;
	time_t started;
	char id[APPROVE_ID_LEN];
};

struct approve {
	pthread_mutex_t mu;
	pthread_rwlock_t cb;   /* held (read) while calling the listener and the watcher, so that
				* once a setter returns the old callback is never called again */
	pthread_cond_t wake, flushed;
	pthread_t thread;
	int started, stop;

	char *dir, *jpath;
	int timeout_s, max_pending, max_window_s, keep_s;
	char **notify_argv;
	void (*on_decision)(void *, const struct approve_status *);
	void *on_decision_arg;
	void (*listener)(void *, const char *, int);
	void *listener_arg;
	void (*watcher)(void *, const char *, const char *);
	void *watcher_arg;

	struct entry *entries; /* newest first */
	int n_pending;

	int jfd;
	struct qline *jq, **jq_tail, *nq, **nq_tail;
	uint64_t seq_queued, seq_done;
	int jerr;              /* last journal write error (-errno) */
	uint64_t written;      /* bytes appended since the last compaction */

	struct child children[NOTIFY_MAX_CHILDREN];
	int n_children;
};

static const char *const state_names[] = { "pending", "approved", "denied", "expired" };

const char *approve_state_name(int state)
{
	return state >= 0 && state <= APPROVE_EXPIRED ? state_names[state] : "unknown";
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;

		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return s[2 * n] ? -1 : 0;
}

/* Random characters from <alphabet> (rejection sampling keeps them uniform). */
static void random_chars(char *out, size_t n, const char *alphabet)
{
	size_t k = strlen(alphabet), limit = 256 - 256 % k, i = 0;
	unsigned char buf[64];

	while (i < n) {
		ssize_t got = getrandom(buf, sizeof(buf), 0);

		if (got <= 0) /* cannot happen after boot; never hand out a predictable id */
			abort();
		for (ssize_t j = 0; j < got && i < n; j++)
			if (buf[j] < limit)
				out[i++] = alphabet[buf[j] % k];
	}
	out[n] = '\0';
}

void approve_job_id(char *out, size_t len)
{
	char r[25];

	random_chars(r, 24, "abcdefghijklmnopqrstuvwxyz0123456789");
	snprintf(out, len, "sluice_approval_%s", r);
}

void approve_fingerprint(const char *identity, const void *req, size_t len,
			 unsigned char out[APPROVE_FP_LEN])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned n = APPROVE_FP_LEN;

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(c, identity ? identity : "", identity ? strlen(identity) + 1 : 1) ||
	    !EVP_DigestUpdate(c, req, len) || !EVP_DigestFinal_ex(c, out, &n))
		abort(); /* out of memory in OpenSSL: no fingerprint may collide by accident */
	EVP_MD_CTX_free(c);
}

int64_t approve_parse_duration(const char *s)
{
	char *end;
	long long v;
	int64_t mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0)
		return -1;
	if (*end && end[1])
		return -1;
	switch (*end) {
	case '\0': case 's': break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	default: return -1;
	}
	if (v > INT64_MAX / mul / 2)
		return -1;
	return v * mul;
}

/* --- entries and their JSON ----------------------------------------------------------- */

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	free(e->container);
	free(e->identity);
	free(e->project);
	free(e->method);
	free(e->sql);
	free(e->rule);
	free(e->why);
	free(e->job_id);
	free(e->payload);
	free(e->approver);
	free(e->reason);
	json_decref(e->statements);
	json_decref(e->tables);
	free(e);
}

/* The item as JSON; the SQL cut to <sql_max> bytes (0: whole) with "sql_truncated". */
static json_t *entry_json(const struct entry *e, size_t sql_max)
{
	char fp[2 * APPROVE_FP_LEN + 1];
	size_t sql_len = strlen(e->sql);
	json_t *o;

	hex(e->fp, APPROVE_FP_LEN, fp);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:s%, s:s, s:s, s:s, s:s,"
		      " s:I, s:I, s:I, s:s, s:s, s:I, s:b}",
		      "id", e->id, "kind", e->kind == APPROVE_JOB ? "job" : "op",
		      "state", state_names[e->state], "container", e->container,
		      "identity", e->identity, "project", e->project, "method", e->method,
		      "statements", e->statements, "tables", e->tables,
		      "sql", e->sql, sql_max && sql_len > sql_max ? sql_max : sql_len,
		      "rule", e->rule, "rule_reason", e->why, "fingerprint", fp,
		      "job_id", e->job_id, "created_at", (json_int_t)e->created,
		      "expires_at", (json_int_t)e->expires, "decided_at", (json_int_t)e->decided,
		      "approver", e->approver, "reason", e->reason,
		      "window_until", (json_int_t)e->window_until, "consumed", e->consumed);
	if (o && sql_max && sql_len > sql_max)
		json_object_set_new(o, "sql_truncated", json_true());
	return o;
}

static char *entry_dump(const struct entry *e, size_t sql_max)
{
	json_t *o = entry_json(e, sql_max);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* An entry from a journal line's object, or NULL when it is not one. */
static struct entry *entry_parse(json_t *o)
{
	struct entry *e = calloc(1, sizeof(*e));
	const char *s;
	int i;

	if (!e)
		return NULL;
	s = jstr(o, "id");
	if (!*s || strlen(s) >= APPROVE_ID_LEN || unhex(jstr(o, "fingerprint"), e->fp, APPROVE_FP_LEN))
		goto bad;
	strcpy(e->id, s);
	e->kind = strcmp(jstr(o, "kind"), "op") ? APPROVE_JOB : APPROVE_OP;
	for (i = 0; i <= APPROVE_EXPIRED; i++)
		if (!strcmp(jstr(o, "state"), state_names[i]))
			break;
	if (i > APPROVE_EXPIRED)
		goto bad;
	e->state = (enum approve_state)i;
	e->container = xstrdup(jstr(o, "container"));
	e->identity = xstrdup(jstr(o, "identity"));
	e->project = xstrdup(jstr(o, "project"));
	e->method = xstrdup(jstr(o, "method"));
	e->sql = xstrdup(jstr(o, "sql"));
	e->rule = xstrdup(jstr(o, "rule"));
	e->why = xstrdup(jstr(o, "rule_reason"));
	e->job_id = xstrdup(jstr(o, "job_id"));
	e->payload = xstrdup(jstr(o, "payload"));
	e->approver = xstrdup(jstr(o, "approver"));
	e->reason = xstrdup(jstr(o, "reason"));
	e->statements = json_array();
	e->tables = json_array();
	if (json_is_array(json_object_get(o, "statements")))
		json_array_extend(e->statements, json_object_get(o, "statements"));
	if (json_is_array(json_object_get(o, "tables")))
		json_array_extend(e->tables, json_object_get(o, "tables"));
	e->created = json_integer_value(json_object_get(o, "created_at"));
	e->expires = json_integer_value(json_object_get(o, "expires_at"));
	e->decided = json_integer_value(json_object_get(o, "decided_at"));
	e->window_until = json_integer_value(json_object_get(o, "window_until"));
	e->consumed = json_is_true(json_object_get(o, "consumed"));
	if (!e->container || !e->identity || !e->project || !e->method || !e->sql || !e->rule ||
	    !e->why || !e->job_id || !e->approver || !e->reason || !e->statements || !e->tables)
		goto bad;
	return e;
bad:
	entry_free(e);
	return NULL;
}

static void status_of(const struct entry *e, struct approve_status *st)
{
	memset(st, 0, sizeof(*st));
	strcpy(st->id, e->id);
	st->kind = e->kind;
	st->state = e->state;
	snprintf(st->container, sizeof(st->container), "%s", e->container);
	snprintf(st->identity, sizeof(st->identity), "%s", e->identity);
	snprintf(st->project, sizeof(st->project), "%s", e->project);
	snprintf(st->job_id, sizeof(st->job_id), "%s", e->job_id);
	hex(e->fp, APPROVE_FP_LEN, st->fingerprint);
	snprintf(st->approver, sizeof(st->approver), "%s", e->approver);
	snprintf(st->reason, sizeof(st->reason), "%s", e->reason);
	st->created_at = e->created;
	st->expires_at = e->expires;
	st->decided_at = e->decided;
	st->window_until = e->window_until;
	st->consumed = e->consumed;
}

static struct entry *find(struct approve *a, const char *id)
{
	char low[APPROVE_ID_LEN];
	size_t i;

	if (!id || strlen(id) >= APPROVE_ID_LEN)
		return NULL;
	for (i = 0; id[i]; i++) /* people type ids: accept "A7F3K2" */
		low[i] = (char)(id[i] >= 'A' && id[i] <= 'Z' ? id[i] - 'A' + 'a' : id[i]);
	low[i] = '\0';
	for (struct entry *e = a->entries; e; e = e->next)
		if (!strcmp(e->id, low))
			return e;
	return NULL;
}

/* --- journal queue and events (lock held) -------------------------------------------- */

static void queue_line(struct qline ***tail, const char *id, char *text)
{
	struct qline *q = calloc(1, sizeof(*q));

	if (!q) {
		free(text);
		return;
	}
	q->text = text;
	snprintf(q->id, sizeof(q->id), "%s", id);
	**tail = q;
	*tail = &q->next;
}

/* Queue the entry's current state for the journal. */
static void journal_locked(struct approve *a, const struct entry *e)
{
	char *s;

	json_t *o;

	if (a->jfd < 0)
		return;
	o = entry_json(e, 0);
	if (o && e->payload && *e->payload)
		json_object_set_new(o, "payload", json_string(e->payload));
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s) {
		log_err("approve", "out of memory: approval %s not journaled", e->id);
		a->jerr = -ENOMEM;
		return;
	}
	queue_line(&a->jq_tail, e->id, s);
	a->seq_queued++;
	pthread_cond_signal(&a->wake);
}

static void event_add(struct events *ev, const struct entry *e, int pending)
{
	struct event *x;

	if (ev->n == ev->cap) {
		int cap = ev->cap ? 2 * ev->cap : 4;
		struct event *v = realloc(ev->v, (size_t)cap * sizeof(*v));

		if (!v)
			return;
		ev->v = v;
		ev->cap = cap;
	}
	x = &ev->v[ev->n++];
	status_of(e, &x->st);
	x->item = entry_dump(e, 0);
	x->pending = pending;
}

/* Tell the listener, the decision hook, the watcher and the log (lock released). */
static void events_fire(struct approve *a, struct events *ev)
{
	void (*listener)(void *, const char *, int);
	void (*watcher)(void *, const char *, const char *);
	void *larg, *warg;

	if (!ev->n)
		return;
	pthread_rwlock_rdlock(&a->cb);
	pthread_mutex_lock(&a->mu);
	listener = a->listener;
	larg = a->listener_arg;
	watcher = a->watcher;
	warg = a->watcher_arg;
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < ev->n; i++) {
		struct event *x = &ev->v[i];

		if (x->pending) {
			log_info("approve", "approval %s pending: %s in %s, project %s", x->st.id,
				 x->st.identity, x->st.container, x->st.project);
		} else {
			log_info("approve", "approval %s %s by %s%s%s", x->st.id,
				 state_names[x->st.state], x->st.approver, *x->st.reason ? ": " : "",
				 x->st.reason);
			if (listener)
				listener(larg, x->st.id, (int)x->st.state);
			if (a->on_decision)
				a->on_decision(a->on_decision_arg, &x->st);
		}
		if (watcher && x->item)
			watcher(warg, x->pending ? "pending" : "decided", x->item);
		free(x->item);
	}
	pthread_rwlock_unlock(&a->cb);
	free(ev->v);
	memset(ev, 0, sizeof(*ev));
}

/* Decide <e> (lock held): journal it and remember the event. */
static void decide_locked(struct approve *a, struct entry *e, enum approve_state state,
			  const char *approver, const char *reason, int64_t now,
			  int64_t window_until, struct events *ev)
{
	char *ap = xstrdup(approver), *re = xstrdup(reason);

	if (!ap || !re) { /* keep the old strings rather than lose the decision */
		free(ap);
		free(re);
	} else {
		free(e->approver);
		free(e->reason);
		e->approver = ap;
		e->reason = re;
	}
	if (e->state == APPROVE_PENDING)
		a->n_pending--;
	e->state = state;
	e->decided = now;
	e->window_until = window_until;
	journal_locked(a, e);
	event_add(ev, e, 0);
}

/* Expire the pending entries due at <now> (lock held). */
static int expire_locked(struct approve *a, time_t now, struct events *ev)
{
	char why[128];
	int n = 0;

	for (struct entry *e = a->entries; e; e = e->next) {
		if (e->state != APPROVE_PENDING || e->expires > now)
			continue;
		snprintf(why, sizeof(why), "nobody answered within %llds",
			 (long long)(e->expires - e->created));
		decide_locked(a, e, APPROVE_EXPIRED, "sluiced", why, now, 0, ev);
		n++;
	}
	return n;
}

/* Is <e> worth keeping at <now>? Pending, recently decided, or an open window. */
static int live(const struct approve *a, const struct entry *e, time_t now)
{
	return e->state == APPROVE_PENDING || e->decided + a->keep_s > now ||
	       e->window_until > now;
}

/* Forget entries no longer live (lock held). */
static void prune_locked(struct approve *a, time_t now)
{
	struct entry **pp = &a->entries;

	while (*pp) {
		struct entry *e = *pp;

		if (live(a, e, now)) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		entry_free(e);
	}
}

/* --- the journal on disk ------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Replace the journal with <lines> (each with its newline): tmp file, fsync, rename, fsync
 * the directory; then reopen it for appending. 0 or -errno. */
static int journal_rewrite(struct approve *a, const char *lines, size_t len)
{
	char tmp[4096];
	int fd, rc, dfd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", a->jpath);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, lines, len);
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, a->jpath))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	fd = open(a->jpath, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (a->jfd >= 0)
		close(a->jfd);
	a->jfd = fd;
	a->written = 0;
	return 0;
}

/* Every live entry, one line each (lock held). NULL on out of memory. */
static char *snapshot_locked(struct approve *a, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0;
	FILE *f = open_memstream(&buf, &cap);

	if (!f)
		return NULL;
	for (struct entry *e = a->entries; e; e = e->next) {
		char *s = entry_dump(e, 0);

		if (!s) {
			fclose(f);
			free(buf);
			return NULL;
		}
		fprintf(f, "%s\n", s);
		free(s);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	*len = cap;
	return buf;
}

/* Read the journal into memory: the last line for an id wins. A torn last line (a crash
 * mid-write) is skipped with a warning. 0 or -errno. */
static int journal_load(struct approve *a, char *err, size_t errlen)
{
	FILE *f = fopen(a->jpath, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", a->jpath, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		json_t *o = json_loadb(line, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL);
		struct entry *e = o ? entry_parse(o) : NULL, **pp;

		lineno++;
		json_decref(o);
		if (!e) {
			log_warn("approve", "%s:%d: not an approval record, skipped", a->jpath, lineno);
			continue;
		}
		for (pp = &a->entries; *pp && strcmp((*pp)->id, e->id); pp = &(*pp)->next)
			;
		if (*pp) { /* a later state of the same approval: replace, keep its place */
			e->next = (*pp)->next;
			entry_free(*pp);
			*pp = e;
		} else {
			e->next = a->entries;
			a->entries = e;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

/* --- the store thread ---------------------------------------------------------------- */

/* Run the notify hook for one pending approval: argv, no shell, the JSON on stdin, no other
 * descriptor inherited, a clean signal state. */
static void notify_spawn(struct approve *a, const char *id, const char *payload)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char env_id[64];
	char *envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			 env_id, NULL };
	int p[2], rc;
	pid_t pid;

	if (a->n_children == NOTIFY_MAX_CHILDREN) {
		log_warn("approve", "notify hook not run for %s: %d still running", id,
			 NOTIFY_MAX_CHILDREN);
		return;
	}
	if (pipe2(p, O_CLOEXEC)) {
		log_warn("approve", "notify hook for %s: pipe: %s", id, strerror(errno));
		return;
	}
	snprintf(env_id, sizeof(env_id), "SLUICE_APPROVAL_ID=%s", id);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				 POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&pid, a->notify_argv[0], &fa, &attr, a->notify_argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[0]);
	if (rc) {
		log_warn("approve", "notify hook %s for %s: %s", a->notify_argv[0], id, strerror(rc));
		close(p[1]);
		return;
	}
	a->children[a->n_children].pid = pid;
	a->children[a->n_children].started = time(NULL);
	snprintf(a->children[a->n_children].id, APPROVE_ID_LEN, "%s", id);
	a->n_children++;
	/* The payload is at most a few KB (the SQL is cut): it fits the pipe, never blocks. */
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	rc = write_all(p[1], payload, strlen(payload));
	if (!rc)
		rc = write_all(p[1], "\n", 1);
	if (rc)
		log_warn("approve", "notify hook for %s: writing its stdin: %s", id, strerror(-rc));
	close(p[1]);
}

/* Reap finished hooks; kill those running too long. Only our own children are waited for. */
static void notify_reap(struct approve *a, time_t now, int kill_all)
{
	for (int i = 0; i < a->n_children;) {
		struct child *c = &a->children[i];
		int status;
		pid_t r;

		if (kill_all || now - c->started > NOTIFY_KILL_AFTER_S)
			kill(c->pid, SIGKILL);
		r = waitpid(c->pid, &status, kill_all ? 0 : WNOHANG);
		if (r == 0) {
			i++;
			continue;
		}
		if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			log_warn("approve", "notify hook for %s %s %d", c->id,
				 WIFEXITED(status) ? "exited with" : "killed by signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		*c = a->children[--a->n_children];
	}
}

/* Write the queued journal lines and fsync (lock held; released while writing). */
static void journal_drain_locked(struct approve *a)
{
	struct qline *q = a->jq;
	uint64_t target = a->seq_queued;
	int rc = 0;

	a->jq = NULL;
	a->jq_tail = &a->jq;
	pthread_mutex_unlock(&a->mu);
	for (struct qline *n; q; q = n) {
		size_t len = strlen(q->text);

		n = q->next;
		q->text[len] = '\n'; /* the NUL becomes the newline: one write per line */
		if (!rc)
			rc = write_all(a->jfd, q->text, len + 1);
		if (rc)
			log_err("approve", "journal %s: approval %s not saved: %s", a->jpath, q->id,
				strerror(-rc));
		a->written += len + 1;
		free(q->text);
		free(q);
	}
	if (!rc && fdatasync(a->jfd)) {
		rc = -errno;
		log_err("approve", "journal %s: fdatasync: %s", a->jpath, strerror(errno));
	}
	pthread_mutex_lock(&a->mu);
	a->jerr = rc;
	a->seq_done = target;
	pthread_cond_broadcast(&a->flushed);
}

/* Rewrite the journal with only live entries when it has grown (lock held). */
static void journal_compact_locked(struct approve *a)
{
	size_t len;
	char *buf;
	int rc;

	prune_locked(a, time(NULL));
	buf = snapshot_locked(a, &len);
	if (!buf)
		return;
	for (struct qline *q = a->jq, *n; q; q = n) { /* superseded by the snapshot */
		n = q->next;
		free(q->text);
		free(q);
	}
	a->jq = NULL;
	a->jq_tail = &a->jq;
	rc = journal_rewrite(a, buf, len);
	free(buf);
	if (rc)
		log_err("approve", "journal %s: compaction failed: %s", a->jpath, strerror(-rc));
	a->seq_done = a->seq_queued;
	pthread_cond_broadcast(&a->flushed);
}

static void *store_main(void *arg)
{
	struct approve *a = arg;
	sigset_t pipe_set;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL); /* a hook that exits early: EPIPE only */
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct events ev = { 0 };
		struct timespec until;
		time_t now;

		if (a->jq) {
			journal_drain_locked(a);
			continue;
		}
		if (a->nq) {
			struct qline *q = a->nq;

			a->nq = q->next;
			if (!a->nq)
				a->nq_tail = &a->nq;
			pthread_mutex_unlock(&a->mu);
			notify_spawn(a, q->id, q->text);
			free(q->text);
			free(q);
			pthread_mutex_lock(&a->mu);
			continue;
		}
		if (a->stop)
			break;
		now = time(NULL);
		expire_locked(a, now, &ev);
		if (ev.n) {
			pthread_mutex_unlock(&a->mu);
			events_fire(a, &ev);
			pthread_mutex_lock(&a->mu);
			continue;
		}
		prune_locked(a, now);
		if (a->jfd >= 0 && a->written > COMPACT_AFTER_BYTES)
			journal_compact_locked(a);
		if (a->n_children) {
			pthread_mutex_unlock(&a->mu);
			notify_reap(a, now, 0);
			pthread_mutex_lock(&a->mu);
		}
		if (a->jq || a->nq)
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&a->wake, &a->mu, &until);
	}
	pthread_mutex_unlock(&a->mu);
	{ /* drain the signal a hook's early exit may have left pending */
		struct timespec zero = { 0, 0 };

		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
	}
	notify_reap(a, time(NULL), 1);
	return NULL;
}

/* --- the API ------------------------------------------------------------------------- */

/* Create <dir> 0700 when missing; it must then be a directory of ours, closed to others. */
static int ensure_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return -errno;
	}
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(err, errlen, "%s: must be owned by uid %u and writable by it only (it holds "
			 "the SQL of pending requests)", dir, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

/* After a restart: expire pending entries past due, or all of them when told to. */
static void restart_locked(struct approve *a, enum approve_on_restart how, struct events *ev)
{
	time_t now = time(NULL);

	a->n_pending = 0;
	for (struct entry *e = a->entries; e; e = e->next) {
		if (e->state != APPROVE_PENDING)
			continue;
		a->n_pending++;
		if (how == APPROVE_RESTART_FAIL)
			decide_locked(a, e, APPROVE_EXPIRED, "sluiced",
				      "sluiced restarted while the request was pending "
				      "(approvals are failed at restart by configuration); ask again",
				      now, 0, ev);
		else if (e->expires <= now)
			decide_locked(a, e, APPROVE_EXPIRED, "sluiced",
				      "expired while sluiced was not running", now, 0, ev);
	}
	prune_locked(a, now);
}

int approve_open(const struct approve_conf *conf, struct approve **out, char *err, size_t errlen)
{
	struct approve *a = calloc(1, sizeof(*a));
	struct events ev = { 0 };
	int rc = -ENOMEM, n = 0;

	*out = NULL;
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&a->mu, NULL);
	pthread_rwlock_init(&a->cb, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_cond_init(&a->flushed, NULL);
	a->jfd = -1;
	a->jq_tail = &a->jq;
	a->nq_tail = &a->nq;
	a->timeout_s = conf->timeout_s > 0 ? conf->timeout_s : APPROVE_DEFAULT_TIMEOUT_S;
	a->max_pending = conf->max_pending > 0 ? conf->max_pending : APPROVE_DEFAULT_MAX_PENDING;
	a->max_window_s = conf->max_window_s > 0 ? conf->max_window_s : APPROVE_DEFAULT_MAX_WINDOW_S;
	a->keep_s = conf->keep_s > 0 ? conf->keep_s : a->timeout_s;
	a->on_decision = conf->on_decision;
	a->on_decision_arg = conf->on_decision_arg;
	if (conf->notify_argv && conf->notify_argv[0]) {
		while (conf->notify_argv[n])
			n++;
		if (!(a->notify_argv = calloc((size_t)n + 1, sizeof(char *))))
			goto fail;
		for (int i = 0; i < n; i++)
			if (!(a->notify_argv[i] = strdup(conf->notify_argv[i])))
				goto fail;
		if (a->notify_argv[0][0] != '/') {
			snprintf(err, errlen, "notify: '%s' must be an absolute path (no shell, no PATH "
				 "search)", a->notify_argv[0]);
			rc = -EINVAL;
			goto fail_msg;
		}
	}
	if (conf->dir) {
		if (!(a->dir = strdup(conf->dir)) ||
		    asprintf(&a->jpath, "%s/%s", conf->dir, JOURNAL) < 0) {
			a->jpath = NULL;
			goto fail;
		}
		if ((rc = ensure_dir(a->dir, err, errlen)) || (rc = journal_load(a, err, errlen)))
			goto fail_msg;
		restart_locked(a, conf->on_restart, &ev);
		{
			size_t len;
			char *buf = snapshot_locked(a, &len);

			rc = buf ? journal_rewrite(a, buf, len) : -ENOMEM;
			free(buf);
		}
		if (rc) {
			snprintf(err, errlen, "%s: cannot write the approvals journal: %s", a->jpath,
				 strerror(-rc));
			goto fail_msg;
		}
		/* what restart_locked queued is in the snapshot */
		for (struct qline *q = a->jq, *nx; q; q = nx) {
			nx = q->next;
			free(q->text);
			free(q);
		}
		a->jq = NULL;
		a->jq_tail = &a->jq;
		a->seq_done = a->seq_queued;
		if (a->n_pending)
			log_info("approve", "%d pending approval(s) reloaded from %s", a->n_pending,
				 a->jpath);
	}
	if ((rc = pthread_create(&a->thread, NULL, store_main, a))) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		rc = -rc;
		goto fail_msg;
	}
	thread_name(a->thread, "sluiced-appr");
	a->started = 1;
	events_fire(a, &ev);
	*out = a;
	return 0;
fail:
	snprintf(err, errlen, "out of memory");
fail_msg:
	for (int i = 0; i < ev.n; i++)
		free(ev.v[i].item);
	free(ev.v);
	approve_close(a);
	return rc;
}

void approve_close(struct approve *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->mu);
		a->stop = 1;
		pthread_cond_signal(&a->wake);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	for (struct qline *q = a->jq, *n; q; q = n) {
		n = q->next;
		free(q->text);
		free(q);
	}
	for (struct qline *q = a->nq, *n; q; q = n) {
		n = q->next;
		free(q->text);
		free(q);
	}
	while (a->entries) {
		struct entry *e = a->entries;

		a->entries = e->next;
		entry_free(e);
	}
	if (a->jfd >= 0)
		close(a->jfd);
	if (a->notify_argv)
		for (char **p = a->notify_argv; *p; p++)
			free(*p);
	free(a->notify_argv);
	free(a->dir);
	free(a->jpath);
	pthread_mutex_destroy(&a->mu);
	pthread_rwlock_destroy(&a->cb);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->flushed);
	free(a);
}

/* A JSON array of strings, or NULL on out of memory. */
static json_t *str_array(const char *const *v, int n)
{
	json_t *arr = json_array();

	for (int i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_string(v[i] ? v[i] : ""))) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

int approve_request(struct approve *a, const struct approve_info *info, char *id_out,
		    size_t idlen)
{
	const char *alphabet = "abcdefghjkmnpqrstuvwxyz23456789"; /* no 0/o, 1/l/i */
	const char *identity = info->identity ? info->identity : "";
	struct events ev = { 0 };
	struct entry *e;
	time_t now = time(NULL);
	char *note;

	if (idlen < APPROVE_ID_LEN || info->n_statements < 0 || info->n_tables < 0 ||
	    info->timeout_s < 0)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	for (e = a->entries; e; e = e->next)
		if (e->state == APPROVE_PENDING && e->expires > now && !strcmp(e->identity, identity) &&
		    !memcmp(e->fp, info->fingerprint, APPROVE_FP_LEN)) {
			snprintf(id_out, idlen, "%s", e->id);
			pthread_mutex_unlock(&a->mu);
			return 1;
		}
	if (a->n_pending >= a->max_pending) {
		pthread_mutex_unlock(&a->mu);
		log_warn("approve", "request of %s refused: %d approvals already pending", identity,
			 a->max_pending);
		return -ENOSPC;
	}
	pthread_mutex_unlock(&a->mu);

	if (!(e = calloc(1, sizeof(*e))))
		return -ENOMEM;
	e->kind = info->kind;
	e->state = APPROVE_PENDING;
	e->container = xstrdup(info->container);
	e->identity = xstrdup(identity);
	e->project = xstrdup(info->project);
	e->method = xstrdup(info->method);
	e->sql = xstrdup(info->sql);
	e->rule = xstrdup(info->rule);
	e->why = xstrdup(info->reason);
	e->job_id = xstrdup(info->kind == APPROVE_JOB ? info->job_id : "");
	e->payload = xstrdup(info->payload ? info->payload : "");
	e->approver = xstrdup("");
	e->reason = xstrdup("");
	e->statements = str_array(info->statements, info->n_statements);
	e->tables = str_array(info->tables, info->n_tables);
	memcpy(e->fp, info->fingerprint, APPROVE_FP_LEN);
	e->created = now;
	e->expires = now + (info->timeout_s ? info->timeout_s : a->timeout_s);
	if (!e->container || !e->identity || !e->project || !e->method || !e->sql || !e->rule ||
	    !e->why || !e->job_id || !e->approver || !e->reason || !e->statements || !e->tables) {
		entry_free(e);
		return -ENOMEM;
	}

	pthread_mutex_lock(&a->mu);
	do
		random_chars(e->id, 6, alphabet);
	while (find(a, e->id));
	e->next = a->entries;
	a->entries = e;
	a->n_pending++;
	journal_locked(a, e);
	if (a->notify_argv && (note = entry_dump(e, NOTIFY_SQL_MAX))) {
		queue_line(&a->nq_tail, e->id, note);
		pthread_cond_signal(&a->wake);
	}
	event_add(&ev, e, 1);
	snprintf(id_out, idlen, "%s", e->id);
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	return 0;
}

int approve_state(struct approve *a, const char *id, struct approve_status *out)
{
	struct events ev = { 0 };
	struct entry *e;
	time_t now = time(NULL);

	pthread_mutex_lock(&a->mu);
	if (!(e = find(a, id))) {
		pthread_mutex_unlock(&a->mu);
		return -ENOENT;
	}
	if (e->state == APPROVE_PENDING && e->expires <= now)
		expire_locked(a, now, &ev);
	status_of(e, out);
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	return 0;
}

int approve_payload(struct approve *a, const char *id, char **out)
{
	struct entry *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&a->mu);
	e = find(a, id);
	if (e && e->payload) {
		*out = strdup(e->payload);
		rc = *out ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int approve_find_job(struct approve *a, const char *job_id, char *id_out, size_t idlen)
{
	int rc = -ENOENT;

	if (!job_id || !*job_id)
		return -ENOENT;
	pthread_mutex_lock(&a->mu);
	for (struct entry *e = a->entries; e; e = e->next)
		if (e->kind == APPROVE_JOB && !strcmp(e->job_id, job_id)) {
			snprintf(id_out, idlen, "%s", e->id);
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int approve_decide(struct approve *a, const char *id, int approved, const char *approver,
		   const char *reason, int64_t for_s, struct approve_status *out)
{
	struct events ev = { 0 };
	struct entry *e;
	time_t now = time(NULL);
	int rc = 0;

	if (!approver || !*approver || for_s < 0 || (!approved && for_s))
		return -EINVAL;
	if (for_s > a->max_window_s)
		return -ERANGE;
	pthread_mutex_lock(&a->mu);
	if (!(e = find(a, id))) {
		pthread_mutex_unlock(&a->mu);
		return -ENOENT;
	}
	if (e->state == APPROVE_PENDING && e->expires <= now)
		expire_locked(a, now, &ev);
	if (e->state != APPROVE_PENDING)
		rc = -EALREADY;
	else
		decide_locked(a, e, approved ? APPROVE_APPROVED : APPROVE_DENIED, approver, reason,
			      now, for_s ? now + for_s : 0, &ev);
	if (out)
		status_of(e, out);
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	return rc;
}

int approve_check_window(struct approve *a, const char *identity,
			 const unsigned char fp[APPROVE_FP_LEN], time_t now)
{
	int pass = 0;

	pthread_mutex_lock(&a->mu);
	for (struct entry *e = a->entries; e; e = e->next)
		if (e->state == APPROVE_APPROVED && e->window_until > now &&
		    !memcmp(e->fp, fp, APPROVE_FP_LEN) && !strcmp(e->identity, identity ? identity : "")) {
			pass = 1;
			break;
		}
	pthread_mutex_unlock(&a->mu);
	return pass;
}

int approve_consume(struct approve *a, const char *identity,
		    const unsigned char fp[APPROVE_FP_LEN])
{
	time_t now = time(NULL);
	int pass = 0;

	pthread_mutex_lock(&a->mu);
	for (struct entry *e = a->entries; e; e = e->next)
		if (e->kind == APPROVE_OP && e->state == APPROVE_APPROVED && !e->consumed &&
		    e->decided + a->timeout_s > now && !memcmp(e->fp, fp, APPROVE_FP_LEN) &&
		    !strcmp(e->identity, identity ? identity : "")) {
			e->consumed = 1;
			journal_locked(a, e);
			pass = 1;
			break;
		}
	pthread_mutex_unlock(&a->mu);
	return pass;
}

void approve_set_listener(struct approve *a, void (*fn)(void *arg, const char *id, int state),
			  void *arg)
{
	pthread_rwlock_wrlock(&a->cb);
	pthread_mutex_lock(&a->mu);
	a->listener = fn;
	a->listener_arg = arg;
	pthread_mutex_unlock(&a->mu);
	pthread_rwlock_unlock(&a->cb);
}

void approve_set_watcher(struct approve *a, void (*fn)(void *arg, const char *event,
						       const char *item_json), void *arg)
{
	pthread_rwlock_wrlock(&a->cb);
	pthread_mutex_lock(&a->mu);
	a->watcher = fn;
	a->watcher_arg = arg;
	pthread_mutex_unlock(&a->mu);
	pthread_rwlock_unlock(&a->cb);
}

int approve_expire_due(struct approve *a, time_t now)
{
	struct events ev = { 0 };
	int n;

	pthread_mutex_lock(&a->mu);
	n = expire_locked(a, now, &ev);
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	return n;
}

int approve_flush(struct approve *a)
{
	uint64_t target;
	int rc;

	pthread_mutex_lock(&a->mu);
	target = a->seq_queued;
	pthread_cond_signal(&a->wake);
	while (a->seq_done < target && a->started)
		pthread_cond_wait(&a->flushed, &a->mu);
	rc = a->jerr;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

char *approve_list_json(struct approve *a, int pending_only)
{
	json_t *arr = json_array();
	struct events ev = { 0 };
	char *s;

	if (!arr)
		return NULL;
	pthread_mutex_lock(&a->mu);
	expire_locked(a, time(NULL), &ev);
	for (int pass = 0; pass < 2; pass++) /* pending first, each newest first */
		for (struct entry *e = a->entries; e; e = e->next)
			if ((e->state == APPROVE_PENDING) == !pass && (!pending_only || !pass))
				json_array_append_new(arr, entry_json(e, 0));
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return s;
}

char *approve_show_json(struct approve *a, const char *id)
{
	struct events ev = { 0 };
	struct entry *e;
	char *s = NULL;

	pthread_mutex_lock(&a->mu);
	expire_locked(a, time(NULL), &ev);
	if ((e = find(a, id)))
		s = entry_dump(e, 0);
	pthread_mutex_unlock(&a->mu);
	events_fire(a, &ev);
	return s;
}

/* --- sluicectl: the approvers' commands ---------------------------------------------- */

/* A connection to sluiced's control socket. */
struct ctl_conn {
	int fd;
	FILE *in;
	const char *path;
};

/* Connect to <path>. Returns 0, or the exit status (1 refused, 2 I/O) with a message. */
static int ctl_open(struct ctl_conn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int err;

	c->path = path;
	c->in = NULL;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sluicectl: %s: socket path too long\n", path);
		return 2;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "sluicectl: socket: %s\n", strerror(errno));
		return 2;
	}
	if (!connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (!(c->in = fdopen(c->fd, "r"))) {
			close(c->fd);
			fprintf(stderr, "sluicectl: %s\n", strerror(errno));
			return 2;
		}
		return 0;
	}
	err = errno;
	close(c->fd);
	if (err == EACCES || err == EPERM) {
		char grp[32] = "";

		if (!stat(path, &st))
			snprintf(grp, sizeof(grp), " (gid %u)", (unsigned)st.st_gid);
		fprintf(stderr, "sluicectl: not authorized: cannot open %s: permission denied; uid %u "
			"is not an approver (approvers are root or in the socket's group%s: configure "
			"approvers.uids or approvers.groups)\n", path, (unsigned)getuid(), grp);
		return 1;
	}
	fprintf(stderr, "sluicectl: cannot reach sluiced at %s: %s (is sluiced running? another "
		"socket: --socket PATH)\n", path, strerror(err));
	return 2;
}

static void ctl_close(struct ctl_conn *c)
{
	if (c->in)
		fclose(c->in);
	else if (c->fd >= 0)
		close(c->fd);
	c->in = NULL;
	c->fd = -1;
}

/* Send one request line. 0 or exit status 2. */
static int ctl_send(struct ctl_conn *c, json_t *req)
{
	char *s = json_dumps(req, JSON_COMPACT);
	size_t len = s ? strlen(s) : 0;
	int rc = 0;

	if (!s)
		return 2;
	s[len] = '\n'; /* the NUL: one send */
	for (size_t off = 0; off < len + 1;) {
		ssize_t n = send(c->fd, s + off, len + 1 - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) { /* sluiced may have answered and closed: the answer is read next */
			rc = errno == EPIPE ? 0 : 2;
			if (rc)
				fprintf(stderr, "sluicectl: %s: %s\n", c->path, strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	free(s);
	return rc;
}

/* Read one answer line: the object, or NULL at end of stream or on garbage (<eof> says). */
static json_t *ctl_recv(struct ctl_conn *c, int *eof)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, c->in);
	json_t *o = NULL;

	*eof = n <= 0;
	if (n > 0)
		o = json_loadb(line, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL);
	free(line);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* Exit status for a refusal, printing its message. */
static int ctl_refused(json_t *resp)
{
	const char *code = jstr(resp, "code"), *msg = jstr(resp, "error");

	fprintf(stderr, "sluicectl: %s\n", *msg ? msg : "refused");
	return !strcmp(code, "bad_request") ? 2 : 1;
}

/* One request, one answer: 0 with *resp when ok, else the exit status. */
static int ctl_call(const char *path, json_t *req, json_t **resp)
{
	struct ctl_conn c;
	int rc, eof;

	*resp = NULL;
	if ((rc = ctl_open(&c, path)))
		goto out;
	if ((rc = ctl_send(&c, req)))
		goto out;
	if (!(*resp = ctl_recv(&c, &eof))) {
		fprintf(stderr, "sluicectl: %s: %s\n", path,
			eof ? "sluiced closed the connection without answering" : "unreadable answer");
		rc = 2;
	} else if (!json_is_true(json_object_get(*resp, "ok"))) {
		rc = ctl_refused(*resp);
		json_decref(*resp);
		*resp = NULL;
	}
out:
	ctl_close(&c);
	json_decref(req);
	return rc;
}

/* "42s", "3m12s", "2h5m", "3d". */
static void fmt_age(int64_t s, char *out, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(out, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(out, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(out, len, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

static void fmt_time(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t || !localtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, len, "-");
}

/* <s> on one line: whitespace runs become one space, cut to <max> characters with "...". */
static void shorten(const char *s, size_t max, char *out, size_t len)
{
	size_t n = 0;
	int space = 0;

	for (; *s && n + 1 < len; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < len)
			out[n++] = ' ';
		space = 0;
		out[n++] = *s;
	}
	out[n] = '\0';
	if (max >= 4 && n > max)
		strcpy(out + max - 3, "...");
}

/* The strings of array <a> joined with ",". */
static void joined(json_t *arr, char *out, size_t len)
{
	size_t i, n = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(arr, i, v) {
		int w = snprintf(out + n, len - n, "%s%s", i ? "," : "", json_string_value(v) ?
				 json_string_value(v) : "");

		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
}

enum { COL_ID, COL_AGE, COL_CONTAINER, COL_IDENTITY, COL_PROJECT, COL_KINDS, COL_TABLES,
       COL_SQL, COL_WHY, NCOLS };

/* The cells of one row of `sluicectl approvals`. */
static void row_cells(json_t *it, char cells[NCOLS][256], time_t now)
{
	static const size_t caps[NCOLS] = { 8, 8, 32, 24, 24, 24, 40, 48, 60 };
	char tmp[1024];

	snprintf(cells[COL_ID], 256, "%s", jstr(it, "id"));
	fmt_age(now - json_integer_value(json_object_get(it, "created_at")), cells[COL_AGE], 256);
	shorten(jstr(it, "container"), caps[COL_CONTAINER], cells[COL_CONTAINER], 256);
	shorten(jstr(it, "identity"), caps[COL_IDENTITY], cells[COL_IDENTITY], 256);
	shorten(jstr(it, "project"), caps[COL_PROJECT], cells[COL_PROJECT], 256);
	joined(json_object_get(it, "statements"), tmp, sizeof(tmp));
	if (!*tmp)
		snprintf(tmp, sizeof(tmp), "%s", jstr(it, "method"));
	shorten(tmp, caps[COL_KINDS], cells[COL_KINDS], 256);
	joined(json_object_get(it, "tables"), tmp, sizeof(tmp));
	shorten(tmp, caps[COL_TABLES], cells[COL_TABLES], 256);
	shorten(jstr(it, "sql"), caps[COL_SQL], cells[COL_SQL], 256);
	snprintf(tmp, sizeof(tmp), "%s: %s", jstr(it, "rule"), jstr(it, "rule_reason"));
	shorten(tmp, caps[COL_WHY], cells[COL_WHY], 256);
}

/* The pending approvals as a table. */
static void print_table(json_t *items)
{
	static const char *const heads[NCOLS] = { "ID", "AGE", "CONTAINER", "IDENTITY", "PROJECT",
						  "STATEMENTS", "TABLES", "SQL", "WHY" };
	size_t n = json_array_size(items), w[NCOLS], i;
	char (*cells)[NCOLS][256] = calloc(n ? n : 1, sizeof(*cells));
	time_t now = time(NULL);

	if (!cells)
		return;
	if (!n) {
		printf("no pending approvals\n");
		free(cells);
		return;
	}
	for (int c = 0; c < NCOLS; c++)
		w[c] = strlen(heads[c]);
	for (i = 0; i < n; i++) {
		row_cells(json_array_get(items, i), cells[i], now);
		for (int c = 0; c < NCOLS; c++)
			if (strlen(cells[i][c]) > w[c])
				w[c] = strlen(cells[i][c]);
	}
	for (int c = 0; c < NCOLS; c++)
		printf("%-*s%s", c == NCOLS - 1 ? 0 : (int)w[c], heads[c], c == NCOLS - 1 ? "\n" : "  ");
	for (i = 0; i < n; i++)
		for (int c = 0; c < NCOLS; c++)
			printf("%-*s%s", c == NCOLS - 1 ? 0 : (int)w[c], cells[i][c],
			       c == NCOLS - 1 ? "\n" : "  ");
	free(cells);
}

/* One approval in full, for a person. */
static void print_item(json_t *it)
{
	char t[64], age[32], list[4096];
	time_t now = time(NULL);
	const char *state = jstr(it, "state");
	int64_t created = json_integer_value(json_object_get(it, "created_at"));
	int64_t expires = json_integer_value(json_object_get(it, "expires_at"));
	int64_t window = json_integer_value(json_object_get(it, "window_until"));
	const char *sql = jstr(it, "sql");

	printf("id:          %s\n", jstr(it, "id"));
	if (!strcmp(state, "pending")) {
		fmt_age(expires - now, age, sizeof(age));
		printf("state:       pending (expires in %s)\n", age);
	} else {
		fmt_time(json_integer_value(json_object_get(it, "decided_at")), t, sizeof(t));
		printf("state:       %s by %s at %s\n", state, jstr(it, "approver"), t);
		if (*jstr(it, "reason"))
			printf("reason:      %s\n", jstr(it, "reason"));
		if (window) {
			fmt_time(window, t, sizeof(t));
			printf("window:      identical requests of this identity pass until %s\n", t);
		}
		if (json_is_true(json_object_get(it, "consumed")))
			printf("consumed:    the approved retry has passed\n");
	}
	fmt_time(created, t, sizeof(t));
	fmt_age(now - created, age, sizeof(age));
	printf("requested:   %s (%s ago)\n", t, age);
	if (!strcmp(jstr(it, "kind"), "job"))
		printf("kind:        query job %s (answered when the agent polls it)\n", jstr(it, "job_id"));
	else
		printf("kind:        operation (an identical retry after approval passes once)\n");
	printf("container:   %s\n", jstr(it, "container"));
	printf("identity:    %s\n", jstr(it, "identity"));
	printf("project:     %s\n", jstr(it, "project"));
	printf("method:      %s\n", jstr(it, "method"));
	joined(json_object_get(it, "statements"), list, sizeof(list));
	printf("statements:  %s\n", *list ? list : "-");
	joined(json_object_get(it, "tables"), list, sizeof(list));
	printf("tables:      %s\n", *list ? list : "-");
	printf("why:         rule '%s': %s\n", jstr(it, "rule"), jstr(it, "rule_reason"));
	printf("fingerprint: %s\n", jstr(it, "fingerprint"));
	if (*sql) {
		printf("sql:\n    ");
		for (const char *p = sql; *p; p++) {
			putchar(*p);
			if (*p == '\n' && p[1])
				fputs("    ", stdout);
		}
		putchar('\n');
	}
}

/* One watch event, for a person. */
static void print_event(json_t *ev)
{
	json_t *it = json_object_get(ev, "item");
	char t[64], sql[128], list[512];

	fmt_time(time(NULL), t, sizeof(t));
	if (!strcmp(jstr(ev, "event"), "pending")) {
		joined(json_object_get(it, "statements"), list, sizeof(list));
		shorten(jstr(it, "sql"), 80, sql, sizeof(sql));
		printf("%s  pending   %s  %s in %s, project %s: %s %s (rule %s)\n", t, jstr(it, "id"),
		       jstr(it, "identity"), jstr(it, "container"), jstr(it, "project"), list, sql,
		       jstr(it, "rule"));
	} else {
		printf("%s  %-8s  %s  by %s%s%s\n", t, jstr(it, "state"), jstr(it, "id"),
		       jstr(it, "approver"), *jstr(it, "reason") ? ": " : "", jstr(it, "reason"));
	}
	fflush(stdout);
}

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2));

	if (s)
		puts(s);
	free(s);
}

static const char *default_socket(void)
{
	const char *s = getenv("SLUICE_SOCKET");

	return s && *s ? s : DEFAULT_SOCKET;
}

static void list_usage(FILE *out)
{
	fprintf(out, "usage: sluicectl approvals [--watch] [--json] [--socket PATH]\n"
		     "Lists the requests waiting for an approver; --watch keeps printing new ones\n"
		     "and decisions as they happen.\n");
}

int approve_cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", no_argument, NULL, 'w' }, { "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = default_socket();
	int opt, watch = 0, json = 0, rc, eof;
	struct ctl_conn c;
	json_t *resp;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w': watch = 1; break;
		case 'j': json = 1; break;
		case 's': path = optarg; break;
		case 'h': list_usage(stdout); return 0;
		default: list_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluicectl approvals: unexpected argument '%s'\n", argv[optind]);
		list_usage(stderr);
		return 2;
	}
	if (!watch) {
		if ((rc = ctl_call(path, json_pack("{s:s}", "op", "list"), &resp)))
			return rc;
		if (json)
			print_json(json_object_get(resp, "items"));
		else
			print_table(json_object_get(resp, "items"));
		json_decref(resp);
		return 0;
	}
	if ((rc = ctl_open(&c, path)))
		return rc;
	resp = json_pack("{s:s}", "op", "watch");
	rc = ctl_send(&c, resp);
	json_decref(resp);
	for (int first = 1; !rc; first = 0) {
		json_t *o = ctl_recv(&c, &eof);

		if (!o) {
			fprintf(stderr, "sluicectl: %s: %s\n", path, eof ? "sluiced closed the connection"
			       : "unreadable answer");
			rc = 2;
			break;
		}
		if (first && !json_is_true(json_object_get(o, "ok"))) {
			rc = ctl_refused(o);
		} else if (json) {
			char *s = json_dumps(o, JSON_COMPACT);

			if (s)
				puts(s);
			free(s);
			fflush(stdout);
		} else if (first) {
			print_table(json_object_get(o, "items"));
			printf("-- watching for new requests and decisions (Ctrl-C to stop)\n");
			fflush(stdout);
		} else {
			print_event(o);
		}
		json_decref(o);
	}
	ctl_close(&c);
	return rc;
}

static void show_usage(FILE *out)
{
	fprintf(out, "usage: sluicectl show ID [--json] [--socket PATH]\n"
		     "Shows one approval in full: the request, its SQL, why it waits, its state.\n");
}

int approve_cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *path = default_socket();
	int opt, json = 0, rc;
	json_t *resp;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = 1; break;
		case 's': path = optarg; break;
		case 'h': show_usage(stdout); return 0;
		default: show_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "sluicectl show: %s\n", argc == optind ? "the approval ID is required"
			: "one ID only");
		show_usage(stderr);
		return 2;
	}
	if ((rc = ctl_call(path, json_pack("{s:s, s:s}", "op", "show", "id", argv[optind]), &resp)))
		return rc;
	if (json)
		print_json(json_object_get(resp, "item"));
	else
		print_item(json_object_get(resp, "item"));
	json_decref(resp);
	return 0;
}

static void decide_usage(FILE *out, int approving)
{
	if (approving)
		fprintf(out, "usage: sluicectl approve ID [--reason R] [--for DURATION] [--socket PATH]\n"
			     "Lets the request run. --for 30m (90s, 2h, 1d) also lets identical\n"
			     "requests of the same identity pass until then.\n");
	else
		fprintf(out, "usage: sluicectl deny ID --reason R [--socket PATH]\n"
			     "Refuses the request; the agent is told the reason.\n");
}

/* sluicectl approve and deny. */
static int decide_cmd(int argc, char **argv, int approving)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' }, { "for", required_argument, NULL, 'f' },
		{ "socket", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = default_socket(), *reason = NULL, *cmd = approving ? "approve" : "deny";
	int opt, rc;
	int64_t for_s = 0;
	json_t *req, *resp, *it;
	char t[64];

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': reason = optarg; break;
		case 's': path = optarg; break;
		case 'f':
			if (!approving) {
				fprintf(stderr, "sluicectl deny: --for only applies to approve\n");
				return 2;
			}
			if ((for_s = approve_parse_duration(optarg)) <= 0) {
				fprintf(stderr, "sluicectl approve: --for '%s': not a duration "
					"(e.g. 90s, 30m, 2h, 1d)\n", optarg);
				return 2;
			}
			break;
		case 'h': decide_usage(stdout, approving); return 0;
		default: decide_usage(stderr, approving); return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "sluicectl %s: %s\n", cmd, argc == optind ? "the approval ID is required"
			: "one ID only");
		decide_usage(stderr, approving);
		return 2;
	}
	if (!approving && (!reason || !*reason)) {
		fprintf(stderr, "sluicectl deny: --reason is required (the agent is told why)\n");
		decide_usage(stderr, 0);
		return 2;
	}
	req = json_pack("{s:s, s:s, s:s}", "op", cmd, "id", argv[optind], "reason", reason ? reason : "");
	if (for_s)
		json_object_set_new(req, "for_s", json_integer(for_s));
	if ((rc = ctl_call(path, req, &resp)))
		return rc;
	it = json_object_get(resp, "item");
	printf("%s %s (%s in %s)", approving ? "approved" : "denied", jstr(it, "id"),
	       jstr(it, "identity"), jstr(it, "container"));
	if (json_integer_value(json_object_get(it, "window_until"))) {
		fmt_time(json_integer_value(json_object_get(it, "window_until")), t, sizeof(t));
		printf("; identical requests pass until %s", t);
	}
	printf("\n");
	json_decref(resp);
	return 0;
}

int approve_cmd_approve(int argc, char **argv)
{
	return decide_cmd(argc, argv, 1);
}

int approve_cmd_deny(int argc, char **argv)
{
	return decide_cmd(argc, argv, 0);
}
