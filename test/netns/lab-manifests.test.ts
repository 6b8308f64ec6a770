// `weft lab apply / delete / label` on a real lab: applied pods really start, bad input is
// refused with file and line and changes nothing, labels follow kubectl's rules.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, LabConflictError, LabObjectNotFoundError, ManifestError, processAlive } from '../../agent/src/lab/index.js';

const skip = privilegedSkip();

/** Every file of the state directory with its content: "nothing was written" means this is unchanged. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.yaml') || f === 'runtime.json') out[f] = readFileSync(join(dir, f), 'utf8');
  return out;
}

const weft = (...args: string[]) => spawnSync(process.execPath, ['agent/bin/weft.js', ...args], { encoding: 'utf8' });

describe('lab apply, delete and label', { skip }, () => {
  let lab: Lab;
  let dir: string;
  const name = `m${randomBytes(3).toString('hex')}`;
  const file = (n: string, text: string) => {
    const p = join(dir, n);
    writeFileSync(p, text);
    return p;
  };

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 1 });
    dir = mkdtempSync(join(tmpdir(), 'weft-lab-apply-'));
  });
  after(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('applies a namespace, service account, service, policy and a pod that really starts', async () => {
    const f = file('app.yaml', `apiVersion: v1
kind: Namespace
metadata:
  name: extra
  labels: {team: a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: extra}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: extra}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: extra
  labels: {app: web}
spec:
  nodeName: node2
  serviceAccountName: web
---
apiVersion: security.weft.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-demo, namespace: extra}
spec:
  action: ALLOW
  rules: [{from: [{source: {namespaces: [demo]}}]}]
`);
    const r = weft('lab', 'apply', '--name', name, '-f', f);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /pod\/web-1 \(namespace extra\) created/);
    const st = lab.status();
    const web = st.pods.find((p) => p.namespace === 'extra' && p.name === 'web-1');
    assert.ok(web, 'the applied pod is in the status');
    assert.equal(web.node, 'node2');
    assert.equal(web.serviceAccount, 'web');
    const svc = st.services.find((s) => s.namespace === 'extra' && s.name === 'web');
    assert.match(svc!.clusterIP, /^198\.19\./);
    const client = st.pods.find((p) => p.namespace === 'demo')!;
    const h = await lab.httpGet(`demo/${client.name}`, `http://${web.ip}:8080/applied`);
    assert.deepEqual(JSON.parse(h.body!), { pod: 'web-1', namespace: 'extra', path: '/applied', client: client.ip });
    const manifest = parse(readFileSync(join(st.stateDir, 'Pod_extra_web-1.yaml'), 'utf8'));
    assert.equal(manifest.metadata.uid, web.uid);
    assert.equal(manifest.status.podIP, web.ip);
    assert.ok(existsSync(join(st.stateDir, 'AuthorizationPolicy_extra_allow-demo.yaml')));
    assert.ok(existsSync(join(st.stateDir, 'ServiceAccount_extra_default.yaml')), 'a new namespace gets its default service account');
    // Applying the same file again changes nothing.
    const again = weft('lab', 'apply', '--name', name, '-f', f);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /created|configured/);
    assert.equal(lab.status().pods.filter((p) => p.name === 'web-1').length, 1);
  });

  it('refuses invalid YAML, unknown kinds and bad references with file and line, writing nothing', async () => {
    const before = snapshot(lab.stateDir);
    const bad = file('bad.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [broken\n');
    const r = weft('lab', 'apply', '--name', name, '-f', bad);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${bad}:\\d+: invalid YAML.*WEFT_E_MANIFEST_INVALID`, 's'));
    const unknown = file('unknown.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n');
    const u = weft('lab', 'apply', '--name', name, '-f', unknown);
    assert.equal(u.status, 1);
    assert.match(u.stderr, new RegExp(`${unknown}:6: unknown kind 'Deployment'`));
    const noNs = file('nons.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: missing}\n');
    await assert.rejects(lab.apply(noNs), (e: unknown) => e instanceof ManifestError && /nons.yaml:5: pod\/p -n missing: namespace 'missing' does not exist/.test(e.message));
    const badNode = file('badnode.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: demo}\nspec: {nodeName: node9}\n');
    await assert.rejects(lab.apply(badNode), /node 'node9' does not exist/);
    const badSa = file('badsa.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: demo}\nspec: {serviceAccountName: ghost}\n');
    await assert.rejects(lab.apply(badSa), /service account 'ghost' does not exist/);
    assert.deepEqual(snapshot(lab.stateDir), before, 'the state directory is unchanged');
    assert.equal(lab.status().pods.some((p) => p.name === 'p'), false);
  });

  it('labels namespaces and pods as kubectl does', async () => {
    const nsFile = () => parse(readFileSync(join(lab.stateDir, 'Namespace__demo.yaml'), 'utf8'));
    let r = weft('lab', 'label', '--name', name, 'namespace', 'demo', 'weft.io/mesh=enabled');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(nsFile().metadata.labels['weft.io/mesh'], 'enabled');
    r = weft('lab', 'label', '--name', name, 'namespace', 'demo', 'weft.io/mesh=disabled');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already has label 'weft.io\/mesh=enabled'.*--overwrite/s);
    assert.equal(nsFile().metadata.labels['weft.io/mesh'], 'enabled');
    r = weft('lab', 'label', '--name', name, 'namespace', 'demo', 'weft.io/mesh=disabled', '--overwrite');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(nsFile().metadata.labels['weft.io/mesh'], 'disabled');
    r = weft('lab', 'label', '--name', name, 'namespace', 'demo', 'weft.io/mesh-');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(nsFile().metadata.labels?.['weft.io/mesh'], undefined);

    const pod = lab.status().pods.find((p) => p.namespace === 'demo')!;
    assert.equal(await lab.label('pod', `demo/${pod.name}`, ['weft.io/mesh=disabled', 'tier=front']), true);
    assert.deepEqual(lab.pod(`demo/${pod.name}`).labels, { app: pod.labels.app, 'weft.io/mesh': 'disabled', tier: 'front' });
    await assert.rejects(lab.label('pod', `demo/${pod.name}`, 'tier=back'), LabConflictError);
    await assert.rejects(lab.label('pod', 'demo/ghost', 'a=b'), LabObjectNotFoundError);
    await assert.rejects(lab.label('namespace', 'demo', 'bad key=x'), /label key/);
    const u = weft('lab', 'label', '--name', name, 'service', 'demo/x', 'a=b');
    assert.equal(u.status, 2);
  });

  it('deletes pods (stopping them) and namespaces with everything in them', async () => {
    const web = lab.pod('extra/web-1');
    const missing = file('missing.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: {name: ghost, namespace: extra}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n');
    const before = snapshot(lab.stateDir);
    const r = weft('lab', 'delete', '--name', name, '-f', missing);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /pod\/ghost -n extra .*missing.yaml:1.*not found/);
    assert.deepEqual(snapshot(lab.stateDir), before, 'nothing removed');
    assert.ok(existsSync(web.netns));

    const ns = file('ns.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n');
    const d = weft('lab', 'delete', '--name', name, '-f', ns);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /pod\/web-1 \(namespace extra\) deleted/);
    assert.match(d.stdout, /namespace\/extra deleted/);
    assert.equal(existsSync(web.netns), false);
    assert.equal(existsSync(web.podCgroup), false);
    assert.equal(processAlive(web.pid), false, 'the app is gone');
    assert.equal(readdirSync(lab.stateDir).some((f) => f.includes('_extra_') || f === 'Namespace__extra.yaml'), false);
    assert.equal(lab.health().state, 'healthy');
  });
});
