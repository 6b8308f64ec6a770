// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Inbound capture: tc ingress (clsact, direct action) on eth0 inside an enrolled pod's netns.
 * New TCP flows to the pod IP are handed with bpf_sk_assign to the agent's :15006 listener
 * (weft_in_listen, keyed by the pod's netns cookie, found from the destination IP), so the accepted socket's local address is the
 * original destination. Left alone: non-TCP, packets not addressed to the pod IP, port 15008
 * (HBONE), probes from the node's address on the pod link, and packets of flows that already
 * have a socket (bpf_skc_lookup_tcp finds one that is not a listener). When an enrolled pod's
 * listener is missing (agent down) new flows are dropped: inbound fails closed. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define IPPROTO_TCP 6
#define BPF_TCP_LISTEN_STATE 10
#define BPF_TCP_TIME_WAIT_STATE 6

const volatile __u16 hbone_port = WEFT_PORT_HBONE;

SEC("tc")
int weft_tc_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK; /* IPv6 steering comes with connect6 */

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	if (ip->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	if (ip->frag_off & bpf_htons(0x1fff))
		return TC_ACT_OK; /* a later fragment: no TCP header; its first fragment was judged */
	if (ip->ihl < 5)
		return TC_ACT_OK; /* malformed: the stack drops it */
	/* Honour IP options: skipping such packets would let a client bypass the proxy. */
	struct tcphdr *th = (void *)ip + ip->ihl * 4;
	if ((void *)(th + 1) > end)
		return TC_ACT_SHOT;

	/* The pod is found by the destination address (see weft_pod_ips for why not the netns). */
	struct weft_ip_key ipk = {};
	ipk.addr[0] = ip->daddr;
	ipk.family = WEFT_AF_INET;
	__u64 *netnsp = bpf_map_lookup_elem(&weft_pod_ips, &ipk);
	if (!netnsp)
		return TC_ACT_OK;
	__u64 netns = *netnsp;
	struct weft_pod_config *cfg = bpf_map_lookup_elem(&weft_pods, &netns);
	if (!cfg || !(cfg->flags & WEFT_POD_ENROLLED))
		return TC_ACT_OK;
	if (cfg->node_ip4 && ip->saddr == cfg->node_ip4)
		return TC_ACT_OK; /* kubelet health probes reach the app */
	if (th->dest == bpf_htons(hbone_port))
		return TC_ACT_OK;

	struct bpf_sock_tuple tuple = {};
	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.daddr = ip->daddr;
	tuple.ipv4.sport = th->source;
	tuple.ipv4.dport = th->dest;

	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		__u32 state = sk->state;
		bpf_sk_release(sk);
		/* A SYN that meets a TIME_WAIT socket opens a new connection, which the stack would
		 * hand to the app's listener: steer it like any new flow (as Cilium does). */
		int new_over_tw = state == BPF_TCP_TIME_WAIT_STATE && th->syn && !th->ack;
		if (state != BPF_TCP_LISTEN_STATE && !new_over_tw)
			return TC_ACT_OK; /* established, SYN_SENT, request socket, TIME_WAIT: not new */
	}

	struct bpf_sock *lsk = bpf_map_lookup_elem(&weft_in_listen, &netns);
	if (!lsk)
		return TC_ACT_SHOT; /* enrolled but no proxy listener: fail closed */
	long err = bpf_sk_assign(skb, lsk, 0);
	bpf_sk_release(lsk);
	return err == 0 ? TC_ACT_OK : TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
