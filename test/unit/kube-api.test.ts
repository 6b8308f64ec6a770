// The agent's own Kubernetes API client (common/kube-api.ts) against the API double: errors name
// the request, the status and the API's Status message; a hung API times out; the token file is
// read for every request; the watch lists, follows events, reopens from the last resourceVersion,
// lists again after 410 Gone and retries refusals; https with a CA, and IPv6 hosts.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonSetWatch } from '../../agent/src/agent/exit-policy.js';
import { KubeApiError, KubeWatch, hostPort, kubeGet, kubePatch, type KubeConnection } from '../../agent/src/common/kube-api.js';
import { KubeApiDouble, daemonset, node } from '../helpers/kube-api-double.js';
import { createTestCa } from '../helpers/certs.js';
import { until } from '../helpers/until.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const DSS = '/apis/apps/v1/namespaces/mesh/daemonsets';

describe('the agent\'s Kubernetes API client', () => {
  const api = new KubeApiDouble();
  let conn: KubeConnection;
  let dir: string;
  before(async () => {
    await api.start();
    dir = mkdtempSync(join(tmpdir(), 'weft-kube-api-'));
    writeFileSync(join(dir, 'token'), 'first\n');
    conn = { server: `http://127.0.0.1:${api.port}`, tokenFile: join(dir, 'token') };
  });
  after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    api.daemonsets.clear();
    api.nodes.clear();
    api.failures.clear();
    api.hang.clear();
    api.requests.length = 0;
  });

  it('GET and PATCH: the object back; a refusal names the request, the status and the API\'s message', async () => {
    api.put(api.daemonsets, daemonset('mesh', 'weft-agent', {}, 1, 1));
    const got = await kubeGet<{ metadata: { name: string } }>(conn, `${DSS}/weft-agent`);
    assert.equal(got.metadata.name, 'weft-agent');
    api.put(api.nodes, node('n1', { annotations: { other: 'kept' } }));
    const patched = await kubePatch<{ metadata: { annotations: Record<string, string> } }>(conn, '/api/v1/nodes/n1', 'merge', { metadata: { annotations: { a: 'b' } } });
    assert.deepEqual(patched.metadata.annotations, { other: 'kept', a: 'b' });
    api.failures.set(`${DSS}/weft-agent`, 403);
    await assert.rejects(kubeGet(conn, `${DSS}/weft-agent`), (e: KubeApiError) => {
      assert.equal(e.code, 'WEFT_E_KUBE_API');
      assert.equal(e.statusCode, 403);
      assert.equal(e.message, `GET ${DSS}/weft-agent: HTTP 403: injected 403 for ${DSS}/weft-agent`);
      assert.match(e.hint ?? '', /RBAC/);
      return true;
    });
    await assert.rejects(kubePatch(conn, '/api/v1/nodes/nope', 'merge', {}), (e: KubeApiError) => e.statusCode === 404 && /^PATCH \/api\/v1\/nodes\/nope: HTTP 404: nodes "nope" not found$/.test(e.message));
    // the double accepts merge patches only: the agent's node annotation stays a merge patch
    await assert.rejects(kubePatch(conn, '/api/v1/nodes/n1', 'strategic', {}), (e: KubeApiError) => e.statusCode === 415);
  });

  it('a hung API times out; an unreachable one fails with the reason; both name the request', async () => {
    api.hang.add(`${DSS}/weft-agent`);
    const t0 = Date.now();
    await assert.rejects(kubeGet(conn, `${DSS}/weft-agent`, { timeoutMs: 200 }), (e: KubeApiError) => e.statusCode === undefined && e.message === `GET ${DSS}/weft-agent: no answer within 200 ms`);
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(kubeGet({ server: 'http://127.0.0.1:1' }, '/version'), (e: KubeApiError) => /^GET \/version: connect ECONNREFUSED/.test(e.message));
  });

  it('reads the token file for every request (service-account tokens rotate)', async () => {
    api.put(api.nodes, node('n1'));
    await kubeGet(conn, '/api/v1/nodes/n1');
    writeFileSync(join(dir, 'token'), 'second\n');
    await kubeGet(conn, '/api/v1/nodes/n1');
    assert.deepEqual(api.requests.map((r) => r.authorization), ['Bearer first', 'Bearer second']);
    await assert.rejects(kubeGet({ ...conn, tokenFile: join(dir, 'missing') }, '/version'), (e: Error) => /cannot read the token .*missing/.test(e.message));
  });

  it('DaemonSetWatch: lists, follows events, reopens from the last resourceVersion, lists again after 410 Gone', async () => {
    const ds = daemonset('mesh', 'weft-agent', {}, 1, 1);
    api.put(api.daemonsets, ds);
    api.put(api.daemonsets, daemonset('mesh', 'other', {}, 1, 1));
    const w = new DaemonSetWatch(conn, { namespace: 'mesh', name: 'weft-agent' }, { initialMs: 20, maxMs: 100 });
    w.start();
    try {
      await until(() => w.observations === 1 && api.openWatches === 1, 'the list and the watch');
      const [list, watch] = api.requests.filter((r) => r.path === DSS);
      assert.equal(new URLSearchParams(list!.query).get('fieldSelector'), 'metadata.name=weft-agent', 'the Role allows list/watch of this name only');
      const q = new URLSearchParams(watch!.query);
      assert.deepEqual([q.get('watch'), q.get('resourceVersion'), q.get('allowWatchBookmarks'), q.get('fieldSelector')], ['1', '100', 'true', 'metadata.name=weft-agent']);
      assert.equal(w.deletionSeen, undefined);

      assert.equal(api.watchEvent(DSS, 'MODIFIED', daemonset('mesh', 'other', {}, 1, 1)), 0, 'another DaemonSet is not sent');
      const deleting = structuredClone(ds);
      deleting.metadata.deletionTimestamp = '2026-11-26T00:00:00Z';
      api.watchEvent(DSS, 'MODIFIED', deleting);
      await until(() => w.deletionSeen === 'DaemonSet mesh/weft-agent is being deleted', 'the deletionTimestamp');
      api.watchEvent(DSS, 'MODIFIED', ds);
      await until(() => w.deletionSeen === undefined, 'the DaemonSet back to normal');
      const rv = ds.metadata.resourceVersion as string;

      // the server ends the watch: reopened from the last resourceVersion, no list
      api.requests.length = 0;
      api.endWatches();
      await until(() => api.openWatches === 1, 'the watch reopened');
      assert.deepEqual(api.requests.map((r) => [new URLSearchParams(r.query).get('watch'), new URLSearchParams(r.query).get('resourceVersion')]), [['1', rv]]);

      // 410 Gone: list again; a list without the DaemonSet it had seen is its deletion
      api.requests.length = 0;
      api.daemonsets.delete('mesh/weft-agent');
      api.watchEvent(DSS, 'ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: 'too old resource version' });
      await until(() => w.deletionSeen === 'DaemonSet mesh/weft-agent was deleted', 'the list after 410');
      assert.equal(new URLSearchParams(api.requests[0]!.query).get('watch'), null, 'a list, not a watch');

      // back (a new list sees it), then a DELETED event
      await until(() => api.openWatches === 1, 'the watch after the list');
      api.put(api.daemonsets, ds);
      api.watchEvent(DSS, 'ERROR', { kind: 'Status', code: 410, message: 'gone' });
      await until(() => w.deletionSeen === undefined, 'the DaemonSet listed again');
      await sleep(100);
      await until(() => api.openWatches === 1, 'the watch after the list');
      api.watchEvent(DSS, 'DELETED', ds);
      await until(() => w.deletionSeen === 'DaemonSet mesh/weft-agent was deleted', 'the DELETED event');
    } finally {
      w.stop();
    }
    await until(() => api.openWatches === 0, 'the watch closed by stop()');
  });

  it('a refused watch is retried with backoff and then works; stop() ends it', async () => {
    api.put(api.daemonsets, daemonset('mesh', 'weft-agent', {}, 1, 1));
    api.failures.set(DSS, 403);
    const errors: string[] = [];
    const events: string[] = [];
    const w = new KubeWatch(conn, {
      path: DSS, name: 'weft-agent', backoff: { initialMs: 20, maxMs: 40 },
      onList: (items) => events.push(`list ${items.length}`), onEvent: (t) => events.push(t), onError: (e) => errors.push(e.message),
    });
    w.start();
    try {
      await until(() => errors.length >= 3, 'three refusals');
      assert.match(errors[0]!, /^GET \/apis\/apps\/v1\/namespaces\/mesh\/daemonsets\?fieldSelector=metadata.name%3Dweft-agent: HTTP 403: injected 403/);
      api.failures.clear();
      await until(() => api.openWatches === 1, 'the list and the watch');
      api.watchEvent(DSS, 'BOOKMARK', { metadata: { name: '', resourceVersion: '' } } as never);
      api.watchEvent(DSS, 'MODIFIED', daemonset('mesh', 'weft-agent', {}, 2, 2));
      await until(() => events.includes('MODIFIED'), 'the event');
      assert.deepEqual(events, ['list 1', 'MODIFIED'], 'bookmarks only move the resourceVersion');
    } finally {
      w.stop();
    }
    await until(() => api.openWatches === 0, 'stopped');
  });

  it('https: the CA is the connection\'s; insecureSkipTlsVerify; an IPv6 host goes in brackets', async () => {
    const ca = await createTestCa();
    const cert = await ca.issue('spiffe://test/kube-apiserver');
    const srv = createServer({ key: cert.keyPem, cert: cert.certChainPem }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"gitVersion":"v1.34.4"}'));
    await new Promise<void>((r) => srv.listen(0, '::1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      assert.equal(hostPort('::1', port), `[::1]:${port}`);
      assert.equal(hostPort('198.18.0.1', 443), '198.18.0.1:443');
      const server = `https://${hostPort('::1', port)}`;
      assert.deepEqual(await kubeGet({ server, insecureSkipTlsVerify: true }, '/version'), { gitVersion: 'v1.34.4' });
      // with the CA the chain verifies and the name is what fails (the certificate has no IP SAN)
      await assert.rejects(kubeGet({ server, caPem: ca.rootPem }, '/version'), (e: Error) => /IP: ::1 is not in the cert's list/.test(e.message));
      await assert.rejects(kubeGet({ server }, '/version'), (e: Error) => /self[- ]signed|unable to (get|verify)/i.test(e.message));
    } finally {
      srv.closeAllConnections();
      srv.close();
    }
  });
});
