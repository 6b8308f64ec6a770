/* Every map Weft's BPF programs share, with one comment each. Each object includes this
 * header; the agent opens every object with the same per-agent pin root
 * (/sys/fs/bpf/weft/<agent-id>/maps), and LIBBPF_PIN_BY_NAME makes libbpf reuse the pinned
 * map instead of creating a second copy, so connect4, sockops and tc see the same state and
 * the state survives an agent restart. */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include "weft_types.h"

/* Per-pod settings (enrolled flag, pod and node IPs, excluded ports), keyed by the pod's
 * netns cookie; written by the agent on enrol, deleted on release. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct weft_pod_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_pods SEC(".maps");

/* Pod IP → the pod's netns cookie, for tc ingress: at ingress skb->sk is NULL and
 * bpf_get_netns_cookie(skb) answers init_net's cookie, so tc finds its pod by the packet's
 * destination (pod IPs are unique on a node). Written on enrol, deleted on release. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct weft_ip_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_pod_ips SEC(".maps");

/* connect4/6 → sockops hand-off: the original destination stored on the client socket itself.
 * Freed by the kernel with the socket, so it needs no cleanup. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct weft_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_sk_orig SEC(".maps");

/* Original destinations the proxy looks up with (SO_NETNS_COOKIE, peer port) of a socket it
 * accepted on :15001. Filed by sockops at TCP_CONNECT_CB; the proxy deletes the entry when it
 * reads it, and LRU eviction bounds what clients that never reached the proxy leave behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weft_orig_key);
	__type(value, struct weft_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_orig_dst SEC(".maps");

/* The proxy's :15006 listener of each pod, keyed by the pod's netns cookie; user space inserts
 * the listening socket's fd, the kernel drops the entry when the socket closes. tc ingress
 * hands new inbound flows to it with bpf_sk_assign. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_in_listen SEC(".maps");

/* The agent's registry of enrolled pods (uid → netns/cgroup/ifindex/flags), user space only:
 * after a restart, even after SIGKILL, it says what to reconcile and how to undo it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_uid);
	__type(value, struct weft_enrolment);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_enrolments SEC(".maps");

#endif
