// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Inbound capture: tc ingress (clsact, direct action) on eth0 inside an enrolled pod's netns.
 * New TCP flows to the pod IP are handed with bpf_sk_assign to the agent's :15006 listener
 * (weft_in_listen, keyed by the pod's netns cookie, found from the destination IP), so the accepted socket's local address is the
 * original destination. Left alone: non-TCP, packets not addressed to the pod IP, port 15008
 * (HBONE), probes from the node's address on the pod link, and packets of flows that already
 * have a socket (bpf_skc_lookup_tcp finds one that is not a listener). When an enrolled pod's
 * listener is missing (agent down) new flows are dropped: inbound fails closed.
 *
 * IPv6 is not steered yet (the proxy has no IPv6 listeners), so it fails closed as well: a TCP
 * SYN without ACK in an IPv6 frame is dropped, anything else passes (ICMPv6 and so neighbour
 * discovery, UDP, TCP segments of flows that exist). See weft_ipv6_new_tcp for why this needs no
 * per-pod lookup and how extension headers are handled. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weft_maps.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define BPF_TCP_LISTEN_STATE 10
#define BPF_TCP_TIME_WAIT_STATE 6

/* IPv6 extension headers the kernel walks before the upper-layer header. */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define NEXTHDR_MOBILITY 135
#define WEFT_IPV6_MAX_EXT 8 /* longer chains than this are not walked: a SYN may hide behind them */

const volatile __u16 hbone_port = WEFT_PORT_HBONE;

/* New IPv6 TCP flows dropped since this object was loaded (all pods of this agent); read it with
 * `bpftool map dump name tc_ingre.bss`. */
__u64 weft_ipv6_syn_dropped = 0;

/* 1 when an IPv6 frame (IPv6 header at offset `off`) must be dropped because it may open a new
 * TCP connection: a SYN without ACK, or a chain of extension headers this program cannot see
 * to the end of (longer than WEFT_IPV6_MAX_EXT, or truncated) - a SYN could hide there, and
 * such frames are rare enough that dropping them costs nothing real. 0 to let it pass.
 *
 * Why no per-pod lookup, unlike IPv4: this program is attached only to the eth0 of pods that are
 * enrolled (enrol attaches it, release detaches it), and there is no sound way to find the pod
 * from an IPv6 frame. weft_pod_ips holds the pods' IPv4 addresses only (and a pod answers on
 * addresses nobody registers, e.g. its fe80:: link-local one); bpf_get_netns_cookie(skb) answers
 * init_net's cookie at ingress (skb->sk is NULL); reading skb->dev's netns through
 * bpf_cast_to_kern_ctx needs Linux 6.2, above Weft's 5.15 minimum. The attachment itself is the
 * enrolment: a frame seen here is for an enrolled pod (or one being enrolled or released, where
 * dropping a new IPv6 flow is equally right). */
static __always_inline int weft_ipv6_new_tcp(struct __sk_buff *skb, __u32 off)
{
	__u8 ip6[8]; /* version/class/flow label, payload length, next header, hop limit */
	if (bpf_skb_load_bytes(skb, off, ip6, sizeof(ip6)) < 0)
		return 0; /* shorter than an IPv6 header: the stack drops it */
	if ((ip6[0] >> 4) != 6)
		return 0; /* not IPv6: the stack drops it */
	__u8 next = ip6[6];
	off += 40;

	for (int i = 0; i < WEFT_IPV6_MAX_EXT; i++) {
		__u8 ext[4];
		switch (next) {
		case IPPROTO_TCP: {
			__u8 flags;
			if (bpf_skb_load_bytes(skb, off + 13, &flags, 1) < 0)
				return 1; /* TCP header cut short (e.g. a tiny first fragment): cannot judge */
			return (flags & 0x12) == 0x02; /* SYN without ACK */
		}
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
		case NEXTHDR_MOBILITY:
		case NEXTHDR_AUTH:
		case NEXTHDR_FRAGMENT:
			/* Every extension header is at least 8 bytes: next header, then its length. */
			if (bpf_skb_load_bytes(skb, off, ext, 4) < 0)
				return 1;
			if (next == NEXTHDR_FRAGMENT) {
				/* A later fragment carries no TCP header; its first fragment was judged, and
				 * without it the packet never reassembles. */
				if (((ext[2] << 8) | ext[3]) & 0xfff8)
					return 0;
				off += 8;
			} else if (next == NEXTHDR_AUTH) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			next = ext[0];
			break;
		default:
			return 0; /* ICMPv6, UDP, ESP, no next header, ...: not TCP */
		}
	}
	return 1; /* still in extension headers after WEFT_IPV6_MAX_EXT: cannot judge */
}

SEC("tc")
int weft_tc_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if (!weft_ipv6_new_tcp(skb, sizeof(*eth)))
			return TC_ACT_OK;
		__sync_fetch_and_add(&weft_ipv6_syn_dropped, 1);
		return TC_ACT_SHOT; /* fail closed until IPv6 is steered to the proxy */
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;

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
