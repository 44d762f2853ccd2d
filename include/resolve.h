/* resolve.h - name resolution off the workers. getaddrinfo() blocks, so it runs on a small
 * pool of resolver threads; the answer is handed back to the asking worker's thread. Needed
 * only where sluiced has no address of its own: the target of an HTTP CONNECT. */
#ifndef SLUICE_RESOLVE_H
#define SLUICE_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

struct worker;

/* One lookup. The caller owns it and keeps it alive until <done> has run. */
struct resolve_job {
	char host[256];
	uint16_t port;
	struct worker *w;               /* whose thread runs <done> */
	void (*done)(void *arg);        /* runs on <w>'s thread with the result filled in */
	void *arg;
	struct sockaddr_storage addr;   /* result when err == 0 */
	socklen_t addr_len;
	int err;                        /* 0, or a getaddrinfo EAI_* code */
	struct resolve_job *next;
};

/* Queue <job>; its <done> runs later on the worker. Returns 0 or -errno. */
int resolve_start(struct resolve_job *job);

#endif
