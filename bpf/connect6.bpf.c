// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Outbound capture, AF_INET6 sockets: attached to a pod's cgroup as cgroup/connect6.
 * - IPv4-mapped destinations (::ffff:a.b.c.d), which an AF_INET6 socket reaches over IPv4
 *   without ever running connect4, are captured: rewritten to ::ffff:127.0.0.1:15001 and filed
 *   like connect4's.
 * - Native IPv6 destinations are not captured yet (the proxy does not listen on [::1]:15001), so
 *   for an enrolled pod they are refused instead of let through in plaintext: returning 0 makes
 *   connect() fail with EPERM at once, and a dual-stack client falls back to the next (IPv4)
 *   address. Loopback (::1), the unspecified address (::, meaning local), excluded ports, the
 *   agent's own sockets (bypass mark) and pods that are not enrolled are left alone. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_capture.h"

/* Native IPv6 connects refused since this object was loaded (all pods of this agent); read it
 * with `bpftool map dump name connect6.bss`. Not per pod: the refusal already shows in the
 * pod, as EPERM from connect(). */
__u64 weft_ipv6_refused = 0;

SEC("cgroup/connect6")
int weft_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;

	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
		if (!weft_capture_ipv4(ctx, a3))
			return 1;
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons(outbound_port);
		return 1;
	}

	/* Native IPv6. ::1 and :: stay inside the pod's netns. */
	if (a0 == 0 && a1 == 0 && a2 == 0 && (a3 == 0 || a3 == bpf_htonl(1)))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk || !weft_enrolled_connect(ctx, sk))
		return 1;
	__sync_fetch_and_add(&weft_ipv6_refused, 1);
	return 0; /* EPERM: fail closed until IPv6 capture ships */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
