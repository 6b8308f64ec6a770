// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Outbound capture, IPv4: attached to a pod's cgroup as cgroup/connect4. A TCP connect from an
 * enrolled pod to a non-loopback destination whose port the pod does not exclude is rewritten
 * to 127.0.0.1:15001, where the agent listens inside the pod's netns; the original destination
 * is kept on the socket (weft_sk_orig) for sockops to file under (netns cookie, local port).
 * connect6.bpf.c covers AF_INET6 sockets (IPv4-mapped destinations today). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_capture.h"

SEC("cgroup/connect4")
int weft_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;

	if (!weft_capture_ipv4(ctx, ctx->user_ip4 /* network order */))
		return 1;

	ctx->user_ip4 = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
