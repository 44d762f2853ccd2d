/* listener.c - open sluiced's listening sockets inside a given network namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "sockdiag.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

struct job {
	pid_t pid;
	uint16_t port;
	struct listener *out;
	char *err;
	size_t errlen;
	int rc;
};

int listener_netns_cookie(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) ? -errno : 0;
}

/* Loopback of the current netns up (a fresh container netns starts with it down). */
static int loopback_up(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct rtnl_link *lo = NULL, *change = NULL;
	int rc = -ENOMEM;

	if (!sk)
		return rc;
	if ((rc = nl_connect(sk, NETLINK_ROUTE)) < 0 ||
	    (rc = rtnl_link_get_kernel(sk, 0, "lo", &lo)) < 0)
		goto out;
	rc = 0;
	if (!(rtnl_link_get_flags(lo) & IFF_UP)) {
		change = rtnl_link_alloc();
		rtnl_link_set_flags(change, IFF_UP);
		rc = rtnl_link_change(sk, lo, change, 0);
	}
out:
	rtnl_link_put(change);
	rtnl_link_put(lo);
	nl_socket_free(sk);
	return rc < 0 ? -EIO : 0;
}

static int open_one(int family, uint16_t port)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1, e;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if ((family == AF_INET ? bind(fd, (struct sockaddr *)&a4, sizeof(a4))
			       : bind(fd, (struct sockaddr *)&a6, sizeof(a6))) ||
	    listen(fd, 4096)) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	char path[64];
	int nsfd;

	j->out->fd4 = j->out->fd6 = -1;
	j->out->diag = NULL;
	j->out->diag_err[0] = '\0';
	if (j->pid) {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)j->pid);
		nsfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET)) {
			j->rc = -errno;
			snprintf(j->err, j->errlen, "entering %s: %s", path, strerror(errno));
			if (nsfd >= 0)
				close(nsfd);
			return NULL;
		}
		close(nsfd);
		if (loopback_up()) {
			j->rc = -EIO;
			snprintf(j->err, j->errlen, "bringing up loopback in %s failed", path);
			return NULL;
		}
	}
	j->out->fd4 = open_one(AF_INET, j->port);
	j->out->fd6 = open_one(AF_INET6, j->port);
	if (j->out->fd4 < 0 && j->out->fd6 < 0) {
		j->rc = j->out->fd4;
		snprintf(j->err, j->errlen, "listening on 127.0.0.1:%u in %s: %s", j->port,
			 j->pid ? path : "sluiced's namespace", strerror(-j->out->fd4));
		return NULL;
	}
	j->rc = listener_netns_cookie(j->out->fd4 >= 0 ? j->out->fd4 : j->out->fd6,
				      &j->out->netns_cookie);
	if (j->rc) {
		snprintf(j->err, j->errlen, "SO_NETNS_COOKIE: %s (needs Linux 5.14+)",
			 strerror(-j->rc));
		return NULL;
	}
	/* Created here, so that it asks about this namespace's sockets. */
	j->out->diag = sockdiag_open(j->out->fd4 >= 0 ? j->out->fd4 : j->out->fd6,
				     j->out->diag_err, sizeof(j->out->diag_err));
	return NULL;
}

int listener_open(pid_t pid, uint16_t port, struct listener *out, char *err, size_t errlen)
{
	struct job j = { .pid = pid, .port = port, .out = out, .err = err, .errlen = errlen };
	pthread_t t;
	int rc;

	/* setns() changes the calling thread only: a throwaway thread keeps ours untouched. */
	rc = pthread_create(&t, NULL, run_job, &j);
	if (rc) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		return -rc;
	}
	pthread_join(t, NULL);
	if (j.rc)
		listener_close(out);
	return j.rc;
}

void listener_close(struct listener *l)
{
	if (l->fd4 >= 0)
		close(l->fd4);
	if (l->fd6 >= 0)
		close(l->fd6);
	l->fd4 = l->fd6 = -1;
	sockdiag_close(l->diag);
	l->diag = NULL;
}
