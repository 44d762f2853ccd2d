/* Description: the redirect eBPF programs, for real: a process in an enforced cgroup (and its
 * own netns) is sent to sluiced's listener, its origin is recovered exactly, UDP/443 and
 * listener-less namespaces are refused, loopback passes, pinned links outlive the loader and
 * detach removes them. Needs root and cgroup v2 (exit 77 otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "listener.h"
#include "redirect.h"
#include "sockdiag.h"
#include "tap.h"

static int to_child[2], from_child[2];
static pid_t child;
static int events, last_event_tgid;

static void on_event(void *arg, const struct sluice_event *ev)
{
	events++;
	last_event_tgid = (int)ev->tgid;
}

/* Child side: run one command, answer with errno (0 = connected) and keep the socket. */
static int run(char cmd)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(443) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
	int fd, rc;

	inet_pton(AF_INET, "203.0.113.7", &a4.sin_addr);
	switch (cmd) {
	case 'c': /* TCP IPv4 */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		rc = connect(fd, (struct sockaddr *)&a4, sizeof(a4));
		break;
	case 'm': /* TCP IPv4-mapped on an IPv6 socket */
		inet_pton(AF_INET6, "::ffff:203.0.113.8", &a6.sin6_addr);
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		rc = connect(fd, (struct sockaddr *)&a6, sizeof(a6));
		break;
	case '6': /* TCP IPv6 */
		inet_pton(AF_INET6, "2001:db8::9", &a6.sin6_addr);
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		rc = connect(fd, (struct sockaddr *)&a6, sizeof(a6));
		break;
	case 'u': /* UDP to 443: QUIC */
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		rc = sendto(fd, "x", 1, 0, (struct sockaddr *)&a4, sizeof(a4)) < 0 ? -1 : 0;
		break;
	case 'd': /* UDP to 53: DNS stays possible (this netns has no route out) */
		a4.sin_port = htons(53);
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		rc = connect(fd, (struct sockaddr *)&a4, sizeof(a4));
		break;
	case 'l': /* loopback, nothing listening */
		a4.sin_port = htons(9);
		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		rc = connect(fd, (struct sockaddr *)&a4, sizeof(a4));
		break;
	default:
		return EINVAL;
	}
	return rc ? errno : 0;
}

static void child_main(const char *procs)
{
	char cmd;
	int fd, e;

	fd = open(procs, O_WRONLY);
	if (fd < 0 || dprintf(fd, "%d", getpid()) < 0 || unshare(CLONE_NEWNET))
		_exit(3);
	close(fd);
	e = 0;
	if (write(from_child[1], &e, sizeof(e)) != sizeof(e))
		_exit(3);
	while (read(to_child[0], &cmd, 1) == 1) {
		e = run(cmd);
		if (write(from_child[1], &e, sizeof(e)) != sizeof(e))
			_exit(3);
	}
	_exit(0);
}

static int ask(char cmd)
{
	int e = -1;

	if (write(to_child[1], &cmd, 1) != 1 || read(from_child[0], &e, sizeof(e)) != sizeof(e))
		return -1;
	return e;
}

static int accept_one(int lfd, struct sockaddr_storage *peer)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	socklen_t len = sizeof(*peer);

	if (poll(&p, 1, 2000) != 1)
		return -1;
	return accept(lfd, (struct sockaddr *)peer, &len);
}

int main(void)
{
	struct sluice_conf conf = { 0 };
	struct redirect *r;
	struct listener l;
	struct sluice_origin o;
	struct sockaddr_storage peer;
	struct sockdiag_sock ds;
	char why[300] = "";
	char cg2[256], dir[512], procs[600], err[512], pin[128], ip[64];
	int fd, rc, status;

	if (getuid() != 0)
		tap_skip_all("needs root to load eBPF and create cgroups");
	if (redirect_cgroup2_mount(cg2, sizeof(cg2)))
		tap_skip_all("needs a cgroup v2 mount");

	snprintf(dir, sizeof(dir), "%s/sluice-test-unit-%d", cg2, getpid());
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/sluice-test-%d", getpid());
	if (mkdir(dir, 0755)) {
		printf("mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	conf.cgroups.v[0] = dir + strlen(cg2);
	conf.cgroups.n = 1;
	conf.pass_loopback = 1;
	conf.bpf_pin_dir = pin;

	/* Forked first: a child forked later would inherit the link fds and keep them alive. */
	if (pipe(to_child) || pipe(from_child))
		return 1;
	child = fork();
	if (child == 0)
		child_main(procs);
	ask(0); /* wait until the child sits in the cgroup and its own netns */
	read(from_child[0], &rc, sizeof(rc));

	r = redirect_open(&conf, on_event, NULL, err, sizeof(err));
	ok(r != NULL, "programs load and attach (%s)", r ? "ok" : err);
	if (!r)
		goto kill;

	is_int(ask('c'), EPERM, "netns without a listener: connect refused (fail closed)");
	redirect_poll_events(r);
	ok(events >= 1 && last_event_tgid == child, "sluiced is told which process needs a listener");

	rc = listener_open(child, 15999, &l, err, sizeof(err));
	ok(rc == 0, "listener opened inside the child's netns (%s)", rc ? err : "ok");
	if (rc)
		goto kill;
	redirect_set_listener(r, l.netns_cookie, 15999);

	is_int(ask('c'), 0, "TCP to 203.0.113.7:443 connects (to sluiced)");
	fd = accept_one(l.fd4, &peer);
	ok(fd >= 0, "sluiced's IPv4 listener accepted it");
	rc = redirect_origin(r, l.netns_cookie, (struct sockaddr *)&peer, &o);
	is_int(rc, 0, "origin found by the accepted peer address");
	inet_ntop(AF_INET, &o.addr[12], ip, sizeof(ip));
	is_str(ip, "203.0.113.7", "original destination address");
	is_int(o.port, 443, "original destination port");
	is_int(o.family, AF_INET, "family as the agent used it");
	is_int(o.tgid, child, "tgid of the connecting process");
	is_int(o.uid, 0, "uid");
	is_str(o.comm, "redirect", "comm");
	ok(o.netns_cookie == l.netns_cookie, "netns cookie");
	ok(l.diag != NULL, "sock_diag handle in the child's netns (%s)", l.diag ? "ok" : l.diag_err);
	ok(l.diag && sockdiag_check_peer(l.diag, fd, o.uid, o.sock_cookie, &ds, why,
					 sizeof(why)) == 0,
	   "the kernel's socket table agrees with the origin on uid and socket cookie (%s)", why);
	is_int(redirect_origin(r, l.netns_cookie, (struct sockaddr *)&peer, &o), -ENOENT,
	       "an origin is handed out once");
	close(fd);

	is_int(ask('m'), 0, "IPv4-mapped destination on an IPv6 socket connects");
	fd = accept_one(l.fd4, &peer);
	rc = fd >= 0 ? redirect_origin(r, l.netns_cookie, (struct sockaddr *)&peer, &o) : -1;
	inet_ntop(AF_INET, &o.addr[12], ip, sizeof(ip));
	ok(rc == 0 && !strcmp(ip, "203.0.113.8") && o.family == AF_INET,
	   "mapped destination treated as IPv4 (%s)", ip);
	ok(rc == 0 && sockdiag_check_peer(l.diag, fd, o.uid, o.sock_cookie, &ds, why,
					  sizeof(why)) == 0,
	   "... its IPv6 socket found by sock_diag with the IPv4 4-tuple (%s)", why);
	if (fd >= 0)
		close(fd);

	is_int(ask('6'), 0, "IPv6 destination connects");
	fd = accept_one(l.fd6, &peer);
	rc = fd >= 0 ? redirect_origin(r, l.netns_cookie, (struct sockaddr *)&peer, &o) : -1;
	inet_ntop(AF_INET6, o.addr, ip, sizeof(ip));
	ok(rc == 0 && !strcmp(ip, "2001:db8::9") && o.port == 443 && o.family == AF_INET6,
	   "IPv6 origin recovered on the ::1 listener (%s)", ip);
	ok(rc == 0 && sockdiag_check_peer(l.diag, fd, o.uid, o.sock_cookie, &ds, why,
					  sizeof(why)) == 0, "... and checked by sock_diag (%s)", why);
	if (fd >= 0)
		close(fd);

	is_int(ask('u'), EPERM, "UDP to port 443 refused (QUIC)");
	is_int(ask('d'), ENETUNREACH, "UDP to port 53 allowed (DNS): fails only for want of a route");
	is_int(ask('l'), ECONNREFUSED, "loopback destination left alone");

	redirect_close(r);
	r = NULL;
	is_int(ask('c'), 0, "after sluiced's handles close, pinned links still redirect");
	fd = accept_one(l.fd4, &peer);
	ok(fd >= 0, "... to the listener");
	if (fd >= 0)
		close(fd);
	listener_close(&l);
	is_int(ask('c'), ECONNREFUSED, "listener gone: connect refused, never direct");

	ok(redirect_detach_all(pin, err, sizeof(err)) == 0, "detach removes the pins");
	/* the kernel releases a link whose last pin is gone asynchronously */
	for (rc = 0; rc < 100 && (status = ask('c')) != ENETUNREACH; rc++)
		usleep(10000);
	is_int(status, ENETUNREACH, "detached: connections are no longer redirected");
kill:
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	redirect_close(r);
	redirect_detach_all(pin, err, sizeof(err));
	rmdir(dir);
	return tap_done();
}
