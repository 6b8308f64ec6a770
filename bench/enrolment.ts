// Benchmark (issue 6): time from a namespace label change to capture of its running pods, for
// 1, 20 and 100 pods; and connection failures while each node's agent is restarted under a
// steady stream of new connections (the target is zero). Runs on a lab with the mesh.
// Run: node dist/bench/enrolment.js [--sizes 1,20,100] [--rate 100] [--seconds 6]
// Writes bench/results/enrolment-<time>.{json,md}.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Lab, type PodStatus } from '../agent/src/lab/index.js';
import { fetchConfigDumpInNetns } from '../agent/src/telemetry/admin-client.js';
import type { AgentDump } from '../agent/src/agent/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = resolve(here, '..', '..', 'bench', 'results');
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,20,100' },
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '6' },
    name: { type: 'string', default: 'benrol' },
  },
});
const sizes = String(values.sizes).split(',').map(Number);
const rate = Number(values.rate);
const seconds = Number(values.seconds);

async function enrolled(lab: Lab): Promise<Set<string>> {
  const out = new Set<string>();
  await Promise.all(lab.status().nodes.map(async (n) => {
    const d = (await fetchConfigDumpInNetns(`weft-${lab.name}-${n.name}`)) as AgentDump;
    for (const e of d.enrolment) if (e.state === 'enrolled') out.add(e.uid);
  }));
  return out;
}

async function timeUntil(f: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  const start = performance.now();
  while (!(await f().catch(() => false))) {
    if (performance.now() - start > timeoutMs) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
  return performance.now() - start;
}

/** Opens `rate` new connections per second to host:9000 from a pod for `seconds`; counts failures. */
function steadyConnections(lab: Lab, from: string, host: string): Promise<{ ok: number; failed: Record<string, number> }> {
  const script = `
    const net = require('net'); let ok = 0; const failed = {}; let open = 0;
    const end = Date.now() + ${seconds * 1000};
    const one = () => { open++; const s = net.connect(9000, '${host}'); let done = false;
      const fin = (err) => { if (done) return; done = true; open--; if (err) failed[err] = (failed[err] || 0) + 1; else ok++; s.destroy(); };
      s.setTimeout(5000, () => fin('ETIMEDOUT'));
      s.on('connect', () => s.write('x')); s.on('data', () => fin()); s.on('error', (e) => fin(e.code || e.message)); s.on('close', () => fin('closed early')); };
    const t = setInterval(() => { if (Date.now() > end) { clearInterval(t); const w = setInterval(() => { if (open === 0) { clearInterval(w); process.stdout.write(JSON.stringify({ ok, failed })); } }, 50); } else one(); }, ${Math.max(1, Math.round(1000 / rate))});`;
  return new Promise((resolveP, reject) => {
    const child = lab.spawn(from, [process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolveP(JSON.parse(out)) : reject(new Error(`load client exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const lab = await Lab.up({ name: String(values.name), nodes: 2, podsPerNode: 2, mesh: true, onProgress: (m) => process.stderr.write(`${m}\n`) });
  const capture: { pods: number; enrolMs: number; releaseMs: number }[] = [];
  const restarts: { node: string; ok: number; failed: Record<string, number> }[] = [];
  try {
    for (const n of sizes) {
      const ns = `scale${n}`;
      await lab.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app', namespace: ns } }]);
      process.stderr.write(`starting ${n} pod(s) in ${ns}\n`);
      const pods: PodStatus[] = [];
      for (let i = 0; i < n; i += 10) {
        pods.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, (_, k) =>
          lab.addPod({ namespace: ns, name: `app-${i + k + 1}`, node: `node${((i + k) % 2) + 1}`, serviceAccount: 'app' })))));
      }
      const uids = pods.map((p) => p.uid);
      await lab.label('namespace', ns, 'weft.io/mesh=enabled');
      const enrolMs = await timeUntil(async () => { const e = await enrolled(lab); return uids.every((u) => e.has(u)); });
      await lab.label('namespace', ns, 'weft.io/mesh-');
      const releaseMs = await timeUntil(async () => { const e = await enrolled(lab); return uids.every((u) => !e.has(u)); });
      capture.push({ pods: n, enrolMs: Math.round(enrolMs), releaseMs: Math.round(releaseMs) });
      process.stderr.write(`${n} pod(s): captured in ${Math.round(enrolMs)} ms, released in ${Math.round(releaseMs)} ms\n`);
      await lab.delete([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }]);
    }

    // Restart each node's agent under a steady stream of new connections, client on node1,
    // server on node2, both enrolled.
    await lab.label('namespace', 'demo', 'weft.io/mesh=enabled');
    const demo = lab.status().pods.filter((p) => p.namespace === 'demo').map((p) => p.uid);
    await timeUntil(async () => { const e = await enrolled(lab); return demo.every((u) => e.has(u)); });
    const server = lab.pod('demo/server-1');
    for (const node of ['node1', 'node2']) {
      const load = steadyConnections(lab, 'demo/client-1', server.ip);
      await new Promise((r) => setTimeout(r, (seconds * 1000) / 3));
      await lab.restartAgent(node);
      const r = await load;
      restarts.push({ node, ...r });
      process.stderr.write(`restart of ${node}'s agent: ${r.ok} ok, failures ${JSON.stringify(r.failed)}\n`);
    }
  } finally {
    await lab.down();
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(RESULTS, { recursive: true });
  const result = { kind: 'enrolment', at: new Date().toISOString(), rate, seconds, capture, restarts };
  writeFileSync(join(RESULTS, `enrolment-${stamp}.json`), JSON.stringify(result, null, 2));
  const md = [
    '# Enrolment and agent restart', '',
    '| pods | label → all captured | unlabel → all released |', '|---:|---:|---:|',
    ...capture.map((c) => `| ${c.pods} | ${c.enrolMs} ms | ${c.releaseMs} ms |`), '',
    `Agent restart under ${rate} new connections/s for ${seconds} s (target: zero failures):`, '',
    '| node restarted | connections ok | failures |', '|---|---:|---|',
    ...restarts.map((r) => `| ${r.node} | ${r.ok} | ${Object.keys(r.failed).length ? JSON.stringify(r.failed) : '0'} |`), '',
  ].join('\n');
  writeFileSync(join(RESULTS, `enrolment-${stamp}.md`), md);
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`bench/enrolment: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
