// An agent's whole control-plane side against a real controller on a manifest directory:
// xDS sync into WorkloadState, certificates for exactly the local mesh identities (following
// enrolment), /config_dump on the admin port, and the `weft workloads|services|policies|certs`
// views of it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller } from '../../agent/src/controller/controller.js';
import { DirectorySource } from '../../agent/src/controller/source-dir.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { NodeSync } from '../../agent/src/state/node-sync.js';
import { configDump } from '../../agent/src/state/dump.js';
import { startAdminServer, type RunningAdmin } from '../../agent/src/telemetry/admin-server.js';
import { main } from '../../agent/src/cli/main.js';
import { tokenFromFile } from '../../agent/src/xds/connection.js';
import { until } from '../helpers/until.js';

const ns = (labels: Record<string, string>) => `apiVersion: v1\nkind: Namespace\nmetadata: { name: shop, labels: ${JSON.stringify(labels)} }\n`;
const pod = (name: string, node: string, ip: string, sa: string) => `---
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop, uid: uid-${name}, labels: { app: ${name} } }
spec: { nodeName: ${node}, serviceAccountName: ${sa} }
status: { podIP: ${ip} }
`;
const OTHERS = pod('web', 'node1', '198.18.1.10', 'web') + pod('api', 'node1', '198.18.1.11', 'api') + pod('db', 'node2', '198.18.2.10', 'db') + `---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 198.19.0.10, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: security.weft.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: shop }
spec: { mtls: { mode: STRICT } }
`;


async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('agent control-plane sync against a controller on a manifest directory', () => {
  let dir: string;
  let manifests: string;
  let controller: Controller;
  let sync: NodeSync;
  let admin: RunningAdmin;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-sync-'));
    manifests = join(dir, 'manifests');
    await mkdir(manifests);
    await writeFile(join(manifests, 'ns.yaml'), ns({ 'weft.io/mesh': 'enabled' }));
    await writeFile(join(manifests, 'apps.yaml'), OTHERS);
    controller = await Controller.start({ source: new DirectorySource(manifests, { debounceMs: 20 }), stateDir: join(dir, 'state'), listen: '127.0.0.1:0' });
    const tokens = await HmacNodeTokens.fromStateDir(join(dir, 'state'));
    await writeFile(join(dir, 'token'), tokens.issue('node1') + '\n', { mode: 0o600 });
    sync = new NodeSync({ node: 'node1', address: `127.0.0.1:${controller.port}`, rootCertPem: controller.ca.rootsPem, token: tokenFromFile(join(dir, 'token')) });
    sync.start();
    await sync.waitSynced();
    admin = await startAdminServer({ port: 0, configDump: () => configDump(sync.state, sync.certs.list(), { node: 'node1', connected: sync.xds.connected, synced: sync.xds.synced }) });
  });
  after(async () => {
    await admin.close();
    sync.stop();
    await controller.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('holds certificates for exactly the mesh identities on its node', async () => {
    assert.deepEqual(sync.localIdentities(), ['spiffe://cluster.local/ns/shop/sa/api', 'spiffe://cluster.local/ns/shop/sa/web']);
    await until(() => sync.certs.list().filter((c) => c.state === 'valid').length === 2, 'two certificates');
    assert.ok(!sync.certs.list().some((c) => c.identity.endsWith('/sa/db')), 'no certificate for node2\'s identity');
  });

  it('drops the certificates when the namespace leaves the mesh, and fetches them when it rejoins', async () => {
    const tmp = join(manifests, '.ns.tmp');
    await writeFile(tmp, ns({}));
    await rename(tmp, join(manifests, 'ns.yaml'));
    await until(() => sync.certs.list().length === 0, 'certificates dropped');
    await writeFile(tmp, ns({ 'weft.io/mesh': 'enabled' }));
    await rename(tmp, join(manifests, 'ns.yaml'));
    await until(() => sync.certs.list().filter((c) => c.state === 'valid').length === 2, 'certificates back', 8000);
  });

  it('serves /config_dump with workloads, services, policies and certificate expiry', async () => {
    const res = await fetch(`http://127.0.0.1:${admin.port}/config_dump`);
    assert.equal(res.status, 200);
    const d = (await res.json()) as { workloads: Array<{ name: string; addresses: string[]; protocol: string }>; services: Array<{ hostname: string; vips: string[]; endpoints: number }>; policies: Array<{ name: string; action: string }>; certificates: Array<{ notAfter: string }>; synced: boolean };
    assert.equal(d.synced, true);
    assert.deepEqual(d.workloads.map((w) => `${w.name} ${w.addresses[0]} ${w.protocol}`), ['api 198.18.1.11 HBONE', 'db 198.18.2.10 HBONE', 'web 198.18.1.10 HBONE']);
    assert.deepEqual(d.services.map((s) => [s.hostname, s.vips[0], s.endpoints]), [['web.shop.svc.cluster.local', '198.19.0.10', 1]]);
    assert.deepEqual(d.policies.map((p) => [p.name, p.action]), [['istio_converted_static_strict', 'DENY']]);
    assert.ok(d.workloads.every((w) => (w as { authorizationPolicies?: string[] }).authorizationPolicies?.includes('weft-system/istio_converted_static_strict')), 'namespace STRICT is listed on its workloads');
    assert.ok(d.certificates.every((c) => Date.parse(c.notAfter) > Date.now()));
    assert.equal((await fetch(`http://127.0.0.1:${admin.port}/nope`)).status, 404);
  });

  it('weft workloads|services|policies|certs print tables and JSON from the admin port', async () => {
    const url = `http://127.0.0.1:${admin.port}`;
    const w = await cli(['workloads', '--admin', url]);
    assert.equal(w.code, 0, w.err);
    assert.match(w.out, /^NAMESPACE\s+NAME\s+ADDRESS\s+NODE\s+PROTOCOL/);
    assert.match(w.out, /shop\s+web\s+198\.18\.1\.10\s+node1\s+HBONE\s+web\s+HEALTHY/);
    const s = await cli(['services', '--admin', url, '-o', 'json']);
    assert.equal((JSON.parse(s.out) as Array<{ hostname: string }>)[0]!.hostname, 'web.shop.svc.cluster.local');
    const p = await cli(['policies', '--admin', url]);
    assert.match(p.out, /weft-system\s+istio_converted_static_strict\s+WORKLOAD_SELECTOR\s+DENY\s+1\s+no/);
    const c = await cli(['certs', '--admin', url, '-o', 'json']);
    assert.deepEqual((JSON.parse(c.out) as Array<{ identity: string }>).map((x) => x.identity), ['spiffe://cluster.local/ns/shop/sa/api', 'spiffe://cluster.local/ns/shop/sa/web']);
  });

  it('explains an unreachable agent', async () => {
    const r = await cli(['workloads', '--admin', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot read the agent's config_dump at http:\/\/127\.0\.0\.1:1\/config_dump.*WEFT_E_ADMIN_UNREACHABLE/);
  });
});
