#include "names.h"

#include <linux/bpf.h>

#include "errors.h"

namespace weft::names {
namespace {

#define WEFT_HELPER_NAME(x) #x
const char* const kHelpers[] = {__BPF_FUNC_MAPPER(WEFT_HELPER_NAME)};
#undef WEFT_HELPER_NAME

template <typename E, typename F>
E Parse(const std::string& s, const std::string& param, F str, const char* what) {
  std::string want = s;
  for (int i = 0; i < 512; i++) {
    const char* n = str(static_cast<E>(i));
    if (n && want == n) return static_cast<E>(i);
  }
  throw ArgFailure{param, "unknown " + std::string(what) + " '" + s + "'"};
}

std::string OrNumber(const char* s, int v) { return s ? std::string(s) : "unknown(" + std::to_string(v) + ")"; }

}  // namespace

std::string ProgType(bpf_prog_type t) { return OrNumber(libbpf_bpf_prog_type_str(t), t); }
std::string AttachType(bpf_attach_type t) { return OrNumber(libbpf_bpf_attach_type_str(t), t); }
std::string MapType(bpf_map_type t) { return OrNumber(libbpf_bpf_map_type_str(t), t); }
std::string LinkType(bpf_link_type t) { return OrNumber(libbpf_bpf_link_type_str(t), t); }

bpf_prog_type ParseProgType(const std::string& s, const std::string& param) {
  return Parse<bpf_prog_type>(s, param, libbpf_bpf_prog_type_str, "program type");
}

bpf_attach_type ParseAttachType(const std::string& s, const std::string& param) {
  return Parse<bpf_attach_type>(s, param, libbpf_bpf_attach_type_str, "attach type");
}

bpf_func_id ParseHelper(const std::string& s, const std::string& param) {
  std::string name = s.rfind("bpf_", 0) == 0 ? s.substr(4) : s;
  for (size_t i = 1; i < sizeof(kHelpers) / sizeof(kHelpers[0]); i++) {
    if (name == kHelpers[i]) return static_cast<bpf_func_id>(i);
  }
  throw ArgFailure{param, "unknown BPF helper '" + s + "'"};
}

}  // namespace weft::names
