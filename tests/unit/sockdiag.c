/* Description: sock_diag lookups of real sockets: a connected client in this process is
 * found by its 4-tuple with this process's uid, its inode and its cookie; the cross-check of
 * an accepted connection passes for the right owner and refuses a wrong uid, a wrong cookie,
 * a closed agent socket and an unknown 4-tuple; IPv4-mapped and IPv6 clients too; as root,
 * the same inside a fresh network namespace through listener_open(), where the handle of
 * another namespace does not see the socket. White box: an answer that comes late (to a
 * query given up on) is skipped, and a missing answer is given up on within milliseconds.
 * As root, a forged answer from another process is not believed. Prints the cost of one
 * lookup. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "listener.h"
#include "../../userspace/sockdiag.c" /* its statics: the receive loop, the netlink socket */
#include "tap.h"

static uint64_t cookie_of(int fd)
{
	uint64_t c = 0;
	socklen_t len = sizeof(c);

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
	return c;
}

static uint64_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (uint64_t)st.st_ino;
}

/* A listener on <addr> (port chosen by the kernel). */
static int listen_on(int family, const char *addr)
{
	struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (family == AF_INET)
		inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr);
	else
		inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, family == AF_INET ?
			   sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) ||
	    listen(fd, 16)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A client of listener <lfd> from a <family> socket at <addr> (an IPv4 listener reached
 * from IPv6 through "::ffff:127.0.0.1"); the accepted end in *acc. */
static int connect_to(int lfd, int family, const char *addr, int *acc)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint16_t port;
	int fd;

	getsockname(lfd, (struct sockaddr *)&ss, &len);
	port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				       : ((struct sockaddr_in6 *)&ss)->sin6_port;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr);
		((struct sockaddr_in *)&ss)->sin_port = port;
	} else {
		inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
		((struct sockaddr_in6 *)&ss)->sin6_port = port;
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, family == AF_INET ?
			      sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*acc = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd;
}

/* The cross-check of one accepted connection, for a client of <family> at <addr>. */
static void check_family(int family, const char *laddr, const char *caddr)
{
	struct sockdiag_sock s;
	struct sockdiag *d;
	char err[200] = "", why[300] = "";
	int lfd = listen_on(family == AF_INET6 && !strncmp(caddr, "::ffff:", 7) ? AF_INET :
			    family, laddr), cfd, afd = -1;

	if (lfd < 0) {
		ok(1, "# SKIP no %s here", laddr);
		return;
	}
	d = sockdiag_open(lfd, err, sizeof(err));
	cfd = connect_to(lfd, family, caddr, &afd);
	ok(d && cfd >= 0 && afd >= 0, "%s: handle and connection (%s)", caddr, d ? "ok" : err);
	if (d && cfd >= 0 && afd >= 0) {
		ok(sockdiag_check_peer(d, afd, (uint32_t)geteuid(), cookie_of(cfd), &s, why,
				       sizeof(why)) == 0 && s.inode == ino_of(cfd),
		   "%s: the agent's socket found (%s)", caddr, why);
	}
	if (cfd >= 0)
		close(cfd);
	if (afd >= 0)
		close(afd);
	close(lfd);
	sockdiag_close(d);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A late answer (to a query that timed out) is not taken for the next one's; no answer at
 * all is given up on within a few receive timeouts, and the handle still works after. */
static void late_and_missing(struct sockdiag *d, int cfd, int afd)
{
	struct inet_diag_req_v2 req = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP,
		.idiag_states = ~0U, .id.idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE } };
	struct sockaddr_storage a, b;
	socklen_t alen = sizeof(a), blen = sizeof(b);
	struct sockdiag_sock s;
	unsigned seen;
	double t0, ms;
	int rc;

	getsockname(cfd, (struct sockaddr *)&a, &alen);
	getpeername(cfd, (struct sockaddr *)&b, &blen);
	/* the accepted socket's query, its answer left unread */
	put_addr((struct sockaddr *)&b, &req.id.idiag_sport, req.id.idiag_src);
	put_addr((struct sockaddr *)&a, &req.id.idiag_dport, req.id.idiag_dst);
	ok(nl_send_simple(d->sk, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, &req, sizeof(req)) > 0,
	   "an earlier query whose answer nobody reads");
	seen = d->seen;
	rc = sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&b, &s);
	ok(rc == 0 && s.inode == ino_of(cfd) && s.inode != ino_of(afd),
	   "the next lookup skips that late answer and takes its own");
	is_int(d->seen - seen, 2, "... two answers were read");

	pthread_mutex_lock(&d->mu);
	d->seq += 1000; /* never asked */
	d->done = 0;
	d->err = -ETIMEDOUT;
	d->out = &s;
	t0 = now_us();
	rc = await_answer(d);
	ms = (now_us() - t0) / 1000;
	d->out = NULL;
	pthread_mutex_unlock(&d->mu);
	is_int(rc, -ETIMEDOUT, "no answer: -ETIMEDOUT");
	ok(ms < 50, "... given up on after %.1f ms (wait %d ms)", ms, RECV_WAIT_MS);
	ok(sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&b, &s) == 0 &&
	   s.inode == ino_of(cfd), "the handle answers again afterwards");
}

/* As root: another process in the namespace may unicast to the handle's netlink port. A
 * forged answer with the right sequence number must not be taken for the kernel's. */
static void forged_answer(struct sockdiag *d)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_msg m;
	} f = { .h = { .nlmsg_len = sizeof(f), .nlmsg_type = SOCK_DIAG_BY_FAMILY },
		.m = { .idiag_uid = 4242, .idiag_inode = 1, .idiag_state = 1,
		       .id.idiag_cookie = { 1, 0 } } };
	struct sockaddr_nl to = { .nl_family = AF_NETLINK };
	struct sockdiag_sock s;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), rc;
	ssize_t sent;

	pthread_mutex_lock(&d->mu);
	d->seq += 2000;
	d->done = 0;
	d->err = -ETIMEDOUT;
	d->out = &s;
	d->seen = 0;
	f.h.nlmsg_seq = d->seq;
	to.nl_pid = nl_socket_get_local_port(d->sk);
	sent = fd < 0 ? -1 : sendto(fd, &f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to));
	rc = await_answer(d);
	d->out = NULL;
	pthread_mutex_unlock(&d->mu);
	ok(sent == (ssize_t)sizeof(f), "a process sends a forged answer to the handle's port");
	ok(rc == -ETIMEDOUT && d->seen == 1, "... it arrives and is not taken for the kernel's");
	if (fd >= 0)
		close(fd);
}

/* --- as root: a fresh network namespace, the way sluiced serves a container ------------- */

static int to_child[2], from_child[2];

/* Child: its own netns; when told the port, connect to 127.0.0.1:<port> from a socket
 * created as uid 65534 and report the socket's inode and cookie; hold it until told. */
static void netns_child(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t r[2] = { 0, 0 };
	uint16_t port;
	char ok_ = unshare(CLONE_NEWNET) == 0;
	int fd;

	write(from_child[1], &ok_, 1);
	if (read(to_child[0], &port, sizeof(port)) != sizeof(port))
		_exit(1);
	a.sin_port = htons(port);
	if (setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0 &&
	    (fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0 &&
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		r[0] = ino_of(fd);
		r[1] = cookie_of(fd);
	}
	write(from_child[1], r, sizeof(r));
	read(to_child[0], &port, 1); /* until the parent is done */
	_exit(0);
}

static void in_netns(struct sockdiag *own)
{
	struct listener l = { .fd4 = -1, .fd6 = -1 };
	struct sockdiag_sock s;
	uint64_t r[2] = { 0, 0 };
	uint16_t port = 15997;
	char err[256] = "", why[300] = "", c = 0;
	pid_t child;
	int afd = -1, status;

	if (pipe(to_child) || pipe(from_child))
		return;
	child = fork();
	if (child == 0)
		netns_child();
	if (read(from_child[0], &c, 1) != 1 || !c) {
		ok(0, "child in a fresh network namespace");
		goto out;
	}
	ok(listener_open(child, port, &l, err, sizeof(err)) == 0,
	   "listener opened in the child's fresh netns (%s)", err);
	ok(l.diag != NULL, "... with its own sock_diag handle (%s)", l.diag ? "ok" : l.diag_err);
	if (l.fd4 < 0 || !l.diag)
		goto out;
	write(to_child[1], &port, sizeof(port));
	if (read(from_child[0], r, sizeof(r)) != sizeof(r) || !r[0]) {
		ok(0, "child connected as uid 65534");
		goto out;
	}
	afd = accept4(l.fd4, NULL, NULL, SOCK_CLOEXEC);
	ok(afd >= 0, "sluiced's listener in the child's netns accepted it");
	is_int(sockdiag_check_peer(l.diag, afd, 65534, r[1], &s, why, sizeof(why)), 0,
	       "netns: cross-check passes for uid 65534 and its cookie (%s)", why);
	ok(s.inode == r[0], "netns: inode %llu is the child's socket (%llu)",
	   (unsigned long long)s.inode, (unsigned long long)r[0]);
	is_int(s.uid, 65534, "netns: owner uid as the kernel has it");
	is_int(sockdiag_check_peer(l.diag, afd, 0, r[1], &s, why, sizeof(why)), -1,
	       "netns: an origin claiming uid 0 is refused (%s)", why);
	is_int(sockdiag_check_peer(own, afd, 65534, r[1], &s, why, sizeof(why)), -1,
	       "the handle of another namespace does not see the socket (%s)", why);
	ok(strstr(why, "knows no agent socket") != NULL, "... and says so");
out:
	if (afd >= 0)
		close(afd);
	listener_close(&l);
	close(to_child[1]);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
}

int main(void)
{
	struct sockaddr_storage a, b;
	socklen_t alen = sizeof(a), blen = sizeof(b);
	struct sockdiag_sock s;
	struct sockdiag *d;
	char err[200] = "", why[300] = "";
	double t0, per;
	int lfd, cfd, afd = -1, i, n = 20000, fails = 0;

	lfd = listen_on(AF_INET, "127.0.0.1");
	ok(lfd >= 0, "listener on 127.0.0.1");
	d = sockdiag_open(lfd, err, sizeof(err));
	ok(d != NULL, "sock_diag handle opened, probe found the listener (%s)", d ? "ok" : err);
	if (!d)
		return tap_done();
	cfd = connect_to(lfd, AF_INET, "127.0.0.1", &afd);
	ok(cfd >= 0 && afd >= 0, "client connected and accepted");

	/* The client's socket by its own 4-tuple. */
	getsockname(cfd, (struct sockaddr *)&a, &alen);
	getpeername(cfd, (struct sockaddr *)&b, &blen);
	is_int(sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&b, &s), 0,
	       "lookup of the client's 4-tuple");
	is_int(s.uid, geteuid(), "uid is this process's");
	ok(s.inode == ino_of(cfd), "inode %llu is the client fd's st_ino (%llu)",
	   (unsigned long long)s.inode, (unsigned long long)ino_of(cfd));
	ok(s.cookie == cookie_of(cfd) && s.cookie, "cookie is the client's SO_COOKIE");
	is_int(s.state, 1, "state ESTABLISHED");
	/* The same 4-tuple the other way round is the accepted socket, not the client. */
	is_int(sockdiag_lookup(d, (struct sockaddr *)&b, (struct sockaddr *)&a, &s), 0,
	       "the mirror 4-tuple is the accepted socket");
	ok(s.inode == ino_of(afd) && s.inode != ino_of(cfd), "... with its own inode");

	/* The cross-check of the accepted end. */
	is_int(sockdiag_check_peer(d, afd, (uint32_t)geteuid(), cookie_of(cfd), &s, why,
				   sizeof(why)), 0, "cross-check passes for the right uid and cookie");
	ok(s.inode == ino_of(cfd), "... and reports the client's inode, not the accepted one's");
	is_int(sockdiag_check_peer(d, afd, (uint32_t)geteuid(), 0, &s, why, sizeof(why)), 0,
	       "cookie 0: not compared");
	is_int(sockdiag_check_peer(d, afd, (uint32_t)geteuid() + 1, cookie_of(cfd), &s, why,
				   sizeof(why)), -1, "a different uid is refused");
	ok(strstr(why, "belongs to uid") != NULL, "... saying whose it is (%s)", why);
	is_int(sockdiag_check_peer(d, afd, (uint32_t)geteuid(), cookie_of(cfd) + 1, &s, why,
				   sizeof(why)), -1, "another socket's cookie is refused (%s)", why);

	/* Nothing there. */
	((struct sockaddr_in *)&a)->sin_port = htons(1); /* tcpmux: not ours, not connected */
	is_int(sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&b, &s), -ENOENT,
	       "a 4-tuple with no socket: not found");
	ok(s.inode == 0 && s.uid == 0, "... and nothing is reported");
	is_int(sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&(struct sockaddr_in6)
			       { .sin6_family = AF_INET6 }, &s), -EAFNOSUPPORT,
	       "mixed families refused");

	/* The cost of one lookup (a round trip through the kernel). */
	getsockname(cfd, (struct sockaddr *)&a, &alen);
	t0 = now_us();
	for (i = 0; i < n; i++)
		fails += sockdiag_lookup(d, (struct sockaddr *)&a, (struct sockaddr *)&b, &s) != 0;
	per = (now_us() - t0) / n;
	is_int(fails, 0, "%d lookups in a row all answered", n);
	printf("# one lookup: %.1f us (%d in a row)\n", per, n);
	t0 = now_us();
	for (i = 0; i < n; i++)
		fails += sockdiag_check_peer(d, afd, (uint32_t)geteuid(), 0, &s, why, sizeof(why));
	printf("# one cross-check of an accepted socket: %.1f us\n", (now_us() - t0) / n);
	is_int(fails, 0, "%d cross-checks in a row all passed", n);

	late_and_missing(d, cfd, afd);

	/* The agent closed its end before the check: no owner any more. */
	close(cfd);
	usleep(20000);
	is_int(sockdiag_check_peer(d, afd, (uint32_t)geteuid(), 0, &s, why, sizeof(why)), -1,
	       "an agent socket closed before the check is refused (%s)", why);
	close(afd);

	check_family(AF_INET6, "127.0.0.1", "::ffff:127.0.0.1");
	check_family(AF_INET6, "::1", "::1");

	if (geteuid() == 0) {
		forged_answer(d);
		in_netns(d);
	} else {
		ok(1, "# SKIP forged answers and a fresh network namespace: need root");
	}
	sockdiag_close(d);
	close(lfd);
	return tap_done();
}
