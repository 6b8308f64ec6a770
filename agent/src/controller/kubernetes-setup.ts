// What the controller takes from its Deployment (agent/src/deploy/objects.ts) when it runs in
// Kubernetes: its namespace, the agents' token audience and service accounts, the CA Secret
// and the readiness port, from env; and the pieces built from them: TokenReview
// authentication, the CA in the Secret with its root published in the ConfigMap agents mount,
// and the serving certificate's namespace.
import type { KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../common/errors.js';
import { DEFAULT_CA_SECRET, loadOrCreateCaInSecrets, publishRootCertificate, ROOT_CERT_CONFIGMAP } from '../identity/ca-secret.js';
import { DEFAULT_TOKEN_AUDIENCE, parseTrustedNodeAccounts, TokenReviewAuthenticator } from '../identity/token-review.js';
import type { ControllerOptions } from './controller.js';
import { DEFAULT_NAMESPACE } from './grpc-server.js';
import { DEFAULT_READINESS_PORT } from './readiness.js';

export interface KubernetesSettings {
  /** WEFT_NAMESPACE: where the CA Secret and root ConfigMap live; names the serving certificate */
  namespace: string;
  /** WEFT_TOKEN_AUDIENCE */
  audience: string;
  /** WEFT_TRUSTED_NODE_ACCOUNTS: namespace/serviceaccount, comma-separated */
  trustedNodeAccounts: string[];
  /** WEFT_CA_SECRET */
  caSecret: string;
  rootConfigMap: string;
  /** `:WEFT_READINESS_PORT` */
  readiness: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function kubernetesSettings(env: NodeJS.ProcessEnv = process.env): KubernetesSettings {
  const namespace = env.WEFT_NAMESPACE || DEFAULT_NAMESPACE;
  if (!NAME.test(namespace)) throw new UsageError(`WEFT_NAMESPACE: '${namespace}' is not a namespace name`);
  const audience = env.WEFT_TOKEN_AUDIENCE || DEFAULT_TOKEN_AUDIENCE;
  const caSecret = env.WEFT_CA_SECRET || DEFAULT_CA_SECRET;
  if (!NAME.test(caSecret)) throw new UsageError(`WEFT_CA_SECRET: '${caSecret}' is not a Secret name`);
  const port = env.WEFT_READINESS_PORT || String(DEFAULT_READINESS_PORT);
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new UsageError(`WEFT_READINESS_PORT: '${port}' is not a port number`);
  return {
    namespace, audience, caSecret, rootConfigMap: ROOT_CERT_CONFIGMAP, readiness: `:${port}`,
    trustedNodeAccounts: parseTrustedNodeAccounts(env.WEFT_TRUSTED_NODE_ACCOUNTS),
  };
}

/** TokenReview authentication of agents, per the settings. */
export function kubernetesAuthenticator(kc: KubeConfig, s: KubernetesSettings, cacheMs?: number): TokenReviewAuthenticator {
  return new TokenReviewAuthenticator(kc, { audience: s.audience, trustedNodeAccounts: s.trustedNodeAccounts, ...(cacheMs !== undefined ? { cacheMs } : {}) });
}

/** Loads (or creates) the CA in the Secret, then publishes its root in the ConfigMap. */
export function kubernetesCaLoader(kc: KubeConfig, s: Pick<KubernetesSettings, 'namespace' | 'caSecret' | 'rootConfigMap'>): NonNullable<ControllerOptions['loadCa']> {
  return async (o) => {
    const ca = await loadOrCreateCaInSecrets(kc, s.namespace, o, s.caSecret);
    await publishRootCertificate(kc, s.namespace, ca.rootsPem, s.rootConfigMap);
    return ca;
  };
}

/** Everything Kubernetes-specific in ControllerOptions. */
export function kubernetesControllerOptions(kc: KubeConfig, s: KubernetesSettings): Pick<ControllerOptions, 'authenticator' | 'loadCa' | 'namespace' | 'readiness'> {
  return { authenticator: kubernetesAuthenticator(kc, s), loadCa: kubernetesCaLoader(kc, s), namespace: s.namespace, readiness: s.readiness };
}
