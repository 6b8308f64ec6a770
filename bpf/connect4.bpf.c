// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Outbound capture, IPv4: attached to a pod's cgroup as cgroup/connect4. A TCP connect from an
 * enrolled pod to a non-loopback destination whose port the pod does not exclude is rewritten
 * to 127.0.0.1:15001, where the agent listens inside the pod's netns; the original destination
 * is kept on the socket (weft_sk_orig) for sockops to file under (netns cookie, local port).
 * connect6.bpf.c covers AF_INET6 sockets (IPv4-mapped destinations today). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"

#define SOCK_STREAM 1
#define IPPROTO_TCP 6

/* Set by the agent before load. Sockets carrying this SO_MARK are the agent's own and are
 * never captured (the agent is outside pod cgroups anyway; this is the second guard). */
const volatile __u32 bypass_mark = 0x5746; /* "WF" */
const volatile __u16 outbound_port = WEFT_PORT_OUTBOUND;

static __always_inline int excluded(const struct weft_pod_config *cfg, __u16 port)
{
	/* Bounded loop (kernel >= 5.3); unused slots are zero and port 0 is never a destination. */
	for (int i = 0; i < WEFT_MAX_EXCLUDED_PORTS; i++) {
		if (cfg->excluded_ports[i] == port)
			return 1;
	}
	return 0;
}

SEC("cgroup/connect4")
int weft_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;

	__u32 dst = ctx->user_ip4;                 /* network order */
	if ((bpf_ntohl(dst) >> 24) == 127)         /* loopback: never captured */
		return 1;
	if (dst == 0)                              /* connect to 0.0.0.0 means local */
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
		return 1; /* out of memory: leave the connection uncaptured rather than lose its destination */
	orig->addr[0] = dst;
	orig->addr[1] = 0;
	orig->addr[2] = 0;
	orig->addr[3] = 0;
	orig->port = port;
	orig->family = WEFT_AF_INET;

	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
