// The controller: a cluster source feeds translation, translation feeds the xDS resource
// store, and one TLS gRPC port serves delta ADS and the CA. The CA's node authorization asks
// the latest snapshot which identities run on which node.
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { logger } from '../common/log.js';
import { CertificateAuthority, type CaOptions } from '../identity/ca.js';
import { certificateServiceImplementation, type NodeIdentityIndex } from '../identity/ca-service.js';
import { HmacNodeTokens, type NodeAuthenticator } from '../identity/node-auth.js';
import type { Identity } from '../identity/spiffe.js';
import { aggregatedDiscoveryService, istioCertificateService } from '../xds/grpc-services.js';
import { ResourceStore } from '../xds/resource-store.js';
import { DeltaAdsServer } from '../xds/server.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, pack } from '../xds/types.js';
import { AddressSchema } from '../xds/gen/istio/workload/workload_pb.js';
import { AuthorizationSchema } from '../xds/gen/istio/security/authorization_pb.js';
import { DEFAULT_NAMESPACE, startGrpcServer, type RunningServer } from './grpc-server.js';
import { DEFAULT_LISTEN } from './defaults.js';
import { parseReadiness, startReadinessServer, type ReadinessServer, type ReadinessState } from './readiness.js';
import { formatProblem, type ClusterSnapshot, type ClusterSource, type ObjectProblem } from './objects.js';
import { addressAliases, addressAliasesOf, translateSnapshot, type TranslateOptions, type Translation, type TranslationCache } from './translate.js';
import type { Any } from '@bufbuild/protobuf/wkt';

export { DEFAULT_LISTEN };

export interface ControllerOptions extends TranslateOptions {
  source: ClusterSource;
  stateDir: string;
  listen?: string;
  /** defaults to lab HMAC tokens with the key in stateDir */
  authenticator?: NodeAuthenticator;
  ca?: Omit<CaOptions, 'trustDomain'>;
  /** loads the CA from elsewhere (e.g. Kubernetes Secrets) instead of <stateDir>/ca */
  loadCa?: (opts: CaOptions) => Promise<CertificateAuthority>;
  /** serve GET /healthz/ready here (HOST:PORT or :PORT); off when absent */
  readiness?: string;
  /** the controller's namespace: its serving certificate names weft-controller.<ns>.svc */
  namespace?: string;
}

export class Controller extends EventEmitter<{ translated: [Translation] }> implements NodeIdentityIndex {
  private readonly log = logger('controller');
  readonly store = new ResourceStore();
  private identities = new Map<string, Set<string>>();
  private problemSet = new Set<string>();
  private readonly translationCache: TranslationCache = new Map();
  /** encodings of Address objects reused from the translation cache */
  private packed = new WeakMap<object, Any>();
  problems: ObjectProblem[] = [];
  readonly ads: DeltaAdsServer;
  private server: RunningServer | undefined;
  private readinessServer: ReadinessServer | undefined;
  private synced = false;

  private constructor(
    private readonly opts: ControllerOptions,
    readonly ca: CertificateAuthority,
    readonly authenticator: NodeAuthenticator,
  ) {
    super();
    this.store.setAliases(ADDRESS_TYPE_URL, addressAliases);
    this.ads = new DeltaAdsServer(this.store, authenticator);
  }

  static async start(opts: ControllerOptions): Promise<Controller> {
    // Readiness listens first, so probes during a slow start are answered (503, and why).
    let c: Controller | undefined;
    const readiness = opts.readiness
      ? await startReadinessServer(parseReadiness(opts.readiness), () => c?.readiness() ?? { ready: false, waiting: ['the CA'] })
      : undefined;
    let sourceStarted = false;
    try {
      const caOpts: CaOptions = { ...opts.ca, ...(opts.trustDomain ? { trustDomain: opts.trustDomain } : {}) };
      const ca = opts.loadCa ? await opts.loadCa(caOpts) : await CertificateAuthority.loadOrCreate(join(opts.stateDir, 'ca'), caOpts);
      const auth = opts.authenticator ?? (await HmacNodeTokens.fromStateDir(opts.stateDir));
      const ctl = (c = new Controller(opts, ca, auth));
      ctl.readinessServer = readiness;
      sourceStarted = true;
      await opts.source.start((s) => ctl.onSnapshot(s));
      ctl.server = await startGrpcServer(ca, opts.listen ?? DEFAULT_LISTEN, [
        { definition: aggregatedDiscoveryService, implementation: ctl.ads.implementation() },
        { definition: istioCertificateService, implementation: certificateServiceImplementation(ca, auth, ctl) },
      ], [], opts.namespace ?? DEFAULT_NAMESPACE);
      ctl.log.info({ listen: opts.listen ?? DEFAULT_LISTEN, port: ctl.server.port, readinessPort: readiness?.port, trustDomain: ca.trustDomain }, 'controller serving xDS and CA');
      return ctl;
    } catch (err) {
      if (sourceStarted) await opts.source.stop();
      await readiness?.close();
      throw err;
    }
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  /** port of the readiness endpoint (0 when off) */
  get readinessPort(): number {
    return this.readinessServer?.port ?? 0;
  }

  /** Ready when the CA is loaded (always, once constructed), the source synced and gRPC is up. */
  readiness(): ReadinessState {
    const waiting: string[] = [];
    if (!this.synced) {
      const pending = this.opts.source.pending?.() ?? [];
      waiting.push(`the cluster state${pending.length ? ` (not listed yet: ${pending.join(', ')})` : ''}`);
    }
    if (!this.server) waiting.push('the gRPC server');
    return { ready: waiting.length === 0, waiting };
  }

  hasIdentityOnNode(node: string, id: Identity): boolean {
    return this.identities.get(node)?.has(`${id.namespace}/${id.serviceAccount}`) ?? false;
  }

  private onSnapshot(s: ClusterSnapshot): void {
    const t = translateSnapshot(s, this.opts, this.translationCache);
    this.identities = t.identitiesByNode;
    // Log each problem once, when it appears.
    const now = new Set(t.problems.map(formatProblem));
    for (const p of t.problems) {
      const f = formatProblem(p);
      if (!this.problemSet.has(f)) this.log.warn({ object: p.object, field: p.field, reason: p.reason, origin: p.origin }, p.severity === 'warning' ? f : `refused: ${f}`);
    }
    this.problemSet = now;
    this.problems = t.problems;
    const addresses = new Map<string, Any>();
    const aliases = new Map<string, string[]>();
    for (const [k, a] of t.addresses) {
      let any = this.packed.get(a);
      if (!any) this.packed.set(a, (any = pack(AddressSchema, a)));
      addresses.set(k, any);
      aliases.set(k, addressAliasesOf(a));
    }
    const policies = new Map<string, Any>();
    for (const [k, p] of t.policies) policies.set(k, pack(AuthorizationSchema, p));
    const a = this.store.replace(ADDRESS_TYPE_URL, addresses, aliases);
    const p = this.store.replace(AUTHORIZATION_TYPE_URL, policies);
    this.log.info({
      workloads: [...t.addresses.values()].filter((x) => x.type.case === 'workload').length,
      services: [...t.addresses.values()].filter((x) => x.type.case === 'service').length,
      policies: t.policies.size, changed: a.changed.length + p.changed.length, removed: a.removed.length + p.removed.length,
      problems: t.problems.length,
    }, 'cluster state translated');
    this.synced = true;
    this.emit('translated', t);
  }

  async stop(): Promise<void> {
    await this.opts.source.stop();
    this.ads.closeAll();
    await this.server?.close();
    await this.readinessServer?.close();
  }
}
