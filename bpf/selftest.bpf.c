// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The native binding's own test program: small, but real, so a test can take a BPF program
 * through the whole chain (build, open, configure, load, attach, read back, pin, detach).
 * Not used by the agent. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK 0
#define ETH_P_IP 0x0800

/* Configuration, set by user space before load (frozen in .rodata afterwards). */
const volatile __u16 watched_port = 0; /* host order; 0 counts every port */
const volatile __u32 increment = 1;    /* added per counted connect */
const volatile __s32 tc_verdict = TC_ACT_OK;

/* connects_by_port: destination port (host order) -> number of connects counted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u64);
} connects_by_port SEC(".maps");

/* packets: [0] every packet seen by the tc program, [1] the IPv4 ones. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

/* runs: per-CPU count of tc program runs (exercises per-CPU value layout in user space). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} runs SEC(".maps");

/* A struct whose C layout a test compares with the TypeScript codec. */
struct selftest_layout {
	__u8 a;
	__u16 port_be;
	__u32 ip4;
	__u64 cookie;
	__u8 tail;
};
struct selftest_layout layout_probe SEC(".data");

SEC("cgroup/connect4")
int selftest_connect4(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	if (watched_port && port != watched_port)
		return 1;
	__u64 *count = bpf_map_lookup_elem(&connects_by_port, &port);
	if (count) {
		__sync_fetch_and_add(count, increment);
	} else {
		__u64 first = increment;
		/* Two first connects racing: the loser adds to the winner's entry. */
		if (bpf_map_update_elem(&connects_by_port, &port, &first, BPF_NOEXIST)) {
			count = bpf_map_lookup_elem(&connects_by_port, &port);
			if (count)
				__sync_fetch_and_add(count, increment);
		}
	}
	return 1; /* allow */
}

SEC("tc")
int selftest_tc(struct __sk_buff *skb)
{
	__u32 all = 0, ip = 1;
	__u64 *n = bpf_map_lookup_elem(&runs, &all);
	if (n)
		*n += 1; /* per CPU: no atomics needed */
	n = bpf_map_lookup_elem(&packets, &all);
	if (n)
		__sync_fetch_and_add(n, 1);
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		n = bpf_map_lookup_elem(&packets, &ip);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return tc_verdict;
}

/* Never loaded unless a test turns autoload on ("?" prefix): the verifier must reject it, because
 * the lookup result is used without a NULL check. Tests use it to see the verifier log. */
SEC("?tc")
int selftest_rejected(struct __sk_buff *skb)
{
	__u16 key = 0;
	__u64 *n = bpf_map_lookup_elem(&connects_by_port, &key); /* hash: may be NULL */
	return *n ? TC_ACT_OK : TC_ACT_OK + 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
