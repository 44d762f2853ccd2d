/* sluice-bpf.h - structures shared by the eBPF programs (bpf/redirect.bpf.c, bpf/splice.bpf.c)
 * and sluiced.
 *
 * Fixed-width __u types only: the same bytes are read by both sides. Addresses are always
 * 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), ports in host byte order.
 */
#ifndef SLUICE_BPF_H
#define SLUICE_BPF_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SLUICE_COMM_LEN 16
#define SLUICE_ORIGINS_MAX 65536
#define SLUICE_CIDRS_MAX 1024
#define SLUICE_NETNS_MAX 4096

/* Where an intercepted connection was going, and who made it. Saved by cgroup/connect{4,6}. */
struct sluice_origin {
	__u8 addr[16];      /* original destination */
	__u16 port;         /* original destination port */
	__u16 family;       /* AF_INET or AF_INET6 as the agent used it (mapped counts as AF_INET) */
	__u32 tgid;
	__u32 pid;
	__u32 uid;
	__u32 gid;
	__u32 pad;
	__u64 cgroup_id;
	__u64 netns_cookie;
	__u64 sock_cookie;
	char comm[SLUICE_COMM_LEN];
};

/* Key of the origins map: the agent-side socket as sluiced sees it from accept(). */
struct sluice_conn_key {
	__u64 netns_cookie;
	__u8 addr[16];      /* agent's local (source) address */
	__u16 port;         /* agent's local (source) port */
	__u16 pad[3];
};

/* The listener sluiced has open in one network namespace (127.0.0.1 and ::1, same port). */
struct sluice_listener {
	__u16 port;
	__u16 pad[3];
};

/* LPM trie key for destination CIDR lists (IPv4 as mapped, prefixlen counts from bit 0). */
struct sluice_cidr_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of a CIDR entry: the inclusive port range it covers (0-65535 = every port). */
struct sluice_cidr_val {
	__u16 port_lo;
	__u16 port_hi;
};

/* Switches in the single-entry "settings" array map (a map, not rodata, so that a reload
 * or a restarted sluiced can change them under pinned programs). */
struct sluice_settings {
	__u32 pass_loopback; /* leave loopback destinations alone */
	__u32 narrow;        /* redirect only destinations listed in only_cidrs */
};

enum sluice_event_kind {
	SLUICE_EV_NO_LISTENER = 1, /* a connect from a netns where sluiced has no listener yet */
};

/* Ring buffer event to sluiced. */
struct sluice_event {
	__u32 kind;
	__u32 tgid;
	__u64 netns_cookie;
	__u64 cgroup_id;
};

/* --- splice.bpf.c: spliced connections forwarded in the kernel ------------------------- */

#define SLUICE_SPLICE_MAX 65536 /* sockets (two per spliced connection) */

/* Value of the splice_peers map, keyed by a spliced socket's cookie: where what it receives
 * goes, and how many bytes the verdict program has passed on from it. */
struct sluice_splice_peer {
	__u64 peer;         /* the other socket's cookie: its key in splice_targets */
	__u64 bytes;        /* bytes received on this socket and queued to the peer */
};

#endif
