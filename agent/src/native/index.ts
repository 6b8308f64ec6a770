// Weft's native layer, typed: BPF objects, maps, programs, links, tc, sockets in a netns,
// probes, and the struct codec for map keys/values. See native/README.md for the design.
export { addonAvailable } from './addon.js';
export type { GlobalVariable, LinkInfo, MapInfo, ProgInfo, SocketAddress, StructLayout, TcResult, TestRunResult } from './addon.js';
export { NativeAddonMissingError, NativeError, NativeStateError, fromNative } from './errors.js';
export { BpfObject, encodeScalar, type BpfObjectOpenOptions } from './bpf-object.js';
export { BpfMap, unpin, type UpdateFlag } from './bpf-map.js';
export { BpfProgram, type TestRunOptions } from './bpf-program.js';
export { BpfLink, attachCgroupFd, cgroupId, cgroupPrograms, type CgroupProgram } from './bpf-link.js';
export { ifindexInNetns, tcAttach, tcDetach, tcHookDestroy, tcQuery, type TcAttachment, type TcAttachOptions, type TcDirection, type TcFilterSlot, type TcTarget } from './tc.js';
export {
  closeFd, getMark, listenInNetns, localAddress, netnsCookie, netnsCookieOfPath, peerAddress, setMark, socketCookie, socketFd, socketInNetns,
  type ListenOptions, type OutboundSocketOptions,
} from './sockets.js';
export { libbpfVersion, probeHelper, probeProgType } from './probes.js';
export { verifyClientChainInHandshake } from './tls-verify.js';
export { sysctlInNetns } from './sysctl.js';
export { defineStruct, ipv6Bytes, ipv6String, type FieldLayout, type FieldType, type StructCodec, type StructSpec, type StructValue } from './struct.js';
export { bpfObjectPath, bpffsMount, cgroup2Mount, projectRoot } from './paths.js';
