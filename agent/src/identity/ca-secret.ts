// The CA kept in a Kubernetes Secret of the controller's own namespace (WEFT_CA_SECRET,
// `weft-ca` by default) instead of the state directory. If the Secret exists it is loaded: a
// root the controller made earlier, or an operator's CA put there before the install in
// Istio's cacerts layout (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem). Otherwise
// a self-signed root is created in it; when two replicas race to create it, the loser reads
// the winner's. The root is then published in the ConfigMap `weft-ca-root-cert` (key
// root-cert.pem), which agents mount as --ca-root. The install's Role allows exactly this:
// create Secrets and ConfigMaps, get that Secret, get and update that ConfigMap.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { kubeErrorReason } from '../common/kube-api-error.js';
import { logger } from '../common/log.js';
import { CaStateError, CertificateAuthority, createRootMaterial, FILES, type CaMaterial, type CaOptions } from './ca.js';

export const DEFAULT_CA_SECRET = 'weft-ca';
export const ROOT_CERT_CONFIGMAP = 'weft-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e.code ?? e.statusCode ?? e.response?.statusCode;
}

/** The API's refusal as a CaStateError: RBAC (403) or anything else (unreachable, 5xx). */
function apiError(what: string, err: unknown): CaStateError {
  const first = kubeErrorReason(err);
  if (statusOf(err) === 403) {
    return new CaStateError(`cannot ${what}: forbidden by RBAC (${first})`, {
      cause: err, hint: 'the controller\'s Role (controller-role.yaml) must allow this in its own namespace; re-apply the chart or `weft manifest`',
    });
  }
  return new CaStateError(`cannot ${what}: ${first}`, { cause: err, hint: 'check that the Kubernetes API server is reachable from the controller and healthy; the controller exits and is restarted' });
}

function material(data: Record<string, string> | undefined, where: string): CaMaterial {
  const get = (k: string) => (data?.[k] ? Buffer.from(data[k]!, 'base64').toString('utf8') : undefined);
  const keyPem = get(FILES.key);
  const certPem = get(FILES.cert);
  if (!keyPem || !certPem) throw new CaStateError(`${where} lacks ${!keyPem ? FILES.key : FILES.cert}`);
  const m: CaMaterial = { keyPem, certPem };
  const chain = get(FILES.chain);
  const root = get(FILES.root);
  if (chain) m.chainPem = chain;
  if (root) m.rootPem = root;
  return m;
}

export async function loadOrCreateCaInSecrets(kc: KubeConfig, namespace: string, opts: CaOptions = {}, secretName = DEFAULT_CA_SECRET): Promise<CertificateAuthority> {
  const log = logger('ca');
  const core = kc.makeApiClient(CoreV1Api);
  const where = `Secret ${namespace}/${secretName}`;
  const read = async () => {
    try {
      return await core.readNamespacedSecret({ name: secretName, namespace });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw apiError(`read ${where}`, err);
    }
  };
  const existing = await read();
  if (existing) return CertificateAuthority.fromMaterial(material(existing.data, where), where, opts);
  const m = await createRootMaterial(opts);
  try {
    await core.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
        metadata: { name: secretName, namespace, labels: { 'app.kubernetes.io/part-of': 'weft' } },
        data: { [FILES.key]: Buffer.from(m.keyPem).toString('base64'), [FILES.cert]: Buffer.from(m.certPem).toString('base64') },
      },
    });
    log.info({ secret: where }, 'created a new root CA');
    return CertificateAuthority.fromMaterial(m, where, opts);
  } catch (err) {
    if (statusOf(err) !== 409) throw apiError(`create ${where}`, err);
    const won = await read();
    if (!won) throw new CaStateError(`${where} was created concurrently but cannot be read`);
    return CertificateAuthority.fromMaterial(material(won.data, where), where, opts);
  }
}

/**
 * Publishes the trust bundle as `root-cert.pem` in the ConfigMap `name` of `namespace`:
 * created if missing, updated if it holds something else (optimistic concurrency: a conflict
 * is retried from a fresh read), left alone if already right. Returns what it did.
 */
export async function publishRootCertificate(kc: KubeConfig, namespace: string, rootsPem: string, name = ROOT_CERT_CONFIGMAP): Promise<'created' | 'updated' | 'unchanged'> {
  const log = logger('ca');
  const core = kc.makeApiClient(CoreV1Api);
  const where = `ConfigMap ${namespace}/${name}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let current;
    try {
      current = await core.readNamespacedConfigMap({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw apiError(`read ${where}`, err);
    }
    if (!current) {
      try {
        await core.createNamespacedConfigMap({
          namespace,
          body: {
            apiVersion: 'v1', kind: 'ConfigMap',
            metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'weft' } },
            data: { [ROOT_CERT_KEY]: rootsPem },
          },
        });
        log.info({ configMap: where }, 'published the root certificate');
        return 'created';
      } catch (err) {
        if (statusOf(err) === 409) continue; // another replica created it: read and compare
        throw apiError(`create ${where}`, err);
      }
    }
    if (current.data?.[ROOT_CERT_KEY] === rootsPem) return 'unchanged';
    try {
      await core.replaceNamespacedConfigMap({ name, namespace, body: { ...current, data: { ...(current.data ?? {}), [ROOT_CERT_KEY]: rootsPem } } });
      log.info({ configMap: where }, 'updated the published root certificate');
      return 'updated';
    } catch (err) {
      if (statusOf(err) === 409) continue; // changed under us: read again
      throw apiError(`update ${where}`, err);
    }
  }
  throw new CaStateError(`cannot publish ${where}: it kept changing under concurrent updates`);
}
