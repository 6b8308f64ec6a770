/* Shared by connect4.bpf.c and connect6.bpf.c: the decision to capture an outbound TCP connect
 * to an IPv4 destination, and recording its original destination on the socket for sockops;
 * and, for connect6, the decision to refuse a native IPv6 destination (not captured yet).
 * Each object includes this once, so each gets its own copy of the configuration below. */
#ifndef WEFT_CAPTURE_H
#define WEFT_CAPTURE_H

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

/* 1 when Weft acts on this connect (socket `sk`): the pod is enrolled, the socket is not the
 * agent's own (bypass mark) and the destination port is not one the pod excludes; 0 to leave it.
 * Address checks (loopback, local) are the caller's. */
static __always_inline int weft_enrolled_connect(struct bpf_sock_addr *ctx, struct bpf_sock *sk)
{
	if (bypass_mark && sk->mark == bypass_mark)
		return 0;

	__u64 netns = bpf_get_netns_cookie(ctx);
	struct weft_pod_config *cfg = bpf_map_lookup_elem(&weft_pods, &netns);
	if (!cfg || !(cfg->flags & WEFT_POD_ENROLLED))
		return 0;
	if (excluded(cfg, bpf_ntohs((__u16)ctx->user_port)))
		return 0;
	return 1;
}

/* Returns 1 when this connect to `dst` (IPv4, network order) from an enrolled pod is to be sent
 * to the agent, with its original destination already stored on the socket; 0 to leave it. */
static __always_inline int weft_capture_ipv4(struct bpf_sock_addr *ctx, __u32 dst)
{
	if ((bpf_ntohl(dst) >> 24) == 127 || dst == 0) /* loopback, or 0.0.0.0 meaning local */
		return 0;

	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	if (!weft_enrolled_connect(ctx, sk))
		return 0;

	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	struct weft_orig_dst *orig = bpf_sk_storage_get(&weft_sk_orig, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return 0; /* out of memory: leave the connection uncaptured rather than lose its destination */
	orig->addr[0] = dst;
	orig->addr[1] = 0;
	orig->addr[2] = 0;
	orig->addr[3] = 0;
	orig->port = port;
	orig->family = WEFT_AF_INET;
	return 1;
}

#endif
