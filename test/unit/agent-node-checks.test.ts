// The agent publishes its node checks as the node annotation `weft check --kube` reads: at
// start and whenever a result changes; publishing trouble is logged and retried, never fatal.
// Against the Kubernetes API double through the real client.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeConfig } from '../../agent/src/deploy/kube-check.js';
import { kubeConnectionFromConfig, type KubeConnection } from '../../agent/src/common/kube-api.js';
import { NodeChecksPublisher } from '../../agent/src/agent/node-checks-publisher.js';
import { Agent, agentOptionsFromFlags } from '../../agent/src/agent/index.js';
import { NODE_CHECKS_ANNOTATION } from '../../agent/src/deploy/objects.js';
import { VERSION } from '../../agent/src/common/version.js';
import type { CheckResult } from '../../agent/src/preflight/node-checks.js';
import { KubeApiDouble, node } from '../helpers/kube-api-double.js';
import { createTestCa } from '../helpers/certs.js';
import { until } from '../helpers/until.js';

const ok: CheckResult = { name: 'kernel', ok: true, required: true, detail: '6.8' };
const btfMissing: CheckResult = { name: 'btf', ok: false, required: true, detail: 'no /sys/kernel/btf/vmlinux', hint: 'use a kernel with BTF' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('agent node checks annotation', () => {
  const api = new KubeApiDouble();
  let kc: KubeConnection;
  const published = (n: string) => {
    const v = api.nodes.get(n)?.metadata.annotations?.[NODE_CHECKS_ANNOTATION];
    return v === undefined ? undefined : (JSON.parse(v) as { version: string; ok: boolean; checks: CheckResult[] });
  };
  const patches = () => api.requests.filter((r) => r.method === 'PATCH').length;
  before(async () => {
    await api.start();
    kc = kubeConnectionFromConfig(await loadKubeConfig(api.kubeconfigFile()));
  });
  after(() => api.stop());
  beforeEach(() => {
    api.nodes.clear();
    api.failures.clear();
    api.requests.length = 0;
    api.put(api.nodes, node('n1', { labels: { team: 'a' }, annotations: { other: 'kept' } }));
  });

  it('publishes at start, not again while nothing changes, again when a result changes; other annotations stay', async () => {
    let checks = [ok];
    const p = new NodeChecksPublisher({ conn: kc, node: 'n1', version: '9.9.9', run: async () => checks, intervalMs: 20 });
    await p.start();
    try {
      assert.deepEqual(published('n1'), { ...published('n1')!, version: '9.9.9', ok: true, checks: [ok] });
      assert.equal(api.nodes.get('n1')!.metadata.annotations!.other, 'kept');
      assert.equal(api.nodes.get('n1')!.metadata.labels!.team, 'a');
      await sleep(150);
      assert.equal(patches(), 1, 'unchanged results are not re-published');
      checks = [ok, btfMissing];
      await until(() => published('n1')?.checks.length === 2, 'the changed checks');
      assert.equal(published('n1')!.ok, false, 'a failed required check makes the node not ok');
      assert.equal(patches(), 2);
    } finally {
      p.stop();
    }
  });

  it('a refused or failing publish is not fatal and is retried at the next check', async () => {
    api.failures.set('/api/v1/nodes/n1', 403);
    const p = new NodeChecksPublisher({ conn: kc, node: 'n1', version: '1', run: async () => [ok], intervalMs: 20 });
    await p.start(); // resolves despite the 403
    try {
      assert.equal(p.count, 0);
      assert.equal(published('n1'), undefined);
      await until(() => patches() >= 2, 'a retry');
      api.failures.clear();
      await until(() => p.count === 1, 'the publish after the API recovers');
      assert.deepEqual(published('n1')!.checks, [ok]);
    } finally {
      p.stop();
    }
  });

  it('checks that throw are logged and skipped; a node that does not exist is not fatal', async () => {
    let fail = true;
    const p = new NodeChecksPublisher({ conn: kc, node: 'nope', version: '1', run: async () => { if (fail) throw new Error('probe crashed'); return [ok]; }, intervalMs: 20 });
    await p.start();
    try {
      assert.equal(patches(), 0);
      fail = false;
      await until(() => patches() >= 1, 'a PATCH for the missing node');
      assert.equal(p.count, 0, '404 is not a publication');
    } finally {
      p.stop();
    }
  });

  it('`weft agent` in Kubernetes publishes its checks at start with its version; outside Kubernetes it does not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-agent-checks-'));
    const ca = await createTestCa();
    writeFileSync(join(dir, 'root.pem'), ca.rootPem);
    writeFileSync(join(dir, 'token'), 'tok\n');
    const opts = agentOptionsFromFlags({
      node: 'n1', controller: '127.0.0.1:1', 'token-file': join(dir, 'token'), 'ca-root': join(dir, 'root.pem'),
      admin: '127.0.0.1:0', metrics: '127.0.0.1:0', readiness: '127.0.0.1:0', 'no-redirect': true,
    });
    try {
      const a = await Agent.start(opts, { kube: kc, nodeChecks: async () => [ok, btfMissing] });
      try {
        await until(() => published('n1') !== undefined, 'the annotation');
        assert.deepEqual(published('n1')!.checks, [ok, btfMissing]);
        assert.equal(published('n1')!.version, VERSION);
      } finally {
        await a.stop(0);
      }
      assert.equal(a.exitDecision?.release, false);
      api.requests.length = 0;
      const b = await Agent.start(opts, { kube: null, nodeChecks: async () => [ok] });
      await sleep(100);
      await b.stop(0);
      assert.equal(patches(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
