// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Original destination filing: attached to a pod's cgroup as sockops. At TCP_CONNECT_CB the
 * client socket already has its local port and netns, so the destination connect4 stored on
 * the socket is copied to weft_orig_dst under (netns cookie, local port) — the pair the proxy
 * sees on the accepted socket as (SO_NETNS_COOKIE, peer port). Pods can reuse the same local
 * port on 127.0.0.1; the netns cookie keeps them apart. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"

SEC("sockops")
int weft_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return 1;
	struct weft_orig_dst *orig = bpf_sk_storage_get(&weft_sk_orig, sk, 0, 0);
	if (!orig)
		return 1; /* not captured by connect4 */

	struct weft_orig_key key = {};
	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.port = (__u16)skops->local_port;
	/* The family the proxy's accepted socket has: an AF_INET6 client that connect6 sent to
	 * ::ffff:127.0.0.1 arrives at the IPv4 listener. */
	key.family = WEFT_AF_INET;
	if (skops->family == WEFT_AF_INET6 &&
	    !(skops->remote_ip6[0] == 0 && skops->remote_ip6[1] == 0 && skops->remote_ip6[2] == bpf_htonl(0xffff)))
		key.family = WEFT_AF_INET6;

	struct weft_orig_dst val = *orig;
	bpf_map_update_elem(&weft_orig_dst, &key, &val, BPF_ANY);
	bpf_sk_storage_delete(&weft_sk_orig, sk);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
