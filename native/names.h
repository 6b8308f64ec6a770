// libbpf's own names for program, attach, map and link types ("sched_cls",
// "cgroup_inet4_connect", …) in both directions, and BPF helper names ("sk_assign") to ids.
#pragma once
#include <bpf/libbpf.h>

#include <string>

namespace weft::names {

std::string ProgType(bpf_prog_type t);
std::string AttachType(bpf_attach_type t);
std::string MapType(bpf_map_type t);
std::string LinkType(bpf_link_type t);

// Parse; throw ArgFailure naming `param` on an unknown name.
bpf_prog_type ParseProgType(const std::string& s, const std::string& param);
bpf_attach_type ParseAttachType(const std::string& s, const std::string& param);
bpf_func_id ParseHelper(const std::string& s, const std::string& param);

}  // namespace weft::names
