/* ctlsock.c - sluiced's control socket: a thread serving approvers, one JSON line per
 * request and per answer, each connection authorized by its peer's credentials and cgroup. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlsock.h"
#include "log.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define MAX_CLIENTS 64
#define MAX_LINE (64 << 10)        /* a request line */
#define MAX_OUT (16 << 20)         /* answers and events not yet read by a slow watcher */

/* One approver's connection. */
struct client {
	int fd;
	pid_t pid;
	uid_t uid;
	char cgroup[512];
	char user[64];
	char approver[128];          /* "alice (uid 1000)" */
	int authorized;
	char refusal[1536];          /* why not */
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	int watching, closing;       /* closing: 1 after the answers are sent, 2 now */
	time_t accepted;
};

/* An event line for the watchers. */
struct evline {
	struct evline *next;
	char *line;
};

struct ctlsock {
	pthread_mutex_t mu;          /* conf and events */
	char *path;
	ino_t ino;                   /* the socket we bound, so we only ever unlink ours */
	int lfd, wake[2];
	pthread_t thread;
	int started, stop;
	struct approve *a;

	uid_t uids[CTLSOCK_MAX_LIST];
	int n_uids;
	char *groups[CTLSOCK_MAX_LIST];
	int n_groups;
	char *enforced[CTLSOCK_MAX_LIST];
	int n_enforced;

	struct evline *events, **events_tail;
	struct client *clients[MAX_CLIENTS];
	int n_clients;
};

int ctlsock_cgroup_within(const char *path, const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}

int ctlsock_cgroup_of(pid_t pid, char *out, size_t len)
{
	char p[64], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc = -ENOENT;

	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	if (!(f = fopen(p, "re")))
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (strncmp(line, "0::", 3))
			continue;
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if ((size_t)n - 3 >= len) {
			rc = -ENAMETOOLONG;
			break;
		}
		memcpy(out, line + 3, (size_t)n - 2);
		rc = 0;
		break;
	}
	free(line);
	fclose(f);
	return rc;
}

/* The gid a configured group names (a name or a number), or -1. */
static long group_gid(const char *g)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	long v;

	v = strtol(g, &end, 10);
	if (*g && !*end && v >= 0)
		return v;
	if (getgrnam_r(g, &gr, buf, sizeof(buf), &res) || !res)
		return -1;
	return (long)res->gr_gid;
}

/* Is the peer an approver (lock held)? Its uid, primary gid or supplementary groups. */
static int approver_ok(struct ctlsock *s, int fd, const struct ucred *cr)
{
	gid_t groups[256];
	socklen_t glen = sizeof(groups);
	int ng;

	for (int i = 0; i < s->n_uids; i++)
		if (s->uids[i] == cr->uid)
			return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen))
		glen = 0;
	ng = (int)(glen / sizeof(gid_t));
	for (int i = 0; i < s->n_groups; i++) {
		long gid = group_gid(s->groups[i]);

		if (gid < 0)
			continue;
		if ((gid_t)gid == cr->gid)
			return 1;
		for (int k = 0; k < ng; k++)
			if (groups[k] == (gid_t)gid)
				return 1;
	}
	return 0;
}

/* Decide whether connection <c> may speak to us at all: a live peer outside every enforced
 * cgroup, with an approver's uid or group. Sets c->authorized or c->refusal. */
static void authorize(struct ctlsock *s, struct client *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct passwd pw, *res = NULL;
	char buf[4096];
	int pidfd = -1, rc;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.pid <= 0) {
		snprintf(c->refusal, sizeof(c->refusal), "not authorized: the peer's credentials are "
			 "unknown");
		return;
	}
	c->pid = cr.pid;
	c->uid = cr.uid;
	if (!getpwuid_r(cr.uid, &pw, buf, sizeof(buf), &res) && res)
		snprintf(c->user, sizeof(c->user), "%s", res->pw_name);
	else
		snprintf(c->user, sizeof(c->user), "uid%u", (unsigned)cr.uid);
	snprintf(c->approver, sizeof(c->approver), "%s (uid %u)", c->user, (unsigned)cr.uid);

	/* A pidfd pins the peer: if it is still alive after its cgroup was read, the pid was
	 * not reused by another process in between. */
	len = sizeof(pidfd);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len))
		pidfd = -1;
	rc = ctlsock_cgroup_of(cr.pid, c->cgroup, sizeof(c->cgroup));
	if (!rc && pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0))
		rc = -ESRCH;
	if (pidfd >= 0)
		close(pidfd);
	if (rc) {
		snprintf(c->refusal, sizeof(c->refusal), "not authorized: cannot read the cgroup of "
			 "pid %d: %s", (int)cr.pid, strerror(-rc));
		return;
	}
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_enforced; i++)
		if (ctlsock_cgroup_within(c->cgroup, s->enforced[i])) {
			snprintf(c->refusal, sizeof(c->refusal), "not authorized: pid %d runs in "
				 "enforced cgroup %s (under %s); processes sluice enforces can never "
				 "approve, whatever their uid", (int)cr.pid, c->cgroup, s->enforced[i]);
			pthread_mutex_unlock(&s->mu);
			return;
		}
	if (approver_ok(s, c->fd, &cr)) {
		c->authorized = 1;
	} else {
		char groups[256] = "";
		size_t n = 0;

		for (int i = 0; i < s->n_groups && n < sizeof(groups); i++)
			n += (size_t)snprintf(groups + n, sizeof(groups) - n, "%s%s", i ? " or " : "",
					      s->groups[i]);
		snprintf(c->refusal, sizeof(c->refusal), "not authorized: uid %u (%s) is not an "
			 "approver (configure approvers.uids or %s%s)", (unsigned)cr.uid, c->user,
			 s->n_groups ? "add the user to group " : "approvers.groups", groups);
	}
	pthread_mutex_unlock(&s->mu);
}

/* --- output -------------------------------------------------------------------------- */

/* Queue <line> and a newline for <c>; a watcher too slow to read is dropped. */
static void client_put(struct client *c, const char *line)
{
	size_t n = strlen(line);

	if (c->out_len + n + 1 > MAX_OUT) {
		log_warn("ctlsock", "pid %d does not read its answers; disconnected", (int)c->pid);
		c->closing = 2;
		return;
	}
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = (c->out_len + n + 1) * 2;
		char *p = realloc(c->out, cap);

		if (!p) {
			c->closing = 2;
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
}

static void client_put_json(struct client *c, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s)
		client_put(c, s);
	else
		c->closing = 2;
	free(s);
	json_decref(o);
}

static void refuse(struct client *c, const char *code, const char *msg)
{
	client_put_json(c, json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg));
}

/* {"ok":true, <key>: <raw JSON>} */
static void answer_raw(struct client *c, const char *key, char *raw)
{
	json_t *v = raw ? json_loads(raw, 0, NULL) : NULL;

	free(raw);
	if (!v) {
		refuse(c, "bad_request", "out of memory");
		return;
	}
	client_put_json(c, json_pack("{s:b, s:o}", "ok", 1, key, v));
}

/* --- requests ------------------------------------------------------------------------ */

/* Is this approver the requester? Same cgroup (or below it), or the same identity. */
static int self_request(const struct client *c, const struct approve_status *st)
{
	char uid[32];

	snprintf(uid, sizeof(uid), "uid:%u", (unsigned)c->uid);
	return (*st->container && ctlsock_cgroup_within(c->cgroup, st->container)) ||
	       !strcmp(st->identity, c->user) || !strcmp(st->identity, uid);
}

/* approve / deny. */
static void do_decide(struct ctlsock *s, struct client *c, json_t *req, int approved)
{
	const char *id = json_string_value(json_object_get(req, "id"));
	const char *reason = json_string_value(json_object_get(req, "reason"));
	json_t *jfor = json_object_get(req, "for_s");
	json_int_t for_s = json_integer_value(jfor);
	struct approve_status st;
	char msg[1024], when[64];
	int rc;

	if (!id || (jfor && (!json_is_integer(jfor) || for_s < 0))) {
		refuse(c, "bad_request", "expected {\"op\":..., \"id\": ID, \"reason\": TEXT, "
		       "\"for_s\": SECONDS}");
		return;
	}
	if (!approved && (!reason || !*reason)) {
		refuse(c, "bad_request", "a denial needs a reason (the agent is told it)");
		return;
	}
	if (!approved && for_s) {
		refuse(c, "bad_request", "for_s only applies to approvals");
		return;
	}
	if (approve_state(s->a, id, &st)) {
		snprintf(msg, sizeof(msg), "no approval '%s' (decided approvals are forgotten after a "
			 "while: see the log or the recording)", id);
		refuse(c, "not_found", msg);
		return;
	}
	if (self_request(c, &st)) {
		snprintf(msg, sizeof(msg), "not authorized: %s cannot decide approval %s: it was "
			 "requested from your own cgroup or identity (%s, %s)", c->approver, st.id,
			 st.container, st.identity);
		log_warn("ctlsock", "%s (pid %d, cgroup %s) refused: own request %s", c->approver,
			 (int)c->pid, c->cgroup, st.id);
		refuse(c, "self", msg);
		return;
	}
	rc = approve_decide(s->a, id, approved, c->approver, reason, for_s, &st);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		snprintf(msg, sizeof(msg), "no approval '%s'", id);
		refuse(c, "not_found", msg);
		return;
	case -EALREADY:
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
			 localtime_r(&(time_t){ (time_t)st.decided_at }, &(struct tm){ 0 }));
		snprintf(msg, sizeof(msg), "approval %s is already %s (by %s at %s%s%s)", st.id,
			 approve_state_name((int)st.state), st.approver, when,
			 *st.reason ? ": " : "", st.reason);
		refuse(c, "already_decided", msg);
		return;
	case -ERANGE:
		refuse(c, "bad_request", "for_s is longer than the longest window allowed "
		       "(approvals.max_window)");
		return;
	default:
		snprintf(msg, sizeof(msg), "cannot decide %s: %s", id, strerror(-rc));
		refuse(c, "bad_request", msg);
		return;
	}
	log_info("ctlsock", "%s (pid %d, cgroup %s) %s approval %s%s", c->approver, (int)c->pid,
		 c->cgroup, approved ? "approved" : "denied", st.id, for_s ? " with a window" : "");
	if ((rc = approve_flush(s->a)))
		log_err("ctlsock", "decision on %s is not in the journal: %s", st.id, strerror(-rc));
	answer_raw(c, "item", approve_show_json(s->a, st.id));
}

/* One request line from <c>. */
static void handle_line(struct ctlsock *s, struct client *c, const char *line, size_t len)
{
	json_t *req = json_loadb(line, len, 0, NULL);
	const char *op = json_string_value(json_object_get(req, "op"));

	if (!c->authorized) {
		log_warn("ctlsock", "refused pid %d uid %u (cgroup %s): %s", (int)c->pid,
			 (unsigned)c->uid, c->cgroup, c->refusal);
		refuse(c, "unauthorized", c->refusal);
		c->closing = 1;
	} else if (!json_is_object(req) || !op) {
		refuse(c, "bad_request", "expected one JSON object per line, with \"op\"");
	} else if (!strcmp(op, "list")) {
		answer_raw(c, "items", approve_list_json(s->a, !json_is_true(json_object_get(req, "all"))));
	} else if (!strcmp(op, "show")) {
		const char *id = json_string_value(json_object_get(req, "id"));
		char *item = id ? approve_show_json(s->a, id) : NULL;
		char msg[256];

		if (item) {
			answer_raw(c, "item", item);
		} else {
			snprintf(msg, sizeof(msg), "no approval '%s'", id ? id : "");
			refuse(c, id ? "not_found" : "bad_request", id ? msg : "show needs an \"id\"");
		}
	} else if (!strcmp(op, "approve") || !strcmp(op, "deny")) {
		do_decide(s, c, req, !strcmp(op, "approve"));
	} else if (!strcmp(op, "watch")) {
		c->watching = 1; /* before the list: an event in between is seen twice, not lost */
		answer_raw(c, "items", approve_list_json(s->a, 1));
	} else {
		refuse(c, "bad_request", "unknown op (list, show, approve, deny, watch)");
	}
	json_decref(req);
}

/* Read what <c> sent and handle each complete line. */
static void client_read(struct ctlsock *s, struct client *c)
{
	char buf[8192];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->closing = 2;
		return;
	}
	if (n < 0)
		return;
	if (c->in_len + (size_t)n > MAX_LINE) {
		refuse(c, "bad_request", "request line too long");
		c->closing = 1;
		return;
	}
	if (!c->in && !(c->in = malloc(MAX_LINE))) {
		c->closing = 2;
		return;
	}
	memcpy(c->in + c->in_len, buf, (size_t)n);
	c->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->in, '\n', c->in_len);
		size_t l;

		if (!nl || c->closing)
			break;
		l = (size_t)(nl - c->in);
		handle_line(s, c, c->in, l);
		memmove(c->in, nl + 1, c->in_len - l - 1);
		c->in_len -= l + 1;
	}
}

/* Send what is queued for <c>. */
static void client_write(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				c->closing = 2;
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

static void client_free(struct client *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* The store's watcher: queue the event for our thread (never blocks). */
static void on_event(void *arg, const char *event, const char *item)
{
	struct ctlsock *s = arg;
	struct evline *e = calloc(1, sizeof(*e));

	if (!e || asprintf(&e->line, "{\"event\":\"%s\",\"item\":%s}", event, item) < 0) {
		free(e);
		return;
	}
	pthread_mutex_lock(&s->mu);
	*s->events_tail = e;
	s->events_tail = &e->next;
	pthread_mutex_unlock(&s->mu);
	if (write(s->wake[1], "", 1) < 0 && errno != EAGAIN)
		log_warn("ctlsock", "wake: %s", strerror(errno));
}

static int unauthorized(const struct ctlsock *s)
{
	int n = 0;

	for (int i = 0; i < s->n_clients; i++)
		n += !s->clients[i]->authorized;
	return n;
}

static void accept_clients(struct ctlsock *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;

		if (fd < 0)
			return;
		if (s->n_clients == MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			log_warn("ctlsock", "too many control connections; one refused");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->accepted = time(NULL);
		authorize(s, c);
		/* peers that will only be told no (an agent, say) share a quarter of the slots,
		 * so that they cannot keep approvers out */
		if (!c->authorized && unauthorized(s) >= MAX_CLIENTS / 4) {
			log_warn("ctlsock", "refused pid %d uid %u (cgroup %s) at once: too many "
				 "unauthorized control connections", (int)c->pid, (unsigned)c->uid,
				 c->cgroup);
			close(fd);
			free(c);
			continue;
		}
		s->clients[s->n_clients++] = c;
	}
}

static void *server_main(void *arg)
{
	struct ctlsock *s = arg;
	struct pollfd pfd[MAX_CLIENTS + 2];

	for (;;) {
		struct evline *ev;
		int n = 0;

		pthread_mutex_lock(&s->mu);
		ev = s->events;
		s->events = NULL;
		s->events_tail = &s->events;
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			while (ev) {
				struct evline *nx = ev->next;

				free(ev->line);
				free(ev);
				ev = nx;
			}
			break;
		}
		pthread_mutex_unlock(&s->mu);
		while (ev) {
			struct evline *nx = ev->next;

			for (int i = 0; i < s->n_clients; i++)
				if (s->clients[i]->watching && !s->clients[i]->closing)
					client_put(s->clients[i], ev->line);
			free(ev->line);
			free(ev);
			ev = nx;
		}
		for (int i = 0; i < s->n_clients;) { /* send, and drop those done */
			struct client *c = s->clients[i];

			if (c->out_len && c->closing < 2)
				client_write(c);
			if (!c->authorized && time(NULL) - c->accepted > 10)
				c->closing = 2; /* refused peers do not get to hold a slot */
			if (c->closing == 2 || (c->closing == 1 && !c->out_len)) {
				client_free(c);
				s->clients[i] = s->clients[--s->n_clients];
				continue;
			}
			i++;
		}
		pfd[n++] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (int i = 0; i < s->n_clients; i++)
			pfd[n++] = (struct pollfd){ .fd = s->clients[i]->fd,
				.events = (short)((s->clients[i]->closing ? 0 : POLLIN) |
						  (s->clients[i]->out_len ? POLLOUT : 0)) };
		if (poll(pfd, (nfds_t)n, 1000) < 0)
			continue;
		if (pfd[0].revents) {
			char drain[256];

			while (read(s->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		for (int i = 0; i < s->n_clients; i++) {
			short re = pfd[i + 2].revents;

			if (!s->clients[i]->closing && (re & (POLLIN | POLLHUP | POLLERR)))
				client_read(s, s->clients[i]);
		}
		if (pfd[1].revents)
			accept_clients(s);
	}
	return NULL;
}

/* --- start and stop ------------------------------------------------------------------ */

/* Copy the approvers and enforced cgroups of <conf> (lock held). */
static int take_conf(struct ctlsock *s, const struct ctlsock_conf *conf)
{
	char *groups[CTLSOCK_MAX_LIST] = { 0 }, *enforced[CTLSOCK_MAX_LIST] = { 0 };
	int ng = conf->n_groups < CTLSOCK_MAX_LIST ? conf->n_groups : CTLSOCK_MAX_LIST;
	int ne = conf->n_enforced < CTLSOCK_MAX_LIST ? conf->n_enforced : CTLSOCK_MAX_LIST;
	int nu = conf->n_uids < CTLSOCK_MAX_LIST ? conf->n_uids : CTLSOCK_MAX_LIST;

	for (int i = 0; i < ng; i++)
		if (!(groups[i] = strdup(conf->groups[i])))
			goto fail;
	for (int i = 0; i < ne; i++)
		if (!(enforced[i] = strdup(conf->enforced[i])))
			goto fail;
	for (int i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	for (int i = 0; i < s->n_enforced; i++)
		free(s->enforced[i]);
	memcpy(s->groups, groups, sizeof(groups));
	memcpy(s->enforced, enforced, sizeof(enforced));
	memcpy(s->uids, conf->uids, (size_t)nu * sizeof(uid_t));
	s->n_groups = ng;
	s->n_enforced = ne;
	s->n_uids = nu;
	return 0;
fail:
	for (int i = 0; i < CTLSOCK_MAX_LIST; i++) {
		free(groups[i]);
		free(enforced[i]);
	}
	return -ENOMEM;
}

int ctlsock_reconfigure(struct ctlsock *s, const struct ctlsock_conf *conf)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = take_conf(s, conf);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* The first configured group that exists: the socket's and its directory's group. */
static long socket_gid(struct ctlsock *s)
{
	for (int i = 0; i < s->n_groups; i++) {
		long g = group_gid(s->groups[i]);

		if (g >= 0)
			return g;
	}
	return -1;
}

/* The socket's directory: created 0750, or an existing one of ours not world-writable. */
static int prepare_dir(const char *dir, long gid, char *err, size_t errlen)
{
	struct stat st;

	if (!mkdir(dir, 0750)) {
		if (chmod(dir, 0750) || (gid >= 0 && chown(dir, (uid_t)-1, (gid_t)gid))) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(err, errlen, "control socket directory %s: cannot create: %s", dir,
			 strerror(errno));
		return -errno;
	}
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "control socket directory %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "control socket directory %s is owned by uid %u, not by sluiced "
			 "(uid %u): refusing to listen there", dir, (unsigned)st.st_uid,
			 (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "control socket directory %s is world-writable: refusing to "
			 "listen there (anyone could replace the socket); use a directory of its own, "
			 "mode 0750", dir);
		return -EPERM;
	}
	return 0;
}

/* A leftover socket from a previous run is removed; a live one means another sluiced. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, live;

	if (lstat(path, &st))
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live = fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (fd >= 0)
		close(fd);
	if (live) {
		snprintf(err, errlen, "%s: another sluiced is listening there", path);
		return -EADDRINUSE;
	}
	unlink(path);
	return 0;
}

int ctlsock_start(const struct ctlsock_conf *conf, struct approve *a, struct ctlsock **out,
		  char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctlsock *s;
	struct stat st;
	char *dcopy = NULL;
	long gid;
	int rc;

	*out = NULL;
	if (!conf->path || conf->path[0] != '/' || strlen(conf->path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control_socket: must be an absolute path shorter than %zu "
			 "bytes", sizeof(sa.sun_path));
		return -EINVAL;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return snprintf(err, errlen, "out of memory"), -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = s->wake[0] = s->wake[1] = -1;
	s->a = a;
	s->events_tail = &s->events;
	if (!(s->path = strdup(conf->path)) || !(dcopy = strdup(conf->path)) ||
	    take_conf(s, conf)) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	gid = socket_gid(s);
	if ((rc = prepare_dir(dirname(dcopy), gid, err, errlen)) ||
	    (rc = clear_stale(s->path, err, errlen)))
		goto fail;
	strcpy(sa.sun_path, s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(s->path, 0660) || (gid >= 0 && chown(s->path, (uid_t)-1, (gid_t)gid)) ||
	    lstat(s->path, &st) || listen(s->lfd, 16) || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) {
		rc = -errno;
		snprintf(err, errlen, "control socket %s: %s", s->path, strerror(errno));
		goto fail;
	}
	s->ino = st.st_ino;
	approve_set_watcher(a, on_event, s);
	if ((rc = pthread_create(&s->thread, NULL, server_main, s))) {
		approve_set_watcher(a, NULL, NULL);
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		rc = -rc;
		goto fail;
	}
	thread_name(s->thread, "sluiced-ctl");
	s->started = 1;
	free(dcopy);
	log_info("ctlsock", "approvers answer on %s", s->path);
	*out = s;
	return 0;
fail:
	free(dcopy);
	ctlsock_stop(s);
	return rc;
}

void ctlsock_stop(struct ctlsock *s)
{
	struct stat st;

	if (!s)
		return;
	if (s->started) {
		approve_set_watcher(s->a, NULL, NULL);
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_mutex_unlock(&s->mu);
		if (write(s->wake[1], "", 1) < 0)
			log_warn("ctlsock", "wake: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	for (int i = 0; i < s->n_clients; i++)
		client_free(s->clients[i]);
	while (s->events) {
		struct evline *nx = s->events->next;

		free(s->events->line);
		free(s->events);
		s->events = nx;
	}
	if (s->lfd >= 0) {
		if (s->ino && !lstat(s->path, &st) && st.st_ino == s->ino)
			unlink(s->path);
		close(s->lfd);
	}
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	for (int i = 0; i < s->n_groups; i++)
		free(s->groups[i]);
	for (int i = 0; i < s->n_enforced; i++)
		free(s->enforced[i]);
	free(s->path);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
