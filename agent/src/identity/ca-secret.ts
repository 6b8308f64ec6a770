// The CA kept in Kubernetes Secrets instead of the state directory: an operator's CA in the
// Secret `cacerts` (Istio's layout: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)
// wins; otherwise the self-signed root lives in `weft-ca-secret`, created on first start.
// When two controller replicas race to create it, the loser reads the winner's.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { logger } from '../common/log.js';
import { CaStateError, CertificateAuthority, createRootMaterial, FILES, type CaMaterial, type CaOptions } from './ca.js';

export const OPERATOR_CA_SECRET = 'cacerts';
export const SELF_SIGNED_CA_SECRET = 'weft-ca-secret';

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return e.code ?? e.statusCode ?? e.response?.statusCode;
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

export async function loadOrCreateCaInSecrets(kc: KubeConfig, namespace: string, opts: CaOptions = {}): Promise<CertificateAuthority> {
  const log = logger('ca');
  const core = kc.makeApiClient(CoreV1Api);
  const read = async (name: string) => {
    try {
      return await core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new CaStateError(`cannot read Secret ${namespace}/${name}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
  };
  const operator = await read(OPERATOR_CA_SECRET);
  if (operator) return CertificateAuthority.fromMaterial(material(operator.data, `Secret ${namespace}/${OPERATOR_CA_SECRET}`), `Secret ${namespace}/${OPERATOR_CA_SECRET}`, opts);
  const existing = await read(SELF_SIGNED_CA_SECRET);
  const where = `Secret ${namespace}/${SELF_SIGNED_CA_SECRET}`;
  if (existing) return CertificateAuthority.fromMaterial(material(existing.data, where), where, opts);
  const m = await createRootMaterial(opts);
  try {
    await core.createNamespacedSecret({
      namespace,
      body: {
        apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
        metadata: { name: SELF_SIGNED_CA_SECRET, namespace, labels: { 'app.kubernetes.io/part-of': 'weft' } },
        data: { [FILES.key]: Buffer.from(m.keyPem).toString('base64'), [FILES.cert]: Buffer.from(m.certPem).toString('base64') },
      },
    });
    log.info({ secret: where }, 'created a new root CA');
    return CertificateAuthority.fromMaterial(m, where, opts);
  } catch (err) {
    if (statusOf(err) !== 409) throw new CaStateError(`cannot create ${where}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    const won = await read(SELF_SIGNED_CA_SECRET);
    if (!won) throw new CaStateError(`${where} was created concurrently but cannot be read`);
    return CertificateAuthority.fromMaterial(material(won.data, where), where, opts);
  }
}
