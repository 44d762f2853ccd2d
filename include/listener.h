/* listener.h - sluiced's listening sockets, one pair (127.0.0.1 and ::1, same port) per
 * network namespace that enforced agents connect from. A socket created after setns() stays
 * in that namespace, so sluiced serves containers without joining them. */
#ifndef SLUICE_LISTENER_H
#define SLUICE_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sockdiag;

struct listener {
	int fd4, fd6;          /* either may be -1 when that family is unavailable */
	uint64_t netns_cookie; /* SO_NETNS_COOKIE of the namespace they live in */
	struct sockdiag *diag; /* that namespace's socket table (sockdiag.h); NULL: unavailable */
	char diag_err[160];    /* ... and why */
};

/* Open listeners on <port> in the network namespace of process <pid> (0: sluiced's own),
 * and a sock_diag handle there (NULL with <diag_err> set when the kernel does not answer:
 * the caller decides whether that is fatal). Brings loopback up there (libnl) if it is
 * down. Non-blocking, close-on-exec. Returns 0 or -errno with <err> set. Safe to call from
 * any thread: setns runs in a short-lived thread. */
int listener_open(pid_t pid, uint16_t port, struct listener *out, char *err, size_t errlen);

/* Close what listener_open() opened (the sockets and the sock_diag handle). */
void listener_close(struct listener *l);

/* Network namespace cookie of socket <fd> (SO_NETNS_COOKIE). Returns 0 or -errno. */
int listener_netns_cookie(int fd, uint64_t *cookie);

#endif
