// The node proxy's public API (see README.md in this folder).
export { ProxyNode, type ProxyNodeOptions } from './proxy-node.js';
export { PodProxy, plainAppDialer, plainTcpDialer, type PodProxyOptions, type PodNetHooks, type ListenTarget, type ListenOptions } from './pod-proxy.js';
export { TlsContexts, type WorkloadCertificate } from './tls-contexts.js';
export { MemoryMeshView, meshViewOf, type MeshView, workloadIdentity } from './mesh-view.js';
export { HbonePool, DEFAULT_POOL_OPTIONS, type HbonePoolOptions, type PoolKey, type TcpDialer } from './hbone-pool.js';
export { HboneServer } from './hbone-server.js';
export type { AppDialer } from './inbound.js';
export { POLICY_CHANGE_REASON, type ConnectionSnapshot } from './connection-tracker.js';
export { relay, type RelayResult } from './relay.js';
export type { SocketAddr } from './addresses.js';
