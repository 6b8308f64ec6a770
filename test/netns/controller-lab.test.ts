// The control plane in the lab: `weft controller --source dir:` on the lab's state directory
// (in the fabric netns), one agent-side sync per node (in the node's netns), and `weft
// workloads|certs --node` reading each node's admin port. Enrolment follows namespace labels
// within a second; each node holds certificates only for identities on that node.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { privilegedSkip } from '../helpers/privilege.js';
import { Lab, type LabStatus } from '../../agent/src/lab/index.js';
import { HmacNodeTokens } from '../../agent/src/identity/node-auth.js';
import { main } from '../../agent/src/cli/main.js';

const skip = privilegedSkip();
const weftBin = fileURLToPath(new URL('../../../agent/bin/weft.js', import.meta.url));
const agentChild = fileURLToPath(new URL('./controller-lab-agent.js', import.meta.url));

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

function waitForLine(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no ${re} on ${stream} within ${ms} ms; got:\n${buf.slice(-2000)}`)), ms);
    child[stream]!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m[0]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`process exited (${code}) before ${re}; output:\n${buf.slice(-2000)}`));
    });
  });
}

interface WorkloadRow { namespace: string; name: string; node: string; protocol: string; addresses: string[] }
interface CertRow { identity: string; state: string }

describe('controller in the lab', { skip }, () => {
  const name = `c${randomBytes(3).toString('hex')}`;
  let lab: Lab;
  let st: LabStatus;
  let dir: string;
  const children: ChildProcess[] = [];
  const workloadsOn = async (node: string) => {
    const r = await cli(['workloads', '--node', node, '--lab', name, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as WorkloadRow[];
  };
  const certsOn = async (node: string) => {
    const r = await cli(['certs', '--node', node, '--lab', name, '-o', 'json']);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as CertRow[];
  };

  before(async () => {
    lab = await Lab.up({ name, nodes: 2, podsPerNode: 2 });
    st = lab.status();
    dir = mkdtempSync(join(tmpdir(), 'weft-ctl-lab-'));
    const listen = `${st.fabric.ip}:15012`;
    const controller = spawn('nsenter', [`--net=${st.fabric.netns}`, '--', process.execPath, weftBin, 'controller', '--source', `dir:${st.stateDir}`, '--listen', listen, '--state-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(controller);
    await waitForLine(controller, 'stderr', /weft controller: serving on/, 20_000);
    const tokens = await HmacNodeTokens.fromStateDir(dir);
    for (const n of st.nodes) {
      const a = spawn('nsenter', [`--net=${n.netns}`, '--', process.execPath, agentChild, n.name, listen, join(dir, 'ca', 'ca-cert.pem'), tokens.issue(n.name)], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(a);
      await waitForLine(a, 'stdout', /ready/, 20_000);
    }
  });

  after(async () => {
    for (const c of children.reverse()) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    }
    await lab?.down();
    if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  });

  it('every node\'s agent knows every lab pod, not enrolled while no namespace is labelled', async () => {
    for (const n of st.nodes) {
      const ws = await workloadsOn(n.name);
      assert.deepEqual(ws.map((w) => `${w.namespace}/${w.name}@${w.node} ${w.addresses[0]}`).sort(), st.pods.map((p) => `${p.namespace}/${p.name}@${p.node} ${p.ip}`).sort());
      assert.ok(ws.every((w) => w.protocol === 'NONE'));
      assert.deepEqual(await certsOn(n.name), []);
    }
  });

  it('labelling a namespace enrols its pods within a second, with certificates only on their nodes', async () => {
    const ns = st.pods[0]!.namespace;
    const started = Date.now();
    await lab.label('namespace', ns, 'weft.io/mesh=enabled');
    let ws: WorkloadRow[] = [];
    while (Date.now() - started < 1000) {
      ws = await workloadsOn(st.nodes[0]!.name);
      if (ws.filter((w) => w.namespace === ns).every((w) => w.protocol === 'HBONE')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(ws.filter((w) => w.namespace === ns).every((w) => w.protocol === 'HBONE'), `enrolled within ${Date.now() - started} ms`);
    assert.ok(ws.filter((w) => w.namespace !== ns).every((w) => w.protocol === 'NONE'));
    for (const n of st.nodes) {
      const expected = [...new Set(st.pods.filter((p) => p.namespace === ns && p.node === n.name).map((p) => {
        const sa = readFileSync(join(st.stateDir, `Pod_${p.namespace}_${p.name}.yaml`), 'utf8').match(/serviceAccountName: (\S+)/)![1];
        return `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
      }))].sort();
      let certs: CertRow[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 10_000) {
        certs = await certsOn(n.name);
        if (certs.length === expected.length && certs.every((c) => c.state === 'valid')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(certs.map((c) => c.identity), expected, `certificates on ${n.name}`);
    }
  });
});
