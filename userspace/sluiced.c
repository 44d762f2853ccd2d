/* sluiced.c - the sluice daemon's main: arguments, configuration, signals. The request path
 * lives in the modules; this file only wires them together. */
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "approve.h"
#include "conf.h"
#include "cred.h"
#include "ctlsock.h"
#include "identity.h"
#include "listener.h"
#include "jobseen.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "proxy.h"
#include "record.h"
#include "redirect.h"
#include "splice.h"
#include "tls.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.json"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluiced [--config FILE] [--check | --detach]\n"
		"  --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  --check        validate the configuration and exit (0 valid, 2 invalid)\n"
		"  --detach       remove the pinned eBPF enforcement and exit\n"
		"Runs in the foreground and logs to stderr. SIGTERM stops, SIGHUP reloads.\n");
}

/* Everything a running sluiced holds. The environment the workers read is replaced whole
 * on reload; old ones are kept until exit because connections may still point at them. */
struct daemon {
	struct sluice_conf *conf;
	struct rec *rec;
	struct approve *approve;
	struct ctlsock *ctlsock;
	struct redirect *redirect;
	struct tls_ca *ca;
	/* Identity and credential live for the whole run, shared by every environment. The
	 * identity (its token key and JWKS caches) is never rebuilt on reload, so the sluice
	 * tokens agents hold stay valid; JWKS files are re-read by it when they change. The
	 * credential re-reads its key file on SIGHUP. Changing either section needs a restart
	 * (with identity.hmac_key_file, tokens also survive the restart). */
	struct identity *identity;
	struct cred *cred;
	struct splice *splice;   /* NULL: this kernel cannot; spliced bytes are copied */
	struct loop *loop;
	struct loop_env *env;
	struct loop_env *old_envs[64];
	int n_old;
	uint64_t netns_seen[SLUICE_NETNS_MAX];
	int n_netns;
	int no_sockdiag; /* sock_diag did not answer at start: owners are not cross-checked */
};

static void free_env(struct loop_env *env)
{
	int i;

	if (!env)
		return;
	tls_server_free(env->tls_server);
	for (i = 0; env->tls_clients && i <= env->conf->n_overrides; i++)
		tls_client_free(env->tls_clients[i]);
	free(env->tls_clients);
	policy_free(env->policy);
	conf_free((struct sluice_conf *)env->conf);
	free((void *)env->conf);
	free(env);
}

/* TLS contexts for a configuration: the agent-facing server (leaves from the local CA) and
 * one verifying client per trust setting (default, then each override). */
static struct loop_env *make_env(struct daemon *d, struct sluice_conf *conf, char *err,
				 size_t errlen)
{
	struct loop_env *env = calloc(1, sizeof(*env));
	int i;

	if (!env)
		return NULL;
	env->conf = conf;
	env->redirect = d->redirect;
	env->approve = d->approve;
	env->rec = d->rec;
	env->identity = d->identity;
	env->cred = d->cred;
	env->splice = d->splice;
	env->policy = policy_load(conf->policy, err, errlen);
	if (!env->policy) {
		free(env);
		return NULL;
	}
	env->tls_server = tls_server_new(d->ca, err, errlen);
	env->tls_clients = calloc((size_t)conf->n_overrides + 1, sizeof(*env->tls_clients));
	if (!env->tls_server || !env->tls_clients)
		goto fail;
	env->tls_clients[0] = tls_client_new(conf->upstream_ca_file, err, errlen);
	if (!env->tls_clients[0])
		goto fail;
	for (i = 0; i < conf->n_overrides; i++) {
		const char *ca = conf->overrides[i].ca_file ? conf->overrides[i].ca_file
							     : conf->upstream_ca_file;

		env->tls_clients[1 + i] = tls_client_new(ca, err, errlen);
		if (!env->tls_clients[1 + i])
			goto fail;
	}
	return env;
fail:
	env->conf = NULL;
	policy_free(env->policy);
	tls_server_free(env->tls_server);
	for (i = 0; env->tls_clients && i <= conf->n_overrides; i++)
		tls_client_free(env->tls_clients[i]);
	free(env->tls_clients);
	free(env);
	return NULL;
}

/* Approvers' socket configuration from sluiced's. */
static void ctlsock_conf_of(const struct sluice_conf *conf, struct ctlsock_conf *cc)
{
	int i;

	memset(cc, 0, sizeof(*cc));
	cc->path = conf->control_socket;
	for (i = 0; i < conf->n_approver_uids && i < CTLSOCK_MAX_LIST; i++)
		cc->uids[cc->n_uids++] = (uid_t)conf->approver_uids[i];
	for (i = 0; i < conf->approver_groups.n && i < CTLSOCK_MAX_LIST; i++)
		cc->groups[cc->n_groups++] = conf->approver_groups.v[i];
	for (i = 0; i < conf->cgroups.n && i < CTLSOCK_MAX_LIST; i++)
		cc->enforced[cc->n_enforced++] = conf->cgroups.v[i];
}

/* A decision was made (from the control socket's or the store's thread): wake held
 * requests on every worker. */
static void on_approval(void *arg, const char *id, int state)
{
	struct daemon *d = arg;

	if (d->loop)
		loop_post_all(d->loop, proxy_approvals_changed);
}

static void on_decision(void *arg, const struct approve_status *st)
{
	struct daemon *d = arg;
	char cg2[256], path[1024];
	struct stat sb;
	uint64_t cgid = 0;

	/* the decision belongs in the requesting container's recording */
	if (d->rec && !redirect_cgroup2_mount(cg2, sizeof(cg2))) {
		snprintf(path, sizeof(path), "%s%s", cg2, st->container);
		if (!stat(path, &sb))
			cgid = (uint64_t)sb.st_ino;
		rec_submit(d->rec, st->container, cgid, "approval", json_pack("{s:s, s:s, s:s, s:s, "
			   "s:s, s:s, s:I, s:I}", "id", st->id, "verdict", st->state ==
			   APPROVE_APPROVED ? "approved" : st->state == APPROVE_DENIED ? "denied" :
			   "expired", "approver", st->approver, "reason", st->reason, "identity",
			   st->identity, "job_id", st->job_id, "decided_at", (json_int_t)st->decided_at,
			   "window_until", (json_int_t)st->window_until), NULL, NULL);
	}
	log_info("approve", "approval %s: %s by %s%s%s", st->id,
		 st->state == APPROVE_APPROVED ? "approved" : st->state == APPROVE_DENIED ?
		 "denied" : "expired", st->approver[0] ? st->approver : "nobody",
		 st->reason[0] ? ": " : "", st->reason);
}

static int start_approvals(struct daemon *d, char *err, size_t errlen)
{
	struct approve_conf ac = {
		.dir = d->conf->approvals_dir, .timeout_s = d->conf->approval_timeout_s,
		.max_pending = d->conf->approval_max_pending,
		.max_window_s = d->conf->approval_max_window_s,
		.on_restart = d->conf->approvals_fail_on_restart ? APPROVE_RESTART_FAIL
								  : APPROVE_RESTART_KEEP,
		.notify_argv = d->conf->approval_notify.n ?
			(const char *const *)d->conf->approval_notify.v : NULL,
		.on_decision = on_decision, .on_decision_arg = d,
	};
	struct ctlsock_conf cc;
	int rc;

	/* conf_strlist is NULL-terminated past its last entry (calloc'd, n < max) */
	rc = approve_open(&ac, &d->approve, err, errlen);
	if (rc)
		return rc;
	approve_set_listener(d->approve, on_approval, d);
	ctlsock_conf_of(d->conf, &cc);
	return ctlsock_start(&cc, d->approve, &d->ctlsock, err, errlen);
}

/* Open a listener in the network namespace of process <pid> unless one is open there. */
static void listen_for(struct daemon *d, pid_t pid)
{
	struct listener ln;
	struct stat st;
	char path[64], err[256];
	int i;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &st))
		return; /* gone already */
	for (i = 0; i < d->n_netns; i++)
		if (d->netns_seen[i] == (uint64_t)st.st_ino)
			return;
	if (listener_open(pid, (uint16_t)d->conf->listen_port, &ln, err, sizeof(err))) {
		log_warn("main", "no listener for process %d: %s", (int)pid, err);
		return;
	}
	if (!ln.diag && !d->no_sockdiag) { /* fail closed: it works elsewhere, so it must here */
		log_warn("main", "no listener for process %d: %s", (int)pid, ln.diag_err);
		listener_close(&ln);
		return;
	}
	if (d->n_netns < SLUICE_NETNS_MAX)
		d->netns_seen[d->n_netns++] = (uint64_t)st.st_ino;
	redirect_set_listener(d->redirect, ln.netns_cookie, (uint16_t)d->conf->listen_port);
	loop_add_listener(d->loop, &ln);
	log_info("main", "listening in the network namespace of process %d", (int)pid);
}

/* A connect from a network namespace where sluiced has no listener yet (refused by the
 * hook): open one there so that the agent's retry is served. */
static void on_event(void *arg, const struct sluice_event *ev)
{
	if (ev->kind == SLUICE_EV_NO_LISTENER)
		listen_for(arg, (pid_t)ev->tgid);
}

/* Open listeners for the namespaces of processes already in enforced cgroups (at start and
 * reload), so that agents running across a restart are not refused even once. */
static void scan_cgroup(struct daemon *d, const char *dir, int depth)
{
	char path[4096];
	struct dirent *de;
	FILE *f;
	DIR *dd;
	int pid;

	if (depth > 32)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	while (f && fscanf(f, "%d", &pid) == 1)
		listen_for(d, pid);
	if (f)
		fclose(f);
	dd = opendir(dir);
	while (dd && (de = readdir(dd))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		scan_cgroup(d, path, depth + 1);
	}
	if (dd)
		closedir(dd);
}

static void scan_enforced(struct daemon *d)
{
	char cg2[256], dir[1024];
	int i;

	if (redirect_cgroup2_mount(cg2, sizeof(cg2)))
		return;
	for (i = 0; i < d->conf->cgroups.n; i++) {
		snprintf(dir, sizeof(dir), "%s%s", cg2, d->conf->cgroups.v[i]);
		scan_cgroup(d, dir, 0);
	}
}

/* --- identity and credential ------------------------------------------------------------- */

/* Remote JWKS fetches run on their own thread: the callback is called from a worker (inside
 * a token verification) that must not block on the network. */
static atomic_int jwks_fetches; /* fetch threads running */

struct jwks_job {
	struct identity *id;
	char *issuer, *uri;
};

static void *jwks_fetch_thread(void *arg)
{
	struct jwks_job *j = arg;
	char err[256], err2[256];
	char *body = NULL;
	int status = 0;

	if (cred_http_get(j->uri, NULL, NULL, 0, &status, &body, err, sizeof(err)))
		log_warn("identity", "JWKS of %s from %s: %s", j->issuer, j->uri, err);
	else if (status != 200)
		log_warn("identity", "JWKS of %s from %s: HTTP %d", j->issuer, j->uri, status);
	else if (identity_jwks_set(j->id, j->issuer, body, strlen(body), err2, sizeof(err2)))
		log_warn("identity", "JWKS of %s from %s refused: %s", j->issuer, j->uri, err2);
	else
		log_info("identity", "JWKS of %s refreshed from %s", j->issuer, j->uri);
	free(body);
	free(j->issuer);
	free(j->uri);
	free(j);
	atomic_fetch_sub(&jwks_fetches, 1);
	return NULL;
}

static int jwks_fetch(void *arg, const struct identity_issuer *iss, char **json, size_t *len,
		      char *err, size_t errlen)
{
	struct jwks_job *j = calloc(1, sizeof(*j));
	pthread_attr_t a;
	pthread_t t;
	int rc;

	if (!j || !(j->issuer = strdup(iss->issuer)) || !(j->uri = strdup(iss->jwks_uri))) {
		if (j)
			free(j->issuer);
		free(j);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->id = arg;
	atomic_fetch_add(&jwks_fetches, 1);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &a, jwks_fetch_thread, j);
	pthread_attr_destroy(&a);
	if (rc) {
		atomic_fetch_sub(&jwks_fetches, 1);
		free(j->issuer);
		free(j->uri);
		free(j);
		snprintf(err, errlen, "cannot start the JWKS fetch: %s", strerror(rc));
		return -rc;
	}
	return -EINPROGRESS;
}

/* Build the identity and the credential the configuration asks for (none: NULL). The
 * credential's thread is started by start_identity, not here (--check builds without). */
static int make_identity(struct daemon *d, char *err, size_t errlen)
{
	if (d->conf->identity) {
		d->identity = identity_new(d->conf->identity, err, errlen);
		if (!d->identity)
			return -1;
		identity_set_fetch(d->identity, jwks_fetch, d->identity);
	}
	if (d->conf->cred) {
		d->cred = cred_new(d->conf->cred, err, errlen);
		if (!d->cred)
			return -1;
	}
	if (d->identity && !d->cred)
		log_warn("identity", "identity without a \"credential\": agents' sluice tokens are "
			 "relayed to BigQuery as they are, which Google refuses");
	return 0;
}

static int start_identity(struct daemon *d, char *err, size_t errlen)
{
	int i;

	if (d->identity) {
		/* issuers known by URI only: first keys now (blocking is fine before serving) */
		for (i = 0; i < d->conf->identity->n_issuers; i++) {
			const struct identity_issuer *is = &d->conf->identity->issuers[i];
			char e[256];
			char *body = NULL;
			int status = 0;

			if (!is->jwks_uri || identity_jwks_count(d->identity, is->issuer) > 0)
				continue;
			if (cred_http_get(is->jwks_uri, NULL, NULL, 0, &status, &body, e, sizeof(e)) ||
			    status != 200 ||
			    identity_jwks_set(d->identity, is->issuer, body, strlen(body), e, sizeof(e)))
				log_warn("identity", "no keys yet for %s from %s (%s); retried on the "
					 "first token", is->issuer, is->jwks_uri,
					 status && status != 200 ? "not HTTP 200" : e);
			free(body);
		}
		log_info("identity", "%d OIDC issuer(s); sluice tokens live %d s",
			 d->conf->identity->n_issuers, d->conf->identity->token_ttl_s);
	}
	if (d->cred) {
		if (cred_start(d->cred, err, errlen))
			return -1;
		log_info("identity", "credential %s: refreshing sluiced's Google token",
			 d->conf->cred->name ? d->conf->cred->name : "default");
	}
	return 0;
}

/* On reload: the identity and credential objects stay; say what a restart would change. */
static void reload_identity(struct daemon *d, const struct sluice_conf *next)
{
	char err[512];

	if (!next->identity != !d->identity)
		log_warn("conf", "reload: the \"identity\" section was %s; restart sluiced to "
			 "apply it (outstanding sluice tokens are kept until then)",
			 next->identity ? "added" : "removed");
	if (!next->cred != !d->cred)
		log_warn("conf", "reload: the \"credential\" section was %s; restart sluiced to "
			 "apply it", next->cred ? "added" : "removed");
	if (d->cred && cred_reload(d->cred, err, sizeof(err)))
		log_err("conf", "reload: credential not reloaded, the running one stays: %s", err);
}

/* Reload on SIGHUP: a configuration that does not validate or apply is refused and the
 * running one stays in force (fail closed: never half-apply what can be refused first). */
static void reload(struct daemon *d)
{
	struct sluice_conf *next = calloc(1, sizeof(*next));
	struct loop_env *env;
	char err[512];

	if (!next || conf_load(d->conf->path, next, err, sizeof(err))) {
		log_err("conf", "reload refused, previous configuration stays in force: %s", err);
		goto refuse;
	}
	if (next->listen_port != d->conf->listen_port) {
		log_err("conf", "reload refused: listen_port cannot change while running; restart "
			"sluiced to move it");
		goto refuse;
	}
	env = make_env(d, next, err, sizeof(err));
	if (!env) {
		log_err("conf", "reload refused: %s", err);
		goto refuse;
	}
	reload_identity(d, next);
	if (redirect_apply(d->redirect, next, err, sizeof(err))) {
		log_err("conf", "reload: enforcement partly applied: %s", err);
	}
	if (d->n_old < 64)
		d->old_envs[d->n_old++] = d->env;
	d->env = env;
	d->conf = next;
	loop_set_env(d->loop, env);
	log_set_level((enum log_level)next->log_level);
	scan_enforced(d);
	{
		struct ctlsock_conf cc;

		ctlsock_conf_of(next, &cc);
		ctlsock_reconfigure(d->ctlsock, &cc);
	}
	log_info("conf", "reloaded %s", next->path);
	return;
refuse:
	if (next)
		conf_free(next);
	free(next);
}

static int run(struct daemon *d, char *err, size_t errlen)
{
	struct listener ln;
	struct stat st;
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	sigset_t mask;
	int sfd, running = 1;

	d->ca = tls_ca_load(d->conf->ca_cert, d->conf->ca_key, err, errlen);
	if (!d->ca)
		return -1;
	{
		struct rec_opts ro = {
			.dir = d->conf->record_dir, .key_path = d->conf->record_key,
			.segment_bytes = d->conf->record_segment_bytes,
			.segment_secs = d->conf->record_segment_secs,
			.sync_ms = d->conf->record_sync_ms,
			.checkpoint_every = d->conf->record_checkpoint_every,
			.checkpoint_secs = d->conf->record_checkpoint_secs,
			.wal_bytes = d->conf->record_wal_bytes,
		};

		d->rec = rec_open(&ro, err, errlen);
		if (!d->rec)
			return -1;
		rec_set_default(d->rec); /* connection records go into the streams too */
	}
	if (start_approvals(d, err, errlen))
		return -1;
	{ /* which jobs each identity created through sluice, across restarts (masking) */
		char path[4096];

		snprintf(path, sizeof(path), "%s/jobs.seen", d->conf->approvals_dir);
		if (jobseen_open(path, err, errlen))
			return -1;
	}
	d->redirect = redirect_open(d->conf, on_event, d, err, errlen);
	if (!d->redirect)
		return -1;
	if (make_identity(d, err, errlen) || start_identity(d, err, errlen))
		return -1;
	{
		char why[256];

		d->splice = splice_open(why, sizeof(why));
		if (!d->splice)
			log_msg(d->conf->splice_via == CONF_VIA_SOCKMAP ? LOG_WARN : LOG_DEBUG, "main",
				"intercept.splice_via \"sockmap\" is not available here: spliced "
				"connections are copied by sluiced (%s)", why);
	}
	d->env = make_env(d, d->conf, err, errlen);
	if (!d->env)
		return -1;
	d->loop = loop_start(d->env, d->conf->workers, err, errlen);
	if (!d->loop)
		return -1;
	if (listener_open(0, (uint16_t)d->conf->listen_port, &ln, err, errlen))
		return -1;
	d->no_sockdiag = !ln.diag;
	if (d->no_sockdiag)
		log_warn("main", "%s: accepted connections are not cross-checked with the kernel's "
			 "socket table (only the eBPF origin vouches for them)", ln.diag_err);
	else
		log_info("main", "accepted connections are cross-checked with sock_diag");
	if (stat("/proc/self/ns/net", &st) == 0)
		d->netns_seen[d->n_netns++] = (uint64_t)st.st_ino;
	redirect_clear_listeners(d->redirect);
	redirect_set_listener(d->redirect, ln.netns_cookie, (uint16_t)d->conf->listen_port);
	loop_add_listener(d->loop, &ln);
	scan_enforced(d);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = redirect_events_fd(d->redirect), .events = POLLIN };
	log_info("main", "started with %s, listening on port %d", d->conf->path,
		 d->conf->listen_port);
	while (running) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			redirect_poll_events(d->redirect);
		if (!pfd[0].revents || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP)
			reload(d);
		else
			running = 0;
	}
	log_info("main", "stopping: draining in-flight requests (up to %d ms)",
		 d->conf->drain_timeout_ms);
	ctlsock_stop(d->ctlsock);
	d->ctlsock = NULL;
	loop_stop(d->loop, d->conf->drain_timeout_ms);
	d->loop = NULL;
	close(sfd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "detach", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = DEFAULT_CONFIG;
	struct daemon d = { 0 };
	sigset_t mask;
	char err[512];
	int opt, check = 0, detach = 0, rc, i;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'k': check = 1; break;
		case 'd': detach = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	d.conf = calloc(1, sizeof(*d.conf));
	if (!d.conf || conf_load(config, d.conf, err, sizeof(err))) {
		fprintf(stderr, "sluiced: configuration error: %s\n", err);
		conf_free(d.conf);
		free(d.conf);
		return 2;
	}
	log_set_level((enum log_level)d.conf->log_level);
	if (check) {
		/* the identity's JWKS and key files and the credential's key file too */
		rc = make_identity(&d, err, sizeof(err));
		cred_free(d.cred);
		identity_free(d.identity);
		if (rc) {
			fprintf(stderr, "sluiced: configuration error: %s\n", err);
			conf_free(d.conf);
			free(d.conf);
			return 2;
		}
		printf("%s: valid\n", config);
		conf_free(d.conf);
		free(d.conf);
		return 0;
	}
	if (detach) {
		rc = redirect_detach_all(d.conf->bpf_pin_dir, err, sizeof(err));
		if (rc)
			fprintf(stderr, "sluiced: detach: %s\n", err);
		else
			printf("sluiced: enforcement removed (%s)\n", d.conf->bpf_pin_dir);
		conf_free(d.conf);
		free(d.conf);
		return rc ? 1 : 0;
	}

	/* Signals are taken by signalfd in the main thread; workers inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = run(&d, err, sizeof(err));
	if (rc)
		log_err("main", "%s", err);
	for (i = 0; i < d.n_old; i++)
		free_env(d.old_envs[i]);
	if (d.env)
		free_env(d.env);
	else if (d.conf) {
		conf_free(d.conf);
		free(d.conf);
	}
	redirect_close(d.redirect);
	splice_close(d.splice); /* after the workers: they held the spliced sockets */
	cred_free(d.cred);
	for (i = 0; i < 100 && atomic_load(&jwks_fetches) > 0; i++)
		usleep(100000); /* a JWKS fetch still running uses the identity */
	if (!atomic_load(&jwks_fetches))
		identity_free(d.identity);
	ctlsock_stop(d.ctlsock);
	approve_close(d.approve);
	rec_close(d.rec); /* last: it writes the shutdown checkpoints */
	tls_ca_free(d.ca);
	log_info("main", "stopped");
	return rc ? 1 : 0;
}
