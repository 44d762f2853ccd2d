/* sockdiag.h - the kernel's own socket table (NETLINK_SOCK_DIAG, inet_diag) as a second
 * opinion on who owns the agent's end of an accepted connection, behind the eBPF origin
 * map. One handle per network namespace, opened inside it (next to that namespace's
 * listener) and shared by the workers: queries on one handle take turns. */
#ifndef SLUICE_SOCKDIAG_H
#define SLUICE_SOCKDIAG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sockdiag;

/* What the kernel says about one TCP socket. */
struct sockdiag_sock {
	uint32_t uid;    /* owner: the fsuid of its creator, in sluiced's user namespace */
	uint64_t inode;  /* its socket inode; 0 once no file refers to it (closed) */
	uint64_t cookie; /* the socket cookie, as bpf_get_socket_cookie() gave the eBPF side */
	uint8_t state;   /* TCP_ESTABLISHED, ... (netinet/tcp.h) */
};

/* Open a sock_diag handle in the calling thread's network namespace, and check that the
 * kernel answers an exact lookup there by finding the listening socket <probe_fd> (bound,
 * listening, same namespace) with its inode and cookie. Returns the handle, or NULL with
 * <err> set (sock_diag or inet_diag for TCP unavailable, out of memory). */
struct sockdiag *sockdiag_open(int probe_fd, char *err, size_t errlen);

/* Look up the TCP socket whose own address is <local> and whose peer is <remote> (the same
 * family, AF_INET or AF_INET6). Bounded: the kernel answers during the send, and a reply
 * that is not there within a few ms counts as a failure. Thread-safe. Returns 0 with <out>
 * filled, -ENOENT when the kernel knows no such socket, -ETIMEDOUT, or another -errno. */
int sockdiag_lookup(struct sockdiag *d, const struct sockaddr *local,
		    const struct sockaddr *remote, struct sockdiag_sock *out);

/* Cross-check accepted connection <fd>: the socket at its other end (same namespace) must
 * be known to the kernel, still open, owned by <uid> and, when <cookie> is not 0, be the
 * socket with that cookie. Returns 0 with <found> filled; -1 with <why> saying why the
 * connection is refused (<found> is filled when the kernel knew the socket, else zeroed). */
int sockdiag_check_peer(struct sockdiag *d, int fd, uint32_t uid, uint64_t cookie,
			struct sockdiag_sock *found, char *why, size_t whylen);

/* Close a handle (NULL is fine). */
void sockdiag_close(struct sockdiag *d);

#endif
