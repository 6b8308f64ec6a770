// Kubernetes node authentication: the agent presents its projected service-account token
// (audience WEFT_TOKEN_AUDIENCE, "weft" by default); the controller asks the API server
// (TokenReview with spec.audiences = [that audience]) who it is. A token minted for another
// audience, or a review the API server answers without that audience, is refused. The caller
// must be one of the trusted agent service accounts (like Istio's CA_TRUSTED_NODE_ACCOUNTS)
// and its node comes from the token's pod binding: the extra
// authentication.kubernetes.io/node-name (Kubernetes 1.30+ with ServiceAccountTokenPodNodeInfo)
// or else the bound pod's spec.nodeName (authentication.kubernetes.io/pod-name, 1.27+).
import { AuthenticationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { kubeErrorReason } from '../common/kube-api-error.js';
import { logger } from '../common/log.js';
import { UsageError } from '../common/errors.js';
import { UnauthenticatedError, type NodeAuthenticator, type NodeCaller } from './node-auth.js';

export const DEFAULT_TOKEN_AUDIENCE = 'weft';
export const DEFAULT_TRUSTED_NODE_ACCOUNTS = ['weft-system/weft-agent'];
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

/** Parses WEFT_TRUSTED_NODE_ACCOUNTS: comma-separated `namespace/serviceaccount`. */
export function parseTrustedNodeAccounts(v: string | undefined): string[] {
  if (v === undefined || v.trim() === '') return [...DEFAULT_TRUSTED_NODE_ACCOUNTS];
  const out = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const a of out) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(a)) {
      throw new UsageError(`WEFT_TRUSTED_NODE_ACCOUNTS: '${a}' is not namespace/serviceaccount (e.g. weft-system/weft-agent)`);
    }
  }
  return out;
}

export interface TokenReviewOptions {
  /** the audience agents' tokens are minted for; sent as spec.audiences (default "weft") */
  audience?: string;
  /** namespace/serviceaccount of the agents */
  trustedNodeAccounts?: string[];
  cacheMs?: number;
}

export class TokenReviewAuthenticator implements NodeAuthenticator {
  private readonly log = logger('token-review');
  private readonly auth: AuthenticationV1Api;
  private readonly core: CoreV1Api;
  private readonly cache = new Map<string, { caller: NodeCaller; until: number }>();
  readonly audience: string;
  readonly trusted: string[];

  constructor(kc: KubeConfig, private readonly opts: TokenReviewOptions = {}) {
    this.auth = kc.makeApiClient(AuthenticationV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.audience = opts.audience ?? DEFAULT_TOKEN_AUDIENCE;
    this.trusted = opts.trustedNodeAccounts ?? DEFAULT_TRUSTED_NODE_ACCOUNTS;
  }

  async authenticate(token: string): Promise<NodeCaller> {
    const hit = this.cache.get(token);
    if (hit && hit.until > Date.now()) return hit.caller;
    try {
      const caller = await this.review(token);
      const ttl = this.opts.cacheMs ?? 60_000;
      if (ttl > 0) {
        for (const [k, v] of this.cache) if (v.until <= Date.now()) this.cache.delete(k);
        this.cache.set(token, { caller, until: Date.now() + ttl });
      }
      return caller;
    } catch (err) {
      if (err instanceof UnauthenticatedError) this.log.warn({ reason: err.message, audience: this.audience }, 'refused agent token');
      throw err;
    }
  }

  private refuse(reason: string): UnauthenticatedError {
    return new UnauthenticatedError(reason, `agents present their projected service-account token for audience '${this.audience}' (the chart mounts it at /var/run/secrets/weft/token) and run as ${this.trusted.join(' or ')} (WEFT_TOKEN_AUDIENCE, WEFT_TRUSTED_NODE_ACCOUNTS)`);
  }

  private async review(token: string): Promise<NodeCaller> {
    let review;
    try {
      review = await this.auth.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } } });
    } catch (err) {
      throw this.refuse(`TokenReview failed: ${kubeErrorReason(err)}`);
    }
    const st = review.status;
    if (!st?.authenticated || !st.user?.username) {
      throw this.refuse(`the API server did not accept the token for audience '${this.audience}'${st?.error ? ` (${st.error})` : ''}`);
    }
    // The API server answers with the audiences the token is valid for among those asked; an
    // authenticator that ignores audiences answers with none of ours, which is not good enough.
    if (!(st.audiences ?? []).includes(this.audience)) {
      throw this.refuse(`the token is not valid for audience '${this.audience}' (the review answered audiences [${(st.audiences ?? []).join(', ')}])`);
    }
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(st.user.username);
    if (!m || !this.trusted.includes(`${m[1]}/${m[2]}`)) {
      throw this.refuse(`${st.user.username} is not a trusted node agent account (${this.trusted.join(', ')})`);
    }
    let node = st.user.extra?.[NODE_NAME_EXTRA]?.[0];
    const pod = st.user.extra?.[POD_NAME_EXTRA]?.[0];
    const uid = st.user.extra?.[POD_UID_EXTRA]?.[0];
    if (!node && pod) {
      try {
        const p = await this.core.readNamespacedPod({ name: pod, namespace: m[1]! });
        // a pod recreated under the same name is another pod: its node says nothing about this token
        if (!uid || p.metadata?.uid === uid) node = p.spec?.nodeName;
      } catch {
        node = undefined;
      }
    }
    if (!node) throw this.refuse('the token is not bound to a pod on a node (use a projected service-account token)');
    return { node, subject: st.user.username };
  }
}
