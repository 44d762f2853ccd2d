/* proxy.c - the life of one agent connection inside a worker.
 *
 * Every completion lands in conn_advance(), which moves the connection as far as the bytes
 * at hand allow, then conn_pump() posts the sends and receives that are now due. One receive
 * and one send at most per socket: a side is read again only when what it sent before has
 * been passed on, which is the backpressure in both directions.
 *
 *   PEEK -> SPLICE                      not an intercepted host: bytes pass unchanged,
 *                                       copied, or (splice_via "sockmap") forwarded by the
 *                                       kernel once the upstream is connected (splice.c)
 *        -> DENY (error, close)         by configuration, or fail closed
 *        -> TLS handshake -> REQ -> UPSTREAM -> RESP -> REQ ...   intercepted host
 *                             \-> HOLD (an approval) -/
 *
 * Here: accepting, peeking, splicing, the upstream connection, TLS and the state machine.
 * A request is exchange.c's, an approval hold.c's, a response respond.c's (conn.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "exchange.h"
#include "gate.h"
#include "hold.h"
#include "log.h"
#include "proxy.h"
#include "record.h"
#include "respond.h"
#include "sockdiag.h"
#include "tlshello.h"

static struct conn **head_of(struct worker *w)
{
	return (struct conn **)worker_conns(w);
}

static _Atomic int count_conns; /* across workers: limits.connections */

int proxy_count(struct worker *w)
{
	struct conn *c;
	int n = 0;

	for (c = *head_of(w); c; c = c->next)
		n++;
	return n;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

static void drive_tls(struct conn *c, int i);

static int ops_pending(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++)
		if (c->s[i].rop.pending || c->s[i].sop.pending || c->s[i].cop.pending)
			return 1;
	return c->resolving || c->recording || c->top.pending;
}

static void conn_free(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	/* what the kernel forwarded of a spliced connection, on top of what sluiced copied */
	uint64_t kin = 0, kout = 0;
	struct record_conn rc;
	int i, rx = c->pair.rx;

	if (rx) {
		kin = splice_forwarded(c->env->splice, &c->pair, CLI);
		kout = splice_forwarded(c->env->splice, &c->pair, UP);
		splice_detach(c->env->splice, &c->pair);
	}
	rc = (struct record_conn){
		.origin = c->have_origin ? &c->origin : NULL, .cgroup = c->cgroup, .sni = c->sni,
		.route = c->route, .reason = c->reason ? c->reason : "",
		.splice = strcmp(c->route, "splice") ? NULL : rx == 3 ? "sockmap" :
			  rx ? "sockmap+copy" : "copy",
		.bytes_in = c->s[CLI].bytes_in + kin, .bytes_out = c->s[CLI].bytes_out + kout,
		.requests = c->requests, .duration_ms = worker_now_ms(c->w) - c->opened_ms,
	};

	if (c->have_origin)
		record_conn(conf->record_dir, &rc);
	if (c->prev)
		c->prev->next = c->next;
	else
		*head_of(c->w) = c->next;
	if (c->next)
		c->next->prev = c->prev;
	for (i = 0; i < 2; i++) {
		if (c->s[i].fd >= 0)
			close(c->s[i].fd);
		tls_conn_free(c->s[i].tls);
		buf_free(&c->s[i].in);
		buf_free(&c->s[i].out);
		buf_free(&c->s[i].q);
		buf_free(&c->s[i].pt);
	}
	respond_free(c);
	access_result_free(&c->access);
	free(c->req_h);
	free(c->res_h);
	free(c->submit_body);
	free(c->up_body);
	free(c->rewritten_sql);
	free(c->row_mask);
	free(c->schema_target);
	free(c->schema);
	free(c->job_project);
	worker_conn_gone(c->w);
	free(c);
	count_conns--;
}

/* Start closing: wake pending operations by shutting the sockets down; the connection is
 * freed once none is left. <why> is recorded. */
void conn_close(struct conn *c, const char *why)
{
	int i;

	if (c->st == C_CLOSING)
		return;
	if (why && !c->reason)
		c->reason = why;
	c->st = C_CLOSING;
	for (i = 0; i < 2; i++)
		if (c->s[i].fd >= 0)
			shutdown(c->s[i].fd, SHUT_RDWR);
}


/* --- upstream ----------------------------------------------------------------------------- */

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	char host[128];
	const char *colon = strrchr(s, ':');
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

/* Where the origin was going, as a sockaddr. */
static void origin_addr(struct conn *c)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&c->up_addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->up_addr;

	memset(&c->up_addr, 0, sizeof(c->up_addr));
	if (c->origin.family == AF_INET) {
		a4->sin_family = AF_INET;
		memcpy(&a4->sin_addr, &c->origin.addr[12], 4);
		a4->sin_port = htons(c->origin.port);
		c->up_len = sizeof(*a4);
	} else {
		a6->sin6_family = AF_INET6;
		memcpy(&a6->sin6_addr, c->origin.addr, 16);
		a6->sin6_port = htons(c->origin.port);
		c->up_len = sizeof(*a6);
	}
}

static int upstream_connect(struct conn *c)
{
	struct side *u = &c->s[UP];
	int one = 1;

	u->fd = socket(c->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0)
		return -1;
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->connecting = 1;
	return worker_connect(c->w, &u->cop, u->fd, (struct sockaddr *)&c->up_addr, c->up_len);
}

/* The upstream address is known: connect, and set up TLS toward an intercepted host. */
static void upstream_open(struct conn *c)
{
	if (upstream_connect(c)) {
		if (c->st == C_SPLICE)
			conn_close(c, "cannot connect to the original destination");
		else
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: cannot connect to the BigQuery endpoint");
		return;
	}
	if (c->st == C_SPLICE)
		return; /* bytes already read stay in s[CLI].in and go out once connected */
	c->s[UP].tls = tls_conn_client(c->up_tls, c->sni);
	if (c->s[UP].tls)
		tls_conn_sink(c->s[UP].tls, conn_sink, &c->s[UP].q);
	else
		conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: upstream TLS setup failed");
}

/* A CONNECT target was looked up (on this worker's thread, from the resolver). */
static void on_resolved(void *arg)
{
	struct conn *c = arg;
	char msg[400];

	c->resolving = 0;
	if (c->st != C_CLOSING) {
		if (c->rj.err) {
			snprintf(msg, sizeof(msg), "sluice: cannot resolve %s: %s", c->rj.host,
				 gai_strerror(c->rj.err));
			if (c->st == C_SPLICE)
				conn_close(c, "cannot resolve the CONNECT target");
			else
				conn_deny(c, 502, "UNAVAILABLE", "backendError", msg);
		} else {
			memcpy(&c->up_addr, &c->rj.addr, c->rj.addr_len);
			c->up_len = c->rj.addr_len;
			upstream_open(c);
			conn_advance(c);
		}
	}
	conn_pump(c);
}

/* Choose the upstream: a configured override for an intercepted host, the CONNECT target
 * (looked up off the worker), else the address the agent was connecting to (it resolved the
 * name; TLS verification checks the name). Returns 0 when the address is known, 1 while it
 * is being resolved (on_resolved goes on), -1 on failure. */
static int choose_upstream(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	int i;

	c->up_tls = c->env->tls_clients[0];
	for (i = 0; c->st != C_SPLICE && i < conf->n_overrides; i++) {
		if (!strcasecmp(conf->overrides[i].host, c->sni)) {
			c->up_tls = c->env->tls_clients[1 + i];
			return parse_addr(conf->overrides[i].address, &c->up_addr, &c->up_len);
		}
	}
	if (c->connect_host[0]) {
		memset(&c->rj, 0, sizeof(c->rj));
		snprintf(c->rj.host, sizeof(c->rj.host), "%s", c->connect_host);
		c->rj.port = c->connect_port;
		c->rj.w = c->w;
		c->rj.done = on_resolved;
		c->rj.arg = c;
		if (resolve_start(&c->rj))
			return -1;
		c->resolving = 1;
		return 1;
	}
	origin_addr(c);
	return 0;
}

/* --- peek: what is the agent trying to do? ------------------------------------------------ */

static int inspected_port(const struct sluice_conf *conf, uint16_t port)
{
	int i;

	for (i = 0; i < conf->n_inspect_ports; i++)
		if (conf->inspect_ports[i] == port)
			return 1;
	return 0;
}

static void start_splice(struct conn *c)
{
	int rc;

	c->route = "splice";
	c->st = C_SPLICE;
	c->spl = c->env->conf->splice_via == CONF_VIA_COPY ? SPL_COPY : SPL_WANT;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	rc = choose_upstream(c);
	if (rc < 0)
		conn_close(c, "cannot resolve the CONNECT target");
	else if (rc == 0)
		upstream_open(c);
}

static void start_tls(struct conn *c)
{
	struct side *a = &c->s[CLI];

	c->route = "intercept";
	a->tls = tls_conn_server(c->env->tls_server, c->sni);
	if (!a->tls || tls_conn_sink(a->tls, conn_sink, &a->q) ||
	    tls_conn_feed(a->tls, a->in.p, a->in.len)) {
		conn_close(c, "TLS setup failed");
		return;
	}
	a->in.len = 0;
	c->st = C_TLS;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->handshake_timeout_ms;
	drive_tls(c, CLI);
}


static void peek(struct conn *c)
{
	const struct sluice_conf *conf = c->env->conf;
	struct side *a = &c->s[CLI];
	struct http1_limits lim = { conf->max_header_bytes, (size_t)conf->max_headers };
	struct tlshello h;
	const char *why = NULL;
	int rc = tlshello_parse((const uint8_t *)a->in.p, a->in.len, &h, &why);
	char host[256];

	if (rc == -2)
		return;
	if (rc == -1) {
		conn_close(c, "malformed TLS ClientHello");
		return;
	}
	if (rc == 1) {
		if (!h.has_sni) {
			c->route = "deny";
			if (conf->no_sni == CONF_SPLICE)
				start_splice(c);
			else
				conn_close(c, "TLS without SNI refused (intercept.no_sni)");
			return;
		}
		snprintf(c->sni, sizeof(c->sni), "%s", h.sni);
		if (c->connect_host[0] && strcasecmp(c->connect_host, c->sni)) {
			c->route = "deny";
			conn_close(c, "SNI does not match the CONNECT target");
			return;
		}
		if (conf_host_matches(&conf->hosts, c->sni)) {
			start_tls(c);
		} else if (conf->other_tls == CONF_SPLICE) {
			start_splice(c);
		} else {
			c->route = "deny";
			conn_close(c, c->connect_host[0] ? "CONNECT to a host that is not "
				   "intercepted: not supported" : "TLS to a host that is not "
				   "intercepted refused (intercept.other_tls)");
		}
		return;
	}
	/* Not TLS: an HTTP proxy request (CONNECT) or plain HTTP. */
	if (!c->req_h && !(c->req_h = calloc((size_t)conf->max_headers, sizeof(*c->req_h)))) {
		conn_close(c, "out of memory");
		return;
	}
	c->req.headers = c->req_h;
	rc = http1_parse_request(a->in.p, a->in.len, c->req_last, &lim, &c->req, &why);
	if (rc == -2) {
		c->req_last = a->in.len;
		return;
	}
	c->req_last = 0;
	c->route = "deny";
	if (rc < 0) {
		conn_deny(c, 400, "INVALID_ARGUMENT", "badRequest", why);
		return;
	}
	if (c->req.is_connect) {
		const char *colon = memrchr(c->req.target.p, ':', c->req.target.len);

		conn_host_of(c->req.target, host, sizeof(host));
		if (c->connect_host[0] || (!conf_host_matches(&conf->hosts, host) &&
					   conf->other_tls != CONF_SPLICE)) {
			conn_deny(c, 403, "PERMISSION_DENIED", "accessDenied",
			     "sluice: CONNECT is relayed only to intercepted Google API hosts "
			     "(intercept.other_tls is deny)");
			return;
		}
		snprintf(c->connect_host, sizeof(c->connect_host), "%s", host);
		c->connect_port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 443;
		buf_consume(&a->in, (size_t)rc);
		conn_write(c, CLI, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
		return; /* the TLS ClientHello follows: peek again */
	}
	conn_host_of(c->req.host, host, sizeof(host));
	if (conf_host_matches(&conf->hosts, host) || conf->plain_http == CONF_DENY) {
		conn_deny(c, 403, "PERMISSION_DENIED", "accessDenied",
		     "sluice: plain HTTP to Google APIs is refused; use https://");
		return;
	}
	start_splice(c);
}


/* Connect (or reuse) the upstream and let the state machine send the request. */
void conn_upstream_go(struct conn *c)
{
	struct side *u = &c->s[UP];

	c->st = C_UPSTREAM;
	c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->idle_timeout_ms;
	if (u->fd >= 0 && u->in.len) {
		/* spoken unasked while idle: it would be read as this request's answer */
		conn_deny(c, 502, "UNAVAILABLE", "backendError", "sluice: BigQuery sent bytes "
			  "while no request was waiting; nothing was forwarded, retry");
		return;
	}
	if (u->fd >= 0 && u->eof && !u->rop.pending) /* closed while idle: open another */
		respond_upstream_reset(c);
	if (u->fd < 0 && !c->resolving) {
		int rc = choose_upstream(c);

		if (rc < 0) {
			conn_deny(c, 502, "UNAVAILABLE", "backendError",
			     "sluice: no upstream address for this host");
			return;
		}
		if (rc == 1)
			return; /* on_resolved goes on */
		upstream_open(c);
	}
	conn_advance(c);
}

/* --- the state machine -------------------------------------------------------------------- */

static void drive_tls(struct conn *c, int i)
{
	struct side *s = &c->s[i];
	size_t limit = c->env->conf->max_header_bytes + c->env->conf->max_body_bytes;
	const char *why = NULL;
	long k;
	int rc;

	if (!s->hs_done) {
		rc = tls_conn_handshake(s->tls, &why);
		conn_write(c, i, NULL, 0); /* flush handshake records */
		if (rc < 0) {
			if (i == UP) {
				char msg[512];

				snprintf(msg, sizeof(msg), "sluice: upstream TLS verification failed "
					 "for %s: %s; nothing was forwarded", c->sni,
					 why ? why : "handshake failed");
				log_warn("proxy", "%s", msg);
				conn_deny(c, 502, "UNAVAILABLE", "backendError", msg);
				c->st = C_RESP; /* keep the agent's side writable */
			} else {
				conn_close(c, why ? why : "TLS handshake with the agent failed");
			}
			return;
		}
		if (rc == 0)
			return;
		s->hs_done = 1;
		if (i == CLI) {
			c->st = C_REQ;
			c->deadline = worker_now_ms(c->w) + (uint64_t)c->env->conf->header_timeout_ms;
		}
	}
	/* the agent's plaintext only while a request is being read: the request in hand is
	 * slices of <in>, which growing would move (pipelined requests wait, encrypted) */
	if (i == CLI && c->st != C_REQ)
		return;
	/* plaintext straight into <in>, with a record (16 KiB) of room, only when there is
	 * input (an idle connection holds no buffer); one byte past the limit is enough to know
	 * that it was passed */
	for (k = 0; tls_conn_has_input(s->tls);) {
		size_t room;

		k = 0;
		if (s->in.len <= limit && !buf_reserve(&s->in, 16384)) {
			room = s->in.cap - s->in.len;
			if (room > limit + 1 - s->in.len)
				room = limit + 1 - s->in.len;
			if ((k = tls_conn_read(s->tls, s->in.p + s->in.len, room)) <= 0)
				break;
			s->in.len += (size_t)k;
		}
		if (s->in.len > limit || !k) {
			if (i == CLI)
				conn_deny(c, 413, "INVALID_ARGUMENT", "badRequest",
				     "sluice: request larger than the configured limits");
			else
				conn_deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: response larger than limits.body_bytes");
			return;
		}
	}
	if (k == -2 && !c->reason)
		c->reason = i == CLI ? "TLS error reading from the agent" :
			    "TLS error reading from BigQuery";
	if (k == -1 || k == -2)
		s->eof = 1;
	if (k == -1)
		s->closed_clean = 1;
}

/* --- splice: bytes pass unchanged ----------------------------------------------------------
 *
 * By default sluiced copies a spliced connection's bytes (receive, queue to the other side,
 * send). With intercept.splice_via "sockmap" it copies only until the upstream is connected:
 * then it stops receiving (cancelling the receives in flight), lets its sends finish, and
 * hands both sockets to the kernel's socket hash (splice.c), which from then on moves every
 * byte without sluiced; sluiced keeps a poll on each socket for its end. Either way a FIN is
 * passed on (shutdown(SHUT_WR)) once everything that came before it has been written, so a
 * half-closed connection still carries the other direction, and an error closes both
 * sockets. The copy path also serves a kernel without sockmap and a side the kernel could
 * not take (its peer closed meanwhile).
 */

/* Nothing read and not yet passed on, nothing being received or sent: the kernel may take
 * over without anything being overtaken. */
static int splice_quiet(const struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		const struct side *s = &c->s[i];

		if (s->rop.pending || s->sop.pending || s->in.len || unsent(s) || s->eof)
			return 0;
	}
	return 1;
}

/* How often the kernel's counters are looked at for the idle timeout of a connection the
 * socket hash forwards: it closes between 1 and 1.25 idle timeouts after its last byte. */
static uint64_t splice_idle_check(const struct conn *c)
{
	uint64_t q = (uint64_t)c->env->conf->idle_timeout_ms / 4;

	return q > 100 ? q : 100;
}

static int splice_sockmap(struct conn *c)
{
	static atomic_int told;
	char err[256];
	int i;

	if (!c->env->splice)
		return -1; /* not loadable here: said once at start */
	if (splice_attach(c->env->splice, &c->pair, c->s[CLI].fd, c->s[UP].fd, err,
			  sizeof(err))) {
		if (errno == EOPNOTSUPP) /* a side is no longer established: ending */
			log_debug("proxy", "splice not handed to the socket hash: %s", err);
		else if (!atomic_exchange(&told, 1))
			log_warn("proxy", "a spliced connection could not join the socket hash: %s "
				 "(said once; later ones at debug level)", err);
		else
			log_debug("proxy", "splice not handed to the socket hash: %s", err);
		return -1;
	}
	c->spl = SPL_SOCKMAP;
	c->spl_active = worker_now_ms(c->w);
	c->deadline = c->spl_active + splice_idle_check(c);
	for (i = 0; i < 2; i++)
		c->s[i].krx = (c->pair.rx >> i) & 1;
	return 0;
}

/* Hand the quiet connection over to the socket hash, else go on copying. */
static void splice_hand_over(struct conn *c)
{
	int i;

	if (splice_sockmap(c)) {
		c->spl = SPL_COPY;
		return;
	}
	for (i = 0; i < 2; i++) {
		buf_free(&c->s[i].in); /* all empty: a copied side allocates again */
		buf_free(&c->s[i].out);
		buf_free(&c->s[i].q);
	}
}

/* Has side <i> ended, and everything it sent been written toward the other side? 1 yes,
 * 0 not yet, -1 the other side failed. */
static int splice_passed_on(struct conn *c, int i)
{
	struct side *s = &c->s[i], *o = &c->s[!i];

	if (!s->eof)
		return 0;
	if (s->krx)
		return splice_drained(c->env->splice, &c->pair, i);
	return !s->in.len && !unsent(o) && !o->sop.pending;
}

static void splice_advance(struct conn *c)
{
	struct side *a = &c->s[CLI], *u = &c->s[UP];
	int i, rc;

	if (!u->connected)
		return; /* what the agent sent waits in a->in */
	if (a->in.len && unsent(u) < SPLICE_WINDOW) {
		buf_append(&u->q, a->in.p, a->in.len, SIZE_MAX);
		a->in.len = 0;
	}
	if (u->in.len && unsent(a) < SPLICE_WINDOW) {
		buf_append(&a->q, u->in.p, u->in.len, SIZE_MAX);
		u->in.len = 0;
	}
	if (c->spl == SPL_WANT)
		c->spl = SPL_DRAIN; /* conn_pump cancels the receives, posts no more */
	if (c->spl == SPL_DRAIN && (a->eof || u->eof))
		c->spl = SPL_COPY; /* ending already: not worth handing over */
	if (c->spl == SPL_DRAIN && splice_quiet(c))
		splice_hand_over(c);
	for (i = 0; i < 2; i++) {
		if (c->s[!i].shut)
			continue;
		rc = splice_passed_on(c, i);
		if (rc < 0) {
			conn_close(c, i == CLI ? "the agent's side failed" :
				   "the original destination's side failed");
			return;
		}
		if (rc) {
			shutdown(c->s[!i].fd, SHUT_WR);
			c->s[!i].shut = 1;
		} else if (c->s[i].eof && c->s[i].krx && !c->top.pending) {
			/* the kernel still holds some: look again soon (1 ms, doubling to 64) */
			c->top_ms = c->top_ms ? (c->top_ms < 64 ? c->top_ms * 2 : 64) : 1;
			c->top_ts.tv_sec = 0;
			c->top_ts.tv_nsec = (long long)c->top_ms * 1000000;
			worker_timeout(c->w, &c->top, &c->top_ts);
		}
	}
	if (a->eof && u->eof && a->shut && u->shut)
		conn_close(c, NULL);
}

/* Post what a spliced connection needs beyond sends: receives on the sides sluiced copies,
 * a watch on the sides the kernel forwards, cancels while handing over. */
static void splice_pump(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct side *s = &c->s[i], *o = &c->s[!i];

		if (s->fd < 0 || (i == UP && !s->connected))
			continue;
		if (c->spl == SPL_DRAIN) {
			if (s->rop.pending && !s->rop.cancel)
				worker_cancel(c->w, &s->rop);
		} else if (s->krx) {
			if (!s->rop.pending && !(s->eof && s->shut)) /* else: nothing left to hear */
				worker_poll(c->w, &s->rop, s->fd, POLLRDHUP);
		} else if (!s->eof && !s->rop.pending && unsent(o) < SPLICE_WINDOW) {
			worker_recv(c->w, &s->rop, s->fd);
		}
	}
}

void conn_advance(struct conn *c)
{
	struct side *a = &c->s[CLI], *u = &c->s[UP];

	if (c->st == C_CLOSING)
		return;
	/* once the last answer is queued, neither side is read again: a failed upstream
	 * handshake stays failed, and driving it again would queue its 502 again, forever */
	if (a->tls && !c->close_after_send)
		drive_tls(c, CLI);
	if (u->tls && u->connected && c->st != C_CLOSING && !c->close_after_send)
		drive_tls(c, UP);
	switch (c->st) {
	case C_PEEK:
		peek(c);
		break;
	case C_SPLICE:
		splice_advance(c);
		break;
	case C_TLS:
	case C_HOLD: /* waiting for an approver; the tick and proxy_approvals_changed go on */
		break;
	case C_REQ:
		if (!c->close_after_send) /* else conn_pump closes (or lingers) once it is out */
			exchange_parse_request(c);
		break;
	case C_UPSTREAM:
		/* not while the request's record is on its way to disk: recorded() goes on */
		if (u->hs_done && !c->recording) {
			c->head_is_head = http1_slice_ieq(c->req.method, "HEAD");
			if (exchange_send_request(c, a->in.p + c->head_len, c->body_len)) {
				conn_close(c, "out of memory");
				break;
			}
			c->st = C_RESP;
		}
		break;
	case C_RESP:
		if (!c->close_after_send)
			respond_parse(c);
		break;
	case C_CLOSING:
		break;
	}
	if (c->st != C_CLOSING && a->eof && !c->close_after_send &&
	    (c->st == C_PEEK || c->st == C_TLS || (c->st == C_REQ && !c->in_body && !a->in.len)))
		conn_close(c, NULL);
	if (c->st != C_CLOSING && a->eof && c->st != C_SPLICE && c->st != C_REQ &&
	    !c->close_after_send)
		conn_close(c, "the agent closed the connection mid-request");
}

/* Post what is due: sends of queued bytes, receives where more input is wanted. */
void conn_pump(struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct side *s = &c->s[i];

		if (s->fd < 0 || c->st == C_CLOSING)
			continue;
		if (s->pt.len && conn_seal(c, i)) {
			conn_close(c, i == CLI ? "TLS error writing to the agent" :
				   "TLS error writing to BigQuery");
			continue;
		}
		if (s->sop.pending || (i == UP && !s->connected))
			continue;
		if (s->out.off == s->out.len && s->q.len) {
			struct buf t = s->out;

			s->out = s->q;
			s->q = t;
			s->q.len = s->q.off = 0;
		}
		if (s->out.len > s->out.off)
			worker_send(c->w, &s->sop, s->fd, s->out.p + s->out.off, s->out.len - s->out.off);
	}
	if (c->close_after_send && !unsent(&c->s[CLI]) && !c->s[CLI].sop.pending &&
	    c->st != C_CLOSING && !c->linger) {
		if (c->linger_wanted && c->s[CLI].fd >= 0 && c->st != C_SPLICE) {
			/* the answer is out: say so with a FIN, then drop what still comes */
			c->linger = 1;
			shutdown(c->s[CLI].fd, SHUT_WR);
			if (c->s[UP].fd >= 0) /* BigQuery's side has nothing more to do */
				shutdown(c->s[UP].fd, SHUT_RDWR);
			c->deadline = worker_now_ms(c->w) + CONN_LINGER_MS;
		} else {
			conn_close(c, NULL);
		}
	}
	if (c->st == C_SPLICE) {
		splice_pump(c);
	} else if (c->st != C_CLOSING) {
		struct side *a = &c->s[CLI], *u = &c->s[UP];
		int want_a = !a->eof && !a->rop.pending && !c->close_after_send &&
			     (c->st != C_RESP && c->st != C_UPSTREAM && c->st != C_HOLD);
		/* the upstream is read between requests too (a receive holds no buffer until
		 * bytes come), so that BigQuery closing an idle connection is seen before the
		 * next request would be written into it */
		int want_u = u->fd >= 0 && u->connected && !u->eof && !u->rop.pending &&
			     (c->st != C_RESP || unsent(a) < STREAM_WINDOW);

		if (want_a || (c->linger && !a->rop.pending))
			worker_recv(c->w, &a->rop, a->fd);
		if (want_u)
			worker_recv(c->w, &u->rop, u->fd);
	}
	if (c->st == C_CLOSING) {
		/* shutdown() ends receives; a watch and a timer have to be cancelled */
		for (i = 0; i < 2; i++)
			if (c->s[i].rop.pending && c->s[i].rop.kind == OP_POLL && !c->s[i].rop.cancel)
				worker_cancel(c->w, &c->s[i].rop);
		if (c->top.pending && !c->top.cancel)
			worker_cancel(c->w, &c->top);
		if (!ops_pending(c))
			conn_free(c);
	}
}

void proxy_approvals_changed(void *worker)
{
	struct worker *w = worker;
	struct conn *c, *next;

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (c->st == C_HOLD) {
			hold_recheck(c, 0);
			conn_pump(c);
		}
	}
}



/* --- completions -------------------------------------------------------------------------- */

/* The agent's cgroup v2 path ("0::/path" in /proc/TGID/cgroup); "" if it is gone. */
static void read_cgroup(struct conn *c)
{
	char path[64], line[sizeof(c->cgroup) + 3];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/cgroup", c->origin.tgid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(c->cgroup, sizeof(c->cgroup), "%s", line + 3);
		}
	}
	if (f)
		fclose(f);
	if (c->cgroup[0]) /* the stream every record of this connection goes to */
		rec_stream_name(c->cgroup, c->origin.cgroup_id, c->stream, sizeof(c->stream));
}

/* The connection_open record: who connected where, before anything is read from it. */
static void record_open(struct conn *c)
{
	char path[64], exe[512] = "", ip[INET6_ADDRSTRLEN] = "";
	ssize_t n;

	if (!c->env->rec)
		return;
	snprintf(path, sizeof(path), "/proc/%u/exe", c->origin.tgid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (c->origin.family == AF_INET)
		inet_ntop(AF_INET, &c->origin.addr[12], ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, c->origin.addr, ip, sizeof(ip));
	/* agent_sock: what the kernel's socket table said about the agent's socket */
	conn_record(c, "conn_open", json_pack(
		"{s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:I, s:s, s:i, s:o}",
		"pid", (int)c->origin.pid, "tgid", (int)c->origin.tgid, "uid", (int)c->origin.uid,
		"gid", (int)c->origin.gid, "comm", c->origin.comm, "exe", exe, "cgroup", c->cgroup,
		"netns_cookie", (json_int_t)c->origin.netns_cookie, "dst_addr", ip,
		"dst_port", (int)c->origin.port, "agent_sock", !c->agent_sock.cookie ? json_null() :
		json_pack("{s:I, s:i}", "inode", (json_int_t)c->agent_sock.inode,
			  "uid", (int)c->agent_sock.uid)));
}

/* The kernel's socket table must agree with the eBPF origin on who owns the agent's end
 * (sockdiag.c). Returns 0, or -1 with the connection closing (fail closed). */
static int owner_checked(struct conn *c, struct sockdiag *diag, int fd)
{
	if (!diag || !sockdiag_check_peer(diag, fd, c->origin.uid, c->origin.sock_cookie,
					   &c->agent_sock, c->reason_buf, sizeof(c->reason_buf)))
		return 0;
	log_warn("proxy", "connection of pid %u (%s, uid %u) refused: %s", c->origin.tgid,
		 c->origin.comm, c->origin.uid, c->reason_buf);
	return -1;
}

/* A connection refused at limits.connections: said in the log, at most once a minute. */
static void at_capacity(int max)
{
	static _Atomic long last;
	long now = (long)time(NULL), seen = atomic_load(&last);

	if (now - seen >= 60 && atomic_compare_exchange_strong(&last, &seen, now))
		log_warn("proxy", "limits.connections (%d) reached: new connections are closed "
			 "unanswered until some end; raise it if agents need more", max);
}

void proxy_accepted(struct worker *w, int fd, uint64_t netns, struct sockdiag *diag)
{
	const struct loop_env *env = worker_env(w);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	struct conn *c;
	int i, one = 1;

	/* the slot is taken before the check, so two workers cannot both take the last one */
	if (atomic_fetch_add(&count_conns, 1) >= env->conf->max_connections) {
		atomic_fetch_sub(&count_conns, 1);
		at_capacity(env->conf->max_connections);
		close(fd);
		worker_conn_gone(w);
		return;
	}
	c = NULL;
	if (worker_stopping(w) || getpeername(fd, (struct sockaddr *)&peer, &plen) ||
	    !(c = calloc(1, sizeof(*c)))) {
		atomic_fetch_sub(&count_conns, 1);
		close(fd);
		worker_conn_gone(w);
		return;
	}
	c->w = w;
	c->env = env;
	c->netns = netns;
	c->opened_ms = c->active_ms = worker_now_ms(w);
	c->route = "deny";
	for (i = 0; i < 2; i++) {
		c->s[i].fd = -1;
		c->s[i].rop.owner = c->s[i].sop.owner = c->s[i].cop.owner = c;
		c->s[i].rop.side = c->s[i].sop.side = c->s[i].cop.side = (uint8_t)i;
	}
	c->top.owner = c;
	c->s[CLI].fd = fd;
	c->next = *head_of(w);
	if (c->next)
		c->next->prev = c;
	*head_of(w) = c;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->have_origin = redirect_origin(env->redirect, netns, (struct sockaddr *)&peer,
					 &c->origin) == 0;
	if (!c->have_origin) {
		/* Not redirected by sluice (someone dialled the listener): nothing to serve. */
		log_warn("proxy", "connection not made through the redirect: closed");
		conn_close(c, "not redirected");
		conn_pump(c);
		return;
	}
	read_cgroup(c);
	if (owner_checked(c, diag, fd)) {
		record_open(c);
		conn_close(c, c->reason_buf);
		conn_pump(c);
		return;
	}
	record_open(c);
	c->deadline = c->opened_ms + (uint64_t)env->conf->handshake_timeout_ms;
	if (!inspected_port(env->conf, c->origin.port))
		start_splice(c); /* server-speaks-first protocols must not wait for the agent */
	conn_pump(c);
}

void proxy_on_recv(struct worker *w, struct op *op, int res, const char *data, size_t len)
{
	struct conn *c = op->owner;
	struct side *s = &c->s[op->side];

	c->active_ms = worker_now_ms(w);
	c->trimmed = 0;
	if (c->linger && op->side == CLI && c->st != C_CLOSING) {
		/* a refused agent's last bytes: dropped; its close, an error or too many end it */
		if (res <= 0 || (c->linger_bytes += len) > CONN_LINGER_BYTES)
			conn_close(c, NULL);
		conn_pump(c);
		return;
	}
	if (c->st != C_CLOSING) {
		if (res == -ECANCELED && op->cancel) {
			/* cancelled for the hand-over to the kernel: nothing ended */
		} else if (res <= 0) {
			if (res < 0 && !c->reason)
				c->reason = op->side == CLI ? "receive error from the agent" :
					    c->st == C_SPLICE ? "receive error from the original "
					    "destination" : "receive error from BigQuery";
			else if (!c->reason && op->side == UP && c->st != C_SPLICE &&
				 (c->st == C_UPSTREAM || c->st == C_RESP))
				c->reason = "BigQuery closed the connection"; /* not idle */
			s->eof = 1;
			if (res < 0 && c->st == C_SPLICE)
				conn_close(c, NULL); /* an error, not an end: no half-close */
		} else {
			if (op->side == CLI)
				s->bytes_in += len;
			if (c->st == C_SPLICE) /* spliced: any traffic keeps it alive */
				c->deadline = worker_now_ms(w) + (uint64_t)c->env->conf->idle_timeout_ms;
			if (s->tls) {
				if (tls_conn_feed(s->tls, data, len))
					conn_close(c, "TLS input error");
			} else if (c->st == C_SPLICE && c->s[!op->side].fd >= 0 &&
				   (op->side == UP || c->s[UP].connected) && !s->in.len) {
				buf_append(&c->s[!op->side].q, data, len, SIZE_MAX); /* one copy */
			} else if (buf_append(&s->in, data, len, c->env->conf->max_header_bytes +
							 c->env->conf->max_body_bytes)) {
				conn_close(c, "input larger than the configured limits");
			}
		}
		conn_advance(c);
	}
	conn_pump(c);
}

/* Between requests a connection keeps no buffers: idle agents cost little memory. */
static void idle_trim(struct conn *c)
{
	int i;

	if (c->trimmed || c->st != C_REQ || c->in_body || c->close_after_send)
		return;
	for (i = 0; i < 2; i++) {
		struct side *s = &c->s[i];

		if (s->sop.pending || unsent(s) || s->in.len)
			return;
	}
	for (i = 0; i < 2; i++) {
		buf_free(&c->s[i].in);
		buf_free(&c->s[i].out);
		buf_free(&c->s[i].q);
		buf_free(&c->s[i].pt);
		if (c->s[i].tls)
			tls_conn_trim(c->s[i].tls);
	}
	free(c->req_h);
	c->req_h = NULL;
	free(c->res_h);
	c->res_h = NULL;
	c->trimmed = 1;
}

void proxy_on_send(struct worker *w, struct op *op, int res)
{
	struct conn *c = op->owner;
	struct side *s = &c->s[op->side];

	if (res < 0) {
		conn_close(c, "send failed");
	} else {
		s->out.off += (size_t)res;
		if (op->side == CLI)
			s->bytes_out += (size_t)res;
		if (s->out.off == s->out.len)
			s->out.off = s->out.len = 0;
		conn_advance(c);
	}
	conn_pump(c);
}

/* A socket the kernel forwards changed state: its peer ended (POLLRDHUP: passed on by
 * splice_advance once the kernel has written the rest) or failed (POLLERR: both close). */
void proxy_on_poll(struct worker *w, struct op *op, int res)
{
	struct conn *c = op->owner;
	struct side *s = &c->s[op->side];

	c->active_ms = worker_now_ms(w);
	if (c->st != C_CLOSING && !(res == -ECANCELED && op->cancel)) {
		if (res < 0 || (res & (POLLERR | POLLNVAL)) || ((res & POLLHUP) && !s->shut)) {
			/* an error, a reset, or gone without a FIN */
			conn_close(c, op->side == CLI ? "error on the agent's connection" :
				   "error on the original destination's connection");
		} else {
			if (res & (POLLRDHUP | POLLHUP))
				s->eof = 1;
			conn_advance(c);
		}
	}
	conn_pump(c);
}

/* A timer ran out: a half-close waiting for the kernel looks again. */
void proxy_on_timeout(struct worker *w, struct op *op)
{
	struct conn *c = op->owner;

	if (c->st != C_CLOSING)
		conn_advance(c);
	conn_pump(c);
}

void proxy_on_connect(struct worker *w, struct op *op, int res)
{
	struct conn *c = op->owner;
	struct side *u = &c->s[UP];

	u->connecting = 0;
	if (c->st != C_CLOSING) {
		if (res < 0) {
			if (c->st == C_SPLICE) {
				conn_close(c, "original destination refused the connection");
			} else {
				conn_deny(c, 502, "UNAVAILABLE", "backendError",
				     "sluice: cannot connect to the BigQuery endpoint");
				c->st = C_RESP;
			}
		} else {
			u->connected = 1;
			conn_advance(c);
		}
	}
	conn_pump(c);
}

void proxy_tick(struct worker *w)
{
	struct conn *c, *next;
	uint64_t now = worker_now_ms(w);

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (c->st == C_REQ && !c->trimmed && now - c->active_ms > 1000)
			idle_trim(c);
		if (c->st == C_HOLD && now >= c->hold_until) {
			hold_recheck(c, 1);
			conn_pump(c);
			continue;
		}
		if (c->st == C_SPLICE && c->spl == SPL_SOCKMAP && c->deadline && now > c->deadline) {
			/* the kernel moves the bytes: idle when its counters stand still */
			uint64_t seen = splice_forwarded(c->env->splice, &c->pair, CLI) +
					splice_forwarded(c->env->splice, &c->pair, UP);

			if (seen != c->spl_seen) {
				c->spl_seen = seen;
				c->spl_active = now;
			}
			if (now - c->spl_active < (uint64_t)c->env->conf->idle_timeout_ms) {
				c->deadline = now + splice_idle_check(c);
				continue;
			}
		}
		if (c->st != C_CLOSING && c->deadline && now > c->deadline) {
			conn_close(c, c->st == C_PEEK || c->st == C_TLS ? "handshake timeout"
				      : c->st == C_REQ ? "idle or header timeout" : "timeout");
			conn_pump(c);
		}
	}
}

void proxy_shutdown(struct worker *w, int force)
{
	struct conn *c, *next;

	for (c = *head_of(w); c; c = next) {
		next = c->next;
		if (force || c->st == C_PEEK || c->st == C_TLS ||
		    (c->st == C_REQ && !c->in_body && !c->s[CLI].in.len)) {
			conn_close(c, "sluiced is stopping");
			conn_pump(c);
		} else {
			c->req.keep_alive = 0; /* finish this request, then close */
		}
	}
}

