/* Types shared by Weft's BPF programs and the agent's TypeScript encode/decode
 * (agent/src/redirect/codec.ts mirrors every struct here byte for byte). Fixed-width types
 * only, explicit padding, no implicit holes, little-endian host order unless a field says
 * "network order". Keep the sizes in the static asserts in sync with the codec. */
#ifndef WEFT_TYPES_H
#define WEFT_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WEFT_AF_INET 2
#define WEFT_AF_INET6 10

/* Ports inside every pod netns (ztunnel's). */
#define WEFT_PORT_OUTBOUND 15001
#define WEFT_PORT_INBOUND 15006
#define WEFT_PORT_HBONE 15008

#define WEFT_MAX_EXCLUDED_PORTS 16
#define WEFT_UID_LEN 64
#define WEFT_PATH_LEN 256
#define WEFT_IFNAME_LEN 16

/* weft_pod_config.flags */
#define WEFT_POD_ENROLLED (1u << 0) /* outbound capture on, inbound steered (fail closed) */

/* Per-pod settings, keyed by the pod's netns cookie. 64 bytes. */
struct weft_pod_config {
	__u32 flags;
	__u32 ip4;           /* pod IPv4, network order; 0 = none */
	__u32 node_ip4;      /* node's address on the pod link (probes come from it), network order; 0 = none */
	__u16 nexcluded;     /* number of valid entries in excluded_ports */
	__u16 _pad0;
	__u16 excluded_ports[WEFT_MAX_EXCLUDED_PORTS]; /* outbound destination ports left alone, host order */
	__u32 _reserved[4];  /* room for IPv6 flags without changing the size; zero */
};

/* An original destination. addr holds the IPv4 address in addr[0] (network order) for
 * AF_INET, the full address for AF_INET6. 24 bytes. */
struct weft_orig_dst {
	__u32 addr[4];
	__u16 port;   /* host order */
	__u8 family;  /* WEFT_AF_INET / WEFT_AF_INET6 */
	__u8 _pad0;
	__u32 _pad1;
};

/* Where the proxy finds an original destination: the client socket's netns and its local
 * (ephemeral) port, i.e. the peer port of the socket the proxy accepted on :15001.
 * 16 bytes. */
struct weft_orig_key {
	__u64 netns_cookie;
	__u16 port;   /* host order */
	__u8 family;  /* family of the client socket (AF_INET for connect4) */
	__u8 _pad0;
	__u32 _pad1;
};

/* An IP address of either family: IPv4 in addr[0] (network order), IPv6 in all four words.
 * 20 bytes. */
struct weft_ip_key {
	__u32 addr[4];
	__u8 family;  /* WEFT_AF_INET / WEFT_AF_INET6 */
	__u8 _pad0[3];
};

/* weft_enrolment.state */
#define WEFT_ENROL_PENDING 1 /* enrolment started; anything may be half attached */
#define WEFT_ENROL_DONE 2

/* weft_enrolment.flags */
#define WEFT_ENROL_CREATED_CLSACT (1u << 0) /* the agent created the clsact qdisc and removes it on release */

/* Key of the registry: the pod uid, NUL padded. */
struct weft_uid {
	char uid[WEFT_UID_LEN];
};

/* The agent's registry of enrolled pods (user space only), keyed by struct weft_uid. Lets a
 * restarted agent find what it attached and how to undo it. 568 bytes. */
struct weft_enrolment {
	__u64 netns_cookie;
	__u64 cgroup_id;
	__u32 state;
	__u32 flags;
	__u32 ifindex;       /* eth0 inside the pod netns */
	__u32 ip4;           /* network order */
	__u32 node_ip4;      /* network order */
	__u32 _pad0;
	char ifname[WEFT_IFNAME_LEN]; /* the pod's interface inside its netns (tc is attached there) */
	char netns_path[WEFT_PATH_LEN];
	char cgroup_path[WEFT_PATH_LEN];
};

#endif
