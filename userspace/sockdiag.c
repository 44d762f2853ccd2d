/* sockdiag.c - ask the kernel's socket table who owns the agent's end of a connection.
 *
 * The eBPF origin map says who connected; this is the second opinion from a different
 * source. An exact inet_diag request (SOCK_DIAG_BY_FAMILY with the full 4-tuple) makes the
 * kernel look the socket up as an arriving packet would, and answer with its owner uid,
 * inode and cookie. The kernel runs the request inside the sendmsg() that carries it, so the
 * answer is queued before the send returns: the short wait below only bounds a kernel that
 * misbehaves. The netlink socket asks in the namespace it was created in, hence one
 * handle per namespace, opened next to that namespace's listener (listener.c).
 *
 * libnl-3 core only (Debian 12 ships 3.7, whose idiag library is not packaged and only
 * dumps): nlmsg_alloc_simple + nlmsg_append, nl_send, nl_recvmsgs with callbacks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockdiag.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define RECV_WAIT_MS 3 /* for an answer that is not there at once (it normally is) */
#define RECV_TRIES 4   /* other messages skipped before giving up */

struct sockdiag {
	pthread_mutex_t mu; /* one query at a time: workers share the handle */
	struct nl_sock *sk;
	/* the query in flight, under <mu> */
	uint32_t seq;
	unsigned seen; /* messages received, stale ones included */
	int done;     /* 1: an answer (or an error) for <seq> arrived */
	int err;      /* -errno from the kernel, 0 with an answer */
	struct sockdiag_sock *out;
};

/* Only the kernel's answer to the query in flight counts: anything older (a query that
 * timed out and was answered late) is skipped, and so is anything a process sent to our
 * port (root in the namespace may unicast to it): an answer from there could vouch for a
 * socket. */
static int on_seq(struct nl_msg *msg, void *arg)
{
	struct sockdiag *d = arg;

	d->seen++;
	return nlmsg_hdr(msg)->nlmsg_seq == d->seq && nlmsg_get_src(msg)->nl_pid == 0 ?
	       NL_OK : NL_SKIP;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct sockdiag *d = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	const struct inet_diag_msg *m;

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)sizeof(*m))
		return NL_SKIP;
	m = nlmsg_data(h);
	d->out->uid = m->idiag_uid;
	d->out->inode = m->idiag_inode;
	d->out->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
	d->out->state = m->idiag_state;
	d->err = 0;
	d->done = 1;
	return NL_STOP;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct sockdiag *d = arg;

	d->err = e->error < 0 ? e->error : -EIO;
	d->done = 1;
	return NL_STOP;
}

/* Receive until the answer to <seq> is in. The socket is non-blocking and the answer is
 * normally queued already; if it is not, wait for it once, RECV_WAIT_MS at most (poll: a
 * real millisecond bound, where a receive timeout would round up to scheduler ticks). Up to
 * RECV_TRIES other messages are skipped on the way. Returns d->err (-ETIMEDOUT: no answer). */
static int await_answer(struct sockdiag *d)
{
	struct pollfd p = { .fd = nl_socket_get_fd(d->sk), .events = POLLIN };
	int tries = RECV_TRIES, waited = 0, rc;
	unsigned seen;

	while (!d->done && tries > 0) {
		seen = d->seen;
		rc = nl_recvmsgs_default(d->sk); /* one recvmsg(); -NLE_AGAIN when nothing is there */
		if (d->done)
			break;
		if (rc == -NLE_AGAIN) {
			if (waited++ || poll(&p, 1, RECV_WAIT_MS) <= 0)
				break;
			continue;
		}
		if (rc < 0) {
			d->err = -EIO;
			break;
		}
		if (d->seen == seen)
			break;
		tries--; /* a late or foreign message, skipped */
	}
	return d->err;
}

/* The kernel's view of an address: network byte order, IPv4 in the first word. */
static int put_addr(const struct sockaddr *sa, __be16 *port, __be32 addr[4])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

		*port = a->sin_port;
		addr[0] = a->sin_addr.s_addr;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;

		*port = a->sin6_port;
		memcpy(addr, &a->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int sockdiag_lookup(struct sockdiag *d, const struct sockaddr *local,
		    const struct sockaddr *remote, struct sockdiag_sock *out)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = (__u8)local->sa_family,
		.sdiag_protocol = IPPROTO_TCP,
		.idiag_states = ~0U,
		.id.idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE },
	};
	struct nl_msg *msg;
	int rc;

	memset(out, 0, sizeof(*out));
	if (local->sa_family != remote->sa_family ||
	    put_addr(local, &req.id.idiag_sport, req.id.idiag_src) ||
	    put_addr(remote, &req.id.idiag_dport, req.id.idiag_dst))
		return -EAFNOSUPPORT;
	msg = nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST);
	if (!msg)
		return -ENOMEM;
	if (nlmsg_append(msg, &req, sizeof(req), NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	pthread_mutex_lock(&d->mu);
	nl_complete_msg(d->sk, msg); /* our port id and the next sequence number */
	d->seq = nlmsg_hdr(msg)->nlmsg_seq;
	d->done = 0;
	d->err = -ETIMEDOUT;
	d->out = out;
	rc = nl_send(d->sk, msg);
	if (rc < 0) {
		d->err = rc == -NLE_NOMEM ? -ENOMEM : -EIO;
		d->done = 1;
	}
	rc = await_answer(d);
	d->out = NULL;
	pthread_mutex_unlock(&d->mu);
	nlmsg_free(msg);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* The probe: the listening socket <fd>, looked up by its own address, must come back with
 * its inode and cookie. That proves the kernel answers exact TCP lookups here and that this
 * file reads the answer right. */
static int probe(struct sockdiag *d, int fd, char *err, size_t errlen)
{
	struct sockaddr_storage local, any;
	socklen_t len = sizeof(local), clen = sizeof(uint64_t);
	struct sockdiag_sock s;
	struct stat st;
	uint64_t cookie = 0;
	int rc;

	if (getsockname(fd, (struct sockaddr *)&local, &len) || fstat(fd, &st) ||
	    getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &clen)) {
		snprintf(err, errlen, "sock_diag probe: %s", strerror(errno));
		return -errno;
	}
	memset(&any, 0, sizeof(any));
	any.ss_family = local.ss_family;
	rc = sockdiag_lookup(d, (struct sockaddr *)&local, (struct sockaddr *)&any, &s);
	if (rc) {
		snprintf(err, errlen, "sock_diag does not answer TCP lookups here (%s%s)",
			 strerror(-rc), rc == -ENOENT || rc == -EINVAL ?
			 ": no inet_diag/tcp_diag in this kernel?" : "");
		return rc;
	}
	if (s.inode != (uint64_t)st.st_ino || s.cookie != cookie) {
		snprintf(err, errlen, "sock_diag probe found another socket (inode %llu, want %llu)",
			 (unsigned long long)s.inode, (unsigned long long)st.st_ino);
		return -EPROTO;
	}
	return 0;
}

struct sockdiag *sockdiag_open(int probe_fd, char *err, size_t errlen)
{
	struct sockdiag *d = calloc(1, sizeof(*d));
	int rc;

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&d->mu, NULL);
	d->sk = nl_socket_alloc();
	if (!d->sk) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = nl_connect(d->sk, NETLINK_SOCK_DIAG);
	if (rc < 0) {
		snprintf(err, errlen, "NETLINK_SOCK_DIAG: %s", nl_geterror(rc));
		goto fail;
	}
	/* nl_connect() leaves the socket inheritable; sluiced must not leak it to children. */
	if (fcntl(nl_socket_get_fd(d->sk), F_SETFD, FD_CLOEXEC) ||
	    nl_socket_set_nonblocking(d->sk) < 0) {
		snprintf(err, errlen, "NETLINK_SOCK_DIAG socket options: %s", strerror(errno));
		goto fail;
	}
	nl_socket_disable_auto_ack(d->sk);  /* the answer or an error comes back anyway */
	nl_socket_disable_msg_peek(d->sk);  /* one recvmsg() per answer, not two */
	nl_socket_modify_cb(d->sk, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_seq, d);
	nl_socket_modify_cb(d->sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid, d);
	nl_socket_modify_err_cb(d->sk, NL_CB_CUSTOM, on_error, d);
	if (probe(d, probe_fd, err, errlen))
		goto fail;
	return d;
fail:
	sockdiag_close(d);
	return NULL;
}

int sockdiag_check_peer(struct sockdiag *d, int fd, uint32_t uid, uint64_t cookie,
			struct sockdiag_sock *found, char *why, size_t whylen)
{
	struct sockaddr_storage peer, self;
	socklen_t plen = sizeof(peer), slen = sizeof(self);
	int rc;

	memset(found, 0, sizeof(*found));
	if (whylen)
		why[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) ||
	    getsockname(fd, (struct sockaddr *)&self, &slen)) {
		snprintf(why, whylen, "sock_diag: accepted socket: %s", strerror(errno));
		return -1;
	}
	/* The agent's socket is the mirror image of ours: its own address is our peer. */
	rc = sockdiag_lookup(d, (struct sockaddr *)&peer, (struct sockaddr *)&self, found);
	if (rc == -ENOENT) {
		snprintf(why, whylen, "sock_diag: the kernel knows no agent socket for this "
			 "connection");
		return -1;
	}
	if (rc) {
		snprintf(why, whylen, "sock_diag: lookup of the agent's socket failed: %s",
			 strerror(-rc));
		return -1;
	}
	if (!found->inode || found->state == TCP_TIME_WAIT) {
		snprintf(why, whylen, "sock_diag: the agent's socket was closed before it was "
			 "checked (state %u)", found->state);
		return -1;
	}
	if (found->uid != uid) {
		snprintf(why, whylen, "sock_diag: the agent's socket belongs to uid %u, the "
			 "redirect recorded uid %u", found->uid, uid);
		return -1;
	}
	if (cookie && found->cookie != cookie) {
		snprintf(why, whylen, "sock_diag: the agent's socket (cookie %llu) is not the one "
			 "the redirect saw (cookie %llu)", (unsigned long long)found->cookie,
			 (unsigned long long)cookie);
		return -1;
	}
	return 0;
}

void sockdiag_close(struct sockdiag *d)
{
	if (!d)
		return;
	nl_socket_free(d->sk); /* closes the socket; NULL-tolerant */
	pthread_mutex_destroy(&d->mu);
	free(d);
}
