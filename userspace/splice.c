/* splice.c - move the two sockets of a spliced connection into the kernel's socket hashes
 * (bpf/splice.bpf.c) and read back what the kernel forwarded.
 *
 * Order matters, and the kernel leaves two traps:
 *  - a socket joins splice_targets (a psock, so it can be redirected to) before either
 *    socket joins splice_socks (where the verdict program reads it): a segment redirected to
 *    a socket that is not yet a target would be dropped;
 *  - a socket that joins splice_socks with bytes already in its receive queue keeps them
 *    there until the next segment arrives (the verdict program runs from data_ready), which
 *    for a request/response protocol may be never. SO_RCVLOWAT's setter calls data_ready
 *    (tcp_set_rcvlowat -> tcp_data_ready), which hands them to the program at once, ahead
 *    of whatever arrives later: the receive queue is read from its head.
 * What sluiced itself read before has been sent by then (the caller's promise), so nothing
 * overtakes anything.
 *
 * How far the kernel got is read from the counters the verdict program keeps (bytes taken
 * from a socket) and from the peer's TCP state (bytes written into it: bytes acknowledged
 * plus bytes still in its send queue). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "splice.h"
#include "sluice-bpf.h"
#include "splice.skel.h"

struct splice {
	struct splice_bpf *skel;
	int socks, targets, peers; /* map fds */
};

struct splice *splice_open(char *err, size_t errlen)
{
	struct splice *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->skel = splice_bpf__open_and_load();
	if (!s->skel) {
		snprintf(err, errlen, "loading the splice eBPF program: %s", strerror(errno));
		goto fail;
	}
	s->socks = bpf_map__fd(s->skel->maps.splice_socks);
	s->targets = bpf_map__fd(s->skel->maps.splice_targets);
	s->peers = bpf_map__fd(s->skel->maps.splice_peers);
	/* attached to the map, not to a cgroup: it lives as long as the map, i.e. this process */
	rc = bpf_prog_attach(bpf_program__fd(s->skel->progs.splice_verdict), s->socks,
			     BPF_SK_SKB_STREAM_VERDICT, 0);
	if (rc) {
		snprintf(err, errlen, "attaching the splice verdict program: %s", strerror(-rc));
		goto fail;
	}
	return s;
fail:
	splice_close(s);
	return NULL;
}

void splice_close(struct splice *s)
{
	if (!s)
		return;
	splice_bpf__destroy(s->skel);
	free(s);
}

/* Bytes ever written into TCP socket <fd>: acknowledged by its peer, or still queued. */
static int written(int fd, uint64_t *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq = 0;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked) ||
	    ioctl(fd, SIOCOUTQ, &outq) || outq < 0)
		return -1;
	*out = ti.tcpi_bytes_acked + (uint64_t)outq;
	return 0;
}

static void forget(struct splice *s, const struct splice_pair *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		bpf_map_delete_elem(s->socks, &p->cookie[i]);
		bpf_map_delete_elem(s->targets, &p->cookie[i]);
		bpf_map_delete_elem(s->peers, &p->cookie[i]);
	}
}

int splice_attach(struct splice *s, struct splice_pair *p, int fd0, int fd1, char *err,
		  size_t errlen)
{
	struct sluice_splice_peer v;
	const char *what = "";
	socklen_t len;
	__u64 fd;
	int i, e = 0, one = 1;

	memset(p, 0, sizeof(*p));
	p->fd[0] = fd0;
	p->fd[1] = fd1;
	for (i = 0; i < 2; i++) {
		len = sizeof(p->cookie[i]);
		if (getsockopt(p->fd[i], SOL_SOCKET, SO_COOKIE, &p->cookie[i], &len) ||
		    written(p->fd[i], &p->base[i])) {
			snprintf(err, errlen, "reading the sockets' state: %s", strerror(errno));
			return -1;
		}
	}
	for (i = 0; i < 2; i++) {
		v.peer = p->cookie[!i];
		v.bytes = 0;
		fd = (__u64)p->fd[i];
		if (bpf_map_update_elem(s->peers, &p->cookie[i], &v, BPF_NOEXIST)) {
			what = "splice_peers";
			goto undo;
		}
		if (bpf_map_update_elem(s->targets, &p->cookie[i], &fd, BPF_NOEXIST)) {
			what = "splice_targets"; /* EOPNOTSUPP: no longer established */
			goto undo;
		}
	}
	for (i = 0; i < 2; i++) {
		fd = (__u64)p->fd[i];
		if (bpf_map_update_elem(s->socks, &p->cookie[i], &fd, BPF_NOEXIST) == 0)
			p->rx |= 1 << i;
		else if (!e)
			e = errno;
	}
	if (!p->rx) {
		errno = e;
		what = "splice_socks";
		goto undo;
	}
	for (i = 0; i < 2; i++)
		if (p->rx & (1 << i))
			setsockopt(p->fd[i], SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	return 0;
undo:
	e = errno;
	forget(s, p);
	p->rx = 0;
	snprintf(err, errlen, "adding the sockets to %s: %s", what, strerror(e));
	errno = e; /* EOPNOTSUPP: a socket is no longer established */
	return -1;
}

uint64_t splice_forwarded(struct splice *s, const struct splice_pair *p, int i)
{
	struct sluice_splice_peer v;

	if (!(p->rx & (1 << i)) || bpf_map_lookup_elem(s->peers, &p->cookie[i], &v))
		return 0;
	return v.bytes;
}

int splice_drained(struct splice *s, const struct splice_pair *p, int i)
{
	uint64_t w;

	if (written(p->fd[!i], &w))
		return -1;
	return w - p->base[!i] >= splice_forwarded(s, p, i);
}

void splice_detach(struct splice *s, struct splice_pair *p)
{
	int i;

	if (!p->rx)
		return;
	for (i = 0; i < 2; i++)
		bpf_map_delete_elem(s->peers, &p->cookie[i]);
	p->rx = 0;
}
