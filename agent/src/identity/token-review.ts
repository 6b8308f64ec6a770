// Kubernetes node authentication: the agent presents its projected service-account token
// (audience e.g. "weft-controller"); the controller asks the API server (TokenReview) who it
// is. The caller must be one of the trusted agent service accounts (like Istio's
// CA_TRUSTED_NODE_ACCOUNTS) and its node comes from the token's pod binding
// (authentication.kubernetes.io/node-name, or the bound pod's spec.nodeName).
import { AuthenticationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { UnauthenticatedError, type NodeAuthenticator, type NodeCaller } from './node-auth.js';

export const DEFAULT_TRUSTED_NODE_ACCOUNTS = ['weft-system/weft-agent'];
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';

export interface TokenReviewOptions {
  audiences?: string[];
  /** namespace/serviceaccount of the agents */
  trustedNodeAccounts?: string[];
  cacheMs?: number;
}

export class TokenReviewAuthenticator implements NodeAuthenticator {
  private readonly auth: AuthenticationV1Api;
  private readonly core: CoreV1Api;
  private readonly cache = new Map<string, { caller: NodeCaller; until: number }>();

  constructor(kc: KubeConfig, private readonly opts: TokenReviewOptions = {}) {
    this.auth = kc.makeApiClient(AuthenticationV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async authenticate(token: string): Promise<NodeCaller> {
    const hit = this.cache.get(token);
    if (hit && hit.until > Date.now()) return hit.caller;
    let review;
    try {
      review = await this.auth.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(this.opts.audiences ? { audiences: this.opts.audiences } : {}) } } });
    } catch (err) {
      throw new UnauthenticatedError(`TokenReview failed: ${(err as Error).message.split('\n')[0]}`);
    }
    const st = review.status;
    if (!st?.authenticated || !st.user?.username) throw new UnauthenticatedError(`the API server did not accept the token${st?.error ? ` (${st.error})` : ''}`);
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(st.user.username);
    const trusted = this.opts.trustedNodeAccounts ?? DEFAULT_TRUSTED_NODE_ACCOUNTS;
    if (!m || !trusted.includes(`${m[1]}/${m[2]}`)) {
      throw new UnauthenticatedError(`${st.user.username} is not a trusted node agent account (${trusted.join(', ')})`);
    }
    let node = st.user.extra?.[NODE_NAME_EXTRA]?.[0];
    const pod = st.user.extra?.[POD_NAME_EXTRA]?.[0];
    if (!node && pod) {
      try {
        node = (await this.core.readNamespacedPod({ name: pod, namespace: m[1]! })).spec?.nodeName;
      } catch {
        node = undefined;
      }
    }
    if (!node) throw new UnauthenticatedError('the token is not bound to a pod on a node (use a projected service-account token)');
    const caller = { node, subject: st.user.username };
    this.cache.set(token, { caller, until: Date.now() + (this.opts.cacheMs ?? 60_000) });
    return caller;
  }
}
