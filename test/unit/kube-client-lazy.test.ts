// @kubernetes/client-node is loaded only by code that talks to a cluster (common/kube-client.ts),
// and @peculiar/x509 only by the CA (the agent writes its CSRs as DER itself): eagerly they cost
// ~27 MB and ~2.7 MB of heap in every agent, which every major GC on the data path marks. A
// module hook that refuses to resolve them (and notes each attempt in a file, since the agent
// catches and retries a failed call) proves the CLI and the whole agent module graph start
// without them, that an agent with Kubernetes access talks to the API (node annotation PATCH,
// DaemonSet list/watch and GET) without them, and that `check --kube` does reach for client-node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { KubeApiDouble, daemonset, node } from '../helpers/kube-api-double.js';
import { createTestCa } from '../helpers/certs.js';

const weft = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
const dist = new URL('../../', import.meta.url).href;

async function withRefusingHook<T>(fn: (importArg: string, dir: string) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-lazy-'));
  try {
    const refused = join(dir, 'refused');
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@kubernetes/client-node') || specifier.startsWith('@peculiar/x509')) {
    appendFileSync(${JSON.stringify(refused)}, specifier + ' from ' + context.parentURL + '\\n');
    throw new Error('REFUSED: ' + specifier + ' was imported');
  }
  return next(specifier, context);
}\n`);
    writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    return await fn(pathToFileURL(join(dir, 'register.mjs')).href, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const refusedImports = (dir: string) => (existsSync(join(dir, 'refused')) ? readFileSync(join(dir, 'refused'), 'utf8') : '');

const run = (importArg: string, args: string[]) => spawnSync(process.execPath, ['--import', importArg, weft, ...args], { encoding: 'utf8', timeout: 30_000 });

test('the CLI and the agent module graph load without @kubernetes/client-node and @peculiar/x509', async () => {
  await withRefusingHook((hook, dir) => {
    for (const args of [['version'], ['agent', '--help'], ['check', '--help'], ['controller', '--help']]) {
      const r = run(hook, args);
      assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /REFUSED/);
    }
    assert.equal(refusedImports(dir), '');
  });
});

test('the hook does catch an import of @kubernetes/client-node (check --kube needs it)', async () => {
  await withRefusingHook((hook, dir) => {
    const r = run(hook, ['check', '--kube', '--kubeconfig', '/nonexistent/kubeconfig']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /REFUSED: @kubernetes\/client-node/);
    assert.match(refusedImports(dir), /^@kubernetes\/client-node from /);
  });
});

// The agent in a cluster, against the API double: it publishes its node annotation, and (as the
// agent does while it runs with redirection, which needs root and BPF, and at SIGTERM) watches and
// reads its DaemonSet, all through its own client, in a process where client-node cannot load.
const AGENT_IN_CLUSTER = `
const [dist, server, dir] = process.argv.slice(2);
const { Agent, agentOptionsFromFlags } = await import(dist + 'agent/src/agent/index.js');
const { DaemonSetWatch, decideOnExit } = await import(dist + 'agent/src/agent/exit-policy.js');
const { kubeGet } = await import(dist + 'agent/src/common/kube-api.js');
const kube = { server, tokenFile: dir + '/sa-token' };
const ds = { namespace: 'mesh', name: 'weft-agent' };
const until = async (f) => { for (let i = 0; i < 500 && !(await f()); i++) await new Promise((r) => setTimeout(r, 10)); };
const opts = agentOptionsFromFlags({ node: 'n1', controller: '127.0.0.1:1', 'token-file': dir + '/token', 'ca-root': dir + '/root.pem',
  admin: '127.0.0.1:0', metrics: '127.0.0.1:0', readiness: '127.0.0.1:0', 'no-redirect': true, workers: '0' });
const a = await Agent.start(opts, { kube, daemonSet: ds, nodeChecks: async () => [{ name: 'kernel', ok: true, required: true, detail: 'test' }] });
const w = new DaemonSetWatch(kube, ds, { initialMs: 50, maxMs: 200 });
w.start();
await until(async () => (await kubeGet(kube, '/api/v1/nodes/n1')).metadata.annotations?.['weft.io/node-checks'] && w.observations > 0);
const decision = await decideOnExit({ mode: 'auto', kube: { conn: kube, daemonSet: ds, deletionSeen: w.deletionSeen } });
w.stop();
await a.stop(0);
process.stdout.write(JSON.stringify({ decision, observations: w.observations }));
process.exit(0);
`;

test('an agent with Kubernetes access patches its node and watches and reads its DaemonSet without loading @kubernetes/client-node', async () => {
  const api = new KubeApiDouble();
  await api.start();
  try {
    api.put(api.nodes, node('n1'));
    api.put(api.daemonsets, daemonset('mesh', 'weft-agent', {}, 1, 1));
    const rootPem = (await createTestCa()).rootPem;
    await withRefusingHook(async (hook, dir) => {
      writeFileSync(join(dir, 'root.pem'), rootPem);
      writeFileSync(join(dir, 'token'), 'node-token\n');
      writeFileSync(join(dir, 'sa-token'), 'sa-token\n');
      writeFileSync(join(dir, 'agent.mjs'), AGENT_IN_CLUSTER);
      const child = spawn(process.execPath, ['--import', hook, join(dir, 'agent.mjs'), dist, `http://127.0.0.1:${api.port}`, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      assert.equal(refusedImports(dir), '', 'nothing in the agent imports client-node or x509');
      assert.equal(code, 0, err);
      const r = JSON.parse(out) as { decision: { release: boolean; reason: string }; observations: number };
      assert.deepEqual(r.decision, { release: false, reason: 'DaemonSet mesh/weft-agent exists: a successor agent takes the pods over' });
      assert.ok(r.observations >= 1);
      const seen = new Set(api.requests.map((q) => `${q.method} ${q.path}${new URLSearchParams(q.query).get('watch') ? ' (watch)' : ''}`));
      for (const want of ['PATCH /api/v1/nodes/n1', 'GET /apis/apps/v1/namespaces/mesh/daemonsets', 'GET /apis/apps/v1/namespaces/mesh/daemonsets (watch)', 'GET /apis/apps/v1/namespaces/mesh/daemonsets/weft-agent']) {
        assert.ok(seen.has(want), `${want} in ${[...seen].join(', ')}`);
      }
      assert.ok(api.requests.every((q) => q.authorization === 'Bearer sa-token'));
      assert.match(api.nodes.get('n1')!.metadata.annotations!['weft.io/node-checks']!, /"name":"kernel"/);
    });
  } finally {
    await api.stop();
  }
});
