// What the agent's main thread and its data-plane workers say to each other. Everything is
// plain data (structured clone): xDS updates as received, certificates as PEM, listener fds as
// numbers (one process: the fd table is shared), never a live object.
import type { XdsUpdate } from '../xds/client.js';
import type { WorkloadCertificate } from '../proxy/tls-contexts.js';
import type { ListenOptions } from '../proxy/pod-proxy.js';
import type { HbonePoolOptions } from '../proxy/hbone-pool.js';

/** Given to each worker at start (workerData). */
export interface WorkerInit {
  /** 1..N; the main thread is 0 */
  index: number;
  nodeName: string;
  trustDomain: string;
  rootsPem: string;
  logLevel: string;
  /** fd of the agent's weft_orig_dst map (for :15001 original destinations), opened and kept
   * open by the main thread; absent without redirection */
  origDstMapFd?: number;
  proxy: {
    handshakeTimeoutMs?: number;
    connectTimeoutMs?: number;
    readyWaitMs?: number;
    hbonePort?: number;
    pool?: Partial<HbonePoolOptions>;
  };
}

/** One pod as a worker proxies it: its identity, how its sockets are made, the worker's own listeners. */
export interface WorkerPod {
  uid: string;
  ips: string[];
  identity: string;
  /** the pod's netns and the bypass mark; absent: plain sockets (tests on loopback) */
  net?: { netnsPath: string; bypassMark: number };
  listen: ListenOptions;
}

export type Call =
  | { method: 'addPod'; pod: WorkerPod }
  | { method: 'removePod'; uid: string }
  | { method: 'connections' }
  | { method: 'metrics' }
  | { method: 'drain'; deadlineMs: number }
  | { method: 'close' };

export type ToWorker =
  | { t: 'state'; update: XdsUpdate }
  | { t: 'cert'; identity: string; cert: WorkloadCertificate; rootsPem: string }
  | { t: 'certDeleted'; identity: string }
  | { t: 'ready' }
  | { t: 'logLevel'; level: string }
  | ({ t: 'call'; id: number } & Call);

export type FromWorker =
  | { t: 'reply'; id: number; value?: unknown; error?: { message: string; code?: string } };
