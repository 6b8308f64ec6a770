// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Outbound capture, AF_INET6 sockets: attached to a pod's cgroup as cgroup/connect6. Shipped
 * for IPv4-mapped destinations (::ffff:a.b.c.d), which an AF_INET6 socket reaches over IPv4
 * without ever running connect4: they are rewritten to ::ffff:127.0.0.1:15001 and filed like
 * connect4's. Native IPv6 destinations pass through uncaptured until the proxy listens on
 * [::1]:15001; the types and keys already carry 16-byte addresses for that step. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"

#define SOCK_STREAM 1
#define IPPROTO_TCP 6

const volatile __u32 bypass_mark = 0x5746;
const volatile __u16 outbound_port = WEFT_PORT_OUTBOUND;

static __always_inline int excluded(const struct weft_pod_config *cfg, __u16 port)
{
	for (int i = 0; i < WEFT_MAX_EXCLUDED_PORTS; i++) {
		if (cfg->excluded_ports[i] == port)
			return 1;
	}
	return 0;
}

SEC("cgroup/connect6")
int weft_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	/* Only ::ffff:a.b.c.d for now (see above). */
	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 || ctx->user_ip6[2] != bpf_htonl(0xffff))
		return 1;
	__u32 dst = ctx->user_ip6[3];
	if ((bpf_ntohl(dst) >> 24) == 127 || dst == 0)
		return 1;

	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	if (bypass_mark && sk->mark == bypass_mark)
		return 1;

	__u64 netns = bpf_get_netns_cookie(ctx);
	struct weft_pod_config *cfg = bpf_map_lookup_elem(&weft_pods, &netns);
	if (!cfg || !(cfg->flags & WEFT_POD_ENROLLED))
		return 1;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (excluded(cfg, port))
		return 1;

	struct weft_orig_dst *orig = bpf_sk_storage_get(&weft_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return 1;
	orig->addr[0] = dst;
	orig->addr[1] = 0;
	orig->addr[2] = 0;
	orig->addr[3] = 0;
	orig->port = port;
	orig->family = WEFT_AF_INET;

	ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
