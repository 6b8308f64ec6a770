// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Outbound capture, AF_INET6 sockets: attached to a pod's cgroup as cgroup/connect6. Shipped
 * for IPv4-mapped destinations (::ffff:a.b.c.d), which an AF_INET6 socket reaches over IPv4
 * without ever running connect4: they are rewritten to ::ffff:127.0.0.1:15001 and filed like
 * connect4's. Native IPv6 destinations pass through uncaptured until the proxy listens on
 * [::1]:15001; the types and keys already carry 16-byte addresses for that step. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_capture.h"

SEC("cgroup/connect6")
int weft_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	/* Only ::ffff:a.b.c.d for now (see above). */
	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 || ctx->user_ip6[2] != bpf_htonl(0xffff))
		return 1;
	if (!weft_capture_ipv4(ctx, ctx->user_ip6[3]))
		return 1;

	ctx->user_ip6[3] = bpf_htonl(0x7f000001);
	ctx->user_port = bpf_htons(outbound_port);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
