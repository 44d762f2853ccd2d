/* Description: approvals: the store (register, decide, expire, windows, consume-once,
 * persistence across restarts, the notify hook) and the control socket (authorization by
 * uid and cgroup, nobody decides their own request, the line protocol). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "approve.h"
#include "ctlsock.h"
#include "log.h"
#include "tap.h"

static char dir[] = "/tmp/sluice-approve-test-XXXXXX";
static char heard_id[APPROVE_ID_LEN];
static int heard_state = -1, heard_n, decisions_n;
static struct approve_status last_decision;

static void listener(void *arg, const char *id, int state)
{
	snprintf(heard_id, sizeof(heard_id), "%s", id);
	heard_state = state;
	__atomic_add_fetch(&heard_n, 1, __ATOMIC_SEQ_CST);
}

static void on_decision(void *arg, const struct approve_status *st)
{
	last_decision = *st;
	__atomic_add_fetch(&decisions_n, 1, __ATOMIC_SEQ_CST);
}

/* A request of <identity> whose fingerprint comes from <what>. */
static struct approve_info info_for(const char *identity, const char *what, enum approve_kind k)
{
	static const char *const kinds[] = { "DELETE" };
	static const char *const tables[] = { "demo-project.sales.orders" };
	struct approve_info in = {
		.kind = k, .container = "/agents.slice/agent-1", .identity = identity,
		.project = "demo-project", .method = "bigquery.jobs.insert",
		.statements = kinds, .n_statements = 1, .tables = tables, .n_tables = 1,
		.sql = "DELETE FROM sales.orders WHERE id = 7", .rule = "writes-need-approval",
		.reason = "writes to sales need a person", .job_id = "sluice_approval_test",
	};

	approve_fingerprint(identity, what, strlen(what), in.fingerprint);
	return in;
}

static int open_store(struct approve_conf *c, struct approve **a)
{
	char err[512] = "";
	int rc = approve_open(c, a, err, sizeof(err));

	if (rc)
		printf("# approve_open: %s\n", err);
	return rc;
}

static void test_basics(void)
{
	struct approve_conf c = { .on_decision = on_decision, .max_pending = 3 };
	struct approve_info in = info_for("agent-1", "q1", APPROVE_JOB), in2;
	struct approve_status st;
	struct approve *a;
	char id[APPROVE_ID_LEN], id2[APPROVE_ID_LEN], id3[APPROVE_ID_LEN], job[APPROVE_JOB_ID_LEN];
	unsigned char f1[APPROVE_FP_LEN], f2[APPROVE_FP_LEN];
	char *s;

	is_int(approve_parse_duration("90s"), 90, "duration 90s");
	is_int(approve_parse_duration("30m"), 1800, "duration 30m");
	is_int(approve_parse_duration("2h"), 7200, "duration 2h");
	is_int(approve_parse_duration("1d"), 86400, "duration 1d");
	is_int(approve_parse_duration("45"), 45, "duration in seconds alone");
	ok(approve_parse_duration("5w") < 0 && approve_parse_duration("-1") < 0 &&
	   approve_parse_duration("m") < 0 && approve_parse_duration("3mm") < 0,
	   "bad durations refused");
	approve_fingerprint("ab", "c", 1, f1);
	approve_fingerprint("a", "bc", 2, f2);
	ok(memcmp(f1, f2, APPROVE_FP_LEN), "fingerprint separates identity from request");
	approve_job_id(job, sizeof(job));
	ok(!strncmp(job, "sluice_approval_", 16) && strlen(job) == 40, "job id %s", job);

	if (open_store(&c, &a))
		return;
	approve_set_listener(a, listener, NULL);
	is_int(approve_request(a, &in, id, sizeof(id)), 0, "request registered");
	is_int(strlen(id), 6, "id is 6 characters (%s)", id);
	is_int(approve_request(a, &in, id2, sizeof(id2)), 1, "identical request: the pending one");
	is_str(id2, id, "... same id");
	in2 = info_for("agent-2", "q1", APPROVE_OP);
	is_int(approve_request(a, &in2, id2, sizeof(id2)), 0, "same request, other identity: new");
	ok(strcmp(id, id2), "... other id");
	is_int(approve_state(a, id, &st), 0, "state known");
	is_int(st.state, APPROVE_PENDING, "pending");
	is_str(st.job_id, "sluice_approval_test", "job id kept for JOB kind");
	ok(st.expires_at - st.created_at == APPROVE_DEFAULT_TIMEOUT_S, "default timeout 15 min");
	is_int(approve_find_job(a, "sluice_approval_test", id3, sizeof(id3)), 0, "found by job id");
	is_str(id3, id, "... the right one");
	in2 = info_for("agent-3", "q9", APPROVE_OP);
	approve_request(a, &in2, id3, sizeof(id3));
	in2 = info_for("agent-4", "q9", APPROVE_OP);
	is_int(approve_request(a, &in2, id3, sizeof(id3)), -ENOSPC, "max_pending: -ENOSPC");

	s = approve_list_json(a, 1);
	ok(s && strstr(s, "\"sql\":\"DELETE FROM sales.orders WHERE id = 7\"") &&
	   strstr(s, "writes-need-approval"), "list has the SQL and the rule");
	free(s);

	heard_n = decisions_n = 0;
	is_int(approve_decide(a, id, 1, "alice (uid 1000)", "looks fine", 0, &st), 0, "approved");
	is_int(st.state, APPROVE_APPROVED, "... state approved");
	is_str(st.approver, "alice (uid 1000)", "... approver recorded");
	is_str(heard_id, id, "listener told the id");
	is_int(heard_state, APPROVE_APPROVED, "listener told the state");
	is_int(decisions_n, 1, "on_decision called once");
	is_str(last_decision.reason, "looks fine", "... with the reason");
	is_int(approve_decide(a, id, 0, "bob (uid 1001)", "no", 0, &st), -EALREADY,
	       "deciding twice: -EALREADY");
	is_int(st.state, APPROVE_APPROVED, "... and the first decision stays");
	is_int(approve_decide(a, "zzzzzz", 1, "bob", "", 0, NULL), -ENOENT, "unknown id: -ENOENT");
	is_int(approve_decide(a, id2, 1, "bob", "", (int64_t)APPROVE_DEFAULT_MAX_WINDOW_S + 1, NULL),
	       -ERANGE, "window above the maximum: -ERANGE");
	for (char *p = id2; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	is_int(approve_decide(a, id2, 0, "bob (uid 1001)", "not today", 0, &st), 0,
	       "denied (id typed in capitals)");
	is_int(st.state, APPROVE_DENIED, "... state denied");

	is_int(approve_expire_due(a, time(NULL) + 10), 0, "nothing due yet");
	is_int(approve_expire_due(a, time(NULL) + APPROVE_DEFAULT_TIMEOUT_S + 1), 1,
	       "timeout: the pending one expires");
	approve_state(a, id3, &st);
	is_int(st.state, APPROVE_EXPIRED, "... state expired");
	ok(strstr(st.reason, "nobody answered within 900s") != NULL, "... saying why: %s", st.reason);
	is_int(heard_state, APPROVE_EXPIRED, "listener told of the expiry");
	approve_close(a);
}

static void test_windows(void)
{
	struct approve_conf c = { 0 };
	struct approve_info j = info_for("agent-1", "big-delete", APPROVE_JOB);
	struct approve_info op = info_for("agent-1", "drop-view", APPROVE_OP);
	struct approve_info other = info_for("agent-2", "drop-view", APPROVE_OP);
	unsigned char unrelated[APPROVE_FP_LEN];
	struct approve *a;
	char id[APPROVE_ID_LEN], id2[APPROVE_ID_LEN];
	time_t now = time(NULL);

	approve_fingerprint("agent-1", "x", 1, unrelated);
	if (open_store(&c, &a))
		return;
	approve_request(a, &j, id, sizeof(id));
	ok(!approve_check_window(a, "agent-1", j.fingerprint, now), "no window while pending");
	approve_decide(a, id, 1, "alice (uid 1000)", "batch cleanup", 1800, NULL);
	ok(approve_check_window(a, "agent-1", j.fingerprint, now), "window passes the identical request");
	ok(approve_check_window(a, "agent-1", j.fingerprint, now + 1799), "... until it ends");
	ok(!approve_check_window(a, "agent-1", j.fingerprint, now + 1801), "... and not after");
	ok(!approve_check_window(a, "agent-2", j.fingerprint, now), "not for another identity");
	ok(!approve_check_window(a, "agent-1", unrelated, now), "not for another request");
	ok(!approve_consume(a, "agent-1", j.fingerprint), "a JOB approval is not consumed by a retry");

	approve_request(a, &op, id, sizeof(id));
	ok(!approve_consume(a, "agent-1", op.fingerprint), "nothing to consume while pending");
	approve_request(a, &other, id2, sizeof(id2));
	approve_decide(a, id, 1, "alice (uid 1000)", "", 0, NULL);
	ok(!approve_check_window(a, "agent-1", op.fingerprint, now), "approval without --for: no window");
	ok(!approve_consume(a, "agent-2", op.fingerprint), "consume: not another identity's approval");
	ok(approve_consume(a, "agent-1", op.fingerprint), "the approved retry passes once");
	ok(!approve_consume(a, "agent-1", op.fingerprint), "... and only once");
	approve_decide(a, id2, 0, "alice (uid 1000)", "no", 0, NULL);
	ok(!approve_consume(a, "agent-2", other.fingerprint), "a denied request is not consumed");
	approve_close(a);
}

static void test_persistence(void)
{
	struct approve_conf c = { .dir = dir, .on_decision = on_decision };
	struct approve_info p = info_for("agent-1", "pending", APPROVE_JOB);
	struct approve_info w = info_for("agent-1", "windowed", APPROVE_JOB);
	struct approve_info op = info_for("agent-1", "op", APPROVE_OP);
	char idp[APPROVE_ID_LEN], idw[APPROVE_ID_LEN], idop[APPROVE_ID_LEN], path[512];
	struct approve_status st;
	struct approve *a;
	struct stat sb;
	char *s;
	FILE *f;

	if (open_store(&c, &a))
		return;
	p.payload = "{\"configuration\": {\"query\": {\"query\": \"SELECT 1\"}}}";
	approve_request(a, &p, idp, sizeof(idp));
	approve_request(a, &w, idw, sizeof(idw));
	approve_request(a, &op, idop, sizeof(idop));
	approve_decide(a, idw, 1, "alice (uid 1000)", "ok for an hour", 3600, NULL);
	approve_decide(a, idop, 1, "alice (uid 1000)", "", 0, NULL);
	is_int(approve_flush(a), 0, "journal flushed");
	snprintf(path, sizeof(path), "%s/approvals.jsonl", dir);
	ok(!stat(path, &sb) && (sb.st_mode & 0777) == 0600, "journal is 0600");
	ok(!stat(dir, &sb) && (sb.st_mode & 0777) == 0700, "its directory is 0700");
	approve_close(a);

	if (open_store(&c, &a))
		return;
	is_int(approve_state(a, idp, &st), 0, "pending approval survives a restart");
	is_int(st.state, APPROVE_PENDING, "... still pending");
	s = approve_show_json(a, idp);
	ok(s && strstr(s, "demo-project.sales.orders") && strstr(s, "WHERE id = 7"),
	   "... with its tables and SQL");
	ok(s && !strstr(s, "payload"), "... and without the payload (not for people)");
	free(s);
	s = NULL;
	ok(approve_payload(a, idp, &s) == 0 && s && strstr(s, "SELECT 1"),
	   "the payload to submit survives a restart");
	free(s);
	ok(approve_check_window(a, "agent-1", w.fingerprint, time(NULL)), "window survives a restart");
	ok(approve_consume(a, "agent-1", op.fingerprint), "approved retry survives a restart");
	approve_flush(a);
	approve_close(a);

	f = fopen(path, "a"); /* a crash in the middle of a line */
	fputs("{\"id\":\"torn", f);
	fclose(f);
	if (open_store(&c, &a))
		return;
	ok(!approve_consume(a, "agent-1", op.fingerprint), "consumed stays consumed across restarts");
	is_int(approve_state(a, idp, &st), 0, "a torn last line loses nothing else");
	approve_close(a);

	c.on_restart = APPROVE_RESTART_FAIL;
	decisions_n = 0;
	if (open_store(&c, &a))
		return;
	approve_state(a, idp, &st);
	is_int(st.state, APPROVE_EXPIRED, "on_restart fail: the pending one is failed");
	ok(strstr(st.reason, "sluiced restarted while the request was pending") != NULL,
	   "... with a clear reason: %s", st.reason);
	is_int(decisions_n, 1, "... and on_decision is told");
	is_str(last_decision.id, idp, "... about that approval");
	approve_close(a);
	c.on_restart = APPROVE_RESTART_KEEP;
	if (open_store(&c, &a))
		return;
	approve_state(a, idp, &st);
	is_int(st.state, APPROVE_EXPIRED, "the failure itself was journaled");
	approve_close(a);

	chmod(dir, 0777);
	{
		char err[512] = "";

		ok(approve_open(&c, &a, err, sizeof(err)) == -EPERM && strstr(err, "writable"),
		   "a journal directory others can write is refused (%s)", err);
	}
	chmod(dir, 0700);
}

static void test_notify(void)
{
	char out[512], fds[512], cmd[4096], err[512];
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct approve_conf c = { .notify_argv = argv };
	struct approve_info in = info_for("agent-1", "notify", APPROVE_JOB);
	char id[APPROVE_ID_LEN], *big = malloc(100000);
	struct approve *a;
	json_t *o = NULL;
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: must not reach the hook */

	snprintf(out, sizeof(out), "%s/notify.json", dir);
	snprintf(fds, sizeof(fds), "%s/notify.fds", dir);
	snprintf(cmd, sizeof(cmd), "ls /proc/self/fd > %s.tmp; cat > %s.tmp && mv %s.tmp %s && "
		 "mv %s.tmp %s", fds, out, out, out, fds, fds);
	dup2(leak, 57);
	close(leak);
	memset(big, 'x', 99999);
	memcpy(big, "SELECT '", 8);
	big[99998] = '\'';
	big[99999] = '\0';
	in.sql = big;
	if (open_store(&c, &a))
		return;
	approve_request(a, &in, id, sizeof(id));
	for (int i = 0; i < 100 && access(fds, F_OK); i++)
		usleep(50000);
	o = json_load_file(out, 0, NULL);
	ok(o != NULL, "notify hook got JSON on stdin");
	is_str(json_string_value(json_object_get(o, "id")), id, "... the approval's id");
	is_str(json_string_value(json_object_get(o, "rule")), "writes-need-approval", "... the rule");
	ok(json_string_length(json_object_get(o, "sql")) == 8192 &&
	   json_is_true(json_object_get(o, "sql_truncated")), "... the SQL cut to 8 KB");
	{
		FILE *f = fopen(fds, "r");
		char line[64];
		int n = 0, leaked = 0;

		while (f && fgets(line, sizeof(line), f)) {
			n++;
			leaked |= atoi(line) == 57;
		}
		if (f)
			fclose(f);
		ok(n > 0 && n <= 4 && !leaked, "... and inherited only stdin, stdout, stderr (%d fds)", n);
	}
	json_decref(o);
	approve_close(a);
	close(57);
	free(big);

	argv[0] = "sh";
	ok(approve_open(&c, &a, err, sizeof(err)) == -EINVAL && strstr(err, "absolute"),
	   "a hook without an absolute path is refused (%s)", err);
}

/* Many workers register and decide at once (run under ASan/TSan-like checkers). */
static void *worker(void *arg)
{
	struct approve *a = arg;
	char what[32], id[APPROVE_ID_LEN];

	for (int i = 0; i < 50; i++) {
		struct approve_info in;

		snprintf(what, sizeof(what), "%p-%d", (void *)&what, i);
		in = info_for("agent-1", what, APPROVE_OP);
		if (approve_request(a, &in, id, sizeof(id)) == 0)
			approve_decide(a, id, i & 1, "alice (uid 1000)", "r", 0, NULL);
		approve_check_window(a, "agent-1", in.fingerprint, time(NULL));
		approve_consume(a, "agent-1", in.fingerprint);
	}
	return NULL;
}

static void test_threads(void)
{
	struct approve_conf c = { .dir = dir, .max_pending = 1000 };
	pthread_t t[4];
	struct approve *a;
	char *s;
	json_t *arr;

	if (open_store(&c, &a))
		return;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, a);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	is_int(approve_flush(a), 0, "concurrent requests journaled");
	s = approve_list_json(a, 0);
	arr = json_loads(s, 0, NULL);
	ok(json_array_size(arr) >= 200, "all 200 concurrent requests kept (%zu)", json_array_size(arr));
	json_decref(arr);
	free(s);
	approve_close(a);
}

/* --- the control socket ---------------------------------------------------------------- */

/* One request line, one answer object. */
static json_t *call(const char *sock, const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char buf[65536];
	size_t n = 0;
	ssize_t r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return NULL;
	}
	if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0) {
		close(fd);
		return NULL;
	}
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t)r;
		if (memchr(buf, '\n', n))
			break;
	}
	close(fd);
	buf[n] = '\0';
	return json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
}

static const char *field(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void test_ctlsock(void)
{
	struct ctlsock_conf sc = { .n_uids = 1, .uids = { getuid() } };
	struct approve_conf c = { 0 };
	struct approve_info in = info_for("agent-1", "sock", APPROVE_JOB);
	struct approve_info mine = info_for("agent-1", "mine", APPROVE_JOB);
	char sdir[600], sock[700], id[APPROVE_ID_LEN], idm[APPROVE_ID_LEN], req[256], err[512];
	char cg[512];
	struct ctlsock *s;
	struct approve *a;
	struct stat sb;
	json_t *o;

	ok(ctlsock_cgroup_within("/a/b", "/a") && ctlsock_cgroup_within("/a", "/a/") &&
	   !ctlsock_cgroup_within("/ab", "/a") && ctlsock_cgroup_within("/x", "/"),
	   "cgroup containment by path components");
	is_int(ctlsock_cgroup_of(getpid(), cg, sizeof(cg)), 0, "our own cgroup read (%s)", cg);
	snprintf(sdir, sizeof(sdir), "%s/run", dir);
	snprintf(sock, sizeof(sock), "%s/sluice.sock", sdir);
	sc.path = sock;
	if (open_store(&c, &a))
		return;
	approve_request(a, &in, id, sizeof(id));
	mine.container = cg; /* requested from the cgroup the "approver" runs in */
	approve_request(a, &mine, idm, sizeof(idm));
	if (ctlsock_start(&sc, a, &s, err, sizeof(err))) {
		ok(0, "control socket started (%s)", err);
		approve_close(a);
		return;
	}
	ok(!stat(sock, &sb) && (sb.st_mode & 0777) == 0660 && S_ISSOCK(sb.st_mode), "socket is 0660");
	ok(!stat(sdir, &sb) && (sb.st_mode & 0777) == 0750, "its directory is 0750");

	o = call(sock, "{\"op\":\"list\"}");
	ok(json_is_true(json_object_get(o, "ok")) &&
	   json_array_size(json_object_get(o, "items")) == 2, "list: both pending");
	json_decref(o);
	snprintf(req, sizeof(req), "{\"op\":\"show\",\"id\":\"%s\"}", id);
	o = call(sock, req);
	is_str(field(json_object_get(o, "item"), "sql"), "DELETE FROM sales.orders WHERE id = 7",
	       "show: the SQL");
	json_decref(o);
	o = call(sock, "{\"op\":\"show\",\"id\":\"nope00\"}");
	is_str(field(o, "code"), "not_found", "show of an unknown id: not_found");
	json_decref(o);
	snprintf(req, sizeof(req), "{\"op\":\"deny\",\"id\":\"%s\"}", id);
	o = call(sock, req);
	is_str(field(o, "code"), "bad_request", "deny without a reason: bad_request");
	json_decref(o);
	snprintf(req, sizeof(req), "{\"op\":\"approve\",\"id\":\"%s\",\"reason\":\"fine\"}", idm);
	o = call(sock, req);
	is_str(field(o, "code"), "self", "approving a request from one's own cgroup: refused");
	json_decref(o);
	snprintf(req, sizeof(req), "{\"op\":\"approve\",\"id\":\"%s\",\"reason\":\"ok\",\"for_s\":60}", id);
	o = call(sock, req);
	ok(json_is_true(json_object_get(o, "ok")), "approve: ok");
	is_str(field(json_object_get(o, "item"), "state"), "approved", "... state approved");
	ok(strstr(field(json_object_get(o, "item"), "approver"), "(uid ") != NULL,
	   "... approver named with uid: %s", field(json_object_get(o, "item"), "approver"));
	ok(json_integer_value(json_object_get(json_object_get(o, "item"), "window_until")) > 0,
	   "... with its window");
	json_decref(o);
	o = call(sock, req);
	is_str(field(o, "code"), "already_decided", "approve twice: already_decided");
	json_decref(o);
	o = call(sock, "not json");
	is_str(field(o, "code"), "bad_request", "garbage: bad_request");
	json_decref(o);

	sc.uids[0] = 4242; /* we are not an approver any more */
	ctlsock_reconfigure(s, &sc);
	o = call(sock, "{\"op\":\"list\"}");
	ok(strstr(field(o, "error"), "is not an approver (configure approvers.uids") != NULL,
	   "not an approver: refused (%s)", field(o, "error"));
	json_decref(o);
	sc.uids[0] = getuid();
	sc.n_enforced = 1;
	sc.enforced[0] = cg;
	ctlsock_reconfigure(s, &sc);
	o = call(sock, "{\"op\":\"list\"}");
	ok(strstr(field(o, "error"), "runs in enforced cgroup") != NULL,
	   "a process in an enforced cgroup: refused even as an approver uid (%s)", field(o, "error"));
	json_decref(o);
	ctlsock_stop(s);
	ok(access(sock, F_OK) != 0, "socket removed at stop");

	chmod(sdir, 0777);
	sc.n_enforced = 0;
	ok(ctlsock_start(&sc, a, &s, err, sizeof(err)) == -EPERM && strstr(err, "world-writable"),
	   "a world-writable socket directory is refused (%s)", err);
	chmod(sdir, 0750);
	approve_close(a);
}

int main(void)
{
	log_set_level(LOG_WARN);
	if (!mkdtemp(dir))
		tap_skip_all("mkdtemp failed");
	chmod(dir, 0700);
	test_basics();
	test_windows();
	test_persistence();
	test_notify();
	test_threads();
	test_ctlsock();
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			printf("# could not remove %s\n", dir);
	}
	return tap_done();
}
