// Shared by the agent/mesh lab tests: read a node agent's admin endpoints from inside its
// netns, run `weft` in process, and poll for a condition.
import { fetchConfigDumpInNetns } from '../../agent/src/telemetry/admin-client.js';
import { run } from '../../agent/src/common/exec.js';
import { main } from '../../agent/src/cli/main.js';
import type { AgentDump } from '../../agent/src/agent/index.js';
import type { Lab } from '../../agent/src/lab/index.js';

export async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

export async function agentDump(lab: Lab, node: string): Promise<AgentDump> {
  return (await fetchConfigDumpInNetns(`weft-${lab.name}-${node}`)) as AgentDump;
}

/** GET http://127.0.0.1:<port><path> inside a node's netns: {status, body}. */
export async function nodeHttp(lab: Lab, node: string, port: number, path: string): Promise<{ status: number; body: string }> {
  const script = `fetch('http://127.0.0.1:${port}${path}',{signal:AbortSignal.timeout(5000)}).then(async r=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text()})),e=>{console.error(e.cause?.message??e.message);process.exit(2)})`;
  const r = await run('nsenter', [`--net=/run/netns/weft-${lab.name}-${node}`, process.execPath, '-e', script], { allowFailure: true, timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`GET :${port}${path} in ${node}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as { status: number; body: string };
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until every pod of `namespace` is enrolled by its node's agent and each agent is ready. */
export async function waitForEnrolled(lab: Lab, namespace: string, timeoutMs: number): Promise<void> {
  const pods = lab.status().pods.filter((p) => p.namespace === namespace);
  for (const node of [...new Set(pods.map((p) => p.node))].sort()) {
    await waitFor(`enrolment on ${node}`, async () => {
      const d = await agentDump(lab, node);
      const want = pods.filter((p) => p.node === node).map((p) => p.uid).sort();
      const got = d.enrolment.filter((e) => e.state === 'enrolled').map((e) => e.uid).sort();
      return JSON.stringify(want) === JSON.stringify(got) && d.agent.ready;
    }, timeoutMs);
  }
}
