// The agent's link to the control plane: a delta ADS client feeding WorkloadState, and a
// certificate manager that holds certificates for exactly the identities of the mesh
// workloads (HBONE or native tunnel) scheduled on this node.
import { logger } from '../common/log.js';
import { CaClient, type ControlPlaneConnection } from '../identity/ca-client.js';
import { CertificateManager, type CertificateSigner } from '../identity/cert-manager.js';
import { DEFAULT_TRUST_DOMAIN, formatSpiffeId } from '../identity/spiffe.js';
import { DeltaAdsClient, type Backoff } from '../xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../xds/types.js';
import { TunnelProtocol, type Workload } from '../xds/gen/istio/workload/workload_pb.js';
import { WorkloadState } from './workload-state.js';

export interface NodeSyncOptions extends ControlPlaneConnection {
  /** this node's name, as pods' spec.nodeName has it */
  node: string;
  /** xDS node id; defaults to weft~<node> */
  nodeId?: string;
  trustDomain?: string;
  certTtlSeconds?: number;
  xdsBackoff?: Backoff;
  certBackoff?: Backoff;
  /** replaces the gRPC CA client (tests) */
  signer?: CertificateSigner;
}

/** The SPIFFE ID a workload runs as. */
export function workloadIdentity(w: Workload, defaultTrustDomain = DEFAULT_TRUST_DOMAIN): string {
  return formatSpiffeId({ trustDomain: w.trustDomain || defaultTrustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount || 'default' });
}

export function needsCertificate(w: Workload): boolean {
  return w.tunnelProtocol === TunnelProtocol.HBONE || w.nativeTunnel;
}

export class NodeSync {
  private readonly log = logger('node-sync');
  readonly state = new WorkloadState();
  readonly certs: CertificateManager;
  readonly xds: DeltaAdsClient;
  private readonly ca: CaClient | undefined;

  constructor(private readonly opts: NodeSyncOptions) {
    this.ca = opts.signer ? undefined : new CaClient(opts);
    this.certs = new CertificateManager({
      signer: opts.signer ?? this.ca!,
      ...(opts.certTtlSeconds ? { ttlSeconds: opts.certTtlSeconds } : {}),
      ...(opts.certBackoff ? { backoff: opts.certBackoff } : {}),
    });
    this.xds = new DeltaAdsClient({
      ...opts,
      node: { id: opts.nodeId ?? `weft~${opts.node}`, metadata: { NODE_NAME: opts.node } },
      typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      apply: (u) => this.state.apply(u),
      ...(opts.xdsBackoff ? { backoff: opts.xdsBackoff } : {}),
    });
    this.state.on('change', (c) => {
      if (c.typeUrl === ADDRESS_TYPE_URL) this.refreshWanted();
    });
  }

  /** Identities of the mesh workloads on this node (what the certificate manager holds). */
  localIdentities(): string[] {
    const ids = new Set<string>();
    for (const w of this.state.workloadsOnNode(this.opts.node)) {
      if (needsCertificate(w)) ids.add(workloadIdentity(w, this.opts.trustDomain));
    }
    return [...ids].sort();
  }

  private refreshWanted(): void {
    const ids = this.localIdentities();
    this.log.debug({ identities: ids.length }, 'local identities');
    this.certs.setWanted(ids);
  }

  start(): void {
    this.xds.start();
  }

  waitSynced(timeoutMs?: number): Promise<void> {
    return this.xds.waitSynced(timeoutMs);
  }

  stop(): void {
    this.xds.stop();
    this.certs.stop();
    this.ca?.close();
  }
}
