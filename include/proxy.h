/* proxy.h - one agent connection through sluiced: peek (TLS ClientHello, CONNECT, plain
 * HTTP), then splice bytes to the original destination, deny, or terminate TLS and relay
 * HTTP/1.1 requests to the verified upstream. Driven by loop.c's completions. */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct conn;
struct sockdiag;

/* A new agent connection <fd> accepted on a listener living in netns <netns>, for worker <w>
 * (the loop chose it: the least loaded); worker_conn_gone(w) once it is refused or freed.
 * <diag> is that namespace's sock_diag handle (NULL: the owner is not cross-checked). */
void proxy_accepted(struct worker *w, int fd, uint64_t netns, struct sockdiag *diag);

/* Completions. <res> is the syscall result; for receives, <data>/<len> is the data (valid
 * only during the call). */
void proxy_on_recv(struct worker *w, struct op *op, int res, const char *data, size_t len);
void proxy_on_send(struct worker *w, struct op *op, int res);
void proxy_on_connect(struct worker *w, struct op *op, int res);
/* A watched socket changed state: <res> is its poll mask, or -errno. */
void proxy_on_poll(struct worker *w, struct op *op, int res);
void proxy_on_timeout(struct worker *w, struct op *op);

/* An approval was decided (or expired): held requests of this worker look again. Runs on
 * the worker (posted with loop_post_all). */
void proxy_approvals_changed(void *worker);

/* Every timer tick (coarse): deadlines of the worker's connections. */
void proxy_tick(struct worker *w);

/* Stop: close idle connections now, the rest when their request is done (<force>: all). */
void proxy_shutdown(struct worker *w, int force);

/* Number of open connections of this worker. */
int proxy_count(struct worker *w);

/* Per-worker connection list head, owned by proxy.c. */
void **worker_conns(struct worker *w);

#endif
