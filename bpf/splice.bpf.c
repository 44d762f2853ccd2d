// SPDX-License-Identifier: GPL-2.0
/* splice.bpf.c - spliced connections forwarded inside the kernel.
 *
 * sluiced puts both sockets of a connection it decided to splice (the agent's, accepted, and
 * its own to the original destination) into two socket hashes keyed by socket cookie:
 * splice_targets, which only gives each socket a psock so that it can be redirected to, and
 * splice_socks, whose sk_skb verdict program takes every segment the socket receives off its
 * receive queue and queues it for sending on the peer (bpf_sk_redirect_hash to egress). The
 * bytes never reach sluiced: no receive, no copy, no send, no wake-up.
 *
 * splice_peers says, per socket, which cookie its peer has, and counts the bytes passed on:
 * sluiced's connection record and idle timeout read them, and a half-close waits for them to
 * be written into the peer before it is passed on.
 *
 * Nothing here is pinned: the maps and the program belong to the running sluiced, as the
 * sockets do. A socket that is not in splice_socks is never seen by this program, and only
 * sluiced adds sockets, so splicing cannot widen what the redirect lets through.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sluice-bpf.h"

#define SK_DROP 0

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SLUICE_SPLICE_MAX);
	__type(key, __u64);
	__type(value, __u64);
} splice_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SLUICE_SPLICE_MAX);
	__type(key, __u64);
	__type(value, __u64);
} splice_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_SPLICE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sluice_splice_peer);
} splice_peers SEC(".maps");

/* Every segment a spliced socket receives goes to its peer's send queue. A segment of no
 * bytes (a bare FIN) is dropped: redirected, the peer's send of it would fail and break
 * the peer's pipe. sluiced learns of the FIN from poll and passes it on itself. */
SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct sluice_splice_peer *p = bpf_map_lookup_elem(&splice_peers, &cookie);

	if (!p || !skb->len)
		return SK_DROP;
	__sync_fetch_and_add(&p->bytes, skb->len);
	return bpf_sk_redirect_hash(skb, &splice_targets, &p->peer, 0);
}
