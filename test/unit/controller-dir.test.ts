// The controller end to end on a directory of manifests: an agent syncs over delta ADS/TLS,
// live edits (labelling a namespace, removing a pod, a bad manifest) reach it, and the CA
// follows the pods' placement.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { Controller } from '../../agent/src/controller/controller.js';
import { DirectorySource } from '../../agent/src/controller/source-dir.js';
import { DeltaAdsClient } from '../../agent/src/xds/client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../agent/src/xds/types.js';
import { WorkloadState } from '../../agent/src/state/workload-state.js';
import { TunnelProtocol } from '../../agent/src/xds/gen/istio/workload/workload_pb.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { CaClient } from '../../agent/src/identity/ca-client.js';
import { createCsr } from '../../agent/src/identity/csr.js';
import { generateP256 } from '../../agent/src/identity/keys.js';
import { until } from '../helpers/until.js';

const ns = (name: string, labels: Record<string, string> = {}) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels: ${JSON.stringify(labels)}\n`;
const pod = (name: string, node: string, ip: string, sa = 'app') => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, uid: uid-${name}, labels: { app: ${name} } }
spec: { nodeName: ${node}, serviceAccountName: ${sa} }
status: { phase: Running, podIP: ${ip} }
`;


/** Replaces a file the way the lab does: write a temporary, then rename over. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(path, '..', `.${Date.now()}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

describe('controller on a manifest directory', () => {
  let dir: string;
  let manifests: string;
  let controller: Controller;
  let client: DeltaAdsClient;
  const state = new WorkloadState();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-ctl-'));
    manifests = join(dir, 'manifests');
    await mkdir(join(manifests, 'nested'), { recursive: true });
    await writeFile(join(manifests, 'ns.yaml'), ns('shop'));
    await writeFile(join(manifests, 'nested', 'pods.yml'), pod('web', 'node1', '198.18.1.10', 'web') + '---\n' + pod('db', 'node2', '198.18.2.10', 'db'));
    await writeFile(join(manifests, 'ignored.txt'), 'kind: Pod\nthis is not read');
    controller = await Controller.start({ source: new DirectorySource(manifests, { debounceMs: 20 }), stateDir: join(dir, 'state'), listen: '127.0.0.1:0' });
    const tokens = await HmacNodeTokens.fromStateDir(join(dir, 'state'));
    client = new DeltaAdsClient({
      address: `127.0.0.1:${controller.port}`,
      rootCertPem: readFileSync(join(dir, 'state', 'ca', 'ca-cert.pem'), 'utf8'),
      token: () => tokens.issue('node1'),
      node: { id: 'node1' }, typeUrls: [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL],
      apply: (u) => state.apply(u), backoff: { initialMs: 50, maxMs: 500 },
    });
    client.start();
    await client.waitSynced();
  });
  after(async () => {
    client.stop();
    await controller.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the pods found in nested, multi-document YAML files', () => {
    assert.deepEqual(state.workloads().map((w) => w.uid).sort(), ['uid-db', 'uid-web']);
    assert.equal(state.workload('uid-web')?.tunnelProtocol, TunnelProtocol.NONE);
  });

  it('enrols a namespace within a second of labelling it, and releases it again', async () => {
    await writeAtomic(join(manifests, 'ns.yaml'), ns('shop', { 'weft.io/mesh': 'enabled' }));
    const ms = await until(() => state.workload('uid-web')?.tunnelProtocol === TunnelProtocol.HBONE, 'enrolment', 1000);
    assert.ok(ms <= 1000);
    assert.equal(state.workload('uid-db')?.tunnelProtocol, TunnelProtocol.HBONE);
    await writeAtomic(join(manifests, 'ns.yaml'), ns('shop'));
    await until(() => state.workload('uid-web')?.tunnelProtocol === TunnelProtocol.NONE, 'release', 1000);
  });

  it('follows files in directories created later, and files replaced repeatedly by rename', async () => {
    await mkdir(join(manifests, 'later', 'deeper'), { recursive: true });
    await writeFile(join(manifests, 'later', 'deeper', 'p.yaml'), pod('late', 'node1', '198.18.1.30'));
    await until(() => state.workload('uid-late') !== undefined, 'the pod in a new directory', 2000);
    for (const ip of ['198.18.1.31', '198.18.1.32', '198.18.1.33']) {
      await writeAtomic(join(manifests, 'later', 'deeper', 'p.yaml'), pod('late', 'node1', ip));
      await until(() => state.workloadByIp(ip)?.uid === 'uid-late', `the update to ${ip}`, 2000);
    }
    await rm(join(manifests, 'later'), { recursive: true });
    await until(() => state.workload('uid-late') === undefined, 'removal with its directory', 2000);
  });

  it('refuses a bad manifest, naming it, while the rest keeps being served', async () => {
    await writeFile(join(manifests, 'bad.yaml'), pod('oops', 'node1', 'not-an-ip') + '---\n' + pod('new', 'node1', '198.18.1.12'));
    await until(() => state.workload('uid-new') !== undefined, 'the good pod next to the bad one');
    const p = controller.problems.find((x) => x.object === 'Pod shop/oops');
    assert.deepEqual([p?.field, p?.reason, p?.origin], ['status.podIP', "'not-an-ip' is not an IP address", 'bad.yaml#1']);
    assert.ok(state.workload('uid-web'), 'other workloads are still there');
    await unlink(join(manifests, 'bad.yaml'));
    await until(() => state.workload('uid-new') === undefined, 'removal of the deleted file\'s pods');
    assert.equal(controller.problems.length, 0);
  });

  it('issues certificates only for identities of pods on the caller\'s node', async () => {
    const tokens = await HmacNodeTokens.fromStateDir(join(dir, 'state'));
    const ca = (node: string) => new CaClient({ address: `127.0.0.1:${controller.port}`, rootCertPem: controller.ca.rootsPem, token: () => tokens.issue(node) });
    const id = 'spiffe://cluster.local/ns/shop/sa/web';
    const c1 = ca('node1');
    const c2 = ca('node2');
    try {
      const chain = await c1.createCertificate(await createCsr(await generateP256(), id), id, 600);
      assert.equal(chain.length, 2);
      await assert.rejects(c2.createCertificate(await createCsr(await generateP256(), id), id, 600), (e: { code: number }) => e.code === status.PERMISSION_DENIED);
      // move web to node2: the CA follows
      await writeAtomic(join(manifests, 'nested', 'pods.yml'), pod('web', 'node2', '198.18.1.10', 'web') + '---\n' + pod('db', 'node2', '198.18.2.10', 'db'));
      await until(() => state.workload('uid-web')?.node === 'node2', 'the move');
      const chain2 = await c2.createCertificate(await createCsr(await generateP256(), id), id, 600);
      assert.equal(chain2.length, 2);
      await assert.rejects(c1.createCertificate(await createCsr(await generateP256(), id), id, 600), (e: { code: number }) => e.code === status.PERMISSION_DENIED);
    } finally {
      c1.close();
      c2.close();
    }
  });
});
