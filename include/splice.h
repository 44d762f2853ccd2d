/* splice.h - spliced connections forwarded inside the kernel (bpf/splice.bpf.c): a socket
 * hash with an sk_skb verdict program that queues what one socket receives straight onto
 * its peer's send queue, so the bytes of a spliced connection never pass through sluiced.
 *
 * The maps and the program are sluiced's own, loaded at start and never pinned: when sluiced
 * exits, the sockets it holds close with it, and so do the spliced connections (as they do
 * when bytes are copied). proxy.c decides what is spliced and when; this module only moves
 * a pair of sockets into the kernel and reports what the kernel did with them. */
#ifndef SLUICE_SPLICE_H
#define SLUICE_SPLICE_H

#include <stddef.h>
#include <stdint.h>

struct splice;

/* Two connected TCP sockets whose bytes the kernel passes between them. */
struct splice_pair {
	int fd[2];
	uint64_t cookie[2];  /* SO_COOKIE: the sockets' keys in the maps */
	uint64_t base[2];    /* bytes written into fd[i] before the kernel wrote to it */
	int rx;              /* bit i set: the kernel forwards what fd[i] receives to fd[!i] */
};

/* Load the maps and the verdict program and attach it. Returns NULL with <err> set when
 * this kernel cannot (no sockmap, no BPF): spliced bytes are then copied by sluiced. */
struct splice *splice_open(char *err, size_t errlen);
void splice_close(struct splice *s);

/* Hand <fd0> and <fd1> to the kernel. The caller guarantees that nothing it read from either
 * is still waiting to be sent, that none of its sends or receives on them is in flight, and
 * it neither receives from nor sends to fd[i] whose bit is set in <p>->rx (resp. fd[!i])
 * from then on. Bytes already in a socket's receive queue are forwarded first, in order.
 * Returns 0 with <p>->rx != 0 (bit 0 first: if the second socket could not join, because its
 * peer closed in between, only fd0's bytes are forwarded by the kernel and fd1 is read by
 * the caller as before), or -1 with <err> set and nothing changed. */
int splice_attach(struct splice *s, struct splice_pair *p, int fd0, int fd1, char *err,
		  size_t errlen);

/* Bytes the kernel has taken from fd[i] and queued to fd[!i] so far. */
uint64_t splice_forwarded(struct splice *s, const struct splice_pair *p, int i);

/* 1 when every byte the kernel took from fd[i] has been written into fd[!i] (it may still be
 * in fd[!i]'s send buffer: a shutdown(SHUT_WR) then goes out after it), 0 when some is still
 * queued inside the kernel, -1 when fd[!i] cannot tell (an error: it is being torn down). */
int splice_drained(struct splice *s, const struct splice_pair *p, int i);

/* Forget the pair: call before closing its sockets (closing removes them from the socket
 * hashes; this removes what the verdict program keeps about them). */
void splice_detach(struct splice *s, struct splice_pair *p);

#endif
