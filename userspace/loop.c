/* loop.c - io_uring workers. Each worker owns a ring, a provided-buffer ring for receives and
 * the connections it accepted; nothing is shared between workers but the listeners and the
 * read-only environment, so the request path takes no locks. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "record.h"
#include "sockdiag.h"

#define RING_ENTRIES 4096
#define BUF_COUNT 512         /* receive buffers per worker (power of two) */
#define BUF_SIZE (16 * 1024)  /* one TLS record fits */
#define BUF_GROUP 1
#define TICK_MS 100
#define MAX_LISTENERS 4096

struct lsock {
	struct op op; /* accept; owner = this */
	uint64_t netns;
	struct sockdiag *diag; /* that namespace's sock_diag handle (the listener's), or NULL */
};

struct worker {
	struct loop *l;
	pthread_t thread;
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	char *bufs;
	int wake_fd;
	uint64_t wake_val;
	struct op wake_op, timer_op;
	struct __kernel_timespec tick;
	uint64_t now_ms;
	atomic_int stopping;
	uint64_t drain_deadline;
	void *conns;
	/* listeners handed over by the main thread, taken under <mu> */
	pthread_mutex_t mu;
	struct listener pending[64];
	int n_pending;
	struct lsock *socks;
	int n_socks;
	struct loop_call *posted, **posted_tail; /* under <mu> */
	atomic_int has_posted; /* <posted> is not empty: read without <mu> */
	atomic_int asleep;     /* the worker may be waiting in the ring: a post must wake it */
	atomic_int load;     /* connections it serves or is being handed (dispatch) */
};

/* An accepted connection on its way to the worker that serves it. */
struct handoff {
	struct loop_call call;
	struct worker *w;
	int fd;
	uint64_t netns;
	struct sockdiag *diag;
};

struct loop {
	struct worker *w;
	int n;
	_Atomic(const struct loop_env *) env;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const struct loop_env *worker_env(struct worker *w)
{
	return atomic_load(&w->l->env);
}

uint64_t worker_now_ms(struct worker *w)
{
	return w->now_ms;
}

int worker_stopping(struct worker *w)
{
	return atomic_load(&w->stopping);
}

void **worker_conns(struct worker *w)
{
	return &w->conns;
}

/* An SQE, submitting queued ones first when the ring is full. */
static struct io_uring_sqe *sqe_get(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

int worker_recv(struct worker *w, struct op *op, int fd)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv(sqe, fd, NULL, BUF_SIZE, 0);
	/* A receive is armed once what came before was answered (the agent's next request
	 * comes after the response it waits for, BigQuery's response after the request): an
	 * attempt first would find nothing, so wait for the socket to be readable instead. */
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	op->kind = OP_RECV;
	op->fd = fd;
	op->pending = 1;
	op->cancel = 0;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int worker_send(struct worker *w, struct op *op, int fd, const void *buf, size_t len)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	op->kind = OP_SEND;
	op->fd = fd;
	op->pending = 1;
	op->cancel = 0;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int worker_connect(struct worker *w, struct op *op, int fd, const struct sockaddr *addr,
		   socklen_t len)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_connect(sqe, fd, addr, len);
	op->kind = OP_CONNECT;
	op->fd = fd;
	op->pending = 1;
	op->cancel = 0;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int worker_poll(struct worker *w, struct op *op, int fd, unsigned events)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_multishot(sqe, fd, events);
	op->kind = OP_POLL;
	op->fd = fd;
	op->pending = 1;
	op->cancel = 0;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int worker_timeout(struct worker *w, struct op *op, struct __kernel_timespec *ts)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	op->kind = OP_TIMEOUT;
	op->pending = 1;
	op->cancel = 0;
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

int worker_cancel(struct worker *w, struct op *op)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, NULL); /* its own completion says nothing we need */
	op->cancel = 1;
	return 0;
}

static void arm_accept(struct worker *w, struct lsock *s)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, s->op.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	s->op.pending = 1;
	io_uring_sqe_set_data(sqe, &s->op);
}

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	w->wake_op.kind = OP_WAKE;
	io_uring_sqe_set_data(sqe, &w->wake_op);
}

static void arm_timer(struct worker *w)
{
	struct io_uring_sqe *sqe = sqe_get(w);

	w->tick.tv_sec = 0;
	w->tick.tv_nsec = TICK_MS * 1000000L;
	io_uring_prep_timeout(sqe, &w->tick, 0, 0);
	w->timer_op.kind = OP_TIMER;
	io_uring_sqe_set_data(sqe, &w->timer_op);
}

/* Take listeners handed over by the main thread and start accepting on them. */
static void take_listeners(struct worker *w)
{
	int i, j, fds[2];

	pthread_mutex_lock(&w->mu);
	for (i = 0; i < w->n_pending; i++) {
		fds[0] = w->pending[i].fd4;
		fds[1] = w->pending[i].fd6;
		for (j = 0; j < 2; j++) {
			struct lsock *s;

			if (fds[j] < 0 || w->n_socks >= MAX_LISTENERS)
				continue;
			s = &w->socks[w->n_socks++];
			s->op.kind = OP_ACCEPT;
			s->op.fd = fds[j];
			s->op.owner = s;
			s->netns = w->pending[i].netns_cookie;
			s->diag = w->pending[i].diag;
			if (!worker_stopping(w))
				arm_accept(w, s);
		}
	}
	w->n_pending = 0;
	pthread_mutex_unlock(&w->mu);
}

static void wake(struct worker *w);

/* Queue <p> for the worker. The eventfd (a write, a completion and a re-armed read on the
 * worker's ring: per request, since the recorder posts each record's outcome) is needed only
 * when the worker may be asleep in the ring: one that is running looks at the queue before
 * it waits again (worker_main). <asleep> is set before that look and read after the queue
 * is written, each behind a full fence, so that one of the two sides sees the other. */
static void post(struct worker *w, struct loop_call *p)
{
	int was_empty;

	pthread_mutex_lock(&w->mu);
	if (atomic_load(&p->queued)) {
		/* already waiting to run (a caller's bug): queued twice, the list would loop
		 * on it; it runs once and sees the latest state, and the bug is said */
		pthread_mutex_unlock(&w->mu);
		log_err("loop", "a call was posted again before it ran (fn %p); it runs once",
			(void *)(uintptr_t)p->fn);
		return;
	}
	atomic_store(&p->queued, 1);
	p->next = NULL;
	was_empty = !w->posted;
	*w->posted_tail = p;
	w->posted_tail = &p->next;
	atomic_store(&w->has_posted, 1);
	pthread_mutex_unlock(&w->mu);
	atomic_thread_fence(memory_order_seq_cst);
	if (was_empty && atomic_load(&w->asleep))
		wake(w);
}

int worker_post(struct worker *w, void (*fn)(void *arg), void *arg)
{
	struct loop_call *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->allocated = 1;
	atomic_init(&p->queued, 0);
	post(w, p);
	return 0;
}

void worker_post_call(struct worker *w, struct loop_call *call, void (*fn)(void *arg), void *arg)
{
	call->fn = fn;
	call->arg = arg;
	call->allocated = 0;
	post(w, call);
}

/* Run what other threads posted, in order. A call may free the object that embeds it. */
static void run_posted(struct worker *w)
{
	struct loop_call *p, *next;
	int allocated;

	pthread_mutex_lock(&w->mu);
	p = w->posted;
	w->posted = NULL;
	w->posted_tail = &w->posted;
	atomic_store(&w->has_posted, 0);
	pthread_mutex_unlock(&w->mu);
	for (; p; p = next) {
		next = p->next;
		allocated = p->allocated;
		atomic_store(&p->queued, 0); /* after <next> is read: a new post may reuse it */
		p->fn(p->arg);
		if (allocated)
			free(p);
	}
}

void worker_conn_gone(struct worker *w)
{
	atomic_fetch_sub(&w->load, 1);
}

static void take_handoff(void *arg)
{
	struct handoff *h = arg;
	struct worker *w = h->w;
	int fd = h->fd;
	uint64_t netns = h->netns;
	struct sockdiag *diag = h->diag;

	free(h);
	proxy_accepted(w, fd, netns, diag);
}

/* A connection accepted on <w>'s ring goes to the worker serving the fewest: every worker
 * arms an accept on every listener, and the kernel tends to complete them all on one ring,
 * which would leave the other workers idle. */
static void dispatch(struct worker *w, int fd, uint64_t netns, struct sockdiag *diag)
{
	struct worker *t = w;
	struct handoff *h;
	int i;

	for (i = 0; i < w->l->n; i++)
		if (atomic_load(&w->l->w[i].load) < atomic_load(&t->load))
			t = &w->l->w[i];
	if (t != w && (h = calloc(1, sizeof(*h)))) {
		atomic_fetch_add(&t->load, 1);
		h->w = t;
		h->fd = fd;
		h->netns = netns;
		h->diag = diag;
		worker_post_call(t, &h->call, take_handoff, h);
		return;
	}
	atomic_fetch_add(&w->load, 1);
	proxy_accepted(w, fd, netns, diag);
}

static void begin_stop(struct worker *w)
{
	struct io_uring_sqe *sqe;
	int i;

	for (i = 0; i < w->n_socks; i++) {
		if (!w->socks[i].op.pending)
			continue;
		sqe = sqe_get(w);
		io_uring_prep_cancel(sqe, &w->socks[i].op, 0);
		io_uring_sqe_set_data(sqe, NULL);
	}
	w->drain_deadline = w->now_ms + (uint64_t)worker_env(w)->conf->drain_timeout_ms;
	proxy_shutdown(w, 0);
}

static void complete(struct worker *w, struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);
	unsigned bid;

	if (!op)
		return;
	switch (op->kind) {
	case OP_ACCEPT:
		if (!(cqe->flags & IORING_CQE_F_MORE))
			op->pending = 0;
		if (cqe->res >= 0) {
			if (worker_stopping(w))
				close(cqe->res);
			else
				dispatch(w, cqe->res, ((struct lsock *)op->owner)->netns,
					 ((struct lsock *)op->owner)->diag);
		} else if (cqe->res != -ECANCELED) {
			log_debug("loop", "accept: %s", strerror(-cqe->res));
		}
		if (!op->pending && !worker_stopping(w) && cqe->res != -EBADF &&
		    cqe->res != -EINVAL)
			arm_accept(w, op->owner);
		break;
	case OP_RECV:
		op->pending = 0;
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			proxy_on_recv(w, op, cqe->res, w->bufs + (size_t)bid * BUF_SIZE,
				      cqe->res > 0 ? (size_t)cqe->res : 0);
			io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
					      (unsigned short)bid, io_uring_buf_ring_mask(BUF_COUNT), 0);
			io_uring_buf_ring_advance(w->br, 1);
		} else if (cqe->res == -ENOBUFS && !op->cancel) {
			worker_recv(w, op, op->fd); /* every buffer in use: try again */
		} else if (cqe->res == -ENOBUFS) {
			proxy_on_recv(w, op, -ECANCELED, NULL, 0); /* not again: it was cancelled */
		} else {
			proxy_on_recv(w, op, cqe->res, NULL, 0);
		}
		break;
	case OP_SEND:
		op->pending = 0;
		proxy_on_send(w, op, cqe->res);
		break;
	case OP_CONNECT:
		op->pending = 0;
		proxy_on_connect(w, op, cqe->res);
		break;
	case OP_POLL:
		if (!(cqe->flags & IORING_CQE_F_MORE))
			op->pending = 0;
		proxy_on_poll(w, op, cqe->res);
		break;
	case OP_TIMEOUT:
		op->pending = 0;
		proxy_on_timeout(w, op);
		break;
	case OP_TIMER:
		w->now_ms = mono_ms();
		proxy_tick(w);
		if (worker_stopping(w) && w->now_ms >= w->drain_deadline)
			proxy_shutdown(w, 1);
		arm_timer(w);
		break;
	case OP_WAKE:
		take_listeners(w);
		run_posted(w);
		if (worker_stopping(w) && !w->drain_deadline)
			begin_stop(w);
		arm_wake(w);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct io_uring_cqe *cqe;
	unsigned head, n;
	int posted;

	w->now_ms = mono_ms();
	rec_defer(); /* one wake-up of the recording writer per round of completions */
	arm_wake(w);
	arm_timer(w);
	take_listeners(w);
	while (!(worker_stopping(w) && w->drain_deadline && proxy_count(w) == 0)) {
		/* about to wait: from here a post wakes the worker (see post()). What was
		 * posted before is run after this round, which then submits and reaps without
		 * waiting, so a stream of posts cannot keep the ring from being served. */
		atomic_store(&w->asleep, 1);
		atomic_thread_fence(memory_order_seq_cst);
		posted = atomic_load(&w->has_posted);
		if (posted)
			atomic_store(&w->asleep, 0);
		io_uring_submit_and_wait(&w->ring, posted ? 0 : 1);
		atomic_store(&w->asleep, 0);
		w->now_ms = mono_ms();
		n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			complete(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
		if (atomic_load(&w->has_posted))
			run_posted(w);
		rec_flush();
	}
	rec_flush();
	return NULL;
}

static int worker_init(struct worker *w, struct loop *l, char *err, size_t errlen)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SUBMIT_ALL };
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
	int rc, i;

	w->l = l;
	w->wake_fd = -1;
	w->posted_tail = &w->posted;
	pthread_mutex_init(&w->mu, NULL);
	/* Completions are run when the worker enters the ring (where it waits), not by
	 * interrupting it with an IPI wherever it is (5.19+; without it on older kernels).
	 * IORING_SETUP_DEFER_TASKRUN, which defers them further, measured worse: p99 up to
	 * 25 ms on the small page. */
	p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_SUBMIT_ALL;
		rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	}
	if (rc) {
		snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
		return -1;
	}
	w->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	w->bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
	w->socks = calloc(MAX_LISTENERS, sizeof(*w->socks));
	if (w->br == MAP_FAILED || !w->bufs || !w->socks) {
		snprintf(err, errlen, "out of memory for receive buffers");
		return -1;
	}
	io_uring_buf_ring_init(w->br);
	reg.ring_addr = (unsigned long)w->br;
	reg.ring_entries = BUF_COUNT;
	reg.bgid = BUF_GROUP;
	rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc) {
		snprintf(err, errlen, "io_uring_register_buf_ring: %s (needs Linux 5.19+)",
			 strerror(-rc));
		return -1;
	}
	for (i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * BUF_SIZE, BUF_SIZE,
				      (unsigned short)i, io_uring_buf_ring_mask(BUF_COUNT), i);
	io_uring_buf_ring_advance(w->br, BUF_COUNT);
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct loop *loop_start(const struct loop_env *env, int nworkers, char *err, size_t errlen)
{
	struct loop *l = calloc(1, sizeof(*l));
	int i;

	if (!l)
		return NULL;
	if (nworkers <= 0)
		nworkers = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nworkers <= 0)
		nworkers = 1;
	atomic_store(&l->env, env);
	l->w = calloc((size_t)nworkers, sizeof(*l->w));
	if (!l->w)
		return NULL;
	for (i = 0; i < nworkers; i++) {
		if (worker_init(&l->w[i], l, err, errlen))
			return NULL;
		if (pthread_create(&l->w[i].thread, NULL, worker_main, &l->w[i])) {
			snprintf(err, errlen, "pthread_create failed");
			return NULL;
		}
		thread_name(l->w[i].thread, "sluiced-w%d", i);
		l->n++;
	}
	return l;
}

static void wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->wake_fd, &one, sizeof(one)) < 0)
		log_err("loop", "waking a worker: %s", strerror(errno));
}

void loop_add_listener(struct loop *l, const struct listener *ln)
{
	int i;

	for (i = 0; i < l->n; i++) {
		pthread_mutex_lock(&l->w[i].mu);
		if (l->w[i].n_pending < 64)
			l->w[i].pending[l->w[i].n_pending++] = *ln;
		pthread_mutex_unlock(&l->w[i].mu);
		wake(&l->w[i]);
	}
}

void loop_post_all(struct loop *l, void (*fn)(void *worker))
{
	int i;

	for (i = 0; i < l->n; i++)
		worker_post(&l->w[i], fn, &l->w[i]);
}

void loop_set_env(struct loop *l, const struct loop_env *env)
{
	atomic_store(&l->env, env);
}

/* The listeners' sock_diag handles are shared by every worker: close each one once. */
static void close_diags(struct loop *l)
{
	static struct sockdiag *seen[MAX_LISTENERS];
	int n = 0, i, j, k;

	for (i = 0; i < l->n; i++) {
		for (j = 0; j < l->w[i].n_socks + l->w[i].n_pending; j++) {
			struct sockdiag *d = j < l->w[i].n_socks ? l->w[i].socks[j].diag :
					     l->w[i].pending[j - l->w[i].n_socks].diag;

			for (k = 0; d && k < n && seen[k] != d; k++)
				;
			if (d && k == n && n < MAX_LISTENERS)
				seen[n++] = d;
		}
	}
	for (k = 0; k < n; k++)
		sockdiag_close(seen[k]);
}

void loop_stop(struct loop *l, int drain_ms)
{
	int i;

	(void)drain_ms; /* each worker reads it from the configuration in force */
	for (i = 0; i < l->n; i++) {
		atomic_store(&l->w[i].stopping, 1);
		wake(&l->w[i]);
	}
	for (i = 0; i < l->n; i++)
		pthread_join(l->w[i].thread, NULL);
	close_diags(l);
	for (i = 0; i < l->n; i++) {
		io_uring_queue_exit(&l->w[i].ring);
		munmap(l->w[i].br, BUF_COUNT * sizeof(struct io_uring_buf));
		free(l->w[i].bufs);
		free(l->w[i].socks);
		close(l->w[i].wake_fd);
	}
	free(l->w);
	free(l);
}
