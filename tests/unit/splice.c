/* Description: splicing inside the kernel (splice.c, bpf/splice.bpf.c), for real, on loopback:
 * agent <-> [a  sluiced  b] <-> server. Bytes queued before the sockets are handed over go
 * first and without waiting for more traffic; 8 MB of random bytes each way at once arrive
 * intact; the counters say how many bytes went each way; a half-close in either direction
 * arrives after the data and leaves the other direction working; a bare FIN does not break
 * the peer; a reset shows as POLLERR. Needs root (BPF), exit 77 otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "splice.h"
#include "tap.h"

#define BIG (8 << 20)

/* A connected pair on loopback: <c> connected, <s> accepted. */
static void tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		abort();
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(*c, (struct sockaddr *)&a, sizeof(a)))
		abort();
	*s = accept(l, NULL, NULL);
	if (*s < 0)
		abort();
	close(l);
}

/* Read exactly <n> bytes within <ms>; returns bytes read (fewer on timeout or EOF). */
static size_t read_full(int fd, void *buf, size_t n, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t k;

	while (got < n && poll(&p, 1, ms) == 1) {
		k = read(fd, (char *)buf + got, n - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

/* What poll says about <fd> within <ms> (0 on timeout). */
static short wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, ms) == 1 ? p.revents : 0;
}

static int eof_within(int fd, int ms)
{
	char c;

	return wait_for(fd, POLLIN, ms) && read(fd, &c, 1) == 0;
}

static int drained_within(struct splice *s, struct splice_pair *p, int i, int ms)
{
	int t, d = 0;

	for (t = 0; t < ms && (d = splice_drained(s, p, i)) == 0; t++)
		usleep(1000);
	return d;
}

/* agent -> srv and srv -> agent, <n> random bytes each way at once, through the splice. */
static int both_ways(int agent, int srv, size_t n)
{
	char *out[2] = { malloc(n), malloc(n) }, *in[2] = { malloc(n), malloc(n) };
	size_t sent[2] = { 0, 0 }, got[2] = { 0, 0 };
	int fds[2] = { agent, srv }, i, fdr, same;
	ssize_t k;

	fdr = open("/dev/urandom", O_RDONLY);
	for (i = 0; i < 2; i++) {
		if (read(fdr, out[i], n) != (ssize_t)n)
			abort();
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	close(fdr);
	while (got[0] < n || got[1] < n) {
		struct pollfd p[2];

		for (i = 0; i < 2; i++)
			p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN |
						(sent[i] < n ? POLLOUT : 0) };
		if (poll(p, 2, 5000) <= 0)
			break; /* stalled */
		for (i = 0; i < 2; i++) {
			if ((p[i].revents & POLLOUT) && sent[i] < n) {
				k = write(fds[i], out[i] + sent[i], n - sent[i]);
				if (k > 0)
					sent[i] += (size_t)k;
			}
			/* what fds[i] receives is what the other end sent */
			if ((p[i].revents & POLLIN) && got[!i] < n) {
				k = read(fds[i], in[!i] + got[!i], n - got[!i]);
				if (k > 0)
					got[!i] += (size_t)k;
				else if (k == 0)
					goto out;
			}
		}
	}
out:
	same = got[0] == n && got[1] == n && !memcmp(in[0], out[0], n) && !memcmp(in[1], out[1], n);
	if (!same)
		printf("# agent->srv %zu/%zu, srv->agent %zu/%zu\n", got[0], n, got[1], n);
	for (i = 0; i < 2; i++) {
		fcntl(fds[i], F_SETFL, 0);
		free(out[i]);
		free(in[i]);
	}
	return same;
}

int main(void)
{
	struct splice *s;
	struct splice_pair p;
	char err[256], buf[64];
	int agent, a, b, srv, fd, one = 1;
	struct linger lg = { 1, 0 };

	if (geteuid() != 0)
		tap_skip_all("needs root (BPF programs and maps)");
	s = splice_open(err, sizeof(err));
	if (!s) {
		printf("# %s\n", err);
		tap_skip_all("this kernel cannot splice in the kernel (sockmap)");
	}

	/* agent <-> a (sluiced's accepted socket); b (sluiced's upstream socket) <-> srv */
	tcp_pair(&agent, &a);
	tcp_pair(&b, &srv);
	setsockopt(a, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	/* bytes already waiting in both receive queues when the sockets are handed over */
	ok(write(agent, "client-first ", 13) == 13 && write(srv, "banner ", 7) == 7, "bytes queued");
	usleep(20000);
	is_int(splice_attach(s, &p, a, b, err, sizeof(err)), 0, "attach: %s", err);
	is_int(p.rx, 3, "the kernel reads both sockets");
	memset(buf, 0, sizeof(buf));
	is_int(read_full(srv, buf, 13, 1000), 13, "queued client bytes arrive without more traffic");
	is_str(buf, "client-first ", "... unchanged");
	memset(buf, 0, sizeof(buf));
	is_int(read_full(agent, buf, 7, 1000), 7, "queued server bytes (server speaks first) arrive");
	is_str(buf, "banner ", "... unchanged");

	ok(both_ways(agent, srv, BIG), "8 MB of random bytes each way at once, byte-exact");
	is_int(splice_forwarded(s, &p, 0), 13 + BIG, "forwarded from the agent: every byte, counted");
	is_int(splice_forwarded(s, &p, 1), 7 + BIG, "forwarded from the server: every byte, counted");
	is_int(drained_within(s, &p, 0, 2000), 1, "agent -> server drained");

	/* The agent half-closes: the server sees EOF after the data, and can still answer. */
	ok(write(agent, "last", 4) == 4 && shutdown(agent, SHUT_WR) == 0, "agent sends, then SHUT_WR");
	ok(wait_for(a, POLLRDHUP, 1000) & POLLRDHUP, "sluiced's side sees the FIN (POLLRDHUP)");
	is_int(drained_within(s, &p, 0, 2000), 1, "... and waits until the kernel wrote everything");
	ok(shutdown(b, SHUT_WR) == 0, "... then passes the FIN on");
	memset(buf, 0, sizeof(buf));
	is_int(read_full(srv, buf, 4, 1000), 4, "server gets the last bytes");
	ok(eof_within(srv, 1000), "... then EOF");
	ok(!(wait_for(b, 0, 50) & POLLERR), "the bare FIN did not break the peer's sending side");
	ok(write(srv, "answer", 6) == 6, "server answers after the half-close");
	memset(buf, 0, sizeof(buf));
	is_int(read_full(agent, buf, 6, 1000), 6, "the answer reaches the half-closed agent");
	is_str(buf, "answer", "... unchanged");
	ok(shutdown(srv, SHUT_WR) == 0 && (wait_for(b, POLLRDHUP, 1000) & POLLRDHUP),
	   "server closes: sluiced's side sees it");
	is_int(drained_within(s, &p, 1, 2000), 1, "server -> agent drained");
	ok(shutdown(a, SHUT_WR) == 0 && eof_within(agent, 1000), "agent gets EOF after the answer");
	is_int(splice_forwarded(s, &p, 0), 13 + BIG + 4, "agent's byte count after the close");
	is_int(splice_forwarded(s, &p, 1), 7 + BIG + 6, "server's byte count after the close");
	splice_detach(s, &p);
	close(a);
	close(b);
	close(agent);
	close(srv);

	/* A reset on one side shows as an error on sluiced's socket. */
	tcp_pair(&agent, &a);
	tcp_pair(&b, &srv);
	is_int(splice_attach(s, &p, a, b, err, sizeof(err)), 0, "second pair attached: %s", err);
	setsockopt(srv, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(srv);
	ok(wait_for(b, POLLRDHUP, 1000) & POLLERR, "server reset: POLLERR on sluiced's side");
	splice_detach(s, &p);
	close(a);
	close(b);
	close(agent);

	/* A socket that is no longer established cannot be handed over: nothing changes. */
	tcp_pair(&agent, &a);
	tcp_pair(&b, &srv);
	shutdown(agent, SHUT_WR);
	shutdown(srv, SHUT_WR);
	usleep(20000);
	ok(splice_attach(s, &p, a, b, err, sizeof(err)) == -1 && p.rx == 0,
	   "both peers closed first: refused (%s)", err);
	fd = a;
	ok(read(fd, buf, sizeof(buf)) == 0, "... and the socket reads as before");
	close(a);
	close(b);
	close(agent);
	close(srv);
	splice_close(s);
	return tap_done();
}
