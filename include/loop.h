/* loop.h - sluiced's io_uring workers: one thread and one ring per worker, accepting on every
 * listener, with a provided-buffer ring for receives (an idle connection holds no receive
 * buffer), a coarse timer for deadlines, and a wake-up channel for new listeners.
 *
 * The loop owns sockets and the ring; what a connection means is proxy.c's business. */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "listener.h"

struct loop;
struct worker;
struct redirect;
struct tls_server;
struct policy;
struct approve;
struct rec;
struct identity;
struct cred;
struct splice;
struct __kernel_timespec;

enum op_kind { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CONNECT, OP_TIMER, OP_WAKE, OP_POLL,
	       OP_TIMEOUT };

/* One in-flight operation; its address is the SQE's user_data. */
struct op {
	uint8_t kind;
	uint8_t side;    /* which end of a connection: proxy's business */
	uint8_t pending;
	uint8_t cancel;  /* worker_cancel asked for it: it ends with -ECANCELED, not retried */
	int fd;
	void *owner;     /* the connection, or the listener for accepts */
};

/* Shared, read-only state a connection needs (swapped whole on reload). */
struct loop_env {
	const struct sluice_conf *conf;
	struct redirect *redirect;
	struct tls_server *tls_server;
	struct tls_client **tls_clients; /* [0]: default trust; [1 + i]: conf->overrides[i] */
	struct policy *policy;
	struct approve *approve;           /* pending approvals (shared by every environment) */
	struct rec *rec;                   /* session recordings (shared likewise) */
	/* Identity (access.c): the agents' OIDC verifier and sluice-token key, NULL when the
	 * configuration has no "identity" section. Created once at start and shared by every
	 * environment: a reload keeps it (and so the outstanding sluice tokens) as it is. */
	struct identity *identity;
	/* sluiced's own Google credential put on forwarded BigQuery requests, NULL when the
	 * configuration has no "credential" section (the agent's header is then relayed). */
	struct cred *cred;
	/* The socket hash for intercept.splice_via "sockmap" (splice.c), NULL when this kernel
	 * cannot (spliced bytes are then copied). Loaded once at start whatever the setting, so
	 * that a reload can choose it; shared by every environment. */
	struct splice *splice;
};

/* Start <nworkers> workers (0: online CPUs). Returns NULL with <err> set. */
struct loop *loop_start(const struct loop_env *env, int nworkers, char *err, size_t errlen);

/* Serve a listener (already bound and listening) on every worker. */
void loop_add_listener(struct loop *l, const struct listener *ln);

/* Run fn(worker) on every worker's thread soon; callable from any thread. */
void loop_post_all(struct loop *l, void (*fn)(void *worker));

/* Replace the environment for new connections (old ones finish with theirs). */
void loop_set_env(struct loop *l, const struct loop_env *env);

/* Stop accepting, give in-flight requests up to <drain_ms>, then close everything and join
 * the workers. */
void loop_stop(struct loop *l, int drain_ms);

/* --- for proxy.c ------------------------------------------------------------------------- */

/* The environment in force when this call is made. */
const struct loop_env *worker_env(struct worker *w);
uint64_t worker_now_ms(struct worker *w);
int worker_stopping(struct worker *w);

/* Run fn(arg) on worker <w>'s thread soon; callable from any thread (a resolver, the
 * recorder, the approval store). Returns 0, or -ENOMEM. */
int worker_post(struct worker *w, void (*fn)(void *arg), void *arg);

/* A call posted without allocating: embedded in what it is about, set up by worker_post_call
 * and not posted again before it has run. */
struct loop_call {
	struct loop_call *next;
	void (*fn)(void *arg);
	void *arg;
	int allocated;   /* worker_post's own: freed once it has run */
	_Atomic int queued; /* posted and not yet started: a second post of it is dropped */
};

/* Run fn(arg) on worker <w>'s thread soon through <call> (zeroed when it was made);
 * callable from any thread, and cannot fail. Posted again before it has started, it still
 * runs once. */
void worker_post_call(struct worker *w, struct loop_call *call, void (*fn)(void *arg), void *arg);

/* A connection the loop handed to worker <w> (proxy_accepted) is gone: freed, or refused at
 * once. The loop sends new connections to the worker with the fewest. */
void worker_conn_gone(struct worker *w);

/* Post a receive on <fd>; data arrives in proxy_on_recv from a loop buffer. */
int worker_recv(struct worker *w, struct op *op, int fd);
/* Post a send of buf[0..len) (must stay valid until completion). */
int worker_send(struct worker *w, struct op *op, int fd, const void *buf, size_t len);
/* Post a connect. <addr> must stay valid until completion. */
int worker_connect(struct worker *w, struct op *op, int fd, const struct sockaddr *addr,
		   socklen_t len);
/* Watch <fd> for <events> (POLLRDHUP, POLLERR and POLLHUP are always watched): one
 * proxy_on_poll per wake-up that brings one, until cancelled. */
int worker_poll(struct worker *w, struct op *op, int fd, unsigned events);
/* proxy_on_timeout after <ts> (must stay valid until completion). */
int worker_timeout(struct worker *w, struct op *op, struct __kernel_timespec *ts);
/* Cancel the pending <op>: its completion still comes, with -ECANCELED unless it had
 * already finished. */
int worker_cancel(struct worker *w, struct op *op);

#endif
