// The guided demo behind `npm start`: a two-node lab with the controller and an agent per node,
// walked through plaintext → live enrolment (same PIDs) → mTLS with identities → a DENY policy
// → STRICT → release. Every step checks what it shows; the summary says which held.
import { randomBytes } from 'node:crypto';
import type { AgentDump } from '../agent/index.js';
import { fetchConfigDumpInNetns } from '../telemetry/admin-client.js';
import { captureOnFabric } from './capture.js';
import type { Lab, PodStatus } from './lab.js';

export interface DemoIo {
  /** narration and results (stdout) */
  say(text: string): void;
  /** progress of long steps (stderr) */
  progress(text: string): void;
}

export interface DemoStep {
  title: string;
  ok: boolean;
  detail: string;
}

const MESH_LABEL = 'weft.io/mesh';
const TIMEOUT_MS = 20_000;

async function waitUntil(what: string, f: () => Promise<boolean>, timeoutMs = TIMEOUT_MS): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await f().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function agentDump(lab: Lab, node: string): Promise<AgentDump> {
  return fetchConfigDumpInNetns(`weft-${lab.name}-${node}`) as Promise<AgentDump>;
}

async function enrolledUids(lab: Lab): Promise<Set<string>> {
  const uids = new Set<string>();
  for (const n of lab.status().nodes) {
    for (const e of (await agentDump(lab, n.name)).enrolment) if (e.state === 'enrolled') uids.add(e.uid);
  }
  return uids;
}

async function nodeMetrics(lab: Lab, node: string): Promise<string> {
  const script = "fetch('http://127.0.0.1:15020/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))";
  const r = await lab.execInNode(node, [process.execPath, '-e', script], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout : '';
}

/** Runs the walkthrough on a lab that runs the mesh; returns one entry per step. */
export async function walkThrough(lab: Lab, io: DemoIo, signal?: AbortSignal): Promise<DemoStep[]> {
  const steps: DemoStep[] = [];
  const pod = (ref: string): PodStatus => lab.pod(ref);
  const client = pod('demo/client-1');
  const server = pod('demo/server-1');
  const outsider = pod('other/client-1');
  const url = (path: string) => `http://${server.ip}:8080/${path}`;
  const step = async (title: string, explain: string, body: () => Promise<{ ok: boolean; detail: string }>) => {
    // Ctrl-C: stop between steps; the caller tears the lab down.
    if (signal?.aborted) return;
    io.say(`\n== ${steps.length + 1}. ${title}\n${explain}\n`);
    let result: { ok: boolean; detail: string };
    try {
      result = await body();
    } catch (err) {
      result = { ok: false, detail: (err as Error).message };
    }
    io.say(`${result.ok ? '✓' : '✗'} ${result.detail}\n`);
    steps.push({ title, ...result });
  };

  if (signal?.aborted) return steps;
  // A second caller in `demo` with its own service account: the DENY step refuses one caller
  // and lets this one through.
  io.progress('adding pod demo/auditor (service account auditor) on node2');
  await lab.apply([{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'auditor', namespace: 'demo' } }]);
  const auditor = await lab.addPod({ namespace: 'demo', name: 'auditor', node: server.node, serviceAccount: 'auditor', labels: { app: 'auditor' } });
  const demoPods = () => lab.status().pods.filter((p) => p.namespace === 'demo');
  const pidsBefore = new Map(demoPods().map((p) => [p.uid, p.pid]));

  /** client-1 → server-1 with a fresh marker in the path while tcpdump watches the fabric. */
  const watchedRequest = async () => {
    const marker = `weft-demo-${randomBytes(4).toString('hex')}`;
    let res: Awaited<ReturnType<Lab['httpGet']>> = { ok: false };
    const pcap = await captureOnFabric(lab, async () => void (res = await lab.httpGet('demo/client-1', url(marker))));
    const seenClient = res.body ? (JSON.parse(res.body) as { client: string }).client : undefined;
    return { res, seen: pcap.includes(marker), seenClient };
  };

  await step('Plaintext before the mesh',
    `demo/client-1 (${client.ip}, ${client.node}) asks demo/server-1 (${server.ip}, ${server.node}) over HTTP while\ntcpdump watches the fabric between the nodes.`,
    async () => {
      const { res, seen, seenClient } = await watchedRequest();
      return {
        ok: !!res.ok && seen && seenClient === client.ip,
        detail: `server answered, saw client ${seenClient ?? '?'}; the marker ${seen ? 'crossed the fabric in plaintext' : 'was NOT seen on the fabric'}`,
      };
    });

  await step(`Label namespace demo ${MESH_LABEL}=enabled`,
    'Running pods join the mesh on the spot: the agent on each node finds them by their cgroup,\nopens their listeners inside their netns and attaches the eBPF programs. Nothing restarts.',
    async () => {
      await lab.label('namespace', 'demo', `${MESH_LABEL}=enabled`);
      const want = demoPods().map((p) => p.uid);
      const ms = await waitUntil('the demo pods to be enrolled', async () => {
        const got = await enrolledUids(lab);
        return want.every((u) => got.has(u));
      });
      const same = demoPods().every((p) => pidsBefore.get(p.uid) === p.pid);
      return { ok: same, detail: `${want.length} pods enrolled in ${ms} ms; PIDs ${same ? 'unchanged' : 'CHANGED'} (${demoPods().map((p) => `${p.name}=${p.pid}`).join(', ')})` };
    });

  await step('Encrypted, with SPIFFE identities',
    'The same request now goes through both agents: HBONE (HTTP/2 CONNECT over mutual TLS 1.3)\nbetween the pods, each side proving its identity with a certificate from the controller\'s CA.',
    async () => {
      const { res, seen, seenClient } = await watchedRequest();
      const certs = (await agentDump(lab, client.node)).certificates ?? [];
      for (const c of certs) io.say(`   ${client.node} holds ${c.identity} (valid until ${c.notAfter ?? '?'})\n`);
      const metrics = await nodeMetrics(lab, server.node);
      const line = metrics.split('\n').find((l) => l.startsWith('istio_tcp_connections_opened_total{') && l.includes('reporter="destination"') && l.includes('source_principal="spiffe://cluster.local/ns/demo/sa/client"'));
      if (line) io.say(`   ${server.node} metrics: ${line.slice(0, 160)}…\n`);
      const mtls = !!line && line.includes('connection_security_policy="mutual_tls"');
      return {
        ok: !!res.ok && !seen && seenClient === client.ip && mtls,
        detail: `server answered and still saw the client's own IP ${seenClient ?? '?'}; the marker ${seen ? 'LEAKED in plaintext' : 'never crossed the fabric in plaintext'}; ${mtls ? 'metrics report mutual_tls with the client\'s SPIFFE identity' : 'no mutual_tls metric found'}`,
      };
    });

  await step('A DENY policy refuses one caller',
    'AuthorizationPolicy deny-client (action DENY, principal cluster.local/ns/demo/sa/client) on\nthe server: enforced by the server\'s agent against the caller\'s certificate identity.',
    async () => {
      const policy = {
        apiVersion: 'security.weft.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-client', namespace: 'demo' },
        spec: { selector: { matchLabels: { app: 'server' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/client'] } }] }] },
      };
      await lab.apply([policy]);
      try {
        await waitUntil('the policy to reach the server\'s agent', async () => !(await lab.httpGet('demo/client-1', url('denied'), 3000)).ok);
        const refused = await lab.httpGet('demo/client-1', url('denied'), 3000);
        const allowed = await lab.httpGet(`demo/${auditor.name}`, url('allowed'), 3000);
        return { ok: !refused.ok && allowed.ok, detail: `demo/client-1 refused (${refused.code ?? refused.status}); demo/auditor (another identity) ${allowed.ok ? 'still allowed' : 'ALSO REFUSED'}` };
      } finally {
        await lab.delete([policy], { ignoreNotFound: true });
      }
    });

  await step('STRICT refuses plaintext from outside the mesh',
    'other/client-1 is not in the mesh, so it speaks plaintext. PERMISSIVE (the default) lets it\nin; PeerAuthentication STRICT in demo refuses it.',
    async () => {
      const before = await lab.httpGet('other/client-1', url('permissive'), 3000);
      const pa = { apiVersion: 'security.weft.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'demo' }, spec: { mtls: { mode: 'STRICT' } } };
      await lab.apply([pa]);
      try {
        await waitUntil('STRICT to reach the server\'s agent', async () => !(await lab.httpGet('other/client-1', url('strict'), 3000)).ok);
        const meshed = await lab.httpGet('demo/client-1', url('meshed'), 3000);
        return { ok: before.ok && meshed.ok, detail: `plaintext from ${outsider.ip} ${before.ok ? 'allowed' : 'REFUSED'} under PERMISSIVE, refused under STRICT; demo/client-1 over mTLS ${meshed.ok ? 'still allowed' : 'REFUSED'}` };
      } finally {
        await lab.delete([pa], { ignoreNotFound: true });
      }
    });

  await step(`Remove the label: pods released`,
    `${MESH_LABEL}- on namespace demo: listeners closed, eBPF programs detached, certificates dropped.\nThe pods keep running.`,
    async () => {
      await lab.label('namespace', 'demo', `${MESH_LABEL}-`);
      const uids = demoPods().map((p) => p.uid);
      const ms = await waitUntil('release', async () => {
        const got = await enrolledUids(lab);
        return uids.every((u) => !got.has(u));
      });
      const { res, seen } = await watchedRequest();
      const same = demoPods().every((p) => pidsBefore.get(p.uid) === p.pid);
      return { ok: same && !!res.ok && seen, detail: `released in ${ms} ms; PIDs ${same ? 'unchanged' : 'CHANGED'}; traffic ${res?.ok ? 'flows' : 'FAILS'}, plaintext again as before` };
    });

  return steps;
}

export function renderSummary(steps: DemoStep[]): string {
  const lines = ['', 'Summary:'];
  steps.forEach((s, i) => lines.push(`  ${s.ok ? '✓' : '✗'} ${i + 1}. ${s.title}`));
  const failed = steps.filter((s) => !s.ok).length;
  lines.push(failed === 0 ? `All ${steps.length} steps held.` : `${failed} of ${steps.length} steps did not hold.`);
  return lines.join('\n') + '\n';
}
