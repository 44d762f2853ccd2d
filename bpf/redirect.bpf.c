// SPDX-License-Identifier: GPL-2.0
/* redirect.bpf.c - sends every outbound TCP connection of an enforced cgroup to sluiced.
 *
 * connect4/connect6 rewrite the destination to sluiced's listener in the caller's network
 * namespace and remember the original destination by socket cookie. The cookie is not what
 * sluiced sees after accept(), so sock_ops re-keys the origin at TCP_CONNECT_CB (the local
 * port is bound by then and no SYN has left yet, so the entry exists before sluiced can
 * accept) by {netns cookie, agent address, agent port}: exactly the peer sluiced gets from
 * accept() plus SO_NETNS_COOKIE. A getsockopt(SO_ORIGINAL_DST) program would need the same
 * 4-tuple re-keying and adds a hook on sluiced's own cgroup, so the map is read directly.
 *
 * Fail closed: a netns without a listener gets EPERM (and sluiced is told, to open one); a
 * listener that died leaves connections refused. UDP to port 443 (QUIC) is refused.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "sluice-bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define DENY 0
#define ALLOW 1

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_NETNS_MAX);
	__type(key, __u64);
	__type(value, struct sluice_listener);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_ORIGINS_MAX);
	__type(key, __u64);
	__type(value, struct sluice_origin);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_ORIGINS_MAX);
	__type(key, struct sluice_conn_key);
	__type(value, struct sluice_origin);
} origins SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_CIDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_cidr_key);
	__type(value, struct sluice_cidr_val);
} pass_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_CIDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_cidr_key);
	__type(value, struct sluice_cidr_val);
} only_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline int in_cidrs(void *map, const __u8 addr[16], __u16 port)
{
	struct sluice_cidr_key k = { .prefixlen = 128 };
	struct sluice_cidr_val *v;

	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(map, &k);
	return v && port >= v->port_lo && port <= v->port_hi;
}

static __always_inline int is_loopback(const __u8 a[16])
{
	static const __u8 lo6[16] = { [15] = 1 };
	int i, v4mapped = 1;

	for (i = 0; i < 10; i++)
		v4mapped &= a[i] == 0;
	if (v4mapped && a[10] == 0xff && a[11] == 0xff)
		return a[12] == 127;
	for (i = 0; i < 16; i++)
		if (a[i] != lo6[i])
			return 0;
	return 1;
}

static __always_inline void notify_no_listener(__u64 netns)
{
	struct sluice_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return;
	e->kind = SLUICE_EV_NO_LISTENER;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	e->netns_cookie = netns;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_ringbuf_submit(e, 0);
}

/* Decide and, when redirecting, save the origin. <addr> is the destination as 16 bytes.
 * Returns the listener port to redirect to, 0 to leave the connection alone, -1 to refuse. */
static __always_inline int decide(struct bpf_sock_addr *ctx, const __u8 addr[16], __u16 port,
				  __u16 family)
{
	__u32 zero = 0;
	struct sluice_settings *s = bpf_map_lookup_elem(&settings, &zero);
	struct sluice_listener *l;
	struct sluice_origin o = {};
	__u64 netns, id, cookie;

	if (!s)
		return -1;
	if (s->pass_loopback && is_loopback(addr))
		return 0;
	if (in_cidrs(&pass_cidrs, addr, port))
		return 0;
	if (s->narrow && !in_cidrs(&only_cidrs, addr, port))
		return 0;

	netns = bpf_get_netns_cookie(ctx);
	l = bpf_map_lookup_elem(&listeners, &netns);
	if (!l) {
		notify_no_listener(netns);
		return -1;
	}
	cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(o.addr, addr, 16);
	o.port = port;
	o.family = family;
	id = bpf_get_current_pid_tgid();
	o.tgid = id >> 32;
	o.pid = (__u32)id;
	id = bpf_get_current_uid_gid();
	o.uid = (__u32)id;
	o.gid = id >> 32;
	o.cgroup_id = bpf_get_current_cgroup_id();
	o.netns_cookie = netns;
	o.sock_cookie = cookie;
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	if (bpf_map_update_elem(&pending, &cookie, &o, BPF_ANY))
		return -1;
	return l->port;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16] = { [10] = 0xff, [11] = 0xff };
	__u32 ip = ctx->user_ip4;
	int port;

	if (ctx->type == SOCK_DGRAM)
		return bpf_ntohs(ctx->user_port) == 443 ? DENY : ALLOW;
	if (ctx->type != SOCK_STREAM)
		return ALLOW;
	__builtin_memcpy(&addr[12], &ip, 4);
	port = decide(ctx, addr, bpf_ntohs(ctx->user_port), AF_INET);
	if (port < 0)
		return DENY;
	if (port > 0) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons(port);
	}
	return ALLOW;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	__u32 w0, w1, w2, w3;
	int port, mapped;

	if (ctx->type == SOCK_DGRAM)
		return bpf_ntohs(ctx->user_port) == 443 ? DENY : ALLOW;
	if (ctx->type != SOCK_STREAM)
		return ALLOW;
	/* ctx fields need constant offsets: no loop */
	w0 = ctx->user_ip6[0];
	w1 = ctx->user_ip6[1];
	w2 = ctx->user_ip6[2];
	w3 = ctx->user_ip6[3];
	__builtin_memcpy(&addr[0], &w0, 4);
	__builtin_memcpy(&addr[4], &w1, 4);
	__builtin_memcpy(&addr[8], &w2, 4);
	__builtin_memcpy(&addr[12], &w3, 4);
	mapped = w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
	port = decide(ctx, addr, bpf_ntohs(ctx->user_port), mapped ? AF_INET : AF_INET6);
	if (port < 0)
		return DENY;
	if (port > 0) {
		if (mapped) { /* stays on the IPv4 stack: 127.0.0.1 as ::ffff:127.0.0.1 */
			ctx->user_ip6[3] = bpf_htonl(0x7f000001);
		} else {
			ctx->user_ip6[0] = 0;
			ctx->user_ip6[1] = 0;
			ctx->user_ip6[2] = 0;
			ctx->user_ip6[3] = bpf_htonl(1);
		}
		ctx->user_port = bpf_htons(port);
	}
	return ALLOW;
}

/* Unconnected UDP: sendmsg to port 443 is QUIC around the TLS gate. */
SEC("cgroup/sendmsg4")
int sluice_sendmsg4(struct bpf_sock_addr *ctx)
{
	return bpf_ntohs(ctx->user_port) == 443 ? DENY : ALLOW;
}

SEC("cgroup/sendmsg6")
int sluice_sendmsg6(struct bpf_sock_addr *ctx)
{
	return bpf_ntohs(ctx->user_port) == 443 ? DENY : ALLOW;
}

/* Re-key a redirected connection's origin by what accept() will show sluiced. */
SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops)
{
	struct sluice_conn_key k = {};
	struct sluice_origin *o;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_map_lookup_elem(&pending, &cookie);
	if (!o)
		return 1;
	k.netns_cookie = o->netns_cookie;
	if (skops->family == AF_INET) {
		__u32 ip = skops->local_ip4;

		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &ip, 4);
	} else {
		__u32 w0 = skops->local_ip6[0], w1 = skops->local_ip6[1];
		__u32 w2 = skops->local_ip6[2], w3 = skops->local_ip6[3];

		__builtin_memcpy(&k.addr[0], &w0, 4);
		__builtin_memcpy(&k.addr[4], &w1, 4);
		__builtin_memcpy(&k.addr[8], &w2, 4);
		__builtin_memcpy(&k.addr[12], &w3, 4);
	}
	k.port = (__u16)skops->local_port; /* host byte order */
	bpf_map_update_elem(&origins, &k, o, BPF_ANY);
	bpf_map_delete_elem(&pending, &cookie);
	return 1;
}
